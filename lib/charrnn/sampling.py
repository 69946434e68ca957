"""Synthesising text: priming, temperature, nucleus (top-p) sampling."""
from __future__ import annotations

import numpy as np

from .vocab import Vocabulary, describe_chars


class SamplingError(ValueError):
    """A sampling argument that cannot work."""


def check_sampling_args(vocab: Vocabulary, n: int, prime: str, temperature: float, top_p: float) -> None:
    """Raise SamplingError naming the first bad argument."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise SamplingError(f"length must be an integer >= 0, got {n!r}")
    if not isinstance(temperature, (int, float)) or not np.isfinite(temperature) or temperature < 0:
        raise SamplingError(f"temperature must be >= 0, got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not (0 < top_p <= 1):
        raise SamplingError(f"top-p must be in (0, 1], got {top_p!r}")
    if not isinstance(prime, str) or not prime:
        raise SamplingError("prime must be a non-empty string")
    bad = vocab.missing(prime)
    if bad:
        raise SamplingError(f"prime has characters not in the vocabulary: {describe_chars(bad)}")


def step(params, h, x_id):
    """One step of the RNN: feed character x_id with state h (m,).

    Returns (new h (m,), logits o (K,)).
    """
    h = np.tanh(params["U"][:, x_id] + params["W"] @ h + params["b"])
    return h, params["V"] @ h + params["c"]


def prime_state(params, vocab: Vocabulary, prime: str, h0=None):
    """Feed every character of prime; returns (h (m,), logits (K,)) for the next character."""
    m = params["W"].shape[0]
    h = np.zeros(m, dtype=params["W"].dtype) if h0 is None else np.asarray(h0, dtype=params["W"].dtype)
    o = None
    for i in vocab.encode(prime):
        h, o = step(params, h, int(i))
    return h, o


def distribution(logits, temperature: float = 1.0, top_p: float = 1.0) -> np.ndarray:
    """The next-character distribution (K,) after temperature and nucleus filtering.

    temperature 0 puts all mass on the argmax; top_p keeps the smallest set of
    most likely characters whose probability reaches top_p, renormalised.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        p = np.zeros_like(logits)
        p[int(np.argmax(logits))] = 1.0
        return p
    z = logits / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = int(np.searchsorted(cum, top_p * (1 - 1e-12))) + 1  # first index where cum >= top_p
        mask = np.zeros_like(p, dtype=bool)
        mask[order[:keep]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return p


def next_char_distribution(params, vocab: Vocabulary, prime: str, h0=None,
                           temperature: float = 1.0, top_p: float = 1.0) -> np.ndarray:
    """The distribution (K,) of the character that follows prime."""
    check_sampling_args(vocab, 0, prime, temperature, top_p)
    _, o = prime_state(params, vocab, prime, h0)
    return distribution(o, temperature, top_p)


def sample_ids(params, h, o, n: int, rng: np.random.Generator,
               temperature: float = 1.0, top_p: float = 1.0) -> np.ndarray:
    """Draw n ids (n,) starting from state h (m,) whose next-character logits are o (K,)."""
    out = np.empty(n, dtype=np.int64)
    uniforms = rng.random(n) if temperature > 0 else None
    for i in range(n):
        p = distribution(o, temperature, top_p)
        if uniforms is None:
            k = int(np.argmax(p))
        else:
            k = min(int(np.searchsorted(np.cumsum(p), uniforms[i], side="right")), len(p) - 1)
            while p[k] == 0.0:  # guard against rounding landing on a filtered-out character
                k -= 1
        out[i] = k
        h, o = step(params, h, k)
    return out


def sample(params, vocab: Vocabulary, n: int = 200, h0=None, prime: str = "H",
           temperature: float = 1.0, top_p: float = 1.0, seed=None) -> str:
    """Prime the hidden state on every character of prime, then draw n characters.

    params: dict of U (m, K), W (m, m), V (K, m), b (m,), c (K,); h0: (m,) or None for zeros.
    seed: int or np.random.Generator (None: fresh entropy). Returns the n drawn characters.
    """
    check_sampling_args(vocab, n, prime, temperature, top_p)
    if len(vocab) != params["U"].shape[1]:
        raise SamplingError(f"vocabulary has {len(vocab)} characters but the model expects {params['U'].shape[1]}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, o = prime_state(params, vocab, prime, h0)
    return vocab.decode(sample_ids(params, h, o, n, rng, temperature, top_p))
