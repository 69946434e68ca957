"""Numerical gradient check: centred differences against backpropagation, for every cell."""
from __future__ import annotations

import numpy as np

from .models import get_cell

_ORDER = get_cell("rnn").PARAM_NAMES     # the order parameters are listed in: the same for every cell


def _ordered(names):
    """names in the cells' parameter order, any others after them in their own order."""
    names = list(names)
    return [k for k in _ORDER if k in names] + [k for k in names if k not in _ORDER]


def numerical_grads(params, X, Y, S0, h: float = 1e-4, entries=None, cell="rnn"):
    """Centred-difference gradients (L(theta + h) - L(theta - h)) / 2h of the summed loss, in float64.

    X, Y: int arrays (B, T) of input and target ids, S0: (B, S) the states before the first step
    (S = cell.state_size(m)); or, for one stream, x, y (T,) and s0 (S,).
    entries: None for every entry, or {name: flat indices} to check only those
    (the other entries of the result are NaN).
    cell: the name of the cell the parameters belong to ("rnn", "gru", "lstm" or "gru2").
    Returns a dict shaped like params.
    """
    mod = get_cell(cell)
    X, Y = np.asarray(X), np.asarray(Y)
    S0 = np.asarray(S0, dtype=np.float64)
    if X.ndim == 1:                                 # one stream: a batch of one
        X, Y, S0 = X[None], Y[None], S0[None]
    work = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    K, m = work["V"].shape
    ws = mod.workspace(X.shape[0], X.shape[1], K, m, np.float64)
    num = {}
    for name in _ordered(work):
        theta = work[name].reshape(-1)      # a view: editing it edits work[name]
        out = np.full(theta.shape, np.nan)
        todo = range(theta.size) if entries is None else entries.get(name, ())
        for i in todo:
            old = theta[i]
            theta[i] = old + h
            plus, _ = mod.forward_batch(work, X, Y, S0, ws)
            theta[i] = old - h
            minus, _ = mod.forward_batch(work, X, Y, S0, ws)
            theta[i] = old
            out[i] = (plus - minus) / (2 * h)
        num[name] = out.reshape(work[name].shape)
    return num


def relative_errors(analytic, numerical, floor: float = 1e-8):
    """Per parameter of `analytic`: element-wise max / mean / min of |a-n| / max(|a|, |n|) and
    the whole-array error ||a-n|| / max(||a||, ||n||).

    Entries where both values are below `floor` count as agreeing (error 0);
    NaN entries of `numerical` (unchecked) are left out.
    Returns {name: {"max", "mean", "min", "norm", "checked"}}.
    """
    table = {}
    for name in _ordered(analytic):
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
    """n flat indices spread over all parameters (of any cell), in proportion to their size (at least 1 each)."""
    rng = np.random.default_rng(seed)
    sizes = {k: params[k].size for k in _ordered(params)}
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


def verdict(analytic, numerical, loss: float, h: float = 1e-4, tolerance: float = 1e-6) -> dict:
    """Do the analytic and numerical gradients agree?

    A parameter agrees when its whole-array relative error is below tolerance, or when its largest
    absolute difference is within the rounding of the centred differences themselves, about
    50 eps |L| / h: then the gradient is so small (a recurrent W at a tiny initialisation) that its
    relative error only measures that rounding. A wrong term in the backward pass gives errors near 1.
    Returns {"agree": bool, "worst_norm": ..., "worst_abs": ..., "roundoff": ..., "disagree": [names]}.
    """
    table = relative_errors(analytic, numerical)
    roundoff = 50 * np.finfo(np.float64).eps * max(1.0, abs(loss)) / h
    worst_abs = {}
    for k in table:
        diff = np.abs(np.asarray(analytic[k], np.float64) - np.asarray(numerical[k], np.float64))
        worst_abs[k] = float(np.nanmax(diff)) if diff.size else 0.0
    bad = [k for k, row in table.items() if row["norm"] >= tolerance and worst_abs[k] > roundoff]
    return {"agree": not bad, "worst_norm": max(r["norm"] for r in table.values()),
            "worst_abs": max(worst_abs.values()), "roundoff": roundoff, "disagree": bad}


def check_rnn(ids, K: int, m: int, entries_per_param: int | None = None, seed: int = 0, length: int = 25,
              sigma: float = 0.01) -> dict:
    """The vanilla RNN's gradient check as the report makes it: parameters initialised at hidden size m, the
    loss of ids[:length] predicting ids[1:length + 1] from h = 0, every entry (or entries_per_param random
    entries of each parameter). Returns {"table": relative_errors, "analytic": grads, "numerical": grads}."""
    from .models.rnn import init_params, loss_and_grads
    params = init_params(K, m, sigma=sigma, seed=seed)
    x, y = ids[:length], ids[1:length + 1]
    _, analytic, _ = loss_and_grads(params, x, y, np.zeros(m))
    rng = np.random.default_rng(seed)
    entries = None if entries_per_param is None else {
        k: rng.choice(v.size, size=min(v.size, entries_per_param), replace=False) for k, v in params.items()}
    numerical = numerical_grads(params, x, y, np.zeros(m), h=1e-4, entries=entries)
    return {"table": relative_errors(analytic, numerical), "analytic": analytic, "numerical": numerical}
