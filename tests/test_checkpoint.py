"""Checkpoints: round trip, exact resume, refusal of broken or mismatched files."""
import json
import zipfile

import numpy as np
import pytest

from charrnn import CheckpointError, ConfigError, TrainConfig, TrainingDiverged, init_params, load_checkpoint, train
from charrnn.checkpoint import save_checkpoint
from charrnn.models.rnn import PARAM_NAMES

CFG = TrainConfig(m=10, seq_length=12, n_updates=120, checkpoint_every=40, sample_every=50, sample_length=20,
                  log_every=10)


def run(tmp_path, text, name="run", **kw):
    d = tmp_path / name
    return train(text, CFG.replace(checkpoint_dir=str(d), **kw)), d


def test_round_trip(tmp_path, text_small):
    h, d = run(tmp_path, text_small)
    ck = load_checkpoint(d / "last.npz")
    save_checkpoint(ck, tmp_path / "copy.npz")
    again = load_checkpoint(tmp_path / "copy.npz")
    for k in PARAM_NAMES:
        assert np.array_equal(again.params[k], h.params[k]) and again.params[k].dtype == np.float64
    assert again.vocab == ck.vocab and again.config == ck.config and again.step == 120
    assert again.rng_state == ck.rng_state and np.array_equal(again.hprev, ck.hprev)
    with zipfile.ZipFile(d / "last.npz") as z:        # arrays and JSON only, no pickle
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(d / "last.npz", allow_pickle=False) as z:
        assert json.loads(z["meta"].tobytes())["config"]["m"] == 10


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_resume_equals_uninterrupted(tmp_path, text_small, optimizer):
    eta = 0.1 if optimizer == "adagrad" else 0.01
    full, _ = run(tmp_path, text_small, "full", optimizer=optimizer, eta=eta)
    _, d = run(tmp_path, text_small, "half", optimizer=optimizer, eta=eta, n_updates=60)
    resumed = train(text_small, CFG.replace(checkpoint_dir=str(d), resume=str(d), optimizer=optimizer, eta=eta))
    for k in PARAM_NAMES:
        assert np.array_equal(resumed.params[k], full.params[k])
        assert np.array_equal(resumed.best_params[k], full.best_params[k])
    assert resumed.samples == full.samples
    assert resumed.smooth_loss == full.smooth_loss and resumed.steps == full.steps
    assert resumed.best_step == full.best_step


def test_truncated_checkpoint(tmp_path, text_small):
    _, d = run(tmp_path, text_small)
    data = (d / "last.npz").read_bytes()
    (d / "last.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(d)


def test_garbage_and_missing(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.npz")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in run directory"):
        load_checkpoint(tmp_path / "empty_run")


def rewrite(path, edit_meta=None, edit_arrays=None):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("edit_meta,edit_arrays,message", [
    (lambda m: m["config"].update(m=11), None, r"param/U has shape \(10, \d+\), expected \(11, \d+\)"),
    (None, lambda a: a.update({"param/W": np.zeros((10, 9))}), r"param/W has shape \(10, 9\)"),
    (None, lambda a: a.pop("param/V"), "lacks array param/V"),
    (None, lambda a: a["param/b"].__setitem__(0, np.nan), "non-finite"),
    (lambda m: m.update(format="zip"), None, "not a charrnn checkpoint"),
    (lambda m: m["config"].update(eta=-1), None, "eta"),
    (lambda m: m["config"].update(bogus=1), None, "unknown config keys: bogus"),
    (lambda m: m.update(vocab=["b", "a"]), None, "not sorted"),
    (lambda m: m.update(step=-3), None, "step must be"),
])
def test_tampered_checkpoint(tmp_path, text_small, edit_meta, edit_arrays, message):
    _, d = run(tmp_path, text_small)
    rewrite(d / "last.npz", edit_meta, edit_arrays)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(d)


def test_tampered_json_bytes(tmp_path, text_small):
    _, d = run(tmp_path, text_small)
    with np.load(d / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(d / "last.npz", **arrays)
    with pytest.raises(CheckpointError, match="corrupted metadata"):
        load_checkpoint(d)


def test_resume_refuses_other_corpus_or_settings(tmp_path, text_small):
    _, d = run(tmp_path, text_small, n_updates=40)
    with pytest.raises(CheckpointError, match="different vocabulary"):
        train(text_small.upper(), CFG.replace(checkpoint_dir=str(d), resume=str(d)))
    with pytest.raises(CheckpointError, match="different corpus"):
        train(text_small[::-1], CFG.replace(checkpoint_dir=str(d), resume=str(d)))
    with pytest.raises(ConfigError, match="eta=0.2 differs"):
        train(text_small, CFG.replace(checkpoint_dir=str(d), resume=str(d), eta=0.2))
    with pytest.raises(CheckpointError, match="resume from last.npz"):
        train(text_small, CFG.replace(resume=str(d / "best.npz")))


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path, text_small):
    _, d = run(tmp_path, text_small, n_updates=40)
    before = (d / "last.npz").read_bytes()
    ck = load_checkpoint(d)
    bad = {k: v.copy() for k, v in ck.params.items()}
    bad["W"][0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"loss became nan at update 1 .*last good checkpoint"):
        train(text_small, CFG.replace(checkpoint_dir=str(d)), params=bad)
    assert (d / "last.npz").read_bytes() == before
    load_checkpoint(d)


def test_absurd_learning_rate_diverges(text_small):
    with pytest.raises(TrainingDiverged, match="loss exploded"):
        train(text_small, TrainConfig(m=10, seq_length=12, n_updates=5000, eta=1e4, clip=1e6, sample_length=0),
              params=init_params(len(set(text_small)), 10, sigma=0.5))


def test_files_follow_the_umask_and_stale_temporaries_are_cleared(tmp_path, text_small):
    import os
    old = os.umask(0o022)
    try:
        d = tmp_path / "run"
        d.mkdir()
        (d / ".last.npz.abc123.tmp").write_bytes(b"half a checkpoint")   # a writer killed mid-save
        train(text_small, CFG.replace(checkpoint_dir=str(d), n_updates=20))
    finally:
        os.umask(old)
    assert (d / "last.npz").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in d.iterdir()) == ["best.npz", "history.json", "last.npz"]
