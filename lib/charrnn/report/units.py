"""What the hidden units learned: simple features of the text, and the unit that tracks each.

After Karpathy, Johnson and Fei-Fei, "Visualizing and understanding recurrent
networks" (2015), who found single LSTM cells that follow quotes, line length
and brackets: read a stretch of text through a model, take a few features of
the text at every position, and for each feature find the hidden unit whose
activation correlates best with it (Pearson's r, either sign).

Positions are aligned with what the model has read: row t of the activations
is h_t, the hidden state just after reading character t, and every feature at
t describes the text up to and including character t.
"""
from __future__ import annotations

import numpy as np

from ..models import get_cell


def line_position(text: str) -> np.ndarray:
    """(n,) characters since the last line break: 0 at a line break, 1 at the next character, ..."""
    out = np.empty(len(text))
    k = 0
    for i, ch in enumerate(text):
        k = 0 if ch == "\n" else k + 1
        out[i] = k
    return out


def after_newline(text: str) -> np.ndarray:
    """(n,) 1 where the character just read is a line break."""
    return np.array([ch == "\n" for ch in text], dtype=float)


def inside(text: str, opening: str, closing: str) -> np.ndarray:
    """(n,) 1 from an opening character up to (not including) its closing one, nesting counted; when the
    two are the same character (a straight quote), each one toggles."""
    out = np.empty(len(text))
    depth = 0
    for i, ch in enumerate(text):
        if opening == closing and ch == opening:
            depth = 1 - depth
        elif ch == opening:
            depth += 1
        elif ch == closing:
            depth = max(0, depth - 1)
        out[i] = depth > 0
    return out


def capitals_line(text: str) -> np.ndarray:
    """(n,) 1 on the characters of lines whose letters, at least two, are all capitals: a play's speaker
    names ("HAMLET.", "FIRST CLOWN."), a chapter heading."""
    out = np.zeros(len(text))
    start = 0
    for line in text.split("\n"):
        letters = [c for c in line if c.isalpha()]
        if len(letters) >= 2 and all(c.isupper() for c in letters):
            out[start:start + len(line)] = 1.0
        start += len(line) + 1
    return out


def text_features(text: str) -> dict:
    """{name: (n,) values} of the features looked for. A feature that is constant over text (no brackets
    in it, say) is left out: no unit can be said to follow it there."""
    features = {
        "inside [brackets]": inside(text, "[", "]"),
        "inside (parentheses)": inside(text, "(", ")"),
        'inside "quotes"': np.maximum(inside(text, '"', '"'), inside(text, "\u201c", "\u201d")),
        "line of capitals (a name)": capitals_line(text),
        "position in the line": line_position(text),
        "just after a line break": after_newline(text),
    }
    return {k: v for k, v in features.items() if v.std() > 0}


def read(model, ids, start: str = "state"):
    """Read ids (n,) through the model from its stored state (or zeros): (H (n, m) the hidden state after
    each character, P (n-1,) the probability the model gave each next character)."""
    cell = get_cell(model.cell)
    K, m = model.params["V"].shape
    dtype = model.params["V"].dtype
    if start == "state":
        s, _ = cell.step(model.params, np.asarray(model.state, dtype), model.state_input)
    else:
        s = np.zeros(cell.state_size(m), dtype)
    H, P = np.empty((len(ids), m)), np.empty(len(ids) - 1)
    for i, x in enumerate(ids):
        s, o = cell.step(model.params, s, int(x))
        H[i] = s[:m]
        if i + 1 < len(ids):
            o = o.astype(np.float64)
            e = np.exp(o - o.max())
            P[i] = e[int(ids[i + 1])] / e.sum()
    return H, P


def correlations(H, feature) -> np.ndarray:
    """(m,) Pearson's r between each unit's activation (column of H (n, m)) and feature (n,); 0 for a unit
    that never changes."""
    Hc = H - H.mean(0)
    f = feature - feature.mean()
    denom = np.sqrt((Hc * Hc).sum(0) * (f * f).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Hc * f[:, None]).sum(0) / denom
    return np.where(denom > 0, r, 0.0)


def best_units(H, features: dict) -> dict:
    """{feature: (unit, r)}: for each feature, the unit whose activation correlates best (largest |r|)."""
    out = {}
    for name, f in features.items():
        r = correlations(H, f)
        unit = int(np.argmax(np.abs(r)))
        out[name] = (unit, float(r[unit]))
    return out
