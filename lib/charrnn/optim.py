"""Optimisers: AdaGrad (the assignment's), RMSProp and Adam.

Each works in place on one flat parameter vector theta (n,) with its flat
gradient g (n,), so one update is a handful of NumPy calls whatever the
number of parameter arrays, and writes its intermediates into a scratch
vector instead of allocating (fresh large arrays cost page faults every
update). State is a dict of flat arrays.
"""
from __future__ import annotations

import numpy as np

STATE_KEYS = {"adagrad": ("G",), "rmsprop": ("G",), "adam": ("M", "S")}


def init_state(optimizer: str, n: int, dtype=np.float64) -> dict[str, np.ndarray]:
    """Zeroed optimiser state for n parameters: {name: (n,)}."""
    return {k: np.zeros(n, dtype=dtype) for k in STATE_KEYS[optimizer]}


def clip_(g: np.ndarray, clip: float) -> None:
    """Clip every gradient entry to [-clip, clip], in place."""
    if g.max() > clip or g.min() < -clip:   # two reads are cheaper than a write when nothing needs clipping
        np.clip(g, -clip, clip, out=g)


def adagrad_(theta, g, state, work, eta, eps, **_):
    """G += g*g;  theta -= eta * g / sqrt(G + eps).  work: scratch (n,)."""
    G = state["G"]
    np.multiply(g, g, out=work)
    G += work
    np.add(G, eps, out=work)
    np.sqrt(work, out=work)
    np.divide(g, work, out=work)    # g / sqrt(G + eps)
    work *= eta
    theta -= work


def rmsprop_(theta, g, state, work, eta, eps, rho, **_):
    """G = rho G + (1 - rho) g*g;  theta -= eta * g / sqrt(G + eps).  work: scratch (n,)."""
    G = state["G"]
    G *= rho
    np.multiply(g, g, out=work)
    work *= 1 - rho
    G += work
    np.add(G, eps, out=work)
    np.sqrt(work, out=work)
    np.divide(g, work, out=work)
    work *= eta
    theta -= work


def adam_(theta, g, state, work, eta, eps, beta1, beta2, t, **_):
    """Adam with bias correction; t is the 1-based update count.  work: scratch (n,)."""
    M, S = state["M"], state["S"]
    M *= beta1
    np.multiply(g, 1 - beta1, out=work)
    M += work                       # M = beta1 M + (1 - beta1) g
    S *= beta2
    np.multiply(g, g, out=work)
    work *= 1 - beta2
    S += work                       # S = beta2 S + (1 - beta2) g*g
    np.sqrt(S, out=work)
    work += eps
    np.divide(M, work, out=work)
    work *= eta * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    theta -= work


UPDATES = {"adagrad": adagrad_, "rmsprop": rmsprop_, "adam": adam_}
