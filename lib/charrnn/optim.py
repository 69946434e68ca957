"""Optimisers: AdaGrad (the assignment's), RMSProp and Adam.

Each works on one flat gradient vector g (n,) and writes the step into a
scratch vector `work` (n,); the caller then does theta -= work. Working on
the flat vector makes an update a handful of NumPy calls whatever the number
of parameter arrays, and writing into scratch instead of allocating avoids
fresh large arrays (page faults) every update. State is a dict of flat arrays.

Every optimiser first clips g element-wise to [-clip, clip], in place.

An exponential moving average of the parameters (TrainConfig.ema) is kept with the optimiser's arrays,
under the key "E", so the checkpoints and the spike guard's copies carry it as they carry Adam's moments.
"""
from __future__ import annotations

import numpy as np

from . import jit

STATE_KEYS = {"adagrad": ("G",), "rmsprop": ("G",), "adam": ("M", "S")}
EMA_KEY = "E"


def state_keys(optimizer: str, ema: float | None = None) -> tuple[str, ...]:
    """The names of a run's flat state arrays: its optimiser's, and "E" when it averages the parameters."""
    return STATE_KEYS[optimizer] + ((EMA_KEY,) if ema else ())


def init_state(optimizer: str, n: int, dtype=np.float64, ema: float | None = None) -> dict[str, np.ndarray]:
    """Zeroed state for n parameters, {name: (n,)}: the optimiser's arrays, and "E" with ema (the caller
    starts it at the initial parameters)."""
    return {k: np.zeros(n, dtype=dtype) for k in state_keys(optimizer, ema)}


def clip_and_square_(g, clip, work) -> None:
    """Clip g to [-clip, clip] in place and write g*g into work.

    All three optimisers need g*g, and its maximum tells whether anything
    needs clipping: one read of g*g instead of reading g for both max and min.
    (|g_i| > clip implies g_i^2 >= clip^2 after rounding, hence the >=.)
    """
    np.multiply(g, g, work)
    if np.maximum.reduce(work) >= clip * clip:
        np.clip(g, -clip, clip, g)
        np.multiply(g, g, work)


def adagrad_step(g, state, work, eta, eps, clip, **_):
    """G += g*g;  step = eta * g / sqrt(G + eps), written into work."""
    clip_and_square_(g, clip, work)
    G = state["G"]
    G += work
    np.add(G, eps, work)
    np.sqrt(work, work)
    np.divide(g, work, work)        # g / sqrt(G + eps)
    work *= eta


def rmsprop_step(g, state, work, eta, eps, clip, rho, **_):
    """G = rho G + (1 - rho) g*g;  step = eta * g / sqrt(G + eps), written into work."""
    clip_and_square_(g, clip, work)
    G = state["G"]
    G *= rho
    work *= 1 - rho
    G += work
    np.add(G, eps, work)
    np.sqrt(work, work)
    np.divide(g, work, work)
    work *= eta


def adam_step(g, state, work, eta, eps, clip, beta1, beta2, t, **_):
    """Adam with bias correction, t the 1-based update count; the step is written into work."""
    M, S = state["M"], state["S"]
    scale = eta * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    if jit.enabled(g.dtype):                        # one compiled pass, the same bits (charrnn/jit.py)
        f = np.float32
        jit.adam_step(g, M, S, work, f(clip), f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(eps), float(scale))
        return
    clip_and_square_(g, clip, work)
    S *= beta2
    work *= 1 - beta2
    S += work                       # S = beta2 S + (1 - beta2) g*g
    M *= beta1
    np.multiply(g, 1 - beta1, work)
    M += work                       # M = beta1 M + (1 - beta1) g
    np.sqrt(S, work)
    work += eps
    np.divide(M, work, work)
    work *= scale


def ema_step_(E, theta, decay, work) -> None:
    """E = decay E + (1 - decay) theta, in place, as E += (1 - decay) (theta - E); work (n,) is scratch."""
    np.subtract(theta, E, work)
    work *= 1 - decay
    E += work


STEPS = {"adagrad": adagrad_step, "rmsprop": rmsprop_step, "adam": adam_step}
