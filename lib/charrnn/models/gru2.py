"""Two stacked GRU layers (models/gru.py), as char-rnn stacks its cells by default.

The lower layer reads the characters, the upper layer reads the lower layer's h, and the output layer
reads the upper one. With K characters and m hidden units per layer, one step computes, in this order:

    h1_t = GRU(U x_t + b,      W  h1_{t-1})          the lower layer: gru.step with U (3m, K)
    h2_t = GRU(U2 h1_t + b2,   W2 h2_{t-1})          the upper layer: the same cell with a dense input U2 (3m, m)
    o_t = V h2_t + c,   p_t = softmax(o_t),   loss = - sum_t log p_t[y_t]   (models/output.py)

where GRU(zx, zh) is the gate arithmetic of models/gru.py (update gate, reset gate after the product,
candidate, interpolation). Parameters: U (3m, K), W (3m, m), b (3m,) of the lower layer, U2 (3m, m),
W2 (3m, m), b2 (3m,) of the upper one, V (K, m), c (K,). The state of one stream is [h2 | h1], (2m,): h,
the part the output layer reads, is state[..., :m] as for every cell.

The fast path runs the lower layer over all T steps with gru's loop (gru.recurrence), then computes the
upper layer's inputs U2 h1_t + b2 for every position in one product, and runs the same loop again.
Backward goes the same way down: the upper layer through time (gru.recurrence_backward), then one product
U2^T dzx2 gives the dL/dh1_t that reach the lower layer, which goes back through time in turn. `step` is
the plain per-step reference the fast path is tested against.
"""
from __future__ import annotations

import numpy as np

from . import gru, output
from .common import (StreamsWorkspace, check_id, check_ids, check_sizes, halved_inputs, normal_init,
                     sigmoid, swap_time_and_rows)

PARAM_NAMES = ("U", "W", "V", "b", "c", "U2", "W2", "b2")    # the shared names first, in every cell's order
LAYERS = 2    # recurrent layers (the upper one reads the lower one's h): what bench counts the matrix products by
RECURRENT = ("W", "W2")    # the matrices that multiply a layer's own state: what init="orthogonal" sets


def param_shapes(K: int, m: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter for K characters and m hidden units per layer."""
    return {"U": (3 * m, K), "W": (3 * m, m), "V": (K, m), "b": (3 * m,), "c": (K,),
            "U2": (3 * m, m), "W2": (3 * m, m), "b2": (3 * m,)}


def init_params(K: int, m: int, sigma: float = 0.01, seed: int | None = 0,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """Weights ~ N(0, sigma^2) from np.random.default_rng(seed), biases zero."""
    check_sizes(K, m)
    return normal_init(param_shapes(K, m), sigma, seed, dtype)


def state_size(m: int) -> int:
    """Entries of one stream's state: [h2 | h1], (2m,)."""
    return 2 * m


def _gates(zx, zh, h):
    """The GRU's arithmetic for one step: zx, zh (3m,) the input's and the state's products, h (m,)."""
    m = h.shape[0]
    u = sigmoid(zx[:m] + zh[:m])
    r = sigmoid(zx[m:2 * m] + zh[m:2 * m])
    n = np.tanh(zx[2 * m:] + r * zh[2 * m:])
    return (1 - u) * n + u * h


def step(params, s, x_id):
    """One step, the plain reference: feed character x_id with state s = [h2 | h1] (2m,).

    Returns (new state (2m,), logits (K,)).
    """
    m = params["W"].shape[1]
    h2, h1 = s[:m], s[m:]
    h1 = _gates(params["U"][:, check_id(params["U"].shape[1], x_id)] + params["b"], params["W"] @ h1, h1)
    h2 = _gates(params["U2"] @ h1 + params["b2"], params["W2"] @ h2, h2)
    return np.concatenate([h2, h1]), params["V"] @ h2 + params["c"]


class BatchWorkspace(StreamsWorkspace):
    """Buffers for B streams of T steps: one gru.BatchWorkspace per layer (the upper one's XZ holds
    U2 h1_t + b2, its O and rows the output layer's), H1 (m, T, B) the lower layer's h_t feature-major
    for the upper layer's input product, and the upper layer's halved weights U2h (3m, m), b2h (3m, 1, 1)."""

    def __init__(self, B: int, T: int, K: int, m: int, dtype=np.float64):
        self.key = (B, T, K, m, np.dtype(dtype))
        self.low = gru.BatchWorkspace(B, T, K, m, dtype)
        self.up = gru.BatchWorkspace(B, T, K, m, dtype)
        self.H1 = np.empty((m, T, B), dtype)
        self.U2h = np.empty((3 * m, m), dtype)
        self.b2h = np.empty((3 * m, 1, 1), dtype)
        self.keep = self.Hd = None                  # dropout on the output layer's input (output.dropout_buffers)


def workspace(B: int, T: int, K: int, m: int, dtype=np.float64) -> BatchWorkspace:
    """The buffers forward_batch and backward_batch need for B streams of T steps."""
    return BatchWorkspace(B, T, K, m, dtype)


def forward_batch(params, X, Y, S0, ws: BatchWorkspace):
    """Forward pass over B streams of T steps.

    X, Y: int arrays (B, T) of input and target ids; S0: (B, 2m) the states [h2 | h1] before the first
    step; ws: from workspace(B, T, K, m, dtype). Returns (loss summed over all B*T positions, cache).
    """
    V, c = params["V"], params["c"]
    B, T = X.shape
    m = V.shape[1]
    check_ids(V.shape[0], X=X, Y=Y)
    if not ws.fits(B, T, params):
        raise ValueError(f"the workspace {ws.key} does not fit B={B}, T={T} and these parameters")
    low, up = ws.low, ws.up
    xs, ys = halved_inputs(params, X, low), Y.T.ravel()
    low.H[0] = S0[:, m:].T
    gru.recurrence(low)
    # the upper layer's inputs for every position: U2 h1_t + b2, the gates' rows halved as in halved_inputs
    np.multiply(params["U2"], low.half, ws.U2h)
    np.multiply(params["b2"][:, None], low.half, ws.b2h[:, :, 0])
    np.multiply(params["W2"], low.half, up.Wh)
    swap_time_and_rows(low.H[1:], ws.H1)             # (m, T, B): h1_t, one column per position
    np.dot(ws.U2h, ws.H1.reshape(m, T * B), up.XZ.reshape(3 * m, T * B))
    up.XZ += ws.b2h
    if up.XT is not None:
        swap_time_and_rows(up.XZ, up.XT)             # (T, 3m, B) for the fused kernels (charrnn/jit.py)
    up.H[0] = S0[:, :m].T
    gru.recurrence(up)
    loss = output.forward(V, c, up.HR[B:], ys, up.O, up.rows, ws.keep, ws.Hd)
    return loss, (xs, ys, ws)


def final_state(cache) -> np.ndarray:
    """[h2_T | h1_T] (B, 2m) after forward_batch: a fresh array."""
    ws = cache[2]
    return np.concatenate([ws.up.H[-1].T, ws.low.H[-1].T], axis=1)


def backward_batch(params, cache, out=None):
    """Gradients of the summed loss, by backpropagation through time, the upper layer first.

    Returns (grads dict shaped like params, [h2_T | h1_T] (B, 2m), a fresh array).
    With dZ2 (4m, T*B) the upper layer's dzh_u, dzh_r, dzh_n, dzx_n per position (gru.recurrence_backward):
        dU2 = dzx2 h1^T summed over positions,   dL/dh1_t (from above) = U2^T dzx2_t,
    where dzx2 = [dzh_u; dzh_r; dzx_n]; the lower layer then goes back through time from those.
    """
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    V, U2 = params["V"], params["U2"]
    xs, ys, ws = cache
    low, up = ws.low, ws.up
    T, m3, B = up.ZH.shape
    m = m3 // 3
    output.backward(V, up.HR[B:], ys, up.O, up.rows, up.DR, out["V"], out["c"], ws.keep, ws.Hd)
    gru.recurrence_backward(params["W2"], up)
    dZ2 = up.DZ.reshape(4 * m, T * B)
    dzx_ur, dzx_n = dZ2[:2 * m], dZ2[3 * m:]
    np.dot(dZ2[:3 * m], up.HR[:-B], out["W2"])
    H1 = low.HR[B:]                                  # (T*B, m): h1_t, one row per position
    np.dot(dzx_ur, H1, out["U2"][:2 * m])
    np.dot(dzx_n, H1, out["U2"][2 * m:])
    np.add.reduce(dzx_ur, 1, out=out["b2"][:2 * m])
    np.add.reduce(dzx_n, 1, out=out["b2"][2 * m:])
    np.dot(dzx_ur.T, U2[:2 * m], low.DR)             # (T*B, m): dL/dh1_t through the upper layer's input
    np.dot(dzx_n.T, U2[2 * m:], up.DR)               # (up.DR, read into up.DH already, as scratch)
    low.DR += up.DR
    gru.recurrence_backward(params["W"], low)
    dZ1 = low.DZ.reshape(4 * m, T * B)
    gru.input_gradients(low, dZ1, xs, out["U"], out["b"])
    np.dot(dZ1[:3 * m], low.HR[:-B], out["W"])
    return out, final_state(cache)
