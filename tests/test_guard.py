"""The spike guard (charrnn.guard) and the best held-out model.

Spikes are injected two ways: a scaled gradient (the backward pass of one update multiplied by 1e4, as
a numerical accident would), and a corrupted stretch of the corpus (one batch of a character the text
never uses), which also reaches a real `python -m charrnn train` process that is killed and resumed.
"""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn import TrainConfig, TrainingDiverged, load_checkpoint, train
from charrnn.config import ConfigError
from charrnn.guard import MAX_STRIKES
from charrnn.models import gru
from conftest import make_text

B, T = 4, 16
CFG = TrainConfig(cell="gru", m=32, batch_size=B, seq_length=T, optimizer="adam", eta=0.01, n_updates=800,
                  sample_length=0, log_every=1, objective="mean", sigma=0.1)
INJECT = 400                      # the update whose gradient is scaled


@pytest.fixture(scope="module")
def text():
    return make_text(60_000, seed=3)


class Injector:
    """Replaces gru.backward_batch: the gradient of each update in `at` (1-based) is multiplied by 1e4. It
    follows the trainer's step through the "log" events (log_every=1), so a resumed run is injected at the
    same updates."""

    def __init__(self, monkeypatch, start=0, at=(INJECT,)):
        self.step, self.fired = start, 0
        real = gru.backward_batch

        def backward(params, cache, out=None):
            g, s = real(params, cache, out)
            if self.step + 1 in at:
                self.fired += 1
                for v in g.values():
                    v *= 1e4
            return g, s
        monkeypatch.setattr(gru, "backward_batch", backward)

    def __call__(self, ev):
        if ev["event"] == "log":
            self.step = ev["step"]


def test_the_guard_escalates_from_skipping_to_the_newest_copy_to_the_older_one(text, monkeypatch):
    """Three damaged updates in a row: skip, then the copy of update 300, then that of 200, which must be
    exactly the parameters the same run had after 200 updates."""
    inject = Injector(monkeypatch, at=(INJECT, INJECT + 1, INJECT + 2))
    seen = {}
    real = gru.forward_batch

    def forward(params, X, Y, S0, ws):
        if inject.step == INJECT + 2:                # update 403: the first after the third refusal
            seen.update({k: v.copy() for k, v in params.items()}, S0=S0.copy())
        return real(params, X, Y, S0, ws)
    monkeypatch.setattr(gru, "forward_batch", forward)
    h = train(text, CFG.replace(spike_guard=1.5), callback=inject)
    assert inject.fired == 3
    assert [(e["step"], e["restored"]) for e in h.spikes] == [(400, None), (401, 300), (402, 200)]
    assert [e["eta"] for e in h.spikes] == pytest.approx([0.01, 0.005, 0.0025])
    assert [e["action"] for e in h.spikes] == ["skip the batch", "put back update 300, eta x0.5",
                                              "put back update 200, eta x0.5"]
    at_200 = train(text, CFG.replace(spike_guard=1.5, n_updates=200))
    for k in at_200.params:
        assert np.array_equal(seen[k], at_200.params[k]), k
    assert seen["S0"].any()                          # the streams read on from the refused batches' states


def per_char(h, a, b):
    return float(np.mean(h.loss[a:b])) / T


def test_a_guard_that_never_trips_changes_nothing(text, tmp_path):
    off = train(text, CFG.replace(n_updates=200, checkpoint_dir=str(tmp_path / "off")))
    on = train(text, CFG.replace(n_updates=200, spike_guard=100.0, checkpoint_dir=str(tmp_path / "on")))
    for k in off.params:
        assert np.array_equal(off.params[k], on.params[k])
    assert on.loss == off.loss and on.spikes == [] and off.spikes is None
    assert json.loads((tmp_path / "on" / "history.json").read_text())["spikes"] == []
    assert "spikes" not in json.loads((tmp_path / "off" / "history.json").read_text())


def test_the_guard_recovers_from_a_scaled_gradient_and_records_it(text, monkeypatch):
    inject = Injector(monkeypatch)
    unguarded = train(text, CFG, callback=inject)
    before = per_char(unguarded, INJECT - 100, INJECT)
    assert inject.fired == 1 and per_char(unguarded, INJECT + 50, INJECT + 100) > before + 0.3   # a real spike
    inject = Injector(monkeypatch)
    events = []
    guarded = train(text, CFG.replace(spike_guard=1.5), callback=lambda ev: inject(ev) or events.append(ev))
    assert inject.fired == 1 and len(guarded.spikes) == 1
    spike = guarded.spikes[0]
    assert spike["step"] == INJECT                                # the gradient norm gives it away: never applied
    assert spike["grad_norm"] > 1e3 * spike["norm_level"] and spike["loss"] < 1.5 * spike["level"]   # not the loss
    assert spike["restored"] is None and spike["action"] == "skip the batch"   # nothing to put back, eta kept
    assert spike["eta"] == pytest.approx(0.01)
    assert [e for e in events if e["event"] == "spike"] == [{"event": "spike", **spike}]
    after = per_char(guarded, INJECT + 50, INJECT + 100)
    assert after < before + 0.05                                  # back to where it was, within 0.05 nats
    assert per_char(guarded, 700, 800) < per_char(unguarded, 700, 800) - 0.1


@pytest.mark.parametrize("stop_at", [380, 470], ids=["stopped-before-the-spike", "stopped-after-the-recovery"])
def test_stop_and_resume_across_a_recovery_is_bit_for_bit(text, monkeypatch, tmp_path, stop_at):
    """Two damaged updates in a row: the guard skips the first and puts back the newest copy at the second."""
    cfg = CFG.replace(spike_guard=1.5, checkpoint_every=50)
    at = (INJECT, INJECT + 1)
    whole = train(text, cfg.replace(checkpoint_dir=str(tmp_path / "whole")), callback=Injector(monkeypatch, at=at))
    assert [(e["step"], e["restored"]) for e in whole.spikes] == [(400, None), (401, 300)]
    d = tmp_path / "cut"
    inject = Injector(monkeypatch, at=at)

    def stop(ev):
        inject(ev)
        if ev["event"] == "log" and ev["step"] == stop_at:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(text, cfg.replace(checkpoint_dir=str(d)), callback=stop)
    ck = load_checkpoint(d / "last.npz")
    assert ck.step == stop_at // 50 * 50 and len(ck.history["spikes"]) == 2 * (ck.step > INJECT)
    resumed = train(text, cfg.replace(checkpoint_dir=str(d), resume=str(d)),
                    callback=Injector(monkeypatch, ck.step, at=at))
    for k in whole.params:
        assert np.array_equal(resumed.params[k], whole.params[k]), k
        assert np.array_equal(resumed.best_params[k], whole.best_params[k]), k
    assert resumed.loss == whole.loss and resumed.spikes == whole.spikes
    with np.load(d / "last.npz") as a, np.load(tmp_path / "whole" / "last.npz") as b:
        for k in a.files:
            if k != "meta":
                assert np.array_equal(a[k], b[k]), k


def test_a_loss_that_stays_non_finite_stops_after_the_guards_strikes(text, monkeypatch, tmp_path):
    real = gru.forward_batch
    calls = []

    def broken(params, X, Y, S0, ws):
        loss, cache = real(params, X, Y, S0, ws)
        calls.append(1)
        return (float("nan") if len(calls) > 50 else loss), cache
    monkeypatch.setattr(gru, "forward_batch", broken)
    d = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=f"became nan at update {50 + MAX_STRIKES + 1} .*the spike guard had "
                                               f"recovered {MAX_STRIKES} times in a row"):
        train(text, CFG.replace(spike_guard=1.5, checkpoint_every=20, checkpoint_dir=str(d)))
    ck = load_checkpoint(d / "last.npz")                        # the last good checkpoint, finite
    assert ck.step == 40 and all(np.isfinite(v).all() for v in ck.params.values())


def test_the_guard_judges_only_after_its_first_updates_but_non_finite_losses_always():
    from charrnn.guard import Guard
    g = Guard.from_config(CFG.replace(spike_guard=2.0, warmup=150))
    assert g.start == 150                                   # max(spike_every, warmup)
    g.accept(50.0, 0.4)
    assert not g.trips(150, 60.0, 10 * 0.4, limit=1e3)      # in the first steep descent norms grow 5x and more
    assert g.trips(151, 60.0, 10 * 0.4, limit=1e3) and g.trips(151, 101.0, 0.4, limit=1e3)
    assert not g.trips(151, 99.0, 1.9, limit=1e3)
    assert all(g.trips(1, loss, 0.4, limit=1e3) for loss in (float("nan"), float("inf"), 1e4))


@pytest.mark.parametrize("field,value,message", [
    ("spike_guard", 1.0, "spike_guard must be > 1"),
    ("spike_guard", float("nan"), "spike_guard must be > 1"),
    ("spike_eta", 0.0, r"spike_eta must be in \(0, 1\]"),
    ("spike_eta", 1.5, r"spike_eta must be in \(0, 1\]"),
    ("spike_every", 0, "spike_every must be an integer >= 1"),
    ("spike_norm", 0.5, "spike_norm must be > 1"),
])
def test_bad_guard_settings_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


# --- the best held-out model ---

def test_the_best_held_out_model_is_kept_with_its_state(text, tmp_path):
    cfg = CFG.replace(n_updates=600, val_fraction=0.1, val_every=50, val_streams=4, eta=0.03)
    d = tmp_path / "run"
    h = train(text, cfg.replace(checkpoint_dir=str(d)))
    assert h.best_val_loss == min(h.val_loss) and h.val_steps[h.val_loss.index(h.best_val_loss)] == h.best_val_step
    ck = load_checkpoint(d / "best_val.npz")
    assert ck.kind == "best_val" and ck.best_val_step == h.best_val_step and ck.best_val_loss == h.best_val_loss
    before = train(text, cfg.replace(n_updates=h.best_val_step))     # the same run, stopped there
    for k in before.params:
        assert np.array_equal(ck.params[k], before.params[k]) and np.array_equal(h.best_val_params[k], ck.params[k])
    assert np.array_equal(ck.state, before.state) and np.array_equal(ck.state_input, before.state_input)
    model = h.best_val_model()
    assert np.array_equal(model.state, before.state[0]) and len(model.sample(50, seed=1)) == 50
    assert load_checkpoint(d / "last.npz").best_val_step == h.best_val_step
    with pytest.raises(ValueError, match="no held-out loss"):
        train(text, CFG.replace(n_updates=5)).best_val_model()


@pytest.mark.parametrize("more", [{}, {"ema": 0.95, "spike_guard": 2.0}], ids=["plain", "averaged-and-guarded"])
def test_a_resumed_run_keeps_its_best_held_out_model(text, tmp_path, more):
    """Also with the parameters' average (ema), which the held-out loss then reads: it resumes exactly, from
    `last` and through the spike guard's copies, which carry it."""
    cfg = CFG.replace(n_updates=400, val_fraction=0.1, val_every=50, val_streams=4, checkpoint_every=100, eta=0.03,
                      **more)
    whole = train(text, cfg.replace(checkpoint_dir=str(tmp_path / "whole")))
    d = tmp_path / "cut"
    train(text, cfg.replace(n_updates=300, checkpoint_dir=str(d)))
    resumed = train(text, cfg.replace(resume=str(d), checkpoint_dir=str(d)))
    assert (resumed.best_val_step, resumed.best_val_loss) == (whole.best_val_step, whole.best_val_loss)
    assert resumed.val_loss == whole.val_loss
    for k in whole.params:
        assert np.array_equal(resumed.best_val_params[k], whole.best_val_params[k])
        assert np.array_equal(resumed.params[k], whole.params[k])
    assert np.array_equal(resumed.best_val_state, whole.best_val_state)
    a, b = load_checkpoint(d / "last.npz"), load_checkpoint(tmp_path / "whole" / "last.npz")
    assert a.opt_state.keys() == b.opt_state.keys() == ({"M", "S", "E"} if more else {"M", "S"})
    for k in a.opt_state:
        assert np.array_equal(a.opt_state[k], b.opt_state[k]), k


# --- a real process on a corrupted corpus ---

def corrupted_corpus(path):
    """Pseudo-English with one stream's batch of update 600 replaced by 16 '~' (a character that occurs once
    elsewhere, so it is in the vocabulary but never expected)."""
    base = make_text(40_000, seed=4) + "~"
    piece = len(base) // B
    at = piece + 600 * T + 1                       # stream 1, the targets of update 601
    path.write_text(base[:at] + "~" * T + base[at + T:], encoding="utf-8")
    return path


def cli(corpus, out, *more):
    cmd = [sys.executable, "-m", "charrnn", "train", "--corpus", str(corpus), "--out", str(out), "--cell", "gru",
           "--m", "32", "--batch-size", str(B), "--seq-length", str(T), "--optimizer", "adam", "--eta", "0.01",
           "--objective", "mean", "--sigma", "0.1", "--updates", "900", "--sample-length", "0",
           "--checkpoint-every", "50", "--spike-guard", "2", *more]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_corrupted_batch_in_a_real_run_is_refused_shown_and_survives_kills(tmp_path):
    corpus = corrupted_corpus(tmp_path / "corpus.txt")
    p = cli(corpus, tmp_path / "whole")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    spikes = json.loads((tmp_path / "whole" / "history.json").read_text())["spikes"]
    assert [s["step"] for s in spikes] == [601] and spikes[0]["restored"] is None
    line = [ln for ln in err.splitlines() if "spike guard" in ln]
    assert len(line) == 1 and line[0].startswith("--- update 601: loss ") and line[0].endswith(
        "; the spike guard: skip the batch, eta now 0.01 ---")
    assert "spikes=1" in err                                   # on the progress line
    # killed twice, once just before the corrupted batch and once after the recovery, resumed each time
    out = tmp_path / "killed"
    p = cli(corpus, out)
    for target in (550, 650):
        t = time.monotonic()
        while True:
            try:
                if load_checkpoint(out / "last.npz").step >= target:
                    break
            except Exception:
                pass
            assert p.poll() is None and time.monotonic() - t < 120
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert p.returncode == -signal.SIGKILL
        p = cli(corpus, out, "--resume", str(out))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    with np.load(out / "last.npz") as a, np.load(tmp_path / "whole" / "last.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if k != "meta":
                assert np.array_equal(a[k], b[k]), k
    assert json.loads((out / "history.json").read_text())["spikes"] == spikes


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_a_small_model_that_has_learnt_its_text_is_not_stopped_by_the_guard(seed):
    """The budget preset as a GRU of m = 16 on 4 streams of 16 and 2,700 characters: it learns the text to
    about 1 nat per character, and from h = 0 (each epoch's first batch, every 42 updates) a batch costs 2-4
    times the level. When a refusal restarted the streams from zeros, each next batch was refused in turn
    and seed 3 stopped as diverged at update 3,731; the streams now read on, and every seed ends."""
    from charrnn.config import PRESETS
    cfg = TrainConfig(**{**PRESETS["budget"], "cell": "gru", "m": 16, "dropout": 0.0, "batch_size": 4, "seq_length": 16,
                         "val_fraction": 0.1, "n_updates": 4000, "seed": seed, "sample_length": 0, "val_every": 1000})
    h = train(make_text(3000, seed=1), cfg)
    assert h.step == 4000 and h.val_loss[-1] < 2.6
