"""Mini-batches of parallel streams, gated cells in the trainer, and the options they need."""
import math

import numpy as np
import pytest

from charrnn import TrainConfig, Vocabulary, load_checkpoint, sample, train
from charrnn.config import ConfigError
from charrnn.corpus import Corpus, CorpusError
from charrnn.models import get_cell, initial_params, mean_loss_per_char, rnn
from charrnn.trainer import split, streams, updates_per_epoch


def replay(text, config, updates):
    """The training loop written out by hand for B streams with AdaGrad: pieces, per-stream state,
    epoch resets, the mean over streams of each sequence's summed loss, optional per-character mean."""
    corpus = Corpus.from_text(text)
    B, T = config.batch_size, config.seq_length
    cell = get_cell(config.cell)
    p = cell.init_params(len(corpus.vocab), config.m, config.sigma, seed=config.seed)
    P = len(corpus.ids) // B
    pieces = [corpus.ids[b * P:(b + 1) * P] for b in range(B)]
    G = {k: np.zeros_like(v) for k, v in p.items()}
    S = np.zeros((B, cell.state_size(config.m)))
    e, losses = 0, []
    scale = 1 / (B * T) if config.objective == "mean" else 1 / B
    for _ in range(updates):
        if e + T + 1 > P:
            e, S = 0, np.zeros_like(S)
        total, grads, new = 0.0, {k: np.zeros_like(v) for k, v in p.items()}, []
        for b in range(B):                       # each stream on its own, from its own state
            x, y = pieces[b][e:e + T], pieces[b][e + 1:e + T + 1]
            ws = cell.workspace(1, T, len(corpus.vocab), config.m)
            loss, cache = cell.forward_batch(p, x[None], y[None], S[b:b + 1], ws)
            g, s = cell.backward_batch(p, cache)
            total += loss
            new.append(s[0])
            for k in p:
                grads[k] += g[k]
        S = np.array(new)
        losses.append(total / B)
        for k in p:
            g = np.clip(grads[k] * scale, -config.clip, config.clip)
            G[k] += g * g
            p[k] -= config.eta * g / np.sqrt(G[k] + config.eps)
        e += T
    return p, losses


@pytest.mark.parametrize("cell,objective", [("rnn", "sum"), ("gru", "mean"), ("lstm", "sum")])
def test_batches_equal_the_loop_written_by_hand(text_small, cell, objective):
    config = TrainConfig(cell=cell, m=6, seq_length=7, batch_size=3, n_updates=160, objective=objective, eta=0.05,
                         sample_length=0, log_every=1)
    assert 160 > updates_per_epoch(len(text_small) // 3, 7)         # an epoch wraps inside the run
    h = train(text_small, config)
    p, losses = replay(text_small, config, 160)
    np.testing.assert_allclose(h.loss, losses, rtol=1e-12)
    for k in p:
        np.testing.assert_allclose(h.params[k], p[k], rtol=1e-9, atol=1e-12)


def test_one_stream_is_the_assignment_bit_for_bit(text_small):
    """B = 1 goes through the cell interface and must give exactly the single-sequence loop's results."""
    config = TrainConfig(m=8, seq_length=10, n_updates=120, log_every=1, sample_length=0)
    h = train(text_small, config)
    corpus = Corpus.from_text(text_small)
    p = rnn.init_params(len(corpus.vocab), 8, seed=0)
    G = {k: np.zeros_like(v) for k, v in p.items()}
    hprev, e = np.zeros(8), 0
    for step in range(120):
        if e + 11 > len(corpus.ids):
            e, hprev = 0, np.zeros(8)
        loss, grads, hprev = rnn.loss_and_grads(p, corpus.ids[e:e + 10], corpus.ids[e + 1:e + 11], hprev)
        assert loss == h.loss[step]
        for k in p:
            g = np.clip(grads[k], -5, 5)
            G[k] += g * g
            p[k] -= (g / np.sqrt(G[k] + 1e-8)) * 0.1
        e += 10
    for k in p:
        assert np.array_equal(p[k], h.params[k])


def test_streams_are_contiguous_pieces_and_too_short_a_text_is_one_line():
    ids = np.arange(103)
    s = streams(ids, 4, 10)
    assert s.shape == (4, 25) and (s[1] == np.arange(25, 50)).all() and np.shares_memory(s, ids)
    with pytest.raises(CorpusError, match="batch_size=8 streams of seq_length=20 need at least 168"):
        streams(ids, 8, 20)


@pytest.mark.parametrize("cell", ["gru", "lstm", "gru2"])
def test_gated_cells_learn_the_repeating_text(cell):
    text = "abcdefgh" * 40
    h = train(text, TrainConfig(cell=cell, m=16, seq_length=8, n_updates=600, optimizer="adam", eta=0.01,
                                sample_length=0, log_every=50, sigma=0.1))
    assert h.loss[-1] / 8 < 0.02
    assert sample(h.params, Vocabulary.from_text(text), 16, prime="a", temperature=0, cell=cell) == "bcdefghabcdefgha"


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_lstm_batches_resume_bit_for_bit_and_carry_their_state(tmp_path, text_small, schedule):
    cfg = TrainConfig(cell="lstm", m=8, seq_length=9, batch_size=3, n_updates=90, optimizer="adam", eta=0.01,
                      schedule=schedule, warmup=10, clip_norm=1.0, objective="mean", dtype="float32",
                      checkpoint_every=25, sample_every=40, sample_length=20, reset_prob=0.05)
    full = train(text_small, cfg)
    d = tmp_path / "run"

    def stop(event):                              # interrupted part-way: the schedule depends on the 90
        if event["event"] == "log" and event["step"] == 51:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(text_small, cfg.replace(checkpoint_dir=str(d), log_every=1), callback=stop)
    ck = load_checkpoint(d)
    assert ck.step == 50
    assert ck.cell == "lstm" and ck.state.shape == (3, 16) and ck.state_input.shape == (3,)
    assert ck.state.dtype == np.float32 and ck.hprev.shape == (8,)
    resumed = train(text_small, cfg.replace(resume=str(d), checkpoint_dir=str(d), log_every=1))
    full = train(text_small, cfg.replace(log_every=1))
    for k in full.params:
        assert np.array_equal(resumed.params[k], full.params[k]), k
    assert resumed.samples == full.samples and resumed.loss == full.loss
    best = load_checkpoint(d / "best.npz")
    assert best.cell == "lstm" and best.model().has_state
    assert len(best.model().sample(30, seed=1)) == 30


def test_gradient_norm_clipping_bounds_every_step(text_small, monkeypatch):
    import charrnn.trainer as trainer_mod
    seen = []
    real = trainer_mod.STEPS["adam"]

    def spy(g, *a, **kw):
        seen.append(float(np.linalg.norm(g)))
        return real(g, *a, **kw)
    monkeypatch.setitem(trainer_mod.STEPS, "adam", spy)
    train(text_small, TrainConfig(m=12, seq_length=10, n_updates=30, optimizer="adam", eta=0.01, clip_norm=0.5,
                                  clip=1e6, sample_length=0))
    assert max(seen) <= 0.5 * (1 + 1e-9) and min(seen) > 0
    seen.clear()
    train(text_small, TrainConfig(m=12, seq_length=10, n_updates=30, optimizer="adam", eta=0.01, clip=1e6,
                                  sample_length=0))
    assert max(seen) > 0.5                        # without it, the gradients are larger than that


def test_weight_decay_shrinks_the_weight_matrices_after_each_step(text_small):
    """weight_decay = wd: the step of the optimiser, then U, W, V times 1 - eta * wd; biases untouched."""
    base = TrainConfig(cell="gru", m=6, seq_length=7, batch_size=3, n_updates=1, optimizer="adam", eta=0.01,
                       sample_length=0)
    plain = train(text_small, base)
    decayed = train(text_small, base.replace(weight_decay=0.5))
    for k in ("U", "W", "V"):
        np.testing.assert_allclose(decayed.params[k], plain.params[k] * (1 - 0.01 * 0.5), rtol=1e-6)
    for k in ("b", "c"):
        assert np.array_equal(decayed.params[k], plain.params[k])
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        base.replace(weight_decay=-0.1)


def test_ema_averages_the_parameters_and_the_held_out_loss_reads_the_average(text_small, tmp_path):
    """ema = d: E starts at the initial parameters, and after every step E = d E + (1 - d) theta. The held-out
    loss is measured on E and the best held-out model is E; training itself is the same run as without it."""
    base = TrainConfig(cell="gru", m=6, seq_length=7, batch_size=3, optimizer="adam", eta=0.05, sample_length=0,
                       val_fraction=0.2, val_every=1, val_streams=2)
    d, n = 0.7, 8
    cell, corpus = get_cell("gru"), Corpus.from_text(text_small)
    val_ids = split(corpus.ids, 0.2)[1]
    E = cell.init_params(len(corpus.vocab), 6, base.sigma, seed=0)
    averages = []
    for k in range(1, n + 1):                                # theta after k steps: the same run stopped there
        theta = train(text_small, base.replace(n_updates=k)).params
        E = {name: d * E[name] + (1 - d) * theta[name] for name in E}
        averages.append(E)
    run = tmp_path / "run"
    h = train(text_small, base.replace(n_updates=n, ema=d, checkpoint_dir=str(run)))
    plain = train(text_small, base.replace(n_updates=n))
    for name in h.params:
        assert np.array_equal(h.params[name], plain.params[name])
    assert h.loss == plain.loss and h.val_loss != plain.val_loss
    expected = [mean_loss_per_char(cell, E, val_ids, streams=2) for E in averages]
    np.testing.assert_allclose(h.val_loss, expected, rtol=1e-10)
    best = averages[h.val_steps.index(h.best_val_step)]
    stored = load_checkpoint(run / "last.npz").opt_state["E"]
    np.testing.assert_allclose(stored, np.concatenate([averages[-1][k].ravel() for k in cell.param_shapes(
        len(corpus.vocab), 6)]), rtol=1e-10, atol=1e-14)
    for name in best:
        np.testing.assert_allclose(h.best_val_params[name], best[name], rtol=1e-10, atol=1e-14)
        assert np.array_equal(load_checkpoint(run / "best_val.npz").params[name], h.best_val_params[name])
    with pytest.raises(ConfigError, match=r"ema .* must be in \(0, 1\)"):
        base.replace(ema=0.0)


def test_init_orthogonal_starts_the_run_from_initial_params(text_small, tmp_path):
    """init = "orthogonal": the run is the one given initial_params' orthogonal weights, and its checkpoint
    says so (a resume or the report's runs read the setting back); a value outside the choices is refused."""
    base = TrainConfig(cell="gru2", m=6, seq_length=7, batch_size=3, optimizer="adam", eta=0.05, sample_length=0,
                       n_updates=5, seed=3)
    corpus = Corpus.from_text(text_small)
    start = initial_params(get_cell("gru2"), len(corpus.vocab), 6, base.sigma, 3, np.float64, "orthogonal")
    h = train(corpus, base.replace(init="orthogonal", checkpoint_dir=str(tmp_path / "run")))
    given = train(corpus, base, params=start)
    plain = train(corpus, base)
    assert h.loss == given.loss and h.loss != plain.loss
    assert all(np.array_equal(h.params[k], given.params[k]) for k in h.params)
    assert load_checkpoint(tmp_path / "run" / "last.npz").config.init == "orthogonal"
    with pytest.raises(ConfigError, match="init must be one of normal, orthogonal, got 'uniform'"):
        base.replace(init="uniform")


def test_schedules():
    c = TrainConfig(schedule="cosine", final_eta=0.1, eta=1.0, warmup=4)
    assert [c.eta_at(k, 0.0) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert c.eta_at(10, 0.0) == 1.0 and c.eta_at(10, 0.5) == pytest.approx(0.55) and c.eta_at(10, 1.0) == pytest.approx(0.1)
    assert c.eta_at(10, 2.0) == pytest.approx(0.1)
    line = c.replace(schedule="linear")                  # the same ends, a straight line between them
    assert [line.eta_at(k, 0.0) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [line.eta_at(10, p) for p in (0.0, 0.25, 0.5, 1.0, 2.0)] == pytest.approx([1.0, 0.775, 0.55, 0.1, 0.1])
    s = TrainConfig(schedule="step", decay_every=100, decay_rate=0.5, eta=0.8)
    assert [s.eta_at(k, 0) for k in (0, 99, 100, 250)] == [0.8, 0.8, 0.4, 0.2]
    assert TrainConfig().eta_at(12345, 0.7) == 0.1


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_a_decaying_schedule_follows_the_time_budget(text_small, monkeypatch, schedule):
    """With a time budget the schedule runs over the budget's seconds: the last updates use rates near the end.
    The trainer's clock is replaced by one that advances 0.25 ms per reading, so the test does not depend
    on how fast or how loaded the machine is."""
    import types

    import charrnn.trainer as trainer_mod
    now = [1000.0]

    def tick():
        now[0] += 0.00025
        return now[0]
    monkeypatch.setattr(trainer_mod, "time", types.SimpleNamespace(perf_counter=tick))
    etas = []
    real = trainer_mod.STEPS["adam"]
    monkeypatch.setitem(trainer_mod.STEPS, "adam", lambda g, *a, **kw: etas.append(kw["eta"]) or real(g, *a, **kw))
    h = train(text_small, TrainConfig(m=8, seq_length=10, n_updates=10**7, time_budget=0.5, optimizer="adam",
                                      eta=0.01, schedule=schedule, final_eta=0.1, sample_length=0))
    assert h.stopped == "time budget" and etas[0] == pytest.approx(0.01, rel=1e-3) and len(etas) > 200
    assert etas[-1] < 0.0015 and all(a >= b for a, b in zip(etas, etas[1:]))


@pytest.mark.parametrize("field,value,message", [
    ("cell", "transformer", "cell must be one of rnn, gru, lstm"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("clip_norm", 0.0, "clip_norm must be > 0"),
    ("objective", "median", "objective must be one of sum, mean"),
    ("schedule", "exponential", "schedule must be one of constant, cosine, linear, step"),
    ("reset_prob", 1.5, r"reset_prob must be in \[0, 1\]"),
    ("warmup", -1, "warmup must be an integer >= 0"),
    ("val_streams", 0, "val_streams must be an integer >= 1"),
])
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_batched_validation_is_close_to_reading_in_order(text_medium):
    from charrnn.models import mean_loss_per_char
    h = train(text_medium, TrainConfig(cell="gru", m=24, batch_size=8, seq_length=32, n_updates=300,
                                       optimizer="adam", eta=0.005, objective="mean", sample_length=0))
    ids = Corpus.from_text(text_medium).ids[-20_000:]
    cell = get_cell("gru")
    in_order = mean_loss_per_char(cell, h.params, ids)
    side_by_side = mean_loss_per_char(cell, h.params, ids, streams=16, warm_up=200)
    assert side_by_side == pytest.approx(in_order, rel=0.01)
    assert math.isfinite(in_order) and in_order < np.log(len(set(text_medium)))


def test_dropout_draws_its_masks_reproducibly_and_resumes_bit_for_bit(tmp_path, text_small):
    import charrnn.trainer as trainer_mod
    cfg = TrainConfig(cell="gru", m=8, seq_length=7, batch_size=3, n_updates=120, optimizer="adam", eta=0.01,
                      dropout=0.25, checkpoint_every=40, sample_length=0, log_every=1)
    masks = []
    real = trainer_mod._Trainer._dropout

    def spy(self, keep):
        real(self, keep)
        masks.append(keep.copy())
    trainer_mod._Trainer._dropout = spy
    try:
        full = train(text_small, cfg)
    finally:
        trainer_mod._Trainer._dropout = real
    kept = np.mean([(k > 0).mean() for k in masks])
    assert len(masks) == 120 and abs(kept - 0.75) < 0.02 and set(np.unique(masks[0])) == {0.0, np.float64(65536 / 49152)}
    d = tmp_path / "cut"
    train(text_small, cfg.replace(n_updates=70, checkpoint_dir=str(d)))
    resumed = train(text_small, cfg.replace(resume=str(d), checkpoint_dir=str(d)))
    for k in full.params:
        assert np.array_equal(resumed.params[k], full.params[k])
    assert resumed.loss == full.loss
    assert not np.array_equal(train(text_small, cfg.replace(dropout=0.0)).params["W"], full.params["W"])
    with pytest.raises(ConfigError, match="dropout needs batch_size > 1"):
        TrainConfig(dropout=0.1)
