"""Properties checked on many random cases (hypothesis): gradients, the vocabulary, sampling."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import Corpus, Vocabulary, init_params, loss_and_grads, numerical_grads, relative_errors, sample
from charrnn.optim import clip_and_square_
from charrnn.models.rnn import step
from charrnn.sampling import prime_state

FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# --- gradients ---

H = 5e-4         # centred differences at H and H/2, combined (4 D(H/2) - D(H)) / 3 to cancel the H^2 term
FLOOR = 1e-5     # "tiny": both values below this (or below 5e6 x the differences' round-off, eps * loss / H)


@FAST
@given(K=st.integers(2, 12), m=st.integers(1, 8), L=st.integers(1, 12), log_scale=st.floats(-3, 0),
       seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_centred_differences(K, m, L, log_scale, seed):
    """Every entry of dU, dW, dV, db, dc agrees with centred differences to a relative 1e-6
    (entries below the floor agree to the differences' round-off, ~1e-10), float64, weights and biases of scale 1e-3..1.

    Plain centred differences carry an H^2 f'''/6 truncation error that, with tanh near
    saturation at scale ~1, alone exceeds 1e-6 relative for any H large enough to keep
    round-off small; Richardson's combination of two step sizes removes it (error H^4). At H = 1e-3
    hypothesis found a case (K=2, m=5, L=9, scale 0.87, seed 200) where that H^4 term alone gave 1.2e-6
    on a db entry of 94; at H = 5e-4 it is 16 times smaller, and round-off is still ~2e-11."""
    rng = np.random.default_rng(seed)
    sigma = 10.0 ** log_scale
    params = init_params(K, m, sigma=sigma, seed=seed)
    params["b"] = sigma * rng.standard_normal(m)
    params["c"] = sigma * rng.standard_normal(K)
    x, y = rng.integers(0, K, L), rng.integers(0, K, L)
    h0 = np.tanh(rng.standard_normal(m))
    loss, grads, _ = loss_and_grads(params, x, y, h0)
    d1 = numerical_grads(params, x, y, h0, h=H)
    d2 = numerical_grads(params, x, y, h0, h=H / 2)
    num = {k: (4 * d2[k] - d1[k]) / 3 for k in d1}
    roundoff = np.finfo(float).eps * max(1.0, loss) / H        # of one centred difference: ~1e-11
    floor = max(FLOOR, 5e6 * roundoff)     # below it, 1e-6 relative is finer than the differences' round-off
    table = relative_errors(grads, num, floor=floor)
    assert max(row["max"] for row in table.values()) < 1e-6, table
    for k in grads:
        tiny = np.maximum(np.abs(grads[k]), np.abs(num[k])) < floor
        assert np.all(np.abs(grads[k] - num[k])[tiny] < 50 * roundoff), k


# --- the vocabulary ---

AWKWARD = ["\r\n", "\n", "\r", "\t", " ", "e\u0301", "\u0303", "\U0001F600", "\U0001F469\u200D\U0001F4BB",
           "\u05D0", "\u4E2D", "\uFEFF", "\u00A0", "\U00010348", "\x7f", "\x01"]
texts = st.lists(st.sampled_from(AWKWARD) | st.characters(blacklist_categories=("Cs",)), min_size=1,
                 max_size=200).map("".join)


@settings(deadline=None, max_examples=150)
@given(text=texts)
def test_vocabulary_round_trips_any_unicode(text):
    v = Vocabulary.from_text(text)
    assert list(v.chars) == sorted(set(text))
    ids = v.encode(text)
    assert ids.dtype == v.dtype and ids.shape == (len(text),) and int(ids.max(initial=0)) < len(v)
    assert v.decode(ids) == text
    assert Vocabulary.from_json(v.to_json()) == v


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts.filter(lambda t: "\x00" not in t and len(t) >= 2))
def test_corpus_file_round_trips_with_universal_newlines(tmp_path, text):
    """Through a UTF-8 file: read as Python's text mode reads it (\\r\\n and \\r become \\n), or, with
    keep_line_endings, exactly."""
    p = tmp_path / "c.txt"
    p.write_bytes(text.encode("utf-8"))
    c = Corpus.from_file(p, min_chars=1)
    with open(p, encoding="utf-8") as f:
        assert c.vocab.decode(c.ids) == f.read() and c.ids.dtype == c.vocab.dtype
    kept = Corpus.from_file(p, min_chars=1, keep_line_endings=True)
    assert kept.vocab.decode(kept.ids) == text


@settings(deadline=None, max_examples=60)
@given(text=texts, extra=st.characters(blacklist_categories=("Cs",)))
def test_encoding_an_unknown_character_names_it(text, extra):
    v = Vocabulary.from_text(text)
    if extra in v:
        return
    with pytest.raises(ValueError, match=f"U\\+{ord(extra):04X}"):
        v.encode(text + extra)


# --- sampling ---

CORPUS = "the quick brown fox jumps over the lazy dog\nTHE END.\t"


@st.composite
def models(draw):
    chars = draw(st.lists(st.sampled_from(sorted(set(CORPUS))), min_size=2, max_size=20, unique=True))
    vocab = Vocabulary(tuple(sorted(chars)))
    m = draw(st.integers(1, 10))
    params = init_params(len(vocab), m, sigma=draw(st.sampled_from([0.01, 0.3, 1.0, 3.0])),
                         seed=draw(st.integers(0, 1000)))
    prime = "".join(draw(st.lists(st.sampled_from(vocab.chars), min_size=1, max_size=5)))
    return params, vocab, prime


def nucleus(logits, temperature, top_p):
    """The allowed ids, computed here: the most likely characters whose mass first reaches top_p
    (ties at the edge and a 1e-9 margin on the mass allowed); temperature 0: the argmax."""
    if temperature == 0:
        return {int(np.argmax(logits))}
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    ranked = np.sort(p)[::-1]
    last = min(int(np.searchsorted(np.cumsum(ranked), top_p * (1 + 1e-9))), len(p) - 1)
    return set(np.flatnonzero(p >= ranked[last] * (1 - 1e-9)).tolist())


@settings(deadline=None, max_examples=80)
@given(model=models(), n=st.integers(0, 150), temperature=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]),
       top_p=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1))
def test_samples_have_the_length_and_stay_in_the_vocabulary_and_nucleus(model, n, temperature, top_p, seed):
    params, vocab, prime = model
    text = sample(params, vocab, n, prime=prime, temperature=temperature, top_p=top_p, seed=seed)
    assert len(text) == n and set(text) <= set(vocab.chars)
    h, o = prime_state(params, vocab, prime)        # replay the draw, step by step
    for ch in text:
        k = vocab.encode(ch)[0]
        assert int(k) in nucleus(o, temperature, top_p), (ch, top_p)
        h, o = step(params, h, int(k))


# --- reading a corpus in pieces ---

@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(texts.map(lambda t: t.encode("utf-8")) | st.binary(max_size=6), max_size=6),
       piece=st.integers(1, 9), min_chars=st.integers(1, 30))
def test_streamed_corpus_equals_whole_file_reading(tmp_path, monkeypatch, parts, piece, min_chars):
    """Corpus.from_file reads in pieces (here 1..9 bytes, splitting multi-byte characters); it must give
    exactly load_text's result or load_text's error message, byte offsets included."""
    import charrnn.corpus as corpus_mod
    from charrnn import load_text
    p = tmp_path / "c.txt"
    p.write_bytes(b"".join(parts))
    try:
        want = Corpus.from_text(load_text(p, min_chars), name=p.name)
    except (ValueError, OSError) as exc:
        want = (type(exc), str(exc))
    monkeypatch.setattr(corpus_mod, "_PIECE", piece)
    try:
        got = Corpus.from_file(p, min_chars)
    except (ValueError, OSError) as exc:
        got = (type(exc), str(exc))
    if isinstance(want, tuple):
        assert got == want
    else:
        assert (got.vocab, got.sha256, got.name) == (want.vocab, want.sha256, want.name)
        assert np.array_equal(got.ids, want.ids) and got.ids.dtype == want.ids.dtype


def ulps_from(x: float, k: int) -> float:
    """x moved by k units in the last place (towards +inf for k > 0)."""
    for _ in range(abs(k)):
        x = float(np.nextafter(x, np.inf if k > 0 else -np.inf))
    return x


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-6, 1e6), st.lists(st.integers(-3, 3), min_size=1, max_size=30), st.integers(0, 2**31))
def test_clipping_inside_the_optimisers_equals_np_clip(clip, ulps, seed):
    """The one-read test on g*g must clip exactly what np.clip clips, also a few ulps either side of clip."""
    rng = np.random.default_rng(seed)
    edge = np.array([ulps_from(clip, k) for k in ulps])
    g = np.concatenate([edge, -edge, rng.standard_normal(20) * clip * rng.choice([0.5, 2.0])])
    rng.shuffle(g)
    expected = np.clip(g, -clip, clip)
    work = np.empty_like(g)
    clip_and_square_(g, clip, work)
    assert (g == expected).all()
    assert (work == expected * expected).all()
