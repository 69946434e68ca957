"""Faults done for real to `python -m charrnn train` subprocesses: SIGKILL at random
points and inside a checkpoint write, SIGINT/SIGTERM, divergence. After each, the run
resumes to final parameters bit-for-bit equal to an uninterrupted run's."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import charrnn.models.rnn as rnn_mod
from charrnn import CheckpointError, Corpus, TrainConfig, TrainingDiverged, init_params, load_checkpoint, train

UPDATES = 1500
ARGS = ["--m", "8", "--seq-length", "10", "--checkpoint-every", "20", "--seed", "3", "--sample-every", "200",
        "--sample-length", "20", "--log-every", "10", "--quiet"]


def cli(corpus, out, *more, env=None, **kw):
    """Start a training subprocess (not waiting)."""
    cmd = [sys.executable, "-m", "charrnn", "train", "--corpus", str(corpus), "--out", str(out),
           "--updates", str(UPDATES), *ARGS, *more]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kw)


def finish(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, err


def resume(corpus, out):
    """Resume from out/last.npz (or start afresh if no checkpoint survived) and run to the end."""
    more = ["--resume", str(out)] if (out / "last.npz").exists() else []
    rc, err = finish(cli(corpus, out, *more))
    assert rc == 0, err
    return rc


def wait_for(path: Path, p, timeout=60):
    t = time.monotonic()
    while not path.exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() - t < timeout, f"{path} never appeared"
        time.sleep(0.01)


def state(path):
    """Every array and the trajectory-defining metadata of a checkpoint file."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(z["meta"].tobytes())
    keep = ("step", "position", "epoch", "smooth_loss", "best_smooth_loss", "best_step", "rng_state", "finished")
    hist = {k: meta["history"][k] for k in ("steps", "loss", "smooth_loss", "samples", "epoch_steps")}
    return arrays, {k: meta[k] for k in keep}, hist


def assert_same_run(a: Path, b: Path):
    for name in ("last.npz", "best.npz"):
        arr_a, meta_a, hist_a = state(a / name)
        arr_b, meta_b, hist_b = state(b / name)
        assert sorted(arr_a) == sorted(arr_b)
        for k in arr_a:
            assert arr_a[k].dtype == arr_b[k].dtype and np.array_equal(arr_a[k], arr_b[k]), f"{name}: {k} differs"
        assert meta_a == meta_b
        assert hist_a == hist_b
    assert meta_a["finished"] and meta_a["step"] == UPDATES


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, text_small):
    p = tmp_path_factory.mktemp("faults") / "corpus.txt"
    p.write_text(text_small, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def reference(corpus):
    """The uninterrupted run."""
    out = corpus.parent / "reference"
    rc, err = finish(cli(corpus, out))
    assert rc == 0, err
    assert load_checkpoint(out).step == UPDATES
    return out


def checkpoint_step(out: Path):
    try:
        return load_checkpoint(out / "last.npz").step
    except CheckpointError:                # not there yet
        return -1


def test_sigkill_at_random_points_then_resume_is_bit_for_bit(corpus, reference, tmp_path):
    """Five SIGKILLs: one at a random early moment, four at random steps (each a random few
    milliseconds after a checkpoint landed: mid-update or mid-write); each time resume from last.npz."""
    out = tmp_path / "killed"
    rnd = random.Random(5)
    targets = sorted(rnd.sample(range(40, UPDATES - 200, 20), 4))
    p = cli(corpus, out)
    early = time.monotonic() + rnd.uniform(0.05, 0.3)
    while time.monotonic() < early and not (out / "last.npz").exists():
        time.sleep(0.002)                  # early: during start-up, or at the latest as the first checkpoint lands
    p.kill()
    p.communicate()
    seen = []
    p = cli(corpus, out, *(["--resume", str(out)] if checkpoint_step(out) >= 0 else []))
    for target in targets:
        t = time.monotonic()
        while checkpoint_step(out) < target:
            assert p.poll() is None, p.communicate()[1]
            assert time.monotonic() - t < 60
            time.sleep(0.005)
        time.sleep(rnd.uniform(0.0, 0.03))
        p.kill()
        p.communicate()
        assert p.returncode == -signal.SIGKILL     # it really was killed, not finished
        ck = load_checkpoint(out)                  # whatever the moment, the last checkpoint loads
        assert target <= ck.step < UPDATES and not ck.finished
        seen.append(ck.step)
        p = cli(corpus, out, "--resume", str(out))
    rc, err = finish(p)
    assert rc == 0, err
    assert seen == sorted(seen) and len(seen) == 4, seen
    assert_same_run(out, reference)


def test_sigkill_inside_checkpoint_write_keeps_previous_checkpoint(corpus, reference, tmp_path):
    out = tmp_path / "torn"
    p = cli(corpus, out, env={"CHARRNN_TEST_SAVE_PAUSE": "0.5"})
    seen = 0
    for line in p.stderr:                  # the hook announces each temporary file, then holds the rename
        if line.startswith("charrnn-test: wrote") and "/.last.npz." in line:
            seen += 1
            if seen == 2:                  # the second `last` save: the first one is on disk
                tmp = Path(line.split("wrote ", 1)[1].split(", renaming")[0])
                p.kill()
                break
    p.communicate()
    assert seen == 2 and p.returncode == -signal.SIGKILL
    assert tmp.exists() and tmp.stat().st_size > 0      # the torn write: complete temp file, never renamed
    ck = load_checkpoint(out / "last.npz")
    assert ck.step == 20 and not ck.finished            # the previous checkpoint, intact
    assert load_checkpoint(out / "best.npz").step in (20, 40)    # `best` is saved before `last`
    resume(corpus, out)                                  # the stray temp file breaks nothing
    assert_same_run(out, reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_saves_says_where_and_resumes_exactly(corpus, reference, tmp_path, sig):
    out = tmp_path / "interrupted"
    p = cli(corpus, out)
    wait_for(out / "last.npz", p)          # 20 of 1,500 updates done: the signal lands mid-run on any machine
    p.send_signal(sig)
    rc, err = finish(p)
    assert rc == 128 + sig, err                         # 130 for Ctrl-C, 143 for SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    ck = load_checkpoint(out / "last.npz")
    assert 0 < ck.step < UPDATES and not ck.finished
    assert lines[0] == (f"charrnn train: interrupted by {sig.name} after {ck.step} updates; "
                        f"checkpoint saved to {out / 'last.npz'}")
    resume(corpus, out)
    assert_same_run(out, reference)


def test_absurd_learning_rate_stops_at_once_with_one_line(corpus, tmp_path):
    out = tmp_path / "diverged"
    rc, err = finish(cli(corpus, out, "--eta", "1e4"))
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("charrnn train: error: training diverged: the loss ")
    assert "at update 2 " in lines[0] and "eta=10000.0" in lines[0]   # the first update was the last one made
    assert not (out / "last.npz").exists()


def test_divergence_after_checkpoints_keeps_the_last_good_one(corpus, reference, tmp_path):
    """A good run resumed with an absurd learning rate (its config tampered with) stops on the
    first exploded loss; the checkpoint it started from stays intact and loadable."""
    out = tmp_path / "later"
    assert finish(cli(corpus, out, "--updates", "100"))[0] == 0
    good = (out / "last.npz").read_bytes()
    with np.load(out / "last.npz", allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    meta = json.loads(parts["meta"].tobytes())
    meta["config"]["eta"] = 1e4
    parts["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    bad = tmp_path / "absurd.npz"
    np.savez(bad, **parts)
    rc, err = finish(cli(corpus, out, "--resume", str(bad)))
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert f"at update {meta['step'] + 2} " in lines[0] and f"the last good checkpoint is {out / 'last.npz'}" in lines[0]
    assert (out / "last.npz").read_bytes() == good
    assert load_checkpoint(out / "last.npz").step == meta["step"]


# --- injected NaN, through the library ---

CFG = TrainConfig(m=8, seq_length=10, n_updates=100, checkpoint_every=10, sample_every=1000, sample_length=10,
                  log_every=5)


def test_nan_in_initial_params_stops_before_any_update(text_small, tmp_path):
    corpus = Corpus.from_text(text_small)
    params = init_params(len(corpus.vocab), 8, seed=0)
    params["W"][2, 3] = np.nan
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at update 1 .*no checkpoint was written"):
        train(corpus, CFG.replace(checkpoint_dir=str(tmp_path / "run")), params=params)
    assert not list((tmp_path / "run").glob("*.npz"))


def counting(fn, bad_call, poison):
    """Wrap fn so that its bad_call-th call (1-based) is poisoned."""
    calls = {"n": 0}

    def wrapped(*a, **kw):
        calls["n"] += 1
        out = fn(*a, **kw)
        return poison(out, a, kw) if calls["n"] == bad_call else out
    return wrapped, calls


@pytest.mark.parametrize("bad", [37, 40, 41])
def test_nan_loss_mid_run_stops_within_one_update(text_small, tmp_path, monkeypatch, bad):
    corpus = Corpus.from_text(text_small)
    d = tmp_path / "run"
    fwd, calls = counting(rnn_mod.forward_batch, bad, lambda out, a, kw: (float("nan"), out[1]))
    bwd, bcalls = counting(rnn_mod.backward_batch, 0, None)
    monkeypatch.setattr(rnn_mod, "forward_batch", fwd)
    monkeypatch.setattr(rnn_mod, "backward_batch", bwd)
    with pytest.raises(TrainingDiverged, match=fr"became nan at update {bad} .*last good checkpoint is .*last\.npz"):
        train(corpus, CFG.replace(checkpoint_dir=str(d)))
    assert calls["n"] == bad and bcalls["n"] == bad - 1         # no update was made with the NaN loss
    monkeypatch.undo()
    good_step = (bad - 1) // 10 * 10
    ck = load_checkpoint(d)
    assert ck.step == good_step
    clean = train(corpus, CFG.replace(n_updates=good_step))
    for k, v in clean.params.items():
        assert np.array_equal(ck.params[k], v)                 # the checkpoint is the good trajectory's


def test_nan_gradient_at_a_checkpoint_step_does_not_overwrite_the_good_checkpoint(text_small, tmp_path, monkeypatch):
    """A finite loss but a NaN gradient on update 30 (a checkpoint step): the parameters turn NaN before
    the loss does. The save at step 30 must refuse, leaving step 20's checkpoint loadable."""
    corpus = Corpus.from_text(text_small)
    d = tmp_path / "run"

    def poison(out, a, kw):
        kw["out"]["W"][0, 0] = np.nan
        return out
    bwd, _ = counting(rnn_mod.backward_batch, 30, poison)
    monkeypatch.setattr(rnn_mod, "backward_batch", bwd)
    with pytest.raises(TrainingDiverged, match=r"parameters became non-finite by update 30"):
        train(corpus, CFG.replace(checkpoint_dir=str(d)))
    assert load_checkpoint(d).step == 20


def test_save_checkpoint_refuses_non_finite_params(text_small, tmp_path):
    h = train(text_small, CFG.replace(n_updates=10, checkpoint_dir=str(tmp_path / "run")))
    ck = load_checkpoint(tmp_path / "run")
    ck.params["V"][0, 0] = np.inf
    from charrnn.checkpoint import save_checkpoint
    with pytest.raises(CheckpointError, match="param/V holds non-finite values"):
        save_checkpoint(ck, tmp_path / "run" / "last.npz")
    assert load_checkpoint(tmp_path / "run").step == h.step
