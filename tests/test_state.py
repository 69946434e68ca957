"""A model is its parameters and the state it was trained in: stored, used by default, measured.

The case the report guards against, a model that writes language from the state training carried and
noise from h = 0, is built here exactly: a trained vanilla RNN plus one latch unit z with two stable
states. Training's state has z = +1, where the latch cancels out; from h = 0 a bias drives z to -1,
where it pushes the output towards characters the text never uses.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn import Corpus, TrainConfig, load_checkpoint, sample, train
from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.models import char_losses, rnn
from charrnn.report.quality import corpus_words, word_score
from charrnn.report.startstate import stretch_losses, stuck
from charrnn.sampling import Model, SamplingError
from charrnn.vocab import Vocabulary

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
TEXT = "the cat sat on the mat and the dog sat on the log. " * 40
NOISE = "0123456789#@%&"                       # characters in the vocabulary that the text never uses


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run that learns TEXT (plus the noise characters once, so they are in its vocabulary)."""
    d = tmp_path_factory.mktemp("state") / "run"
    h = train(TEXT + NOISE, TrainConfig(m=24, seq_length=12, n_updates=2500, sample_every=1000, sample_length=50,
                                        checkpoint_dir=str(d), checkpoint_every=500))
    return h, d


def latched(model: Model) -> Model:
    """model with a latch unit appended: language from its stored state, noise from h = 0."""
    p, vocab = model.params, model.vocab
    m = p["W"].shape[0]
    W = np.zeros((m + 1, m + 1))
    W[:m, :m] = p["W"]
    W[m, m] = 4.0                                    # z_t = tanh(4 z_{t-1} - 1): fixed points near +1 and -1
    U = np.vstack([p["U"], np.zeros((1, len(vocab)))])
    b = np.append(p["b"], -1.0)                      # from z = 0 the bias tips it to -1
    v = np.zeros(len(vocab))
    v[[vocab.chars.index(ch) for ch in NOISE]] = -8.0
    V = np.hstack([p["V"], v[:, None]])              # o = V h + v z + (c - v): exactly V h + c at z = 1
    params = {"U": U, "W": W, "V": V, "b": b, "c": p["c"] - v}
    return Model(params, vocab, "rnn", np.append(model.state, 1.0), model.state_input)


def test_checkpoints_carry_the_state_and_best_is_the_state_of_the_best_update(trained):
    h, d = trained
    last, best = load_checkpoint(d / "last.npz"), load_checkpoint(d / "best.npz")
    for ck in (last, best):
        assert ck.hprev is not None and ck.state is not None and ck.state_input is not None
        assert ck.state.shape == (1, 24) and ck.state_input.shape == (1,)
    # best.npz's state is the one its update was fed: a run stopped just before that update carries it
    before = train(TEXT + NOISE, TrainConfig(m=24, seq_length=12, n_updates=h.best_step, sample_length=0))
    assert np.array_equal(best.state, before.state) and np.array_equal(best.state_input, before.state_input)
    assert np.array_equal(last.best_state, best.state) and np.array_equal(h.best_state, best.state)
    for k in rnn.PARAM_NAMES:
        assert np.array_equal(best.params[k], before.params[k])
    # last.npz: the state after the last update, and the character the text continues with
    ids = Corpus.from_text(TEXT + NOISE).ids
    assert last.state_input[0] == ids[last.position] and np.array_equal(last.state, h.state)


def test_sampling_from_a_checkpoint_starts_from_its_state(trained, tmp_path):
    _, d = trained
    best = load_checkpoint(d / "best.npz")
    model = best.model()
    lead = best.vocab.chars[best.state_input[0]]
    want = sample(best.params, best.vocab, 80, h0=best.state[0], prime=lead + "the ", seed=3)
    assert model.sample(80, prime="the ", seed=3) == want
    r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(d), "--best", "--length", "80",
                        "--prime", "the ", "--seed", "3"], capture_output=True, text=True, check=True)
    assert r.stdout == "the " + want + "\n" and r.stderr == ""
    zeros = sample(best.params, best.vocab, 80, prime="the ", seed=3)
    r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(d / "best.npz"), "--h0",
                        "zeros", "--length", "80", "--prime", "the ", "--seed", "3"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "the " + zeros + "\n"
    from_state = model.next_char_distribution("t")             # after one character the start still shows
    assert not np.allclose(from_state, model.next_char_distribution("t", start="zeros"))
    with pytest.raises(SamplingError, match="non-empty"):     # from zeros something must be fed
        model.sample(10, prime="", start="zeros")


def test_a_model_that_writes_noise_from_zeros_writes_language_from_its_state(trained, tmp_path):
    h, _ = trained
    model = latched(h.model(best=True))
    known = corpus_words(TEXT)
    from_state = [model.sample(300, seed=s) for s in range(3)]
    from_zeros = [model.sample(300, prime="the ", start="zeros", seed=s) for s in range(3)]
    assert min(word_score(t, known) for t in from_state) > 0.8
    assert max(word_score(t, known) for t in from_zeros) < 0.05
    assert all(sum(ch in NOISE for ch in t) > 100 for t in from_zeros)
    # the stuck stretches of the report: every stretch sticks from zeros, none from the state
    ids = Corpus.from_text(TEXT + NOISE).ids[:len(TEXT)]
    L = stretch_losses(model, ids, length=120, stretches=10)
    assert stuck(L["zeros"], len(model.vocab)).all() and not stuck(L["state"], len(model.vocab)).any()
    # and through a checkpoint file and the command line
    ck = Checkpoint(params=model.params, vocab=model.vocab, config=TrainConfig(m=25), state=model.state[None],
                    state_input=np.array([model.state_input]), kind="best")
    save_checkpoint(ck, tmp_path / "latched.npz")
    out = {}
    for start in ("state", "zeros"):
        r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(tmp_path / "latched.npz"),
                            "--h0", start, "--length", "300", "--seed", "1"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out[start] = r.stdout
    assert word_score(out["state"], known) > 0.8 and word_score(out["zeros"], known) < 0.05


def test_a_version_1_checkpoint_loads_and_samples_from_zeros_with_one_line(tmp_path):
    for name in ("last.npz", "best.npz"):
        ck = load_checkpoint(FIXTURES / name)
        assert ck.version == 1 and ck.cell == "rnn" and ck.state_input is None
        assert not ck.model().has_state
    assert load_checkpoint(FIXTURES / "last.npz").hprev.shape == (8,)
    ck = load_checkpoint(FIXTURES / "best.npz")
    r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(FIXTURES / "best.npz"),
                        "--length", "50", "--seed", "2"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stderr.count("\n") == 1 and "stores no model state" in r.stderr and "from h = 0" in r.stderr
    assert r.stdout == "\n" + sample(ck.params, ck.vocab, 50, prime="\n", seed=2) + "\n"


def test_a_version_1_run_resumes_as_the_old_code_would_have(tmp_path):
    """The fixture was written by the previous charrnn: a run stopped at update 60, and the same run's
    parameters after 100 updates without a stop, both computed on the machine that wrote them.

    Resumed here, it must land on those parameters up to rounding. Another machine's BLAS rounds a
    dot product differently (1-2 ulp, seen: 2.2e-16 in W), and 40 updates carry that along without
    amplifying it much, so the tolerance is 1e-9 of each array's largest entry: a million times the
    rounding, and a hundred thousand times smaller than what one update moves (checked below). What
    it catches is a resume that takes another path: a skipped or repeated update, another state or
    position, or optimiser state not restored. Bit-for-bit resume is tested where both runs are made
    on this machine in the same test (test_trainer, test_faults, test_batches)."""
    shutil.copy(FIXTURES / "last.npz", tmp_path / "last.npz")
    text = (FIXTURES / "corpus.txt").read_text(encoding="utf-8")
    ck = load_checkpoint(tmp_path / "last.npz")
    h = train(text, ck.config.replace(resume=str(tmp_path / "last.npz"), checkpoint_dir=str(tmp_path),
                                      n_updates=100))
    one_more = train(text, ck.config.replace(resume=str(tmp_path / "last.npz"), checkpoint_dir=None,
                                             n_updates=101))
    with np.load(FIXTURES / "expected-100.npz") as want:
        for k in rnn.PARAM_NAMES:
            for got, key in ((h.params[k], f"param/{k}"), (h.best_params[k], f"best/{k}")):
                scale = np.abs(want[key]).max()
                np.testing.assert_allclose(got, want[key], rtol=0, atol=1e-9 * scale, err_msg=key)
            # the tolerance is far below one update's move: an off-by-one resume could not pass
            assert np.abs(one_more.params[k] - want[f"param/{k}"]).max() > 1e4 * 1e-9 * np.abs(want[f"param/{k}"]).max()
    now = load_checkpoint(tmp_path / "last.npz")
    assert now.version == 2 and now.step == 100 and now.state_input is not None


# --- resetting the state at random: reset_prob ---

def test_reset_prob_zero_draws_nothing_and_one_starts_every_update_from_zeros(text_small):
    base = TrainConfig(m=8, seq_length=10, n_updates=60, log_every=1, sample_length=0)
    h = train(text_small, base.replace(reset_prob=1.0))
    corpus = Corpus.from_text(text_small)
    p = rnn.init_params(len(corpus.vocab), 8, seed=0)
    ids = corpus.ids
    loss, _, _ = rnn.loss_and_grads(p, ids[:10], ids[1:11], np.zeros(8))
    assert h.loss[0] == loss
    # with the state reset before every update, the second update's loss is the one from zeros too
    first = train(text_small, base.replace(n_updates=1)).params
    loss2, _, _ = rnn.loss_and_grads(first, ids[10:20], ids[11:21], np.zeros(8))
    assert h.loss[1] == loss2
    carried = train(text_small, base)
    assert carried.loss[1] != loss2                  # p = 0 carries the state: a different loss


def test_reset_prob_resumes_bit_for_bit(tmp_path, text_small):
    cfg = TrainConfig(m=8, seq_length=10, n_updates=200, reset_prob=0.1, checkpoint_every=50, sample_every=70,
                      sample_length=15)
    full = train(text_small, cfg)
    d = tmp_path / "half"
    train(text_small, cfg.replace(n_updates=110, checkpoint_dir=str(d)))
    resumed = train(text_small, cfg.replace(resume=str(d), checkpoint_dir=str(d)))
    for k in rnn.PARAM_NAMES:
        assert np.array_equal(resumed.params[k], full.params[k])
    assert resumed.loss == full.loss and resumed.smooth_loss == full.smooth_loss and resumed.samples == full.samples
    other = train(text_small, cfg.replace(reset_prob=0.0))
    assert not np.array_equal(other.params["W"], full.params["W"])


def test_char_losses_and_text_loss_agree():
    vocab = Vocabulary.from_text(TEXT)
    params = rnn.init_params(len(vocab), 6, sigma=0.4, seed=2)
    model = Model(params, vocab, "rnn", np.tanh(np.arange(6) / 3.0), vocab.chars.index("t"))
    text = "the mat"
    # from the state: feed 't' (the stored input) then score every character of text
    want = char_losses(rnn, params, vocab.encode("t" + text), model.state).mean()
    assert model.text_loss(text) == pytest.approx(want, rel=1e-12)
    assert model.text_loss(text, prime="a", start="zeros") == pytest.approx(
        char_losses(rnn, params, vocab.encode("a" + text)).mean(), rel=1e-12)
