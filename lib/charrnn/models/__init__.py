"""The model family: one module per cell, and the registry, the one place where a name becomes a cell.

Every cell module offers the same small interface over a params dict:

    PARAM_NAMES                      parameter names, in the order of the flat vector
    param_shapes(K, m)               {name: shape}
    init_params(K, m, sigma, seed, dtype)
    RECURRENT                        the matrices that multiply a layer's own state (initial_params' orthogonal blocks)
    state_size(m)                    S, the entries of one stream's state; h is always state[..., :m]
    workspace(B, T, K, m, dtype)     buffers for forward_batch/backward_batch, made once per run
    forward_batch(params, X, Y, S0, ws) -> (loss summed over B*T positions, cache)
                                     X, Y: int (B, T); S0: (B, S)
    backward_batch(params, cache, out) -> (grads shaped like params, S_T (B, S))
    final_state(cache) -> S_T (B, S)  the state after forward_batch, without a backward pass
    step(params, s, x) -> (s, logits (K,))   one stream, one character: the plain reference

All cells share the output layer o = V h + c, p = softmax(o) (models/output.py)
and name their parameters after the assignment: U input weights, W recurrent
weights, b their bias (gates stacked row-wise in the gated cells), V and c the
output layer.
"""
from __future__ import annotations

import numpy as np

from . import gru, gru2, lstm, rnn
from ..config import INITS
from .common import orthogonal_blocks

CELLS = {"rnn": rnn, "gru": gru, "lstm": lstm, "gru2": gru2}


def get_cell(name: str):
    """The cell module registered under name ("rnn", "gru", "lstm" or "gru2", two stacked GRU layers)."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {name!r}") from None


def initial_params(cell, K: int, m: int, sigma: float, seed, dtype=np.float64, init: str = "normal") -> dict:
    """A run's initial parameters: cell.init_params (weights N(0, sigma^2), the assignment's), and with
    init="orthogonal" every gate block of the cell's RECURRENT matrices random orthogonal instead."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    params = cell.init_params(K, m, sigma, seed=seed, dtype=dtype)
    return orthogonal_blocks(params, cell.RECURRENT, seed, dtype) if init == "orthogonal" else params


def sizes(params) -> tuple[int, int]:
    """(K, m) of any cell's parameters, read off the shared output layer V (K, m)."""
    K, m = params["V"].shape
    return K, m


def n_params(params) -> int:
    """The number of trainable numbers."""
    return sum(int(v.size) for v in params.values())


def zero_state(cell, B: int, m: int, dtype=np.float64) -> np.ndarray:
    """(B, S) zeros: every stream's state at the start of an epoch."""
    return np.zeros((B, cell.state_size(m)), dtype=dtype)


def mean_loss_per_char(cell, params, ids, state0=None, chunk: int = 4096, streams: int = 1,
                       warm_up: int = 256) -> float:
    """Mean -log p of every next character of ids (n,), n >= 2, in nats per character.

    streams = 1: read in order from state0 (S,) (zeros when None), carrying the state across chunks.
    streams > 1: the text is cut into that many pieces read side by side (much faster for the gated
    cells); each piece after the first starts from zeros warm_up characters before it (read, not
    scored), so the figure differs from reading in order only through the state's longer memory.
    """
    K, m = sizes(params)
    dtype = params["V"].dtype
    s = zero_state(cell, 1, m, dtype) if state0 is None else np.asarray(state0, dtype=dtype).reshape(1, -1)
    n = len(ids) - 1
    B = max(1, min(streams, n // max(warm_up, 1)))
    if B == 1:
        total, _ = _read(cell, params, ids[None, :-1], ids[None, 1:], s, chunk)
        return total / n
    chunk = max(16, min(chunk, 8192 // B))           # at most 8,192 positions in the buffers at once
    P = n // B                                       # positions scored per piece
    starts = np.arange(1, B) * P                     # pieces 1..B-1 begin there
    W = np.stack([ids[a - warm_up:a + 1] for a in starts])        # their warm-up text, (B-1, warm_up + 1)
    _, warmed = _read(cell, params, W[:, :-1], W[:, 1:], zero_state(cell, B - 1, m, dtype), chunk)
    X = ids[:B * P].reshape(B, P)
    Y = ids[1:B * P + 1].reshape(B, P)
    total, S = _read(cell, params, X, Y, np.concatenate([s, warmed]), chunk)
    if n > B * P:                                    # the few positions after the last piece continue it
        rest, _ = _read(cell, params, ids[None, B * P:-1], ids[None, B * P + 1:], S[-1:], chunk)
        total += rest
    return total / n


def _read(cell, params, X, Y, S, chunk: int):
    """(summed loss, final state (B, S)) of B streams X, Y (B, L) read from S (B, S), chunk steps at a time."""
    K, m = sizes(params)
    total, ws = 0.0, None
    for a in range(0, X.shape[1], chunk):
        x, y = X[:, a:a + chunk], Y[:, a:a + chunk]
        if ws is None or x.shape[1] != chunk:
            ws = cell.workspace(x.shape[0], x.shape[1], K, m, params["V"].dtype)
        loss, cache = cell.forward_batch(params, x, y, S, ws)
        S = cell.final_state(cache)
        total += loss
    return total, S


def char_losses(cell, params, ids, state0=None) -> np.ndarray:
    """-log p of each next character of ids (n,), read in order from state0 (S,) with the per-step
    reference: (n-1,) nats. For figures of the loss along a stretch of text."""
    K, m = sizes(params)
    s = np.zeros(cell.state_size(m), params["V"].dtype) if state0 is None else np.asarray(state0, params["V"].dtype)
    out = np.empty(len(ids) - 1)
    for i in range(len(ids) - 1):
        s, o = cell.step(params, s, int(ids[i]))
        o = o.astype(np.float64)
        top = o.max()
        out[i] = top + np.log(np.exp(o - top).sum()) - o[int(ids[i + 1])]
    return out
