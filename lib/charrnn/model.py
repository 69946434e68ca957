"""The vanilla RNN: parameters, forward pass and backpropagation through time.

Notation follows the assignment. With K characters, m hidden units and a
sequence of tau steps (x_t, y_t are character ids):

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = - sum_t log p_t[y_t]      (summed over the sequence, not averaged)

Shapes: U (m, K), W (m, m), V (K, m), b (m,), c (K,); hidden states are
vectors of shape (m,), and per-step quantities are stacked as rows, so H has
shape (tau+1, m) with H[0] = h_0 and P has shape (tau, K).
"""
from __future__ import annotations

import numpy as np

PARAM_NAMES = ("U", "W", "V", "b", "c")


def param_shapes(K: int, m: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter for K characters and m hidden units."""
    return {"U": (m, K), "W": (m, m), "V": (K, m), "b": (m,), "c": (K,)}


def init_params(K: int, m: int, sigma: float = 0.01, seed: int | None = 0,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """Weights ~ N(0, sigma^2), biases zero, as in the assignment.

    Returns {"U": (m, K), "W": (m, m), "V": (K, m), "b": (m,), "c": (K,)}.
    """
    if K < 1 or m < 1:
        raise ValueError(f"K and m must be at least 1 (got K={K}, m={m})")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (got {sigma})")
    rng = np.random.default_rng(seed)
    shapes = param_shapes(K, m)
    params = {}
    for name in PARAM_NAMES:
        if name in ("b", "c"):
            params[name] = np.zeros(shapes[name], dtype=dtype)
        else:
            params[name] = (sigma * rng.standard_normal(shapes[name])).astype(dtype)
    return params


def hidden_size(params) -> tuple[int, int]:
    """(K, m) of a parameter dict."""
    m, K = params["U"].shape
    return K, m


def forward(params, x, y, h0):
    """Forward pass over one sequence.

    x, y: int arrays (tau,) of input and target ids; h0: (m,).
    Returns (loss, cache) where cache holds what backward needs.
    """
    U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
    tau, m = len(x), W.shape[0]
    A = U.T[x] + b                       # (tau, m): U x_t + b, a column lookup per step
    H = np.empty((tau + 1, m), dtype=W.dtype)
    H[0] = h0
    WT, Hs, As = W.T, list(H), list(A)   # row views made once: indexing inside the loop costs
    for t in range(tau):                 # the recurrence: the only loop over time
        np.tanh(As[t] + np.dot(Hs[t], WT), out=Hs[t + 1])   # h_t = tanh(W h_{t-1} + U x_t + b)
    O = np.dot(H[1:], V.T)               # (tau, K): o_t = V h_t + c
    O += c
    O -= O.max(axis=1, keepdims=True)    # stable softmax
    P = np.exp(O)
    Z = P.sum(axis=1)                    # (tau,)
    P /= Z[:, None]                      # (tau, K): p_t
    loss = float(np.log(Z).sum() - O[np.arange(tau), y].sum())   # - sum_t log p_t[y_t]
    return loss, (x, y, H, P)


def backward(params, cache, out=None):
    """Gradients of the summed loss, by backpropagation through time.

    out: optional dict of arrays shaped like params to write the gradients into.
    Returns ({"U", "W", "V", "b", "c"}: arrays shaped like params, h_tau (m,)).
    """
    W, V = params["W"], params["V"]
    x, y, H, P = cache
    tau = len(x)
    if out is None:
        out = {k: np.empty_like(v) for k, v in params.items()}
    dO = P                               # (tau, K): dL/do_t = p_t - onehot(y_t), reusing P's memory
    dO[np.arange(tau), y] -= 1.0
    dH = dO @ V                          # (tau, m): the output layer's part of dL/dh_t
    D = 1.0 - H[1:] ** 2                 # (tau, m): tanh'(a_t)
    dA = np.empty_like(D)                # (tau, m): dL/da_t
    dAs, dHs, Ds = list(dA), list(dH), list(D)
    np.multiply(dHs[-1], Ds[-1], out=dAs[-1])
    for t in range(tau - 2, -1, -1):     # back through time: the only loop
        # dL/da_t = (dL/dh_t from o_t  +  W^T dL/da_{t+1}) * tanh'(a_t)
        np.multiply(dHs[t] + np.dot(dAs[t + 1], W), Ds[t], out=dAs[t])
    X = np.zeros((tau, P.shape[1]), dtype=W.dtype)   # one-hot rows of the inputs, (tau, K)
    X[np.arange(tau), x] = 1.0
    np.matmul(dA.T, X, out=out["U"])     # (m, K): dL/dU[:, k] = sum over t with x_t = k of dA[t]
    np.matmul(dA.T, H[:-1], out=out["W"])   # (m, m): sum_t dA_t h_{t-1}^T
    np.matmul(dO.T, H[1:], out=out["V"])    # (K, m): sum_t dO_t h_t^T
    dA.sum(axis=0, out=out["b"])            # (m,)
    dO.sum(axis=0, out=out["c"])            # (K,)
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


def loss_only(params, x_ids, y_ids, h0) -> tuple[float, np.ndarray]:
    """Loss of one sequence and the last hidden state, without gradients."""
    loss, (_, _, H, _) = forward(params, x_ids, y_ids, h0)
    return loss, H[-1].copy()


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


def mean_loss_per_char(params, ids, h0=None, chunk: int = 4096) -> float:
    """Mean -log p of every next character of `ids`, carrying h across chunks.

    ids: int array (n,), n >= 2. Returns nats per character.
    """
    K, m = hidden_size(params)
    h = np.zeros(m, dtype=params["W"].dtype) if h0 is None else h0
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, chunk):
        x = ids[start:start + chunk]
        y = ids[start + 1:start + chunk + 1]
        x = x[:len(y)]
        loss, h = loss_only(params, x, y, h)
        total += loss
        count += len(y)
    return total / count
