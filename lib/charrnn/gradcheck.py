"""Numerical gradient check: centred differences against backpropagation."""
from __future__ import annotations

import numpy as np

from .model import PARAM_NAMES, Workspace, forward


def numerical_grads(params, x_ids, y_ids, h0, h: float = 1e-4, entries=None):
    """Centred-difference gradients (L(theta + h) - L(theta - h)) / 2h, in float64.

    entries: None for every entry, or {name: flat indices} to check only those
    (the other entries of the result are NaN).
    Returns a dict shaped like params.
    """
    work = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    h0 = np.asarray(h0, dtype=np.float64)
    num, ws = {}, Workspace.for_params(work, len(x_ids))
    for name in PARAM_NAMES:
        theta = work[name].reshape(-1)      # a view: editing it edits work[name]
        out = np.full(theta.shape, np.nan)
        todo = range(theta.size) if entries is None else entries.get(name, ())
        for i in todo:
            old = theta[i]
            theta[i] = old + h
            plus, _ = forward(work, x_ids, y_ids, h0, ws)
            theta[i] = old - h
            minus, _ = forward(work, x_ids, y_ids, h0, ws)
            theta[i] = old
            out[i] = (plus - minus) / (2 * h)
        num[name] = out.reshape(work[name].shape)
    return num


def relative_errors(analytic, numerical, floor: float = 1e-8):
    """Per parameter: element-wise max / mean / min of |a-n| / max(|a|, |n|) and
    the whole-array error ||a-n|| / max(||a||, ||n||).

    Entries where both values are below `floor` count as agreeing (error 0);
    NaN entries of `numerical` (unchecked) are left out.
    Returns {name: {"max", "mean", "min", "norm", "checked"}}.
    """
    table = {}
    for name in PARAM_NAMES:
        n = np.asarray(numerical[name], dtype=np.float64).ravel()
        a = np.asarray(analytic[name], dtype=np.float64).ravel()
        keep = ~np.isnan(n)
        a, n = a[keep], n[keep]
        scale = np.maximum(np.abs(a), np.abs(n))
        diff = np.abs(a - n)
        rel = np.where(scale < floor, 0.0, diff / np.where(scale < floor, 1.0, scale))
        norm_scale = max(np.linalg.norm(a), np.linalg.norm(n))
        table[name] = {
            "max": float(rel.max()) if rel.size else 0.0,
            "mean": float(rel.mean()) if rel.size else 0.0,
            "min": float(rel.min()) if rel.size else 0.0,
            "norm": float(np.linalg.norm(a - n) / norm_scale) if norm_scale > 0 else 0.0,
            "checked": int(keep.sum()),
        }
    return table


def sample_entries(params, n: int, seed: int = 0):
    """n flat indices spread over all parameters, in proportion to their size (at least 1 each)."""
    rng = np.random.default_rng(seed)
    sizes = {k: params[k].size for k in PARAM_NAMES}
    total = sum(sizes.values())
    return {k: rng.choice(s, size=min(s, max(1, round(n * s / total))), replace=False)
            for k, s in sizes.items()}


def format_table(table) -> str:
    """The relative-error table as aligned text, one row per parameter."""
    lines = [f"{'param':<6}{'max':>11}{'mean':>11}{'min':>11}{'norm':>11}{'checked':>9}"]
    for name, row in table.items():
        lines.append(f"{name:<6}{row['max']:>11.2e}{row['mean']:>11.2e}{row['min']:>11.2e}"
                     f"{row['norm']:>11.2e}{row['checked']:>9d}")
    return "\n".join(lines)
