"""The spike guard: when an update's loss jumps far above its recent level, go back to a recent good
point, lower the learning rate, and go on.

Adam at a high learning rate trains fastest until, at some update, the loss jumps: on this project's
machine the budget preset once went from 86 to 144 nats per sequence within 500 updates, and the
held-out loss from 1.45 to 2.12; the run ended 0.2 nats worse than its neighbours. char-rnn stops such
a run, nanoGPT lets it go on; this puts back what it had and carries on.

With TrainConfig.spike_guard = r (None, the default, leaves it off and the run exactly as without it):
- the level is an exponential average of the accepted updates' losses (weight 1/50 for the newest);
- every spike_every updates the parameters and the optimiser's state are copied; the last two copies
  are kept, so the older one was taken 1-2 spike_every updates ago, before any slow rise began;
- an update whose loss exceeds r x level, or is non-finite, or exceeds max_loss_ratio's limit, is
  not applied: the parameters and the optimiser's state go back to the older copy, the learning rate
  is multiplied by spike_eta for the rest of the run (1.0: only skip), the batch is skipped and every
  stream's state restarts from zeros (it was computed by the parameters just discarded);
- each event is recorded in history.spikes as {"step": the refused update, "loss": its loss per
  sequence, "level", "restored": the step of the copy put back, "eta": the learning rate from then on};
- MAX_STRIKES recoveries in a row with no new copy between them stop the run as diverged.

Everything the guard holds goes into last.npz, so a run killed and resumed across a recovery ends on
the same bits as one that was not.
"""
from __future__ import annotations

import math

import numpy as np

DECAY = 0.98          # the level's exponential average keeps 0.98 of itself per accepted update
KEEP = 2              # copies kept
MAX_STRIKES = 4       # recoveries in a row without a new copy before the run counts as diverged


class Guard:
    """The guard's state: the level, the copies, the learning-rate factor and the events."""

    def __init__(self, ratio: float, eta_factor: float, every: int):
        self.ratio, self.eta_factor, self.every = ratio, eta_factor, every
        self.level: float | None = None     # exponential average of accepted losses (per sequence)
        self.eta_scale = 1.0                # the product of eta_factor over the recoveries so far
        self.strikes = 0                    # recoveries since the last copy
        self.copies: list[tuple[int, np.ndarray, dict]] = []   # (step, theta (n,), {opt key: (n,)}), oldest first
        self.spikes: list[dict] = []

    @classmethod
    def from_config(cls, config) -> "Guard | None":
        return None if config.spike_guard is None else cls(config.spike_guard, config.spike_eta, config.spike_every)

    def trips(self, loss: float, limit: float) -> bool:
        """Whether an update of this loss must not be applied."""
        return not math.isfinite(loss) or loss > limit or (self.level is not None and loss > self.ratio * self.level)

    def accept(self, loss: float) -> None:
        """An update of this loss was applied: move the level towards it."""
        self.level = loss if self.level is None else DECAY * self.level + (1 - DECAY) * loss

    def keep(self, step: int, theta: np.ndarray, opt_state: dict) -> None:
        """Copy the parameters and optimiser state of `step` updates when step is a multiple of every;
        the oldest copy's arrays are reused once KEEP are held."""
        if step % self.every:
            return
        if len(self.copies) == KEEP:
            _, th, opt = self.copies.pop(0)
        else:
            th, opt = np.empty_like(theta), {k: np.empty_like(v) for k, v in opt_state.items()}
        np.copyto(th, theta)
        for k, v in opt_state.items():
            np.copyto(opt[k], v)
        self.copies.append((step, th, opt))
        self.strikes = 0

    @property
    def can_recover(self) -> bool:
        """False after MAX_STRIKES recoveries with no new copy between them: the run is diverging."""
        return bool(self.copies) and self.strikes < MAX_STRIKES

    def recover(self, step: int, loss: float, eta: float, theta: np.ndarray, opt_state: dict) -> dict:
        """Put the oldest copy back into theta and opt_state (in place) and lower the learning rate.
        step: the refused update's number (1-based); eta: the learning rate the schedule gave it.
        Returns the event recorded in self.spikes. Call only when can_recover."""
        restored, th, opt = self.copies[0]
        np.copyto(theta, th)
        for k, v in opt_state.items():
            np.copyto(v, opt[k])
        del self.copies[1:]                 # the newer copy may already be part of the rise
        self.strikes += 1
        self.eta_scale *= self.eta_factor
        event = {"step": step, "loss": float(loss) if math.isfinite(loss) else str(loss),
                 "level": self.level, "restored": restored, "eta": eta * self.eta_factor}
        self.spikes.append(event)
        return event

    # --- checkpoints ---
    def to_checkpoint(self) -> tuple[dict, dict]:
        """(JSON state, {name: array}) for last.npz."""
        meta = {"level": self.level, "eta_scale": self.eta_scale, "strikes": self.strikes,
                "copies": [step for step, _, _ in self.copies]}
        arrays = {}
        for i, (_, th, opt) in enumerate(self.copies):
            arrays[f"{i}/theta"] = th
            arrays.update({f"{i}/opt/{k}": v for k, v in opt.items()})
        return meta, arrays

    def restore(self, meta: dict, arrays: dict, n: int, opt_keys, dtype) -> None:
        """Take the state to_checkpoint gave (the arrays checked against n parameters and opt_keys)."""
        self.level, self.eta_scale, self.strikes = meta["level"], float(meta["eta_scale"]), int(meta["strikes"])
        self.copies = []
        for i, step in enumerate(meta["copies"]):
            names = [f"{i}/theta"] + [f"{i}/opt/{k}" for k in opt_keys]
            for name in names:
                if name not in arrays or arrays[name].shape != (n,):
                    raise ValueError(f"the spike guard's copy {name} is missing or not ({n},)")
            self.copies.append((int(step), arrays[f"{i}/theta"].astype(dtype),
                                {k: arrays[f"{i}/opt/{k}"].astype(dtype) for k in opt_keys}))
