"""The LSTM with a forget gate: Hochreiter & Schmidhuber, "Long short-term memory", 1997, with the
forget gate of Gers, Schmidhuber & Cummins, "Learning to forget: continual prediction with LSTM", 2000.

With K characters and m hidden units, one step (x_t, y_t character ids) computes, in this order:

    z_t = W h_{t-1} + U x_t + b                  (4m,): the blocks z_i, z_f, z_o, z_g
    i_t = sigmoid(z_i)   f_t = sigmoid(z_f)   o_t = sigmoid(z_o)   g_t = tanh(z_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)
    s_t = V h_t + c,   p_t = softmax(s_t),   loss = - sum_t log p_t[y_t]   (models/output.py;
                                                   the logits are called o_t there, o_t is a gate here)

Parameters: U (4m, K), W (4m, m), b (4m,), V (K, m), c (K,). The gate blocks are stacked row-wise in
the order i, f, o, g: the three sigmoid gates first (rows 0:3m), the tanh candidate last (3m:4m). The
parameter `c` is the output layer's bias, not the cell state (the assignment's name for it is kept).

The state of one stream is [h | c_t], (2m,), and (B, 2m) for B streams: h = state[..., :m] as for
every cell, the cell state c_t = state[..., m:].

The fast path (forward_batch/backward_batch) takes B streams of T steps at once. Inside it every
per-step array is feature-major, one stream per column: h_t is (m, B) and the gates (4m, B), so that
one product W h_{t-1} per step fills all four gate blocks and each block is a contiguous (m, B)
array (NumPy copies non-contiguous operands of element-wise calls through buffers, which costs
3-5 times the arithmetic). Three tricks keep the NumPy calls per step few: sigmoid(z) =
(1 + tanh(z/2)) / 2, so one tanh covers the whole gate block once the sigmoid rows of W, U and b are
halved (halving is exact in floating point); backward, everything that does not depend on the
recurrence is computed for all t at once, so the loop over time only carries dL/dh and dL/dc; and
dL/dc_t, dL/dh_t are kept as adjacent pairs so that each element-wise call does two blocks at once.
`step` is the plain per-step reference the fast path is tested against.
"""
from __future__ import annotations

import numpy as np

from . import output
from .common import (StreamsWorkspace, check_id, check_ids, check_sizes, halved_inputs, normal_init,
                     sigmoid, swap_time_and_rows)

PARAM_NAMES = ("U", "W", "V", "b", "c")
LAYERS = 1    # recurrent layers: what bench counts the matrix products by
RECURRENT = ("W",)    # the matrices that multiply the state, (gates * m, m): what init="orthogonal" sets


def param_shapes(K: int, m: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter for K characters and m hidden units."""
    return {"U": (4 * m, K), "W": (4 * m, m), "V": (K, m), "b": (4 * m,), "c": (K,)}


def init_params(K: int, m: int, sigma: float = 0.01, seed: int | None = 0,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """Weights ~ N(0, sigma^2) from np.random.default_rng(seed); biases zero except the forget gate's,
    b[m:2m] = 1, so that the cell starts out remembering (Gers et al. 2000).

    Returns {"U": (4m, K), "W": (4m, m), "V": (K, m), "b": (4m,), "c": (K,)}.
    """
    check_sizes(K, m)
    params = normal_init(param_shapes(K, m), sigma, seed, dtype)
    params["b"][m:2 * m] = 1.0
    return params


def state_size(m: int) -> int:
    """Entries of one stream's state: [h | c], (2m,)."""
    return 2 * m


def step(params, s, x_id):
    """One step, the plain reference: feed character x_id with state s = [h | c] (2m,).

    Returns (new state (2m,), logits (K,)).
    """
    U, W, b = params["U"], params["W"], params["b"]
    m = W.shape[1]
    h, c = s[:m], s[m:]
    z = W @ h + U[:, check_id(U.shape[1], x_id)] + b
    i, f, o = sigmoid(z[:m]), sigmoid(z[m:2 * m]), sigmoid(z[2 * m:3 * m])
    g = np.tanh(z[3 * m:])
    c = f * c + i * g
    h = o * np.tanh(c)
    return np.concatenate([h, c]), params["V"] @ h + params["c"]


class BatchWorkspace(StreamsWorkspace):
    """Buffers for B streams of T steps, allocated once per run. Per-step arrays are feature-major
    (one stream per column) and stacked over time, so each step's (m, B) blocks are contiguous:

    XZ (4m, T, B)   forward: U x_t + b (sigmoid blocks halved), a column of U per position; backward:
                    dL/dz_t copied from A, in the (4m, T*B) layout that dW, dU and db take in one product each
    G  (T, 4m, B)   the gates: W h_{t-1} + XZ_t, then tanh of it, then i, f, o, g
    A  (T, 4m, B)   backward: the factors A_t with dz_t = [dc_t, dc_t, dh_t, dc_t] * A_t, blockwise,
                    then dL/dz_t itself (written in place: contiguous writes, which the loop needs)
    H  (T+1, m, B)  h_t with H[0] = h_0;  C (T+1, m, B) c_t with C[0] = c_0;  TC (T, m, B) tanh(c_t)
    HR ((T+1)*B, m) h_t again, one row per position, t-major: what the output layer and dW take
    O  (T*B, K)     the logits, then p, then dL/do (models/output.py)
    DR (T*B, m)     dL/dh_t through the output layer alone, one row per position; DH (T, m, B) the same
    DF (T, 2, m, B) [f_{t+1}, o_t (1 - tanh^2 c_t)], the multipliers of [dL/dc_{t+1}, dL/dh_t] in dL/dc_t
    Q  (2T+1, m, B) backward: dL/dc and dL/dh interleaved from the last step back,
                    Q = [dc_T, dh_{T-1}, dc_{T-1}, dh_{T-2}, ..., dh_0, dc_0], so that both
                    [dc_{t+1}, dh_t] and [dh_t, dc_t] are contiguous pairs
    Wh (4m, m), bh (4m, 1): W and b with the sigmoid rows halved, Uh (4m, K) U + b likewise, per update
    """

    def __init__(self, B: int, T: int, K: int, m: int, dtype=np.float64):
        self.key = (B, T, K, m, np.dtype(dtype))
        self.XZ = np.empty((4 * m, T, B), dtype)
        self.G = np.empty((T, 4 * m, B), dtype)
        self.A = np.empty((T, 4 * m, B), dtype)
        self.H = np.empty((T + 1, m, B), dtype)
        self.C = np.empty((T + 1, m, B), dtype)
        self.TC = np.empty((T, m, B), dtype)
        self.HR = np.empty(((T + 1) * B, m), dtype)
        self.O = np.empty((T * B, K), dtype)
        self.DR = np.empty((T * B, m), dtype)
        self.DH = np.empty((T, m, B), dtype)
        self.DF = np.empty((T, 2, m, B), dtype)
        self.Q = np.empty((2 * T + 1, m, B), dtype)
        self.R = np.empty((m, B), dtype)            # scratch: W^T dL/dz_{t+1}
        self.P = np.empty((2, m, B), dtype)         # scratch: [dc_{t+1} f_{t+1}, dh_t o_t (1 - tanh^2 c_t)]
        self.Wh = np.empty((4 * m, m), dtype)
        self.Uh = np.empty((4 * m, K), dtype)
        self.bh = np.empty((4 * m, 1), dtype)
        self.half = np.ones((4 * m, 1), dtype)
        self.half[:3 * m] = 0.5                     # 1/2 on the sigmoid rows, 1 on the candidate's
        self.eye = np.eye(K, dtype=dtype)           # eye[x] stacks the one-hot rows of x
        self.onehot = np.empty((T * B, K), dtype)
        self.rows = np.arange(T * B)
        self.keep = self.Hd = None                  # dropout on the output layer's input (output.dropout_buffers)
        G, XZ, H, C, TC, Q, A = self.G, self.XZ, self.H, self.C, self.TC, self.Q, self.A
        # the views each step works on, made once: (z, U x + b, sigmoid blocks, i, f, o, g, c_{t-1}, c_t,
        # tanh c_t, h_{t-1}, h_t)
        self.forward_steps = [
            (G[t], XZ[:, t], G[t, :3 * m], G[t, :m], G[t, m:2 * m], G[t, 2 * m:3 * m], G[t, 3 * m:],
             C[t], C[t + 1], TC[t], H[t], H[t + 1])
            for t in range(T)]
        # backward, from t = T-1 down to 0: (dL/dz_{t+1} or None at the last step, the output's dL/dh_t,
        # dh_t, dc_t, [dc_{t+1}, dh_t], [dh_t, dc_t], [f_{t+1}, o(1 - tanh^2 c)]_t, the (i, f) and
        # (o, g) blocks of A_t, each (2, m, B))
        A4 = A.reshape(T, 4, m, B)
        self.backward_steps = []
        for t in range(T - 1, -1, -1):
            p = 2 * (T - 1 - t)
            self.backward_steps.append(
                (A[t + 1] if t < T - 1 else None, self.DH[t], Q[p + 1], Q[p + 2], Q[p:p + 2], Q[p + 1:p + 3],
                 self.DF[t], A4[t, :2], A4[t, 2:]))


def workspace(B: int, T: int, K: int, m: int, dtype=np.float64) -> BatchWorkspace:
    """The buffers forward_batch and backward_batch need for B streams of T steps."""
    return BatchWorkspace(B, T, K, m, dtype)


def forward_batch(params, X, Y, S0, ws: BatchWorkspace):
    """Forward pass over B streams of T steps.

    X, Y: int arrays (B, T) of input and target ids; S0: (B, 2m) the states [h | c] before the first
    step; ws: from workspace(B, T, K, m, dtype) with the params' dtype.
    Returns (loss summed over all B*T positions, cache for backward_batch and final_state); the cache
    lives in ws, so it is valid until the next forward pass in the same workspace.
    """
    W, V, c = params["W"], params["V"], params["c"]
    B, T = X.shape
    check_ids(params["V"].shape[0], X=X, Y=Y)
    xs, ys = halved_inputs(params, X, ws), Y.T.ravel()     # (T, B) and (T*B,), positions ordered t-major
    m = W.shape[1]
    H, C = ws.H, ws.C
    H[0] = S0[:, :m].T
    C[0] = S0[:, m:].T
    Wh, tanh, mul = ws.Wh, np.tanh, np.multiply
    for z, xz, sig, i, f, o, g, c_prev, c_t, tc, h_prev, h in ws.forward_steps:
        np.dot(Wh, h_prev, z)            # z_t = W h_{t-1} + U x_t + b, with the sigmoid blocks halved
        z += xz
        tanh(z, z)                       # z now holds tanh(z_i/2), tanh(z_f/2), tanh(z_o/2), g_t
        sig *= 0.5
        sig += 0.5                       # sig now holds i_t, f_t, o_t = (1 + tanh(z/2)) / 2
        mul(f, c_prev, c_t)              # c_t = f_t c_{t-1} + i_t g_t
        mul(i, g, tc)                    # (tc as scratch: i_t g_t)
        c_t += tc
        tanh(c_t, tc)                    # tc now holds tanh(c_t)
        mul(o, tc, h)                    # h_t = o_t tanh(c_t)
    HR = ws.HR
    np.copyto(HR.reshape(T + 1, B, m), H.transpose(0, 2, 1))     # one row per position, for the output layer
    loss = output.forward(V, c, HR[B:], ys, ws.O, ws.rows, ws.keep, ws.Hd)
    return loss, (xs, ys, ws)


def final_state(cache) -> np.ndarray:
    """[h_T | c_T] (B, 2m) after forward_batch: a fresh array."""
    ws = cache[2]
    return np.concatenate((ws.H[-1].T, ws.C[-1].T), axis=1)


def backward_batch(params, cache, out=None):
    """Gradients of the summed loss over B streams, by backpropagation through time.

    cache: from forward_batch (its workspace is overwritten: call once per forward pass).
    out: optional dict of arrays shaped like params to write the gradients into.
    Returns (grads dict shaped like params, [h_T | c_T] (B, 2m), a fresh array).
    """
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    W, V = params["W"], params["V"]
    xs, ys, ws = cache
    T, m4, B = ws.G.shape
    m = m4 // 4
    G, C, TC, DF, A, HR = ws.G, ws.C, ws.TC, ws.DF, ws.A, ws.HR
    output.backward(V, HR[B:], ys, ws.O, ws.rows, ws.DR, out["V"], out["c"], ws.keep, ws.Hd)
    np.copyto(ws.DH, ws.DR.reshape(T, B, m).transpose(0, 2, 1))    # (T, m, B): the output's dL/dh_t

    # everything that does not depend on the recurrence, for all t at once
    i, f, o, g = G[:, :m], G[:, m:2 * m], G[:, 2 * m:3 * m], G[:, 3 * m:]
    sig, A_sig = G[:, :3 * m], A[:, :3 * m]
    A_i, A_f, A_o, A_g = A[:, :m], A[:, m:2 * m], A[:, 2 * m:3 * m], A[:, 3 * m:]
    np.multiply(sig, sig, A_sig)
    np.subtract(sig, A_sig, A_sig)                   # s (1 - s): sigmoid'(z) for i, f, o
    A_i *= g                                         # dz_i = dc_t * g_t i_t (1 - i_t)
    A_f *= C[:-1]                                    # dz_f = dc_t * c_{t-1} f_t (1 - f_t)
    A_o *= TC                                        # dz_o = dh_t * tanh(c_t) o_t (1 - o_t)
    np.multiply(g, g, A_g)
    np.subtract(1.0, A_g, A_g)
    A_g *= i                                         # dz_g = dc_t * i_t (1 - g_t^2)
    DF[:-1, 0] = f[1:]                               # f_{t+1}; nothing flows back from after the last step
    DF[-1, 0] = 0.0
    D = DF[:, 1]
    np.multiply(TC, TC, D)
    np.subtract(1.0, D, D)
    D *= o                                           # o_t (1 - tanh^2 c_t): dL/dc_t through h_t
    ws.Q[0] = 0.0                                    # dc_T

    R, P, WT, mul, add = ws.R, ws.P, W.T, np.multiply, np.add
    for dz_next, dh_out, dh, dc, cdh, hc, df, a_if, a_og in ws.backward_steps:
        if dz_next is None:              # the last step: only the output layer's dL/dh
            np.copyto(dh, dh_out)
        else:
            np.dot(WT, dz_next, R)       # dL/dh_t = output's part + W^T dL/dz_{t+1}
            add(dh_out, R, dh)
        mul(cdh, df, P)                  # dL/dc_t = dc_{t+1} f_{t+1} + dh_t o_t (1 - tanh^2 c_t)
        add(P[0], P[1], dc)
        mul(a_if, dc, a_if)              # A_t now holds dL/dz_t: dz_i, dz_f = dc_t A_i, dc_t A_f,
        mul(a_og, hc, a_og)              # dz_o, dz_g = dh_t A_o, dc_t A_g

    swap_time_and_rows(A, ws.XZ)                    # XZ now holds dL/dz, one column per position
    dZ = ws.XZ.reshape(4 * m, T * B)
    np.dot(dZ, HR[:-B], out["W"])                    # (4m, m): sum over positions of dz_t h_{t-1}^T
    np.take(ws.eye, xs, axis=0, out=ws.onehot.reshape(T, B, -1), mode="clip")
    np.dot(dZ, ws.onehot, out["U"])                  # (4m, K): per input character, the sum of its dz
    np.add.reduce(dZ, 1, out=out["b"])
    return out, np.concatenate((ws.H[T].T, C[T].T), axis=1)
