"""Synthesising text: the model's state, priming, temperature, nucleus (top-p) sampling.

A trained model is its parameters and the state it was trained in. The
trainer only ever resets the state at a new epoch, so a network can learn to
write well from the states its own training carried and still fall, from
h = 0, into a state it never met and write noise. A Model therefore keeps the
state training carried at its parameters (and the character that came next
in the text), and samples from there by default; starting from zeros is an
explicit choice (start="zeros").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import char_losses, get_cell
from .vocab import Vocabulary, describe_chars

STARTS = ("state", "zeros")


class SamplingError(ValueError):
    """A sampling argument that cannot work."""


def check_sampling_args(vocab: Vocabulary, n: int, prime: str, temperature: float, top_p: float,
                        allow_empty_prime: bool = False) -> None:
    """Raise SamplingError naming the first bad argument."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise SamplingError(f"length must be an integer >= 0, got {n!r}")
    if not isinstance(temperature, (int, float)) or not np.isfinite(temperature) or temperature < 0:
        raise SamplingError(f"temperature must be >= 0, got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not (0 < top_p <= 1):
        raise SamplingError(f"top-p must be in (0, 1], got {top_p!r}")
    if not isinstance(prime, str) or not (prime or allow_empty_prime):
        raise SamplingError("prime must be a non-empty string when sampling from zeros")
    bad = vocab.missing(prime)
    if bad:
        raise SamplingError(f"prime has characters not in the vocabulary: {describe_chars(bad)}")


def prime_state(params, vocab: Vocabulary, prime: str, h0=None, cell: str = "rnn"):
    """Feed every character of prime from state h0 (S,) (zeros when None).
    Returns (state (S,), logits (K,)) for the next character."""
    c = get_cell(cell)
    dtype = params["V"].dtype
    S = c.state_size(params["V"].shape[1])
    s = np.zeros(S, dtype=dtype) if h0 is None else np.asarray(h0, dtype=dtype)
    if s.shape != (S,):
        raise SamplingError(f"the start state must have shape ({S},), got {s.shape}")
    o = None
    for i in vocab.encode(prime):
        s, o = c.step(params, s, int(i))
    return s, o


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


def next_char_distribution(params, vocab: Vocabulary, prime: str, h0=None, temperature: float = 1.0,
                           top_p: float = 1.0, cell: str = "rnn") -> np.ndarray:
    """The distribution (K,) of the character that follows prime (fed from h0, zeros when None)."""
    check_sampling_args(vocab, 0, prime, temperature, top_p)
    _, o = prime_state(params, vocab, prime, h0, cell)
    return distribution(o, temperature, top_p)


def sample_ids(params, h, o, n: int, rng: np.random.Generator, temperature: float = 1.0, top_p: float = 1.0,
               cell: str = "rnn") -> np.ndarray:
    """Draw n ids (n,) starting from state h (S,) whose next-character logits are o (K,)."""
    step = get_cell(cell).step
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


def sample(params, vocab: Vocabulary, n: int = 200, h0=None, prime: str = "H", temperature: float = 1.0,
           top_p: float = 1.0, seed=None, cell: str = "rnn") -> str:
    """Feed every character of prime from state h0, then draw n characters.

    params: a cell's parameters (for the rnn U (m, K), W (m, m), V (K, m), b (m,), c (K,));
    h0: the start state (S,), or None for zeros; cell: "rnn", "gru" or "lstm".
    seed: int or np.random.Generator (None: fresh entropy). Returns the n drawn characters.
    """
    check_sampling_args(vocab, n, prime, temperature, top_p)
    if len(vocab) != params["V"].shape[0]:
        raise SamplingError(f"vocabulary has {len(vocab)} characters but the model expects {params['V'].shape[0]}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, o = prime_state(params, vocab, prime, h0, cell)
    return vocab.decode(sample_ids(params, h, o, n, rng, temperature, top_p, cell))


@dataclass
class Model:
    """A trained model as sampling needs it: the cell, its parameters and vocabulary, and the state it
    was trained in (state (S,) and state_input, the id of the character that followed it in the text),
    when known. Made by Checkpoint.model() and History.model()."""
    params: dict
    vocab: Vocabulary
    cell: str = "rnn"
    state: np.ndarray | None = None
    state_input: int | None = None

    @classmethod
    def from_arrays(cls, params, vocab: Vocabulary, cell: str, states, inputs) -> "Model":
        """A Model from a checkpoint's or History's arrays: states (B, S) and inputs (B,), either None when
        not stored; the first stream's state is the model's."""
        known = states is not None and inputs is not None
        return cls(params, vocab, cell, states[0] if known else None, int(inputs[0]) if known else None)

    @property
    def has_state(self) -> bool:
        return self.state is not None and self.state_input is not None

    def start(self, prime: str = "", start: str = "state"):
        """(start state (S,) or None for zeros, the text to feed before drawing).

        start="state": the stored state, fed its input character and then prime (which may be empty);
        start="zeros": h = 0, fed prime (which must not be empty).
        """
        if start not in STARTS:
            raise SamplingError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
        if start == "zeros":
            return None, prime
        if not self.has_state:
            raise SamplingError("this model stores no state (a checkpoint from an older charrnn); "
                                "sample from zeros instead")
        return self.state, self.vocab.chars[self.state_input] + prime

    def sample(self, n: int = 200, prime: str = "", start: str = "state", temperature: float = 1.0,
               top_p: float = 1.0, seed=None) -> str:
        """n characters drawn after prime, from the stored state (default) or from zeros."""
        check_sampling_args(self.vocab, n, prime, temperature, top_p, allow_empty_prime=start == "state")
        h0, feed = self.start(prime, start)
        return sample(self.params, self.vocab, n, h0=h0, prime=feed, temperature=temperature, top_p=top_p,
                      seed=seed, cell=self.cell)

    def next_char_distribution(self, prime: str = "", start: str = "state", temperature: float = 1.0,
                               top_p: float = 1.0) -> np.ndarray:
        """The distribution (K,) of the character that follows prime from this start."""
        check_sampling_args(self.vocab, 0, prime, temperature, top_p, allow_empty_prime=start == "state")
        h0, feed = self.start(prime, start)
        return next_char_distribution(self.params, self.vocab, feed, h0, temperature, top_p, self.cell)

    def logits_after(self, prime: str = "", start: str = "state"):
        """(state (S,), logits (K,)) after feeding prime from this start."""
        h0, feed = self.start(prime, start)
        return prime_state(self.params, self.vocab, feed, h0, self.cell)

    def text_loss(self, text: str, prime: str = "", start: str = "state") -> float:
        """The model's mean -log p per character of text, read after prime from this start:
        how likely the model finds a passage (for its own samples, how sure it was)."""
        h0, feed = self.start(prime, start)
        s, _ = prime_state(self.params, self.vocab, feed[:-1], h0, self.cell) if len(feed) > 1 else (h0, None)
        ids = self.vocab.encode(feed[-1:] + text)
        return float(char_losses(get_cell(self.cell), self.params, ids, s).mean()) if len(text) else 0.0
