"""The vanilla RNN (Elman, "Finding structure in time", 1990): the assignment's cell.

Notation follows the assignment. With K characters, m hidden units and a
sequence of tau steps (x_t, y_t are character ids):

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = - sum_t log p_t[y_t]      (summed over the sequence, not averaged)

Shapes: U (m, K), W (m, m), V (K, m), b (m,), c (K,). The state is h, (m,)
for one stream and (B, m) for B streams. Per-step quantities are stacked as
rows, so H has shape (tau+1, m) with H[0] = h_0 and P has shape (tau, K).

Two implementations of the same maths: `forward`/`backward` take one
sequence (the assignment's, and the trainer's path at B = 1, kept bit for bit
since the first version), `forward_batch`/`backward_batch` take B streams at
once (the cell interface of charrnn.models). `step` is the plain per-step
reference both are tested against, and what the sampler runs.
"""
from __future__ import annotations

import numpy as np

from . import output
from .common import StreamsWorkspace, check_id, check_ids, check_sizes, normal_init

PARAM_NAMES = ("U", "W", "V", "b", "c")
LAYERS = 1    # recurrent layers: what bench counts the matrix products by
RECURRENT = ("W",)    # the matrices that multiply the state, (gates * m, m): what init="orthogonal" sets


def param_shapes(K: int, m: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter for K characters and m hidden units."""
    return {"U": (m, K), "W": (m, m), "V": (K, m), "b": (m,), "c": (K,)}


def init_params(K: int, m: int, sigma: float = 0.01, seed: int | None = 0,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """Weights ~ N(0, sigma^2), biases zero, as in the assignment.

    Returns {"U": (m, K), "W": (m, m), "V": (K, m), "b": (m,), "c": (K,)}.
    """
    check_sizes(K, m)
    return normal_init(param_shapes(K, m), sigma, seed, dtype)


def hidden_size(params) -> tuple[int, int]:
    """(K, m) of a parameter dict."""
    m, K = params["U"].shape
    return K, m


class Workspace(StreamsWorkspace):
    """The arrays one sequence of tau steps needs, allocated once and reused: the workspace of B = 1, whose
    forward and backward are the assignment's code (forward_batch and backward_batch pick them by this class).

    The trainer keeps one Workspace for the whole run, so an update allocates
    no arrays and builds no row views: at m = 100 each NumPy call costs about
    a microsecond, and the two loops over time would otherwise spend as much
    making views as computing. Buffers: A (tau, m) holds U x_t + b; H (tau+1, m)
    the hidden states with H[0] = h_0; O (tau, K) the logits, then p_t, then
    dL/do_t; dA (tau, m) dL/da_t; D (tau, m) tanh'(a_t) = 1 - h_t^2.
    """

    def __init__(self, tau: int, K: int, m: int, dtype=np.float64):
        self.key = (1, tau, K, m, np.dtype(dtype))
        self.A = np.empty((tau, m), dtype)
        self.H = np.empty((tau + 1, m), dtype)
        self.O = np.empty((tau, K), dtype)
        self.dA = np.empty((tau, m), dtype)
        self.D = np.empty((tau, m), dtype)
        self.eye = np.eye(K, dtype=dtype)           # eye[x] stacks the one-hot rows of x
        self.rows = np.arange(tau)
        self.steps = list(zip(self.A, self.H[:-1], self.H[1:]))   # (a_t, h_{t-1}, h_t) views, t = 1..tau
        self._back = None

    @property
    def back_steps(self):
        """(dL/da_t, dL/da_{t+1}, tanh'(a_t)) views for every step but the last, from the end back
        to the first; made on first use (a forward-only workspace never needs them)."""
        if self._back is None:
            self._back = list(zip(self.dA[-2::-1], self.dA[:0:-1], self.D[-2::-1]))
        return self._back

    @classmethod
    def for_params(cls, params, tau: int) -> "Workspace":
        """A workspace for sequences of tau steps through these parameters."""
        return cls(tau, *hidden_size(params), params["W"].dtype)


def forward(params, x, y, h0, ws: Workspace | None = None):
    """Forward pass over one sequence.

    x, y: int arrays (tau,) of input and target ids; h0: (m,).
    ws: a Workspace to compute in (a fresh one when None or when it does not fit).
    Returns (loss, cache) where cache holds what backward needs; it lives in ws,
    so it is valid until the next forward pass in the same workspace.
    """
    U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
    tau = len(x)
    if ws is None or not ws.fits(1, tau, params):
        ws = Workspace.for_params(params, tau)
    A, H, O = ws.A, ws.H, ws.O
    np.add(U.T[x], b, A)                 # (tau, m): U x_t + b, a column lookup per step
    H[0] = h0
    Wh, tanh = W.dot, np.tanh            # W.dot skips np.dot's dispatch, a third of this small product's cost
    for a, h, h_next in ws.steps:        # the recurrence: the only loop over time
        Wh(h, h_next)                    # h_t = tanh(W h_{t-1} + U x_t + b), computed in place
        h_next += a
        tanh(h_next, h_next)
    H[1:].dot(V.T, O)                    # (tau, K): o_t = V h_t + c
    O += c
    O -= np.maximum.reduce(O, 1, keepdims=True)   # stable softmax
    picked = np.add.reduce(O[ws.rows, y])         # sum_t o_t[y_t]
    np.exp(O, O)
    Z = np.add.reduce(O, 1)              # (tau,)
    O /= Z[:, None]                      # (tau, K): p_t
    loss = float(np.add.reduce(np.log(Z)) - picked)   # - sum_t log p_t[y_t]
    return loss, (x, y, ws)


def backward(params, cache, out=None):
    """Gradients of the summed loss, by backpropagation through time.

    cache: from forward (its workspace is reused: O turns into dL/do).
    out: optional dict of arrays shaped like params to write the gradients into.
    Returns ({"U", "W", "V", "b", "c"}: arrays shaped like params, h_tau (m,)).
    """
    W, V = params["W"], params["V"]
    x, y, ws = cache
    H, dO, dA, D = ws.H, ws.O, ws.dA, ws.D
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    dO[ws.rows, y] -= 1.0                # (tau, K): dL/do_t = p_t - onehot(y_t), in P's memory
    dO.dot(V, dA)                        # (tau, m): the output layer's part of dL/dh_t, to become dL/da_t
    H1 = H[1:]
    np.multiply(H1, H1, D)
    np.subtract(1.0, D, D)               # (tau, m): tanh'(a_t) = 1 - h_t^2
    dA[-1] *= D[-1]
    for da, da_next, d in ws.back_steps:   # back through time: the only loop
        da += da_next.dot(W)             # dL/da_t = (dL/dh_t from o_t  +  W^T dL/da_{t+1}) * tanh'(a_t)
        da *= d
    dA.T.dot(ws.eye[x], out["U"])        # (m, K): dL/dU[:, k] = sum over t with x_t = k of dA[t]
    dA.T.dot(H[:-1], out["W"])           # (m, m): sum_t dA_t h_{t-1}^T
    dO.T.dot(H1, out["V"])               # (K, m): sum_t dO_t h_t^T
    np.add.reduce(dA, 0, out=out["b"])   # (m,)
    np.add.reduce(dO, 0, out=out["c"])   # (K,)
    return out, H[-1].copy()


def loss_and_grads(params, x_ids, y_ids, h0):
    """Loss of one sequence, its (unclipped) gradients, and the last hidden state.

    x_ids, y_ids: int arrays (tau,); h0: (m,).
    Returns (loss: float, grads: dict shaped like params, h_last: (m,)).
    """
    check_sequence(params, x_ids, y_ids, h0)
    loss, cache = forward(params, x_ids, y_ids, h0)
    grads, h_last = backward(params, cache)
    return loss, grads, h_last


def loss_only(params, x_ids, y_ids, h0, ws: Workspace | None = None) -> tuple[float, np.ndarray]:
    """Loss of one sequence and the last hidden state, without gradients."""
    loss, (_, _, ws) = forward(params, x_ids, y_ids, h0, ws)
    return loss, ws.H[-1].copy()


def check_sequence(params, x_ids, y_ids, h0) -> None:
    """Raise ValueError when a sequence does not fit the parameters."""
    K, m = hidden_size(params)
    if len(x_ids) != len(y_ids) or len(x_ids) < 1:
        raise ValueError(f"x and y must have the same positive length (got {len(x_ids)} and {len(y_ids)})")
    if np.shape(h0) != (m,):
        raise ValueError(f"h0 must have shape ({m},), got {np.shape(h0)}")
    for name, ids in (("x", x_ids), ("y", y_ids)):
        ids = np.asarray(ids)
        if ids.min() < 0 or ids.max() >= K:
            raise ValueError(f"{name} holds ids outside 0..{K - 1}")


# --------------------------------------------------------------------------- the cell interface

def state_size(m: int) -> int:
    """Entries of one stream's state: h (m,)."""
    return m


def step(params, h, x_id):
    """One step, the plain reference: feed character x_id with state h (m,).

    Returns (new h (m,), logits o (K,)).
    """
    h = np.tanh(params["W"] @ h + params["U"][:, check_id(params["U"].shape[1], x_id)] + params["b"])
    return h, params["V"] @ h + params["c"]


class BatchWorkspace(StreamsWorkspace):
    """Buffers for B streams of T steps, time-major so each step's rows are contiguous:
    A (T, B, m) holds U x_t + b; H (T+1, B, m) the states with H[0] = h_0; O (T*B, K) the
    logits, then p, then dL/do; dA (T, B, m) dL/da_t; D (T, B, m) tanh'(a_t)."""

    def __init__(self, B: int, T: int, K: int, m: int, dtype=np.float64):
        self.key = (B, T, K, m, np.dtype(dtype))
        self.A = np.empty((T, B, m), dtype)
        self.H = np.empty((T + 1, B, m), dtype)
        self.O = np.empty((T * B, K), dtype)
        self.dA = np.empty((T, B, m), dtype)
        self.D = np.empty((T, B, m), dtype)
        self.eye = np.eye(K, dtype=dtype)
        self.rows = np.arange(T * B)
        self.keep = self.Hd = None                  # dropout (output.dropout_buffers)


def workspace(B: int, T: int, K: int, m: int, dtype=np.float64):
    """The buffers forward_batch needs: at B = 1 the single-sequence Workspace (the assignment's path)."""
    return Workspace(T, K, m, dtype) if B == 1 else BatchWorkspace(B, T, K, m, dtype)


def forward_batch(params, X, Y, H0, ws):
    """Forward pass over B streams of T steps.

    X, Y: int arrays (B, T) of input and target ids; H0: (B, m); ws: from workspace(B, T, K, m).
    Returns (loss summed over all B*T positions, cache for backward_batch).
    """
    check_ids(params["V"].shape[0], X=X, Y=Y)
    if isinstance(ws, Workspace):                   # one stream: the assignment's code, bit for bit
        return forward(params, X[0], Y[0], H0[0], ws)
    U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
    T = X.shape[1]
    xs, ys = X.T, Y.T.ravel()                        # (T, B) and (T*B,), rows ordered t-major like O
    A, H = ws.A, ws.H
    np.add(U.T[xs], b, A)                            # (T, B, m): U x_t + b, a column lookup per position
    H[0] = H0
    WT, tanh = W.T, np.tanh
    for t in range(T):                               # the recurrence: h_t = tanh(W h_{t-1} + U x_t + b)
        np.dot(H[t], WT, H[t + 1])
        H[t + 1] += A[t]
        tanh(H[t + 1], H[t + 1])
    m = H.shape[2]
    loss = output.forward(V, c, H[1:].reshape(T * len(H0), m), ys, ws.O, ws.rows, ws.keep, ws.Hd)
    return loss, (xs, ys, ws)


def final_state(cache) -> np.ndarray:
    """h_T (B, m) after forward_batch: a copy."""
    ws = cache[2]
    return ws.H[-1][None].copy() if isinstance(ws, Workspace) else ws.H[-1].copy()


def backward_batch(params, cache, out=None):
    """Gradients of the summed loss over B streams, by backpropagation through time.

    cache: from forward_batch. out: optional dict of arrays shaped like params to write into.
    Returns (grads dict shaped like params, h_T (B, m)).
    """
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    xs, ys, ws = cache
    if isinstance(ws, Workspace):
        grads, h = backward(params, cache, out)
        return grads, h[None]
    W, V = params["W"], params["V"]
    H, dA, D = ws.H, ws.dA, ws.D
    T, B, m = dA.shape
    H1 = H[1:]
    output.backward(V, H1.reshape(T * B, m), ys, ws.O, ws.rows, dA.reshape(T * B, m), out["V"], out["c"], ws.keep,
                    ws.Hd)
    np.multiply(H1, H1, D)
    np.subtract(1.0, D, D)                           # (T, B, m): tanh'(a_t) = 1 - h_t^2
    dA[-1] *= D[-1]
    for t in range(T - 2, -1, -1):                   # dL/da_t = (output part + W^T dL/da_{t+1}) * tanh'(a_t)
        dA[t] += dA[t + 1].dot(W)
        dA[t] *= D[t]
    dA2 = dA.reshape(T * B, m)
    np.dot(dA2.T, ws.eye[xs.ravel()], out["U"])      # (m, K): per input character, the sum of its dA rows
    np.dot(dA2.T, H[:-1].reshape(T * B, m), out["W"])   # (m, m): sum over positions of dA_t h_{t-1}^T
    np.add.reduce(dA2, 0, out=out["b"])
    return out, H[T].copy()
