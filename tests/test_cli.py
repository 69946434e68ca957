"""The command line, as a person uses it (bad input is in test_bad_input.py)."""
import subprocess
import sys

import numpy as np
import pytest

from charrnn import load_checkpoint
from charrnn.models.rnn import PARAM_NAMES


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("command", ["corpus", "train", "sample", "gradcheck", "bench"])
def test_help(command):
    r = cli(command, "--help")
    assert "usage: python -m charrnn " + command in r.stdout


def test_train_sample_resume(tmp_path, corpus_file):
    run = tmp_path / "run"
    common = ["--corpus", corpus_file, "--m", 12, "--seq-length", 10, "--sample-every", 40, "--checkpoint-every", 25]
    r = cli("train", *common, "--updates", 80, "--out", run)
    assert "--- update 40, smooth loss" in r.stderr and "done: 80 updates" in r.stderr
    assert "config:" in r.stderr and "seq_length       10" in r.stderr
    assert {p.name for p in run.iterdir()} == {"last.npz", "best.npz", "history.json"}
    a = cli("sample", "--checkpoint", run, "--length", 60, "--seed", 3, "--prime", "The").stdout
    assert a.startswith("The") and len(a) == 3 + 60 + 1
    assert a == cli("sample", "--checkpoint", run, "--length", 60, "--seed", 3, "--prime", "The").stdout
    greedy = cli("sample", "--checkpoint", run / "best.npz", "--length", 30, "--temperature", 0).stdout
    assert greedy == cli("sample", "--checkpoint", run, "--best", "--length", 30, "--temperature", 0).stdout
    # resume to 160 in total == 160 straight
    cli("train", "--resume", run, "--updates", 160, "--quiet")      # its corpus is remembered
    straight = tmp_path / "straight"
    cli("train", *common, "--updates", 160, "--out", straight, "--quiet")
    x, y = load_checkpoint(run), load_checkpoint(straight)
    assert x.step == y.step == 160
    for k in PARAM_NAMES:
        assert np.array_equal(x.params[k], y.params[k])
    r = cli("train", "--resume", run, "--corpus", corpus_file, "--updates", 100, check=False)
    assert r.returncode == 1 and "already has 160 updates" in r.stderr


def test_gradcheck(corpus_file):
    r = cli("gradcheck", "--corpus", corpus_file, "--m", 5)
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:7]] == list(PARAM_NAMES)
    assert "(agree)" in lines[-1]


def test_bench(corpus_file):
    r = cli("bench", "--corpus", corpus_file, "--updates", 40, "--rounds", 1, "--m", 20)
    assert "classic per-timestep" in r.stdout and "x classic" in r.stdout and "float32" in r.stdout
    assert "median of the rounds' own ratios" in r.stdout


def test_bench_estimates_agree_for_one_round():
    """With one round the best rates are the round's rates, so both estimates are the same number."""
    from charrnn.bench import compare
    r = compare("the quick brown fox jumps over the lazy dog. " * 20, updates=8, rounds=1, m=6, seq_length=5)
    assert r["classic_updates"] == 2 and r["rounds"] == 1
    assert r["paired64"] == pytest.approx(r["ratio64"], rel=1e-12)
    assert r["paired32"] == pytest.approx(r["ratio32"], rel=1e-12)


def test_corpus_command():
    r = cli("corpus")
    assert "characters" in r.stdout and "distinct" in r.stdout


def test_resume_refuses_changed_settings_and_keeps_bookkeeping(tmp_path, corpus_file):
    run = tmp_path / "run"
    cli("train", "--corpus", corpus_file, "--m", 8, "--seq-length", 10, "--updates", 30, "--out", run, "--quiet")
    r = cli("train", "--resume", run, "--updates", 60, "--eta", 0.5, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "with --eta 0.5: the checkpoint's run has 0.1" in r.stderr
    cli("train", "--resume", run, "--updates", 60, "--m", 8, "--checkpoint-every", 7, "--quiet")
    ck = load_checkpoint(run)
    assert ck.step == 60 and ck.config.checkpoint_every == 7 and ck.config.m == 8


def test_negative_seed_is_one_line(tmp_path):
    r = cli("sample", "--checkpoint", tmp_path, "--seed", "-1", check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "seed must be an integer >= 0, got -1" in r.stderr


def test_an_unknown_init_is_one_line(tmp_path, corpus_file):
    r = cli("train", "--corpus", corpus_file, "--init", "uniform", "--out", tmp_path / "run", check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--init: invalid choice: 'uniform'" in r.stderr
    assert not (tmp_path / "run").exists()


def test_divergence_before_any_checkpoint_leaves_nothing(tmp_path, corpus_file):
    r = cli("train", "--corpus", corpus_file, "--eta", "1e4", "--updates", 50, "--out", tmp_path / "gone",
            "--quiet", check=False)
    assert r.returncode == 1 and "training diverged" in r.stderr and "no checkpoint was written" in r.stderr
    assert not (tmp_path / "gone").exists()


def test_the_stored_speed_result_is_keyed_to_the_code(tmp_path):
    """The report caches its speed comparison; a change to the measured code, the classic loop's
    included, must invalidate it. A copy of the package's files hashes alike until one changes."""
    import shutil
    from pathlib import Path

    from charrnn import bench
    before = bench.code_version()
    assert len(before) == 12 and before == bench.code_version()
    here = Path(bench.__file__).parent
    shutil.copytree(here / "models", tmp_path / "models")
    for name in ("optim", "trainer", "bench", "jit"):
        shutil.copy(here / f"{name}.py", tmp_path / f"{name}.py")
    assert bench.code_version(tmp_path) == before
    for changed in (tmp_path / "jit.py", tmp_path / "models" / "reference.py"):    # the kernels count too
        changed.write_bytes(changed.read_bytes() + b"\n")
        assert bench.code_version(tmp_path) != before
        before = bench.code_version(tmp_path)


def test_train_and_sample_a_gated_cell_with_batches(tmp_path, corpus_file):
    run = tmp_path / "lstm"
    r = cli("train", "--corpus", corpus_file, "--cell", "lstm", "--batch-size", 4, "--seq-length", 16, "--m", 12,
            "--optimizer", "adam", "--eta", 0.01, "--objective", "mean", "--clip-norm", 1.0, "--schedule", "cosine",
            "--updates", 40, "--val-fraction", 0.1, "--val-every", 20, "--val-streams", 4, "--init", "orthogonal",
            "--out", run)
    assert "cell             'lstm'" in r.stderr and "held-out loss" in r.stderr
    ck = load_checkpoint(run)
    assert ck.cell == "lstm" and ck.config.batch_size == 4 and ck.state.shape == (4, 24)
    assert ck.config.init == "orthogonal"
    a = cli("sample", "--checkpoint", run, "--best", "--length", 50, "--seed", 1).stdout
    assert len(a) == 51 and a == ck.best_model().sample(50, seed=1) + "\n"
    r = cli("train", "--resume", run, "--updates", 60, "--cell", "gru", check=False)
    assert r.returncode == 1 and "with --cell gru: the checkpoint's run has 'lstm'" in r.stderr


@pytest.mark.parametrize("cell,batch", [("rnn", 1), ("gru", 3), ("lstm", 3)])
def test_gradcheck_json_for_every_cell(corpus_file, cell, batch):
    import json
    r = cli("gradcheck", "--corpus", corpus_file, "--cell", cell, "--batch-size", batch, "--m", 4,
            "--seq-length", 6, "--sigma", 0.5, "--json")
    table = json.loads(r.stdout)
    assert list(table) == list(PARAM_NAMES) and all(set(v) == {"max", "mean", "min", "norm"} for v in table.values())
    assert max(v["norm"] for v in table.values()) < 1e-6
    text = cli("gradcheck", "--corpus", corpus_file, "--cell", cell, "--batch-size", batch, "--m", 4,
               "--seq-length", 6, "--sigma", 0.5).stdout
    assert f"cell={cell}" in text and f"batch_size={batch}" in text and "(agree)" in text


def test_bench_a_cell_prints_characters_per_second_and_the_gemm_share_as_json(corpus_file):
    import json
    r = cli("bench", "--corpus", corpus_file, "--cell", "lstm", "--batch-size", 4, "--seq-length", 16, "--m", 16,
            "--dtype", "float32", "--updates", 5, "--rounds", 1, "--json")
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["chars_per_s"] > 0 and 0 < last["gemm_fraction"] and last["cell"] == "lstm"
    assert last["flops_per_char"] == 6 * 4 * 16 * 16 + 6 * len(set(corpus_file.read_text())) * 16
    assert "share of that GEMM rate" in r.stdout and "characters/s" in r.stdout
    from charrnn import jit
    assert last["kernels"] == (jit.numba is not None)              # Adam's kernel, float32
    r = cli("bench", "--corpus", corpus_file, "--cell", "gru2", "--batch-size", 4, "--seq-length", 16, "--m", 16,
            "--dtype", "float32", "--updates", 5, "--rounds", 1, "--json", "--no-kernels")
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["kernels"] is False and last["chars_per_s"] > 0 and "compiled kernels" not in r.stdout


def test_no_kernels_is_refused_for_the_classic_comparison(corpus_file):
    r = cli("bench", "--corpus", corpus_file, "--no-kernels", "--updates", 5, "--rounds", 1, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["charrnn bench: error: --no-kernels applies to a cell's speed "
                                             "(--cell, --batch-size, --seq-length or --dtype); the classic "
                                             "comparison runs in float64, which has none"]


def test_the_budget_preset_trains_on_any_corpus_and_records_the_held_out_loss(tmp_path, corpus_file):
    import json
    run = tmp_path / "budget"
    r = cli("train", "--preset", "budget", "--corpus", corpus_file, "--time-budget", 2, "--val-fraction", 0.1,
            "--m", 16, "--batch-size", 4, "--seq-length", 16, "--out", run, "--quiet")
    assert r.returncode == 0
    h = json.loads((run / "history.json").read_text())
    from charrnn.config import PRESETS
    preset = PRESETS["budget"]
    assert h["stopped"] == "time budget" and h["val_loss"] and h["config"]["cell"] == preset["cell"]
    assert h["config"]["schedule"] == preset["schedule"] and h["config"]["eta"] == preset["eta"]
    assert h["config"]["m"] == 16 != preset["m"]                                # the options given win
    r = cli("train", "--resume", run, "--preset", "budget", "--updates", 10**7, check=False)
    assert r.returncode == 1 and "--preset" in r.stderr
