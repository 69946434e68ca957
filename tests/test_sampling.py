"""Sampling: priming, greedy, nucleus, reproducibility, bad arguments."""
import numpy as np
import pytest

from charrnn import SamplingError, Vocabulary, init_params, sample
from charrnn.models.rnn import step
from charrnn.sampling import distribution, next_char_distribution, prime_state

TEXT = "hello world, the quick brown fox"


@pytest.fixture
def model():
    vocab = Vocabulary.from_text(TEXT)
    return init_params(len(vocab), 12, sigma=0.8, seed=0), vocab


def test_length_and_characters(model):
    params, vocab = model
    for n in (0, 1, 57):
        s = sample(params, vocab, n, prime="h", seed=0)
        assert len(s) == n and set(s) <= set(vocab.chars)


def test_temperature_zero_is_argmax(model):
    params, vocab = model
    got = sample(params, vocab, 30, prime="the ", temperature=0)
    h, o = prime_state(params, vocab, "the ")
    want = []
    for _ in range(30):
        k = int(np.argmax(o))
        want.append(vocab.chars[k])
        h, o = step(params, h, k)
    assert got == "".join(want)
    assert sample(params, vocab, 30, prime="the ", temperature=0, seed=5) == got


def test_tiny_top_p_keeps_only_the_most_likely(model):
    params, vocab = model
    greedy = sample(params, vocab, 40, prime="fox", temperature=0)
    for seed in range(3):
        assert sample(params, vocab, 40, prime="fox", top_p=1e-6, seed=seed) == greedy


def test_seeded_calls_are_reproducible(model):
    params, vocab = model
    a = sample(params, vocab, 100, prime="w", seed=42)
    assert a == sample(params, vocab, 100, prime="w", seed=42)
    assert a != sample(params, vocab, 100, prime="w", seed=43)


def test_priming_feeds_every_character(model):
    params, vocab = model
    h1, _ = prime_state(params, vocab, "hel")
    h, _ = prime_state(params, vocab, "h")
    h, _ = step(params, h, vocab.encode("e")[0])
    h, _ = step(params, h, vocab.encode("l")[0])
    assert np.array_equal(h, h1)
    assert sample(params, vocab, 50, prime="hel", seed=1) != sample(params, vocab, 50, prime="l", seed=1)


def test_distribution_temperature_and_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert np.allclose(distribution(logits), [0.5, 0.3, 0.15, 0.05])
    assert np.allclose(distribution(logits, top_p=0.8), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    assert np.allclose(distribution(logits, top_p=0.81), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0])
    assert np.array_equal(distribution(logits, temperature=0), [1, 0, 0, 0])
    hot, cold = distribution(logits, temperature=2.0), distribution(logits, temperature=0.5)
    assert hot[0] < 0.5 < cold[0] and np.isclose(hot.sum(), 1) and np.isclose(cold.sum(), 1)


def test_next_char_distribution_sums_to_one(model):
    params, vocab = model
    p = next_char_distribution(params, vocab, "the")
    assert p.shape == (len(vocab),) and np.isclose(p.sum(), 1.0) and (p > 0).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"prime": "hé€"}, r"not in the vocabulary: 'é' \(U\+00E9\), '€' \(U\+20AC\)"),
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top-p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top-p must be in \(0, 1\]"),
    ({"n": -1}, "length must be an integer >= 0"),
    ({"prime": ""}, "prime must be a non-empty string"),
])
def test_bad_arguments(model, kwargs, message):
    params, vocab = model
    args = {"n": 10, "prime": "h", **kwargs}
    with pytest.raises(SamplingError, match=message):
        sample(params, vocab, **args)
    assert issubclass(SamplingError, ValueError)
