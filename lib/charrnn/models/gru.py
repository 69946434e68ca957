"""The gated recurrent unit: Cho et al., "Learning phrase representations using RNN encoder-decoder
for statistical machine translation", 2014.

This is the variant with the reset gate applied after the recurrent product (as cuDNN computes it):
r multiplies W_n h_{t-1}, not h_{t-1}, so that ONE product W h_{t-1} per step feeds all three blocks.
With K characters and m hidden units, one step (x_t, y_t character ids) computes, in this order:

    zx_t = U x_t + b,   zh_t = W h_{t-1}                 (3m,) each: the blocks u, r, n
    u_t = sigmoid(zx_u + zh_u)                            the update gate
    r_t = sigmoid(zx_r + zh_r)                            the reset gate
    n_t = tanh(zx_n + r_t * zh_n)                         the candidate
    h_t = (1 - u_t) * n_t + u_t * h_{t-1}                 the interpolation
    o_t = V h_t + c,   p_t = softmax(o_t),   loss = - sum_t log p_t[y_t]   (models/output.py)

Parameters: U (3m, K), W (3m, m), b (3m,), V (K, m), c (K,), the gate blocks stacked row-wise in the
order u, r, n. The state of one stream is h, (m,), and (B, m) for B streams.

The fast path (forward_batch/backward_batch) takes B streams of T steps at once. Inside it every
per-step array is feature-major, one stream per column: h_t is (m, B) and zh_t (3m, B), so that one
product W h_{t-1} per step fills all three blocks and each block is a contiguous (m, B) array (NumPy
copies non-contiguous operands of element-wise calls through buffers, which costs 3-5 times the
arithmetic). As in models/lstm.py, sigmoid(z) = (1 + tanh(z/2)) / 2 lets one tanh cover both gates
once their rows of W, U and b are halved (exact in floating point), and backward every factor that
does not depend on the recurrence is computed for all t at once, so the loop over time only carries
dL/dh. `step` is the plain per-step reference the fast path is tested against.

In float32, with numba installed, the element-wise work of each step runs as one compiled kernel instead
(charrnn/jit.py): the same loop over time and the same buffers (plus XT, the inputs one block per step),
with NumPy's calls as the reference the kernels are tested against.
"""
from __future__ import annotations

import numpy as np

from .. import jit
from . import output
from .common import (StreamsWorkspace, check_id, check_ids, check_sizes, halved_inputs, normal_init,
                     sigmoid, swap_time_and_rows)

PARAM_NAMES = ("U", "W", "V", "b", "c")
LAYERS = 1    # recurrent layers: what bench counts the matrix products by
RECURRENT = ("W",)    # the matrices that multiply the state, (gates * m, m): what init="orthogonal" sets


def param_shapes(K: int, m: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter for K characters and m hidden units."""
    return {"U": (3 * m, K), "W": (3 * m, m), "V": (K, m), "b": (3 * m,), "c": (K,)}


def init_params(K: int, m: int, sigma: float = 0.01, seed: int | None = 0,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """Weights ~ N(0, sigma^2) from np.random.default_rng(seed), biases zero.

    Returns {"U": (3m, K), "W": (3m, m), "V": (K, m), "b": (3m,), "c": (K,)}.
    """
    check_sizes(K, m)
    params = normal_init(param_shapes(K, m), sigma, seed, dtype)
    return params


def state_size(m: int) -> int:
    """Entries of one stream's state: h (m,)."""
    return m


def step(params, h, x_id):
    """One step, the plain reference: feed character x_id with state h (m,).

    Returns (new h (m,), logits (K,)).
    """
    m = params["W"].shape[1]
    zx = params["U"][:, check_id(params["U"].shape[1], x_id)] + params["b"]
    zh = params["W"] @ h
    u = sigmoid(zx[:m] + zh[:m])
    r = sigmoid(zx[m:2 * m] + zh[m:2 * m])
    n = np.tanh(zx[2 * m:] + r * zh[2 * m:])
    h = (1 - u) * n + u * h
    return h, params["V"] @ h + params["c"]


class BatchWorkspace(StreamsWorkspace):
    """Buffers for B streams of T steps, allocated once per run. Per-step arrays are feature-major
    (one stream per column) and stacked over time, so each step's (m, B) blocks are contiguous:

    XZ (3m, T, B)    zx_t = U x_t + b (u, r blocks halved), a column of U per position
    ZH (T, 3m, B)    zh_t = W h_{t-1} (u, r blocks halved), then u_t, r_t and zh_n
    N  (T, m, B)     n_t;  H (T+1, m, B) h_t with H[0] = h_0
    HR ((T+1)*B, m)  h_t again, one row per position, t-major: what the output layer and dW take
    O  (T*B, K)      the logits, then p, then dL/do (models/output.py)
    DR (T*B, m)      dL/dh_t through the output layer, one row per position
    DH (T, m, B)     the same, then the full dL/dh_t
    F  (T, 5m, B)    backward: the factors [A_u, A_r, A_n r_t, A_n, u_t] that multiply dL/dh_t, then
                     (in place: contiguous writes, which the loop needs) their products with it,
                     [dL/dzh_u, dL/dzh_r, dL/dzh_n, dL/dzx_n, u_t dL/dh_t]
    DZ (4m, T, B)    backward: the first four blocks of F, in the (4m, T*B) layout whose row blocks
                     dW, dU and db take whole (dL/dzx_u = dL/dzh_u and dL/dzx_r = dL/dzh_r)
    Wh (3m, m), bh (3m, 1): W and b with the gate rows halved, Uh (3m, K) U + b likewise, per update
    XT (T, 3m, B)    zx_t again, one contiguous block per step, for the compiled kernels (None without them);
                     they write F's first four blocks directly, and leave the fifth unused
    """

    def __init__(self, B: int, T: int, K: int, m: int, dtype=np.float64):
        self.key = (B, T, K, m, np.dtype(dtype))
        self.XZ = np.empty((3 * m, T, B), dtype)
        self.ZH = np.empty((T, 3 * m, B), dtype)
        self.N = np.empty((T, m, B), dtype)
        self.H = np.empty((T + 1, m, B), dtype)
        self.HR = np.empty(((T + 1) * B, m), dtype)
        self.O = np.empty((T * B, K), dtype)
        self.DR = np.empty((T * B, m), dtype)
        self.DH = np.empty((T, m, B), dtype)
        self.F = np.empty((T, 5 * m, B), dtype)
        self.DZ = np.empty((4 * m, T, B), dtype)
        self.R = np.empty((m, B), dtype)            # scratch: W^T dL/dzh_t
        self.Wh = np.empty((3 * m, m), dtype)
        self.Uh = np.empty((3 * m, K), dtype)
        self.bh = np.empty((3 * m, 1), dtype)
        self.half = np.ones((3 * m, 1), dtype)
        self.half[:2 * m] = 0.5                     # 1/2 on the gates' rows, 1 on the candidate's
        self.eye = np.eye(K, dtype=dtype)           # eye[x] stacks the one-hot rows of x
        self.onehot = np.empty((T * B, K), dtype)
        self.rows = np.arange(T * B)
        self.keep = self.Hd = None                  # dropout on the output layer's input (output.dropout_buffers)
        # the fused kernels' zx_t, one contiguous (3m, B) block per step (None: NumPy's path, from XZ)
        self.XT = np.empty((T, 3 * m, B), dtype) if jit.enabled(dtype) else None
        ZH, XZ, N, H, F = self.ZH, self.XZ, self.N, self.H, self.F
        # the views each step works on, made once: (zh, the u and r blocks of zh and of zx, u, r, zh_n,
        # zx_n, n, h_{t-1}, h_t)
        self.forward_steps = [
            (ZH[t], ZH[t, :2 * m], XZ[:2 * m, t], ZH[t, :m], ZH[t, m:2 * m], ZH[t, 2 * m:], XZ[2 * m:, t],
             N[t], H[t], H[t + 1])
            for t in range(T)]
        # backward, from t = T-1 down to 0: (F_t as (5, m, B), dL/dh_t, dL/dzh_t (3m, B) and u_t dL/dh_t
        # (m, B) in F_t once it holds the products, dL/dh_{t-1} or None at the first step)
        self.backward_steps = [
            (F[t].reshape(5, m, B), self.DH[t], F[t, :3 * m], F[t, 4 * m:], self.DH[t - 1] if t else None)
            for t in range(T - 1, -1, -1)]


def workspace(B: int, T: int, K: int, m: int, dtype=np.float64) -> BatchWorkspace:
    """The buffers forward_batch and backward_batch need for B streams of T steps."""
    return BatchWorkspace(B, T, K, m, dtype)


def forward_batch(params, X, Y, H0, ws: BatchWorkspace):
    """Forward pass over B streams of T steps.

    X, Y: int arrays (B, T) of input and target ids; H0: (B, m) the states before the first step;
    ws: from workspace(B, T, K, m, dtype) with the params' dtype.
    Returns (loss summed over all B*T positions, cache for backward_batch and final_state); the cache
    lives in ws, so it is valid until the next forward pass in the same workspace.
    """
    V, c = params["V"], params["c"]
    B = X.shape[0]
    check_ids(V.shape[0], X=X, Y=Y)
    xs, ys = halved_inputs(params, X, ws), Y.T.ravel()     # (T, B) and (T*B,), positions ordered t-major
    ws.H[0] = H0.T
    recurrence(ws)
    loss = output.forward(V, c, ws.HR[B:], ys, ws.O, ws.rows, ws.keep, ws.Hd)
    return loss, (xs, ys, ws)


def recurrence(ws: BatchWorkspace) -> None:
    """The loop over time, forward, for inputs already in ws: ws.XZ (zx_t for every t), ws.Wh and ws.H[0]
    (h_0). Fills ZH, N, H and HR (h_t one row per position). Also the upper layer of models/gru2.py."""
    T, m, B = ws.N.shape
    H = ws.H
    Wh, tanh, mul = ws.Wh, np.tanh, np.multiply
    if ws.XT is not None:                # the fused kernels (charrnn/jit.py)
        for t, (zh, *_, h_prev, h) in enumerate(ws.forward_steps):
            np.dot(Wh, h_prev, zh)
            jit.gru_forward_step(ws.ZH, ws.XT, ws.N, H, t)
    else:
        for zh, zh_ur, zx_ur, u, r, zh_n, zx_n, n, h_prev, h in ws.forward_steps:
            np.dot(Wh, h_prev, zh)           # zh_t = W h_{t-1}, with the u, r blocks halved
            zh_ur += zx_ur
            tanh(zh_ur, zh_ur)
            zh_ur *= 0.5
            zh_ur += 0.5                     # zh_ur now holds u_t, r_t = sigmoid(zx + zh)
            mul(r, zh_n, n)                  # n_t = tanh(zx_n + r_t zh_n)
            n += zx_n
            tanh(n, n)
            np.subtract(h_prev, n, h)        # h_t = n_t + u_t (h_{t-1} - n_t)
            h *= u
            h += n
    np.copyto(ws.HR.reshape(T + 1, B, m), H.transpose(0, 2, 1))     # one row per position, for the layer above


def final_state(cache) -> np.ndarray:
    """h_T (B, m) after forward_batch: a fresh array."""
    return cache[2].H[-1].T.copy()


def backward_batch(params, cache, out=None):
    """Gradients of the summed loss over B streams, by backpropagation through time.

    cache: from forward_batch (its workspace is overwritten: call once per forward pass).
    out: optional dict of arrays shaped like params to write the gradients into.
    Returns (grads dict shaped like params, h_T (B, m), a fresh array).

    With dh = dL/dh_t:  dzx_u = dzh_u = dh (h_{t-1} - n_t) u_t (1 - u_t)          = dh A_u
                        dzx_n = dh (1 - u_t)(1 - n_t^2)                            = dh A_n
                        dzx_r = dzh_r = dzx_n zh_n r_t (1 - r_t)                   = dh A_r
                        dzh_n = dzx_n r_t
                        dL/dh_{t-1} = output's part + u_t dh + W^T dzh
    """
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    W, V = params["W"], params["V"]
    xs, ys, ws = cache
    T, m3, B = ws.ZH.shape
    m = m3 // 3
    output.backward(V, ws.HR[B:], ys, ws.O, ws.rows, ws.DR, out["V"], out["c"], ws.keep, ws.Hd)
    recurrence_backward(W, ws)
    input_gradients(ws, ws.DZ.reshape(4 * m, T * B), xs, out["U"], out["b"])
    np.dot(ws.DZ.reshape(4 * m, T * B)[:3 * m], ws.HR[:-B], out["W"])   # (3m, m): sum over positions of dzh_t h_{t-1}^T
    return out, ws.H[T].T.copy()


def input_gradients(ws: BatchWorkspace, dZ, xs, dU, db) -> None:
    """dU (3m, K) and db (3m,) from dZ (4m, T*B) = recurrence_backward's DZ, for character inputs xs (T, B):
    per input character the sum of its dzx (a product with the one-hot rows)."""
    m = dZ.shape[0] // 4
    T, B = xs.shape
    if ws.XT is not None:                            # one compiled pass (charrnn/jit.py)
        jit.input_gradients(dZ, xs.reshape(T * B), dU, db)
        return
    dzx_ur, dzx_n = dZ[:2 * m], dZ[3 * m:]            # dL/dzx_u = dL/dzh_u and dL/dzx_r = dL/dzh_r
    np.take(ws.eye, xs, axis=0, out=ws.onehot.reshape(T, B, -1), mode="clip")
    np.dot(dzx_ur, ws.onehot, dU[:2 * m])
    np.dot(dzx_n, ws.onehot, dU[2 * m:])
    np.add.reduce(dzx_ur, 1, out=db[:2 * m])
    np.add.reduce(dzx_n, 1, out=db[2 * m:])


def recurrence_backward(W, ws: BatchWorkspace) -> None:
    """Back through time, from ws.DR: the dL/dh_t that reach each h_t from above (the output layer, or the
    layer above in models/gru2.py), one row per position. Leaves in ws.DZ (4m, T, B) dzh_u, dzh_r, dzh_n and
    dzx_n for every position (dzx_u = dzh_u, dzx_r = dzh_r), and in ws.DH the full dL/dh_t."""
    T, m3, B = ws.ZH.shape
    m = m3 // 3
    H, N, ZH, F, DH, DZ = ws.H, ws.N, ws.ZH, ws.F, ws.DH, ws.DZ
    np.copyto(DH, ws.DR.reshape(T, B, m).transpose(0, 2, 1))    # (T, m, B): dL/dh_t from above
    if ws.XT is not None:                # the fused kernels (charrnn/jit.py)
        R, WT = ws.R, W.T
        for t in range(T - 1, -1, -1):
            jit.gru_backward_step(ZH, N, H, DH, R, F, t, t < T - 1)
            if t:
                np.dot(WT, F[t, :3 * m], R)
        swap_time_and_rows(F[:, :4 * m], DZ)
        return

    # the factors, for all t at once
    u, r, zh_n = ZH[:, :m], ZH[:, m:2 * m], ZH[:, 2 * m:]
    A_u, A_r, A_nr, A_n, Fu = (F[:, k * m:(k + 1) * m] for k in range(5))
    np.subtract(1.0, u, Fu)                          # (Fu as scratch: 1 - u_t)
    np.multiply(N, N, A_n)
    np.subtract(1.0, A_n, A_n)
    A_n *= Fu                                        # A_n = (1 - u)(1 - n^2)
    np.subtract(H[:-1], N, A_u)
    A_u *= u
    A_u *= Fu                                        # A_u = (h_{t-1} - n) u (1 - u)
    np.subtract(1.0, r, A_r)
    A_r *= r
    A_r *= zh_n
    A_r *= A_n                                       # A_r = A_n zh_n r (1 - r)
    np.multiply(A_n, r, A_nr)                        # A_n r
    np.copyto(Fu, u)                                 # u

    R, WT, mul = ws.R, W.T, np.multiply
    for f5, dh, dzh, u_dh, dh_prev in ws.backward_steps:
        mul(f5, dh, f5)                  # F_t now holds dh_t [A_u, A_r, A_n r, A_n, u]: dzh_u, dzh_r, dzh_n, dzx_n, u dh
        if dh_prev is not None:
            np.dot(WT, dzh, R)
            dh_prev += R                 # dh_prev now holds the full dL/dh_{t-1} = output's + W^T dzh + u dh
            dh_prev += u_dh

    swap_time_and_rows(F[:, :4 * m], DZ)            # DZ now holds dzh_u, dzh_r, dzh_n, dzx_n, one column per position
