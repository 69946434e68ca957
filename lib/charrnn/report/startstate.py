"""How much a model's start state matters: reading text from h = 0 and from the state it was trained in.

The assignment's training resets the state only at a new epoch, so a model
mostly meets states that descend from its own training trajectory. These
measurements compare the two ways to start reading: from zeros, and from the
state training carried at the model's parameters (Model.state, fed its input
character first).
"""
from __future__ import annotations

import numpy as np

from ..models import char_losses, get_cell, mean_loss_per_char

STARTS = ("zeros", "state")


def start_state(model, start: str):
    """(state (S,) or None, the input id to feed first or None) of a start."""
    if start == "zeros":
        return None, None
    if not model.has_state:
        raise ValueError("the model stores no state; only start='zeros' is possible")
    return model.state, model.state_input


def loss_from(model, ids, start: str) -> float:
    """Mean -log p per character of ids (n,) read in order from the start (nats per character).
    From the state, the stored input character comes first, so ids[0] is predicted too."""
    s, x = start_state(model, start)
    cell = get_cell(model.cell)
    if x is not None:
        ids = np.concatenate([[x], ids]).astype(ids.dtype)
    return mean_loss_per_char(cell, model.params, ids, state0=s)


def stretch_losses(model, ids, length: int = 400, stretches: int = 200, seed: int = 0) -> dict:
    """The loss at each position of `stretches` stretches of ids taken at random places, read from each start.

    Returns {"begins": (n,) where the stretches begin, "zeros": (n, length), "state": (n, length)} nats
    ("state" only when the model has one). Row j, position i is the prediction of character i + 1 of
    stretch j: from zeros its first input is the stretch's first character; from the state the stored
    input character comes first, and its own prediction is dropped, so both starts predict the same targets.
    """
    cell = get_cell(model.cell)
    rng = np.random.default_rng(seed)
    begins = np.sort(rng.integers(0, len(ids) - length - 2, stretches))
    out = {"begins": begins}
    for start in STARTS if model.has_state else ("zeros",):
        s, x = start_state(model, start)
        rows = []
        for b in begins:
            text = ids[b:b + length + 1].astype(np.int64)
            if x is not None:
                rows.append(char_losses(cell, model.params, np.concatenate([[x], text]), s)[1:])
            else:
                rows.append(char_losses(cell, model.params, text, s))
        out[start] = np.array(rows)
    return out


def stuck(losses: np.ndarray, K: int, tail: int = 100) -> np.ndarray:
    """(n,) bool: the stretches whose last `tail` characters cost more than guessing uniformly (log K nats
    each): the model has fallen into a state it does not recover from."""
    return losses[:, -tail:].mean(axis=1) > np.log(K)


def settle_length(losses: dict, K: int, tolerance: float = 0.05, window: int = 10) -> int | None:
    """How many characters the start matters for: the first position after which the mean curves from
    the two starts agree to tolerance nats (moving averages over window positions), over the stretches
    stuck from neither start; None if they never do within the stretch."""
    if "state" not in losses:
        return None
    keep = ~stuck(losses["zeros"], K) & ~stuck(losses["state"], K)
    zeros, state = losses["zeros"][keep].mean(0), losses["state"][keep].mean(0)
    gap = np.abs(np.convolve(zeros - state, np.ones(window) / window, mode="valid"))
    outside = np.flatnonzero(gap > tolerance)
    if len(outside) == 0:
        return 0
    last = int(outside[-1]) + window
    return None if last >= len(zeros) else last
