"""The output layer every cell shares: o = V h + c, p = softmax(o), loss = -sum log p[y].

It runs once per update over all B*T positions (rows), never inside the loop
over time. Shapes: Hs (N, m) hidden states, one row per position; ys (N,)
target ids; O (N, K) a buffer that holds the logits, then p, then dL/do.
"""
from __future__ import annotations

import numpy as np


def forward(V, c, Hs, ys, O, rows) -> float:
    """Fill O (N, K) with p = softmax(Hs V^T + c) and return the summed loss -sum_n log p_n[y_n].

    rows: np.arange(N), kept by the caller's workspace.
    """
    np.dot(Hs, V.T, O)                              # (N, K): o = V h + c
    O += c
    O -= np.maximum.reduce(O, 1, keepdims=True)     # stable softmax
    picked = np.add.reduce(O[rows, ys])             # sum_n o_n[y_n]
    np.exp(O, O)
    Z = np.add.reduce(O, 1)                         # (N,)
    O /= Z[:, None]                                 # O now holds p
    return float(np.add.reduce(np.log(Z)) - picked)


def backward(V, Hs, ys, O, rows, dHs, dV, dc) -> None:
    """From O holding p: O becomes dL/do = p - onehot(y); writes dL/dh from the output into dHs (N, m),
    dV (K, m) and dc (K,)."""
    O[rows, ys] -= 1.0                              # O now holds dL/do
    np.dot(O, V, dHs)                               # (N, m): V^T dL/do per row
    np.dot(O.T, Hs, dV)                             # (K, m): sum_n dL/do_n h_n^T
    np.add.reduce(O, 0, out=dc)                     # (K,)
