"""What the cells share besides the output layer: initialisation, the plain sigmoid and softmax of the
per-step references, and the gated cells' fast-path helpers."""
from __future__ import annotations

import numpy as np

from .. import jit


def normal_init(shapes: dict, sigma: float, seed, dtype) -> dict:
    """{name: array}: weights ~ N(0, sigma^2) drawn in the order of shapes from np.random.default_rng(seed),
    the biases (b, b2, c: every 1-D parameter) zero. shapes: {name: shape}, the cell's param_shapes(K, m)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (got {sigma})")
    rng = np.random.default_rng(seed)
    return {name: np.zeros(shape, dtype=dtype) if len(shape) == 1 else
            (sigma * rng.standard_normal(shape)).astype(dtype) for name, shape in shapes.items()}


def orthogonal_blocks(params: dict, names, seed, dtype) -> dict:
    """params with each (m, m) block of the matrices named (each (g*m, m): one block per gate) replaced by a
    random orthogonal matrix, in place; returns params. The blocks are drawn from np.random.default_rng([seed, 1])
    (so the other weights stay those of normal_init under the same seed): Q of the QR factorisation of an
    (m, m) standard normal matrix, its columns' signs set by R's diagonal so that Q is uniform over the
    orthogonal matrices. Every singular value of a block is then 1, where those of a N(0, sigma^2) block
    spread from 0 to about 2 sigma sqrt(m)."""
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    for name in names:
        W = params[name]
        m = W.shape[1]
        for g in range(W.shape[0] // m):
            q, r = np.linalg.qr(rng.standard_normal((m, m)))
            W[g * m:(g + 1) * m] = (q * np.sign(np.diag(r))).astype(dtype)
    return params


def check_sizes(K: int, m: int) -> None:
    if K < 1 or m < 1:
        raise ValueError(f"K and m must be at least 1 (got K={K}, m={m})")


def check_ids(K: int, **ids) -> None:
    """Raise IndexError when an id array (given by name, e.g. X=..., Y=...) holds an id outside 0..K-1.
    NumPy would read a negative id from the end of an axis without a word, and the gated cells' clipped
    lookup would read any id as the nearest valid one; an unsigned array (a corpus's ids) needs only its
    maximum checked."""
    for name, a in ids.items():
        if a.size and (a.max() >= K or (a.dtype.kind != "u" and a.min() < 0)):
            raise IndexError(f"{name} holds ids outside 0..{K - 1}")


def check_id(K: int, x_id) -> int:
    """x_id as an int, or IndexError when it is outside 0..K-1 (one character of a per-step reference)."""
    i = int(x_id)
    if not 0 <= i < K:
        raise IndexError(f"character id {i} is outside 0..{K - 1}")
    return i


def sigmoid(z):
    """1 / (1 + exp(-z)), element-wise: the gates of the per-step references."""
    with np.errstate(over="ignore"):                # exp(-z) = inf gives the right limit, 0
        return 1.0 / (1.0 + np.exp(-z))


def softmax(o):
    """exp(o) / sum(exp(o)) of logits o, (K,) or a column (K, 1), the maximum subtracted first so that no
    exp overflows. np.max and np.sum, as the classic loop was first written (outside the package): the
    methods o.max() and e.sum() run the bench's baseline 4-13% faster, which would change what it measures."""
    e = np.exp(o - np.max(o))
    return e / np.sum(e)


def halved_inputs(params, X, ws):
    """The gated cells' forward preamble: check ws, fill ws.Uh, ws.bh, ws.Wh (U + b and W with the sigmoid
    rows halved, ws.half holding 1/2 there and 1 elsewhere: sigmoid(z) = (1 + tanh(z/2)) / 2) and ws.XZ
    (G m, T, B) with U x_t + b for every position, a column lookup (the ids checked by check_ids first).
    Returns xs = X.T (T, B)."""
    U, W, b = params["U"], params["W"], params["b"]
    B, T = X.shape
    if not ws.fits(B, T, params):
        raise ValueError(f"the workspace {ws.key} does not fit B={B}, T={T} and these parameters")
    xs = X.T                                         # (T, B): positions ordered t-major
    np.multiply(U, ws.half, ws.Uh)
    np.multiply(b[:, None], ws.half, ws.bh)
    ws.Uh += ws.bh                                   # (G m, K): column k is U x + b for x = k, sigmoid rows halved
    np.multiply(W, ws.half, ws.Wh)                   # (G m, m): W, sigmoid rows halved
    if ws.XT is not None:                            # (T, G m, B), for the fused kernels (charrnn/jit.py)
        jit.gather_inputs(ws.Uh, xs, ws.XT)
    else:
        np.take(ws.Uh, xs, axis=1, out=ws.XZ, mode="clip")    # (G m, T, B): U x_t + b for every position
    return xs


def swap_time_and_rows(src, dst) -> None:
    """Copy src (T, R, B) into dst (R, T, B). Each row's B entries are contiguous in both, so they
    move as one item (a void dtype of B entries): a transpose of T x R items, twice as fast as
    NumPy's copy of a transposed float view."""
    item = np.dtype((np.void, src.shape[2] * src.itemsize))
    np.copyto(dst.view(item)[..., 0], src.view(item)[..., 0].transpose(1, 0))


class StreamsWorkspace:
    """Base of the B-stream cells' workspaces: the buffers of one (B, T, K, m, dtype), which `fits` checks
    before a forward pass reuses them. A subclass sets self.key = (B, T, K, m, np.dtype(dtype))."""
    key: tuple
    XT = None       # the GRU's inputs laid out for the fused kernels (charrnn/jit.py), when they run

    def fits(self, B: int, T: int, params) -> bool:
        K, m = params["V"].shape
        return self.key == (B, T, K, m, params["V"].dtype)
