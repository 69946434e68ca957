"""Training configuration: one dataclass, printed at start and stored in every checkpoint."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

OPTIMIZERS = ("adagrad", "rmsprop", "adam")
DTYPES = ("float64", "float32")


class ConfigError(ValueError):
    """A configuration value that cannot work."""


@dataclass(frozen=True)
class TrainConfig:
    # --- model ---
    m: int = 100                  # hidden units
    sigma: float = 0.01           # std of the initial weights (biases start at zero)
    dtype: str = "float64"        # "float64" (exact) or "float32" (faster, for long runs)
    # --- data ---
    seq_length: int = 25          # characters per update (truncated BPTT length)
    val_fraction: float = 0.0     # held-out tail of the text for validation (0 keeps the assignment's run exact)
    val_every: int = 5_000        # updates between validation measurements (when val_fraction > 0)
    # --- optimisation ---
    optimizer: str = "adagrad"    # "adagrad" (the assignment's), "rmsprop" or "adam"
    eta: float = 0.1              # learning rate
    eps: float = 1e-8             # AdaGrad/RMSProp/Adam epsilon
    rho: float = 0.9              # RMSProp decay of the squared-gradient average
    beta1: float = 0.9            # Adam first-moment decay
    beta2: float = 0.999          # Adam second-moment decay
    clip: float = 5.0             # element-wise gradient clip to [-clip, clip] before each update
    max_loss_ratio: float = 100.0  # stop as diverged when a loss exceeds this many times seq_length*log(K),
                                  # i.e. far worse than guessing uniformly (non-finite losses always stop)
    n_updates: int = 100_000      # total updates (ignored when epochs is set)
    epochs: int | None = None     # train for this many passes over the text instead
    time_budget: float | None = None  # stop after this many seconds of training (None: no limit)
    seed: int = 0                 # seeds the initial weights and the sampling RNG
    # --- bookkeeping ---
    log_every: int = 100          # updates between recorded (step, loss, smooth loss) points
    sample_every: int = 10_000    # updates between "text evolution" samples
    sample_length: int = 200      # characters per evolution sample
    checkpoint_dir: str | None = None  # run directory for `last.npz`/`best.npz` (None: no checkpoints)
    checkpoint_every: int = 5_000      # updates between `last` checkpoints
    resume: str | None = None     # checkpoint file or run directory to continue from

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first value that cannot work."""
        def need(ok, what):
            if not ok:
                raise ConfigError(what)
        need(_is_int(self.m) and self.m >= 1, f"m (hidden units) must be an integer >= 1, got {self.m!r}")
        need(_is_int(self.seq_length) and self.seq_length >= 1,
             f"seq_length must be an integer >= 1, got {self.seq_length!r}")
        need(_finite(self.eta) and self.eta > 0, f"eta (learning rate) must be > 0, got {self.eta!r}")
        need(_finite(self.sigma) and self.sigma > 0, f"sigma must be > 0, got {self.sigma!r}")
        need(_finite(self.clip) and self.clip > 0, f"clip must be > 0, got {self.clip!r}")
        need(_finite(self.eps) and self.eps > 0, f"eps must be > 0, got {self.eps!r}")
        need(_finite(self.max_loss_ratio) and self.max_loss_ratio > 1,
             f"max_loss_ratio must be > 1, got {self.max_loss_ratio!r}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("rho", "beta1", "beta2"):
            v = getattr(self, name)
            need(_finite(v) and 0 <= v < 1, f"{name} must be in [0, 1), got {v!r}")
        need(_is_int(self.n_updates) and self.n_updates >= 1, f"updates must be an integer >= 1, got {self.n_updates!r}")
        need(self.epochs is None or (_is_int(self.epochs) and self.epochs >= 1),
             f"epochs must be an integer >= 1, got {self.epochs!r}")
        need(self.time_budget is None or (_finite(self.time_budget) and self.time_budget > 0),
             f"time_budget must be > 0 seconds, got {self.time_budget!r}")
        need(_finite(self.val_fraction) and 0 <= self.val_fraction < 1,
             f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("log_every", "sample_every", "checkpoint_every", "val_every"):
            v = getattr(self, name)
            need(_is_int(v) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(_is_int(self.sample_length) and self.sample_length >= 0,
             f"sample_length must be an integer >= 0, got {self.sample_length!r}")
        need(_is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from to_dict(); unknown keys are an error, missing keys take defaults."""
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)

    def model_dict(self) -> dict:
        """The fields that decide the trajectory of a run (not bookkeeping)."""
        skip = {"checkpoint_dir", "checkpoint_every", "resume", "log_every", "time_budget"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def describe(self) -> str:
        """One line per field, for printing when training starts."""
        return "\n".join(f"  {k:<17}{v!r}" for k, v in self.to_dict().items())


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


