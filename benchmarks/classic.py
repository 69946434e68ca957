"""The classic per-timestep implementation, kept as a reference and a speed baseline.

Written the way the assignment is usually solved: one-hot column vectors,
one matrix-vector product per step, parameters as separate arrays updated one
by one. Same equations, semantics and defaults as charrnn; no vectorisation
over time. Tests compare charrnn against it; `python -m charrnn bench`
measures both side by side.
"""
from __future__ import annotations

import numpy as np

NAMES = ("U", "W", "V", "b", "c")


def classic_loss_and_grads(params, x_ids, y_ids, hprev):
    """Loss, gradients (dict of arrays shaped like params, biases as columns) and the last h (m,).

    params: U (m,K), W (m,m), V (K,m), b (m,), c (K,); hprev: (m,).
    """
    U, W, V = params["U"], params["W"], params["V"]
    b = params["b"].reshape(-1, 1)           # (m, 1)
    c = params["c"].reshape(-1, 1)           # (K, 1)
    m, K = U.shape
    xs, hs, ps = {}, {-1: np.asarray(hprev, dtype=np.float64).reshape(-1, 1).copy()}, {}
    loss = 0.0
    for t in range(len(x_ids)):
        xs[t] = np.zeros((K, 1))
        xs[t][x_ids[t]] = 1.0                # one-hot input, (K, 1)
        a = np.dot(W, hs[t - 1]) + np.dot(U, xs[t]) + b
        hs[t] = np.tanh(a)                   # (m, 1)
        o = np.dot(V, hs[t]) + c             # (K, 1)
        e = np.exp(o - np.max(o))
        ps[t] = e / np.sum(e)                # (K, 1)
        loss -= np.log(ps[t][y_ids[t], 0])
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros_like(b), np.zeros_like(c)
    dh_next = np.zeros((m, 1))
    for t in reversed(range(len(x_ids))):
        do = ps[t].copy()
        do[y_ids[t]] -= 1.0                  # dL/do_t
        dV += np.dot(do, hs[t].T)
        dc += do
        dh = np.dot(V.T, do) + dh_next       # dL/dh_t
        da = (1.0 - hs[t] * hs[t]) * dh      # through tanh
        db += da
        dU += np.dot(da, xs[t].T)
        dW += np.dot(da, hs[t - 1].T)
        dh_next = np.dot(W.T, da)
    grads = {"U": dU, "W": dW, "V": dV, "b": db.ravel(), "c": dc.ravel()}
    return float(loss), grads, hs[len(x_ids) - 1].ravel()


def classic_train(ids, params, n_updates, seq_length=25, eta=0.1, clip=5.0, eps=1e-8, callback=None):
    """AdaGrad training with the assignment's semantics; returns (params, smooth losses per update).

    ids: int array (n,); params: dict as above (copied, not modified).
    callback(step, loss, smooth_loss, params) is called after every update when given.
    """
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    m = params["W"].shape[0]
    e, hprev, smooth, smooths = 0, np.zeros(m), None, []
    for step in range(n_updates):
        if e + seq_length + 1 > len(ids):
            e, hprev = 0, np.zeros(m)
        x, y = ids[e:e + seq_length], ids[e + 1:e + seq_length + 1]
        loss, grads, hprev = classic_loss_and_grads(params, x, y, hprev)
        smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
        smooths.append(smooth)
        for k in NAMES:
            g = np.clip(grads[k], -clip, clip)
            mem[k] += g * g
            params[k] -= eta * g / np.sqrt(mem[k] + eps)
        e += seq_length
        if callback is not None:
            callback(step + 1, loss, smooth, params)
    return params, smooths
