"""Compiled kernels (numba, optional) for the float32 GRU's element-wise work and for Adam.

NumPy's fast path (models/gru.py) spends about a third of a float32 update outside the matrix products:
each step makes some ten element-wise calls on (m, B) blocks, each a pass over memory plus NumPy's cost
per call, and backward adds the factors for all t at once. Here one compiled loop does a step's gate
arithmetic in a single pass over its blocks:

    forward:   u, r = sigmoid(zx + zh) (halved rows: (1 + tanh) / 2),  n = tanh(zx_n + r zh_n),
               h = n + u (h_prev - n)
    backward:  dh += W^T dz_{t+1} (handed in as R),  the four dz blocks,  and u dh added to dL/dh_{t-1}

with the matrix products left to NumPy (BLAS) between the calls. The other kernels: the lookup of the
inputs' zx_t, laid out one contiguous (3m, B) block per step (read in XZ's (3m, T, B) layout, each step
touches 3m rows far apart, which costs the forward step about twice its arithmetic); dU and db as sums
per input character (instead of a product with the one-hot rows); and Adam in one pass over the flat
vectors, with the same roundings as optim.adam_step's NumPy calls, so the same bits.

Only float32 takes the gate kernels, because tanh here is a rational function, x P(x^2) / Q(x^2) on
[-9, 9] and +-1 beyond (coefficients fitted for this module), which the compiler can vectorise: it is
within 4e-7 of the true value, where NumPy's float32 tanh is within 1.4 units in the last place. float64,
and so the gradient checks, stay on NumPy.

numba is optional: without it, with the environment variable CHARRNN_JIT=0, or inside `numpy_only()` (each
read when a workspace is made and at each Adam step), `enabled` is False and everything runs NumPy's path, the reference the tests
hold these kernels to (tests/test_jit.py).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

try:
    import numba
except ImportError:                                  # the package works without it: NumPy's path
    numba = None

# tanh(x) ~ x P(x^2) / Q(x^2) for |x| <= CLAMP: P's and Q's coefficients, lowest power first
_P = (9.9999999338709922e-01, 1.3084011982033442e-01, 3.1039582810893748e-03, 1.1154328741725287e-05,
      -2.0225301405820335e-08, 5.2779807732456454e-11, -8.4887837573157098e-14)
_Q = (1.0, 4.6417339084686982e-01, 2.4495186726788507e-02, 2.5461481648849526e-04)
CLAMP = 9.0                                          # tanh(9) = 1 - 3e-8 rounds to 1 in float32


_switched_off = False                                 # inside numpy_only()


def enabled(dtype) -> bool:
    """Whether the kernels run for arrays of this dtype: numba is there, the dtype is float32, and neither
    CHARRNN_JIT=0 nor numpy_only() has switched them off."""
    return (numba is not None and not _switched_off and np.dtype(dtype) == np.float32
            and os.environ.get("CHARRNN_JIT", "1") != "0")


@contextlib.contextmanager
def numpy_only():
    """Within this block, workspaces made and Adam steps taken run NumPy's path (bench compares both)."""
    global _switched_off
    before, _switched_off = _switched_off, True
    try:
        yield
    finally:
        _switched_off = before


if numba is not None:
    _f = np.float32
    P0, P1, P2, P3, P4, P5, P6 = (_f(v) for v in _P)
    Q0, Q1, Q2, Q3 = (_f(v) for v in _Q)
    _CLAMP, _ONE = _f(CLAMP), _f(1.0)
    _opts = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})

    @numba.njit(inline="always", **_opts)
    def _tanh(x):
        x = min(max(x, -_CLAMP), _CLAMP)
        s = x * x
        p = (((((P6 * s + P5) * s + P4) * s + P3) * s + P2) * s + P1) * s + P0
        q = ((Q3 * s + Q2) * s + Q1) * s + Q0
        return min(max(x * p / q, -_ONE), _ONE)

    @numba.njit(**_opts)
    def tanh(x, out):
        """out = tanh(x) element-wise, for 1-D float32 arrays: the kernels' tanh, for the tests."""
        for i in range(x.shape[0]):
            out[i] = _tanh(x[i])

    @numba.njit(**_opts)
    def gather_inputs(Uh, xs, XT):
        """XT[t, :, b] = Uh[:, xs[t, b]]: the lower layer's zx_t = U x_t + b for every position, a column
        lookup. Uh (3m, K), xs (T, B) ids in 0..K-1 (checked before), XT (T, 3m, B)."""
        T, B = xs.shape
        for t in range(T):
            x = xs[t]
            for j in range(Uh.shape[0]):
                row, out = Uh[j], XT[t, j]
                for b in range(B):
                    out[b] = row[x[b]]

    @numba.njit(**_opts)
    def gru_forward_step(ZH, XT, N, H, t):
        """Step t of the GRU forward, after ZH[t] = W h_{t-1} (u, r rows halved); the arrays of
        gru.BatchWorkspace: ZH (T, 3m, B), XT (T, 3m, B) zx_t (u, r rows halved), N (T, m, B), H (T+1, m, B).
        Leaves u_t, r_t in ZH[t, :2m] (zh_n stays in ZH[t, 2m:]), n_t in N[t] and h_t in H[t+1]."""
        k = N.shape[1] * N.shape[2]                  # m B: each block of a step is contiguous, so one flat loop
        zh, zx = ZH[t].reshape(3 * k), XT[t].reshape(3 * k)
        n_t, h_prev, h_t = N[t].reshape(k), H[t].reshape(k), H[t + 1].reshape(k)
        half = _f(0.5)
        for j in range(k):
            u = _tanh(zh[j] + zx[j]) * half + half
            r = _tanh(zh[k + j] + zx[k + j]) * half + half
            n = _tanh(zx[2 * k + j] + r * zh[2 * k + j])
            zh[j] = u
            zh[k + j] = r
            n_t[j] = n
            h_t[j] = n + u * (h_prev[j] - n)

    @numba.njit(**_opts)
    def gru_backward_step(ZH, N, H, DH, R, F, t, add_r):
        """Step t of the GRU backward (from t = T-1 down). DH[t] holds dL/dh_t from above plus u_{t+1}
        dL/dh_{t+1}; R (m, B) W^T dz_{t+1}, added when add_r. Leaves the full dL/dh_t in DH[t], dzh_u, dzh_r,
        dzh_n, dzx_n in F[t, :4m] (F (T, 5m, B)) and adds u_t dL/dh_t to DH[t-1] when t > 0."""
        k = N.shape[1] * N.shape[2]
        zh, n_t, h_prev, dh_t, f = ZH[t].reshape(3 * k), N[t].reshape(k), H[t].reshape(k), DH[t].reshape(k), F[t].reshape(5 * k)
        r_t = R.reshape(k)
        if add_r:
            for j in range(k):
                dh_t[j] += r_t[j]
        for j in range(k):
            dh, u, r, n = dh_t[j], zh[j], zh[k + j], n_t[j]
            dzx_n = dh * (_ONE - u) * (_ONE - n * n)
            f[j] = dh * (h_prev[j] - n) * u * (_ONE - u)
            f[k + j] = dzx_n * zh[2 * k + j] * r * (_ONE - r)
            f[2 * k + j] = dzx_n * r
            f[3 * k + j] = dzx_n
        if t > 0:
            carry = DH[t - 1].reshape(k)
            for j in range(k):
                carry[j] += zh[j] * dh_t[j]

    @numba.njit(nogil=True, cache=True, error_model="numpy")     # no contraction: NumPy's roundings exactly
    def adam_step(g, M, S, work, clip, beta1, c1, beta2, c2, eps, scale):
        """optim.adam_step's arithmetic in one pass over the flat vectors (n,), float32, every operation
        rounded as NumPy's calls round it, so both give the same bits: g clipped to [-clip, clip] in place,
        S = beta2 S + c2 g^2, M = beta1 M + c1 g (c1 = 1 - beta1, c2 = 1 - beta2, as float32), and
        work = M / (sqrt(S) + eps) times scale, the bias-corrected rate, that product in float64."""
        for i in range(g.shape[0]):
            x = min(max(g[i], -clip), clip)
            g[i] = x
            s = S[i] * beta2 + (x * x) * c2
            m = M[i] * beta1 + x * c1
            S[i] = s
            M[i] = m
            work[i] = np.float32(np.float64(m / (np.sqrt(s) + eps)) * scale)

    @numba.njit(**_opts)
    def input_gradients(dZ, ids, dU, db):
        """The GRU's dU (3m, K) and db (3m,) from dZ (4m, T*B) (gru.recurrence_backward's DZ: dzh_u, dzh_r,
        dzh_n, dzx_n per position) for the character ids (T*B,) of those positions: column k of dU sums
        the dzx of the positions whose input is k, db sums them all (dzx = [dzh_u; dzh_r; dzx_n])."""
        m3 = dU.shape[0]
        m = m3 // 3
        for j in range(m3):
            row, acc = dZ[j if j < 2 * m else j + m], dU[j]
            acc[:] = 0
            total = 0.0                               # (float64: 2,048 and more terms)
            for p in range(ids.shape[0]):
                acc[ids[p]] += row[p]
                total += row[p]
            db[j] = total
