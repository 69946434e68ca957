"""The spike guard: when an update's loss jumps far above its recent level, go back to a recent good
point, lower the learning rate, and go on.

Adam at a high learning rate trains fastest until, at some update, the loss jumps: on this project's
machine the budget preset once went from 86 to 144 nats per sequence within 500 updates, and the
held-out loss from 1.45 to 2.12; the run ended 0.2 nats worse than its neighbours. char-rnn stops such
a run, nanoGPT lets it go on; this puts back what it had and carries on.

With TrainConfig.spike_guard = r (None, the default, leaves it off and the run exactly as without it)
and spike_norm = r_g:
- two levels are kept, exponential averages of the accepted updates' losses and gradient norms (the
  norm of the gradient the update would apply, before norm clipping), weight 1/50 for the newest;
  they are judged from update max(spike_every, warmup) on: before that, in the first steep descent
  and the learning rate's warm-up, the norm grows legitimately (at eta 2e-2 it rose to 5.4 times its
  level by update 49, and a guard that judged it refused every update from there on);
- every spike_every updates the parameters and the optimiser's state are copied; the last two copies
  are kept, so the older one was taken 1-2 spike_every updates ago, before any slow rise began;
- an update whose loss exceeds r times its level or whose gradient norm r_g times, or whose loss is
  non-finite or over max_loss_ratio's limit, is not applied. The guard escalates: the first refusal
  since the last copy skips the batch (the parameters are still those before the spike); a second
  puts back the newest copy of the parameters and the optimiser's state, a third or fourth the older
  copy, taken 1-2 spike_every updates ago, before any slower rise began, and each of these multiplies
  the learning rate by spike_eta for the rest of the run. The streams go on from the states they
  reached over the refused batch. Restarting them from zeros instead made the next batch cost more
  than the level (measured from carried states), which refused it in turn: a GRU of m = 16 on 4
  streams of 16 that had learnt a 3,000-character text to 1 nat per character was refused five
  batches in a row this way, 2-4 times its level each, and stopped as diverged (1 seed of 6). For
  the same reason the first batch of an epoch, which starts from zeros, is judged only by a
  non-finite or impossible loss;
- each event is recorded in history.spikes as {"step": the refused update, "loss": its loss per
  sequence, "level", "grad_norm", "norm_level", "action", "restored": the step of the copy put back
  (None when the batch was only skipped), "eta": the learning rate from then on};
- a fifth refusal in a row with no new copy between (MAX_STRIKES = 4 recoveries) stops the run as
  diverged.

Measured on the budget preset at eta 2e-2 (every seed of 4 spiked without the guard and ended at
1.71-1.83 nats per character held out): putting back copies without lowering the learning rate ran
into the same spike again until the run stopped (2 seeds of 2); lowering it at every refusal, also
at the lone odd batches that recur once per epoch with a large gradient and an ordinary loss, took
one seed's rate from 1e-2 to 3e-5 by update 2,500 (it ended at 1.52); lowering it only when a refusal follows another
since the last copy is what this does.

The gradient norm is the earlier signal. In the budget preset at eta 2e-2 a divergence began with
norms of 0.4, 2.9, 9.5, 74, 2,748 in five updates while the loss per character went 1.73, 1.81,
1.89, 2.00, 2.11. Between spikes, at the preset's 32 streams of 64, a norm stayed within 2.3 times
its level and a loss within 1.1 times (1.5 times at the first new epoch, when every stream restarts
from zeros); at 4 streams of 16 within 2.9 and 1.3 times.

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

    def __init__(self, ratio: float, norm_ratio: float, eta_factor: float, every: int, start: int):
        self.ratio, self.norm_ratio, self.eta_factor, self.every = ratio, norm_ratio, eta_factor, every
        self.start = start                  # updates before the levels are judged (a non-finite loss always is)
        self.level: float | None = None     # exponential average of accepted losses (per sequence)
        self.norm_level: float | None = None  # and of their gradient norms
        self.eta_scale = 1.0                # the product of eta_factor over the recoveries so far
        self.strikes = 0                    # recoveries since the last copy
        self.copies: list[tuple[int, np.ndarray, dict]] = []   # (step, theta (n,), {opt key: (n,)}), oldest first
        self.spikes: list[dict] = []

    @classmethod
    def from_config(cls, config) -> "Guard | None":
        if config.spike_guard is None:
            return None
        return cls(config.spike_guard, config.spike_norm, config.spike_eta, config.spike_every,
                   start=max(config.spike_every, config.warmup))

    def trips(self, step: int, loss: float, norm: float, limit: float, from_zeros: bool = False) -> bool:
        """Whether update `step` (1-based), of this loss and gradient norm, must not be applied.
        from_zeros: every stream starts this batch from h = 0 (the first batch of an epoch). It costs more
        than the batches read on from carried states that make the levels, so only a non-finite or
        impossible loss refuses it."""
        if not (math.isfinite(loss) and math.isfinite(norm)) or loss > limit:
            return True
        if step <= self.start or from_zeros:   # early updates move the levels too fast; from zeros costs more
            return False
        return loss > self.ratio * self.level or norm > self.norm_ratio * self.norm_level

    def accept(self, loss: float, norm: float) -> None:
        """An update of this loss and gradient norm was applied: move the levels towards them."""
        if self.level is None:
            self.level, self.norm_level = loss, norm
        else:
            self.level = DECAY * self.level + (1 - DECAY) * loss
            self.norm_level = DECAY * self.norm_level + (1 - DECAY) * norm

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
        return self.strikes < MAX_STRIKES

    def recover(self, step: int, loss: float, norm: float, eta: float, theta: np.ndarray, opt_state: dict) -> dict:
        """Refuse update `step` (1-based); eta is the learning rate the schedule gave it.
        The first refusal since the last copy only skips the batch: the parameters are still those of
        the last accepted update, from before the spike, and an odd batch should not cost the run its
        learning rate. A second one puts the newest copy back into theta and opt_state (in place), a
        third or fourth the older copy, each time multiplying the learning rate by eta_factor.
        Returns the event recorded in self.spikes. Call only when can_recover."""
        self.strikes += 1
        if self.strikes == 1:
            restored, action = None, "skip the batch"
        else:
            if self.strikes > 2 and len(self.copies) > 1:
                self.copies.pop()           # the newest copy, put back last time, did not hold
            restored, th, opt = self.copies[-1]
            np.copyto(theta, th)
            for k, v in opt_state.items():
                np.copyto(v, opt[k])
            self.eta_scale *= self.eta_factor
            action = f"put back update {restored}" + (f", eta x{self.eta_factor:g}" if self.eta_factor != 1 else "")
        event = {"step": step, "loss": _number(loss), "level": self.level, "grad_norm": _number(norm),
                 "norm_level": self.norm_level, "action": action, "restored": restored,
                 "eta": eta if restored is None else eta * self.eta_factor}
        self.spikes.append(event)
        return event

    # --- checkpoints ---
    def to_checkpoint(self) -> tuple[dict, dict]:
        """(JSON state, {name: array}) for last.npz."""
        meta = {"level": self.level, "norm_level": self.norm_level, "eta_scale": self.eta_scale, "strikes": self.strikes,
                "copies": [step for step, _, _ in self.copies]}
        arrays = {}
        for i, (_, th, opt) in enumerate(self.copies):
            arrays[f"{i}/theta"] = th
            arrays.update({f"{i}/opt/{k}": v for k, v in opt.items()})
        return meta, arrays

    def restore(self, meta: dict, arrays: dict, n: int, opt_keys, dtype) -> None:
        """Take the state to_checkpoint gave (the arrays checked against n parameters and opt_keys)."""
        self.level, self.norm_level = meta["level"], meta["norm_level"]
        self.eta_scale, self.strikes = float(meta["eta_scale"]), int(meta["strikes"])
        self.copies = []
        for i, step in enumerate(meta["copies"]):
            names = [f"{i}/theta"] + [f"{i}/opt/{k}" for k in opt_keys]
            for name in names:
                if name not in arrays or arrays[name].shape != (n,):
                    raise ValueError(f"the spike guard's copy {name} is missing or not ({n},)")
            self.copies.append((int(step), arrays[f"{i}/theta"].astype(dtype),
                                {k: arrays[f"{i}/opt/{k}"].astype(dtype) for k in opt_keys}))


def _number(v: float):
    """v as JSON stores it: a float, or "nan" / "inf" (JSON has no such numbers)."""
    return float(v) if math.isfinite(v) else str(v)
