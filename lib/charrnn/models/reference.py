"""The plain per-step reference of every cell, and the classic training loop built on the vanilla RNN's.

For each cell (rnn, gru, lstm, gru2) a forward pass over one sequence and its backward pass through
time, one time step per turn of a loop, written from the equations in the cell module's docstring and
in their order. Nothing is batched, stacked over time, halved or computed in place, so the fast paths
(forward_batch/backward_batch) are tested against code that shares none of their tricks. As in the
assignment (and min-char-rnn), vectors are columns: x_t is a one-hot column (K, 1) and U x_t a
product (the fast paths look the column up), an outer product is np.dot(a, b.T).

Shapes, for one stream of T steps with K characters and m hidden units: x_ids, y_ids (T,) int; a
state (S,) at the interface, S = cell.state_size(m): h for rnn and gru, [h | c] for lstm, [h2 | h1]
for gru2; inside, every vector is a column (n, 1), the biases b, b2, c too, and h = s[:m] is what the
output layer reads. Everything is computed in float64.

Each cell is two functions over one step, p the params with column biases:
    <cell>_step(p, s, x) -> (s_t, cache)                 x the one-hot x_t (K, 1), s the state s_{t-1} (S, 1)
    <cell>_step_backward(p, dh, ds, cache, grads) -> ds_{t-1}
                                                         dh (m, 1): dL/dh_t from the output layer at t,
                                                         ds (S, 1): dL/ds_t from step t+1; adds the
                                                         step's terms to grads
and `forward`/`backward` run any of them under the shared output layer
    o_t = V h_t + c,   p_t = softmax(o_t),   loss = - sum_t log p_t[y_t].

`classic_train` is the assignment's training loop (AdaGrad, element-wise clipping, min-char-rnn's
smooth loss) on the vanilla RNN's reference: the baseline `python -m charrnn bench` measures against.
"""
from __future__ import annotations

import numpy as np

from . import gru, gru2, lstm, rnn
from .common import check_ids, sigmoid, softmax


# --------------------------------------------------------------------------- the vanilla RNN (models/rnn.py)

def rnn_step(p, h_prev, x):
    """a_t = W h_{t-1} + U x_t + b, h_t = tanh(a_t). h_prev (m, 1), x (K, 1). Returns (h_t (m, 1), cache)."""
    h = np.tanh(np.dot(p["W"], h_prev) + np.dot(p["U"], x) + p["b"])
    return h, (x, h_prev, h)


def rnn_step_backward(p, dh, ds, cache, grads):
    """dh, ds (m, 1): dL/dh_t from the output layer and from step t+1. Returns dL/dh_{t-1} (m, 1)."""
    x, h_prev, h = cache
    da = (1.0 - h * h) * (dh + ds)                   # dL/da_t, through tanh
    grads["U"] += np.dot(da, x.T)
    grads["W"] += np.dot(da, h_prev.T)
    grads["b"] += da
    return np.dot(p["W"].T, da)


# --------------------------------------------------------------------------- the GRU (models/gru.py)

def gru_layer(zx, W, h_prev):
    """One GRU step from its input's part zx (3m, 1) = [zx_u; zx_r; zx_n], with W (3m, m) and h_{t-1} (m, 1).

    Returns (h_t (m, 1), cache). The reset gate multiplies W_n h_{t-1}, after the product.
    """
    m = h_prev.shape[0]
    zh = np.dot(W, h_prev)                           # (3m, 1): zh_u, zh_r, zh_n
    u = sigmoid(zx[:m] + zh[:m])                     # the update gate
    r = sigmoid(zx[m:2 * m] + zh[m:2 * m])           # the reset gate
    n = np.tanh(zx[2 * m:] + r * zh[2 * m:])         # the candidate
    h = (1.0 - u) * n + u * h_prev                   # the interpolation
    return h, (h_prev, zh, u, r, n)


def gru_layer_backward(W, dh, cache, dW):
    """dh (m, 1): the whole dL/dh_t. Adds dL/dW to dW (3m, m); returns (dL/dzx (3m, 1), dL/dh_{t-1} (m, 1))."""
    h_prev, zh, u, r, n = cache
    m = h_prev.shape[0]
    dn = dh * (1.0 - u)
    du = dh * (h_prev - n)
    dz_n = dn * (1.0 - n * n)                        # dL/d(zx_n + r zh_n), through tanh
    dr = dz_n * zh[2 * m:]
    dz_u = du * u * (1.0 - u)                        # = dL/dzx_u = dL/dzh_u
    dz_r = dr * r * (1.0 - r)                        # = dL/dzx_r = dL/dzh_r
    dzx = np.concatenate([dz_u, dz_r, dz_n])
    dzh = np.concatenate([dz_u, dz_r, dz_n * r])
    dW += np.dot(dzh, h_prev.T)
    return dzx, u * dh + np.dot(W.T, dzh)


def gru_step(p, h_prev, x):
    """h_t = GRU(U x_t + b, W h_{t-1}). h_prev (m, 1), x (K, 1). Returns (h_t (m, 1), cache)."""
    h, layer = gru_layer(np.dot(p["U"], x) + p["b"], p["W"], h_prev)
    return h, (x, layer)


def gru_step_backward(p, dh, ds, cache, grads):
    """dh, ds (m, 1): dL/dh_t from the output layer and from step t+1. Returns dL/dh_{t-1} (m, 1)."""
    x, layer = cache
    dzx, dh_prev = gru_layer_backward(p["W"], dh + ds, layer, grads["W"])
    grads["U"] += np.dot(dzx, x.T)
    grads["b"] += dzx
    return dh_prev


# --------------------------------------------------------------------------- two GRU layers (models/gru2.py)

def gru2_step(p, s, x):
    """h1_t = GRU(U x_t + b, W h1_{t-1}), h2_t = GRU(U2 h1_t + b2, W2 h2_{t-1}).
    s = [h2; h1] (2m, 1), x (K, 1). Returns ([h2_t; h1_t] (2m, 1), cache)."""
    m = s.shape[0] // 2
    h2, h1 = s[:m], s[m:]
    h1, low = gru_layer(np.dot(p["U"], x) + p["b"], p["W"], h1)
    h2, up = gru_layer(np.dot(p["U2"], h1) + p["b2"], p["W2"], h2)
    return np.concatenate([h2, h1]), (x, h1, low, up)


def gru2_step_backward(p, dh, ds, cache, grads):
    """dh (m, 1): dL/dh2_t from the output layer; ds = [dh2; dh1] (2m, 1) from step t+1.
    Returns [dL/dh2_{t-1}; dL/dh1_{t-1}] (2m, 1)."""
    x, h1, low, up = cache
    m = h1.shape[0]
    dzx2, dh2_prev = gru_layer_backward(p["W2"], dh + ds[:m], up, grads["W2"])
    grads["U2"] += np.dot(dzx2, h1.T)
    grads["b2"] += dzx2
    dh1 = ds[m:] + np.dot(p["U2"].T, dzx2)           # dL/dh1_t: from step t+1 and through the upper layer
    dzx1, dh1_prev = gru_layer_backward(p["W"], dh1, low, grads["W"])
    grads["U"] += np.dot(dzx1, x.T)
    grads["b"] += dzx1
    return np.concatenate([dh2_prev, dh1_prev])


# --------------------------------------------------------------------------- the LSTM (models/lstm.py)

def lstm_step(p, s, x):
    """z_t = W h_{t-1} + U x_t + b (blocks i, f, o, g), c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    s = [h; c] (2m, 1), x (K, 1). Returns ([h_t; c_t] (2m, 1), cache)."""
    m = s.shape[0] // 2
    h_prev, c_prev = s[:m], s[m:]
    z = np.dot(p["W"], h_prev) + np.dot(p["U"], x) + p["b"]   # (4m, 1)
    i, f, o = sigmoid(z[:m]), sigmoid(z[m:2 * m]), sigmoid(z[2 * m:3 * m])
    g = np.tanh(z[3 * m:])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return np.concatenate([h, c]), (x, h_prev, c_prev, i, f, o, g, tc)


def lstm_step_backward(p, dh, ds, cache, grads):
    """dh (m, 1): dL/dh_t from the output layer; ds = [dh; dc] (2m, 1) from step t+1.
    Returns [dL/dh_{t-1}; dL/dc_{t-1}] (2m, 1)."""
    x, h_prev, c_prev, i, f, o, g, tc = cache
    m = h_prev.shape[0]
    dh = dh + ds[:m]                                 # the whole dL/dh_t
    dc = ds[m:] + dh * o * (1.0 - tc * tc)           # the whole dL/dc_t: from c_{t+1} and through h_t
    dz = np.concatenate([dc * g * i * (1.0 - i),     # dz_i
                         dc * c_prev * f * (1.0 - f),   # dz_f
                         dh * tc * o * (1.0 - o),    # dz_o
                         dc * i * (1.0 - g * g)])    # dz_g
    grads["W"] += np.dot(dz, h_prev.T)
    grads["U"] += np.dot(dz, x.T)
    grads["b"] += dz
    return np.concatenate([np.dot(p["W"].T, dz), f * dc])


# --------------------------------------------------------------------------- any cell: one sequence

STEPS = {"rnn": (rnn, rnn_step, rnn_step_backward), "gru": (gru, gru_step, gru_step_backward),
         "lstm": (lstm, lstm_step, lstm_step_backward), "gru2": (gru2, gru2_step, gru2_step_backward)}


def _steps(cell: str):
    try:
        return STEPS[cell]
    except (KeyError, TypeError):
        raise ValueError(f"cell must be one of {', '.join(STEPS)}, got {cell!r}") from None


def forward(cell: str, params, x_ids, y_ids, state0):
    """The summed loss of one sequence, step by step.

    cell: "rnn", "gru", "lstm" or "gru2"; params: that cell's dict; x_ids, y_ids: int (T,), T >= 1;
    state0: (S,) the state before the first step.
    Returns (loss, s_T (S,), cache for backward).
    """
    module, step, _ = _steps(cell)
    p = {k: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for k, v in params.items()}   # biases as columns
    V, c = p["V"], p["c"]
    K, m = V.shape
    S = module.state_size(m)
    if np.shape(state0) != (S,):
        raise ValueError(f"state0 must have shape ({S},), got {np.shape(state0)}")
    if len(x_ids) != len(y_ids) or len(x_ids) < 1:
        raise ValueError(f"x and y must have the same positive length (got {len(x_ids)} and {len(y_ids)})")
    check_ids(K, x=np.asarray(x_ids), y=np.asarray(y_ids))
    s = np.array(state0, dtype=np.float64).reshape(S, 1)
    loss, steps = 0.0, []
    for x_id, y_id in zip(x_ids, y_ids):
        x = np.zeros((K, 1))
        x[x_id] = 1.0                                # x_t, one-hot (K, 1)
        s, cache = step(p, s, x)
        h = s[:m]
        prob = softmax(np.dot(V, h) + c)             # p_t = softmax(V h_t + c), (K, 1)
        loss -= np.log(prob[y_id, 0])
        steps.append((cache, h, prob, y_id))
    return float(loss), s.ravel(), (cell, params, p, steps, S)


def backward(cache):
    """Gradients of forward's loss, back through time: a dict shaped like params, in float64."""
    cell, params, p, steps, S = cache
    step_backward = _steps(cell)[2]
    V = p["V"]
    grads = {k: np.zeros_like(v) for k, v in p.items()}   # shaped like p: biases as columns
    ds = np.zeros((S, 1))                            # dL/ds_T: nothing comes back from after the last step
    for cache_t, h, prob, y_id in reversed(steps):
        do = prob.copy()
        do[y_id] -= 1.0                              # dL/do_t = p_t - onehot(y_t)
        grads["V"] += np.dot(do, h.T)
        grads["c"] += do
        dh = np.dot(V.T, do)                         # dL/dh_t through the output layer, (m, 1)
        ds = step_backward(p, dh, ds, cache_t, grads)   # ds now holds dL/ds_{t-1}
    return {k: g.reshape(params[k].shape) for k, g in grads.items()}


def loss_and_grads(cell: str, params, x_ids, y_ids, state0):
    """Loss of one sequence, its gradients (unclipped) and the state after it, by the per-step reference.

    cell: "rnn", "gru", "lstm" or "gru2"; params: that cell's dict of arrays; x_ids, y_ids: int (T,);
    state0: (S,), S = state_size(m).
    Returns (loss: float, grads: dict shaped like params (float64), s_T: (S,)).
    """
    loss, s, cache = forward(cell, params, x_ids, y_ids, state0)
    return loss, backward(cache), s


# --------------------------------------------------------------------------- the classic training loop

def classic_train(ids, params, n_updates: int, seq_length: int = 25, eta: float = 0.1, clip: float = 5.0,
                  eps: float = 1e-8, callback=None):
    """The assignment's training of the vanilla RNN, one update per sequence of seq_length characters read
    in order (back to the start, h = 0, when the next one would run past the end): the reference loss and
    gradients, each entry clipped to [-clip, clip], AdaGrad, and the smooth loss 0.999 s + 0.001 loss.

    ids: int (n,); params: the rnn's dict (copied as float64, not modified).
    callback(step, loss, smooth_loss, params) is called after every update when given.
    Returns (params, the smooth loss after every update (n_updates,) as a list).
    """
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    m = params["W"].shape[0]
    e, hprev, smooth, smooths = 0, np.zeros(m), None, []
    for step in range(n_updates):
        if e + seq_length + 1 > len(ids):
            e, hprev = 0, np.zeros(m)
        x, y = ids[e:e + seq_length], ids[e + 1:e + seq_length + 1]
        loss, grads, hprev = loss_and_grads("rnn", params, x, y, hprev)
        smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
        smooths.append(smooth)
        for k in rnn.PARAM_NAMES:
            g = np.clip(grads[k], -clip, clip)
            mem[k] += g * g
            params[k] -= eta * g / np.sqrt(mem[k] + eps)
        e += seq_length
        if callback is not None:
            callback(step + 1, loss, smooth, params)
    return params, smooths
