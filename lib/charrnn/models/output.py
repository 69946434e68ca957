"""The output layer every cell shares: o = V h + c, p = softmax(o), loss = -sum log p[y].

It runs once per update over all B*T positions (rows), never inside the loop
over time. Shapes: Hs (N, m) hidden states, one row per position; ys (N,)
target ids; O (N, K) a buffer that holds the logits, then p, then dL/do.

Dropout (training only): with keep (N, m), entries 0 or 1/q for a keep
probability q, the layer reads Hs * keep instead of Hs (written into Hd), and
the gradient that flows back to Hs is multiplied by keep.
"""
from __future__ import annotations

import numpy as np


def forward(V, c, Hs, ys, O, rows, keep=None, Hd=None) -> float:
    """Fill O (N, K) with p = softmax(Hs V^T + c) and return the summed loss -sum_n log p_n[y_n].

    rows: np.arange(N), kept by the caller's workspace; keep, Hd: dropout's multipliers and a buffer for
    Hs * keep, both (N, m), or None.
    """
    if keep is not None:
        Hs = np.multiply(Hs, keep, Hd)              # Hd now holds the hidden states after dropout
    np.dot(Hs, V.T, O)                              # (N, K): o = V h + c
    O += c
    O -= np.maximum.reduce(O, 1, keepdims=True)     # stable softmax
    picked = np.add.reduce(O[rows, ys])             # sum_n o_n[y_n]
    np.exp(O, O)
    Z = np.add.reduce(O, 1)                         # (N,)
    O /= Z[:, None]                                 # O now holds p
    return float(np.add.reduce(np.log(Z)) - picked)


def backward(V, Hs, ys, O, rows, dHs, dV, dc, keep=None, Hd=None) -> None:
    """From O holding p: O becomes dL/do = p - onehot(y); writes dL/dh from the output into dHs (N, m),
    dV (K, m) and dc (K,). keep, Hd: as given to forward (Hd still holding Hs * keep), or None."""
    O[rows, ys] -= 1.0                              # O now holds dL/do
    np.dot(O, V, dHs)                               # (N, m): V^T dL/do per row
    if keep is not None:
        dHs *= keep                                 # through the dropout
        Hs = Hd
    np.dot(O.T, Hs, dV)                             # (K, m): sum_n dL/do_n h_n^T
    np.add.reduce(O, 0, out=dc)                     # (K,)


def dropout_buffers(ws, rows: int, m: int, dtype) -> None:
    """Give a workspace dropout's buffers: ws.keep (the multipliers, filled by the trainer before each
    forward pass) and ws.Hd, both (rows, m). A workspace without them (keep None) runs no dropout."""
    ws.keep = np.ones((rows, m), dtype)
    ws.Hd = np.empty((rows, m), dtype)
