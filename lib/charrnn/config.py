"""Training configuration: one dataclass, printed at start and stored in every checkpoint."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

OPTIMIZERS = ("adagrad", "rmsprop", "adam")
DTYPES = ("float64", "float32")
CELLS = ("rnn", "gru", "lstm", "gru2")   # the registry's names (charrnn.models.CELLS)
OBJECTIVES = ("sum", "mean")
SCHEDULES = ("constant", "cosine", "linear", "step")
DECAYS = ("cosine", "linear")    # the schedules that fall over the whole run, so follow its length
INITS = ("normal", "orthogonal")    # the initial weights (charrnn.models.initial_params)


class ConfigError(ValueError):
    """A configuration value that cannot work."""


# What each setting is for, in one place: each TrainConfig field's metadata, which the rest of the package
# reads through TrainConfig.names(...) instead of keeping lists of its own.
# - role: the part of a run it belongs to (ROLES);
# - keys_run: whether a finished run with another value is another run (charrnn.report.runs trains it afresh);
# - on_resume: "fixed" (a resumed run must keep it, or the resume is refused) or "free" (a resume may change it).
MODEL, DATA, OPTIMISATION, LENGTH, MEASURE, BOOKKEEPING = ("model", "data", "optimisation", "length", "measurement",
                                                            "bookkeeping")
ROLES = (MODEL, DATA, OPTIMISATION, LENGTH, MEASURE, BOOKKEEPING)


def _setting(default, role: str, *, keys_run: bool = True, on_resume: str = "fixed"):
    return dataclasses.field(default=default, metadata={"role": role, "keys_run": keys_run, "on_resume": on_resume})


@dataclass(frozen=True)
class TrainConfig:
    # --- model ---
    cell: str = _setting("rnn", MODEL)  # "rnn" (the assignment's vanilla RNN), "gru", "lstm" or "gru2" (two GRU layers)
    m: int = _setting(100, MODEL)  # hidden units
    # std of the initial weights (biases start at zero; an LSTM's forget gate at 1)
    sigma: float = _setting(0.01, MODEL)
    # "normal": every weight N(0, sigma^2) (the assignment's); "orthogonal": the recurrent matrices' (W, and W2 of
    # gru2) gate blocks (m, m) random orthogonal, the other weights N(0, sigma^2)
    init: str = _setting("normal", MODEL)
    dtype: str = _setting("float64", MODEL)  # "float64" (exact) or "float32" (faster, for long runs)
    # --- data ---
    seq_length: int = _setting(25, DATA)  # T: characters per stream per update (truncated BPTT length)
    batch_size: int = _setting(1, DATA)  # B: parallel streams, each a contiguous piece of the text with its own state
    # held-out tail of the text for validation (0 keeps the assignment's run exact)
    val_fraction: float = _setting(0.0, DATA)
    # updates between validation measurements (when val_fraction > 0)
    val_every: int = _setting(5_000, MEASURE, on_resume="free")
    # read the held-out text as this many pieces side by side (1: in order, exact)
    val_streams: int = _setting(1, MEASURE, on_resume="free")
    # --- optimisation ---
    optimizer: str = _setting("adagrad", OPTIMISATION)  # "adagrad" (the assignment's), "rmsprop" or "adam"
    eta: float = _setting(0.1, OPTIMISATION)  # learning rate
    eps: float = _setting(1e-8, OPTIMISATION)  # AdaGrad/RMSProp/Adam epsilon
    rho: float = _setting(0.9, OPTIMISATION)  # RMSProp decay of the squared-gradient average
    beta1: float = _setting(0.9, OPTIMISATION)  # Adam first-moment decay
    beta2: float = _setting(0.999, OPTIMISATION)  # Adam second-moment decay
    clip: float = _setting(5.0, OPTIMISATION)  # element-wise gradient clip to [-clip, clip] before each update
    # first rescale the whole gradient to at most this L2 norm (None: never)
    clip_norm: float | None = _setting(None, OPTIMISATION)
    # the loss each update minimises: "sum" over a sequence's T characters, averaged over the B streams (the
    # assignment's), or "mean" per character (the gradient divided by T; the logged loss stays per sequence either
    # way)
    objective: str = _setting("sum", OPTIMISATION)
    # learning rate: "constant", "cosine" (from eta down to final_eta * eta at the end of the run or of time_budget,
    # along half a cosine), "linear" (the same fall along a straight line) or "step" (times decay_rate every
    # decay_every)
    schedule: str = _setting("constant", OPTIMISATION)
    warmup: int = _setting(0, OPTIMISATION)  # updates of linear warm-up from 0 to eta, before the schedule
    final_eta: float = _setting(0.1, OPTIMISATION)  # the cosine and linear schedules' last rate, a fraction of eta
    decay_every: int = _setting(10_000, OPTIMISATION)  # the step schedule's interval, in updates
    decay_rate: float = _setting(0.5, OPTIMISATION)  # the step schedule's factor
    # during training, zero each entry of the hidden state the output layer reads with this probability (and scale
    # the rest); not at the B = 1 vanilla RNN
    dropout: float = _setting(0.0, OPTIMISATION)
    # after each step the weight matrices (U, W, V, ...) are multiplied by 1 - eta * this (decoupled, as AdamW;
    # biases are not decayed); 0: none
    weight_decay: float = _setting(0.0, OPTIMISATION)
    # keep an exponential moving average of the parameters, E = ema * E + (1 - ema) * theta after every step
    # (from the initial parameters); the held-out loss is then measured on E, and the best held-out model
    # (best_val.npz) is E. The training loss, `best` and `last`'s parameters stay the trained ones. None: off
    ema: float | None = _setting(None, OPTIMISATION)
    # per update and stream, reset the carried state to zeros with this probability (0: only at a new epoch, the
    # assignment's)
    reset_prob: float = _setting(0.0, OPTIMISATION)
    # stop as diverged when a loss exceeds this many times seq_length*log(K), i.e. far worse than guessing uniformly
    # (non-finite losses always stop)
    max_loss_ratio: float = _setting(100.0, OPTIMISATION)
    # the spike guard (charrnn.guard): an update whose loss exceeds this many times its recent level (or its
    # gradient norm spike_norm times) is refused, a recent copy of the parameters and optimiser state put back, and
    # training goes on (None: off, the assignment's)
    spike_guard: float | None = _setting(None, OPTIMISATION)
    # the guard's limit on the gradient norm, a multiple of its recent level
    spike_norm: float = _setting(5.0, OPTIMISATION)
    # each recovery multiplies the learning rate by this for the rest of the run (1: only skip the batch)
    spike_eta: float = _setting(0.5, OPTIMISATION)
    # updates between the guard's copies (the older of the last two is put back)
    spike_every: int = _setting(100, OPTIMISATION)
    # --- the run's length, and its seed ---
    n_updates: int = _setting(100_000, LENGTH, on_resume="free")  # total updates (ignored when epochs is set)
    epochs: int | None = _setting(None, LENGTH, on_resume="free")  # train for this many passes over the text instead
    # stop after this many seconds of training (None: no limit)
    time_budget: float | None = _setting(None, LENGTH, on_resume="free")
    seed: int = _setting(0, MODEL)  # seeds the initial weights and the sampling RNG
    # --- bookkeeping ---
    # updates between recorded (step, loss, smooth loss) points
    log_every: int = _setting(100, BOOKKEEPING, keys_run=False, on_resume="free")
    sample_every: int = _setting(10_000, BOOKKEEPING, on_resume="free")  # updates between "text evolution" samples
    sample_length: int = _setting(200, BOOKKEEPING, on_resume="free")  # characters per evolution sample
    # run directory for `last.npz`/`best.npz` (None: no checkpoints)
    checkpoint_dir: str | None = _setting(None, BOOKKEEPING, keys_run=False, on_resume="free")
    # updates between `last` checkpoints
    checkpoint_every: int = _setting(5_000, BOOKKEEPING, keys_run=False, on_resume="free")
    # checkpoint file or run directory to continue from
    resume: str | None = _setting(None, BOOKKEEPING, keys_run=False, on_resume="free")

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
        need(self.spike_guard is None or (_finite(self.spike_guard) and self.spike_guard > 1),
             f"spike_guard must be > 1 (a multiple of the recent loss), got {self.spike_guard!r}")
        need(_finite(self.spike_eta) and 0 < self.spike_eta <= 1, f"spike_eta must be in (0, 1], got {self.spike_eta!r}")
        need(_finite(self.spike_norm) and self.spike_norm > 1,
             f"spike_norm must be > 1 (a multiple of the recent gradient norm), got {self.spike_norm!r}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        need(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        need(self.cell in CELLS, f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        need(self.objective in OBJECTIVES, f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        need(_is_int(self.batch_size) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        need(self.clip_norm is None or (_finite(self.clip_norm) and self.clip_norm > 0),
             f"clip_norm must be > 0, got {self.clip_norm!r}")
        need(_finite(self.reset_prob) and 0 <= self.reset_prob <= 1,
             f"reset_prob must be in [0, 1], got {self.reset_prob!r}")
        need(_finite(self.dropout) and 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        need(not (self.dropout and self.cell == "rnn" and self.batch_size == 1),
             "dropout needs batch_size > 1 or a gated cell (the assignment's single-stream loop has none)")
        need(_finite(self.weight_decay) and self.weight_decay >= 0,
             f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(self.ema is None or (_finite(self.ema) and 0 < self.ema < 1),
             f"ema (the parameters' average's decay) must be in (0, 1), got {self.ema!r}")
        need(_finite(self.final_eta) and 0 <= self.final_eta <= 1, f"final_eta must be in [0, 1], got {self.final_eta!r}")
        need(_finite(self.decay_rate) and 0 < self.decay_rate <= 1,
             f"decay_rate must be in (0, 1], got {self.decay_rate!r}")
        need(_is_int(self.warmup) and self.warmup >= 0, f"warmup must be an integer >= 0, got {self.warmup!r}")
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
        for name in ("log_every", "sample_every", "checkpoint_every", "val_every", "decay_every", "val_streams",
                     "spike_every"):
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

    @classmethod
    def names(cls, **meta) -> tuple[str, ...]:
        """The fields whose metadata match, in order: names(on_resume="fixed"), names(keys_run=False), ..."""
        return tuple(f.name for f in dataclasses.fields(cls) if all(f.metadata[k] == v for k, v in meta.items()))

    def describe(self) -> str:
        """One line per field, for printing when training starts."""
        return "\n".join(f"  {k:<17}{v!r}" for k, v in self.to_dict().items())

    def eta_at(self, step: int, progress: float) -> float:
        """The learning rate of update step + 1 (step updates done); progress in [0, 1] is how far the run is
        (the larger of its share of the updates and of the time budget), for the cosine and linear schedules."""
        eta = self.eta
        if self.schedule == "cosine":
            eta *= self.final_eta + (1 - self.final_eta) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        elif self.schedule == "linear":
            eta *= self.final_eta + (1 - self.final_eta) * (1 - min(progress, 1.0))
        elif self.schedule == "step":
            eta *= self.decay_rate ** (step // self.decay_every)
        if step < self.warmup:
            eta *= (step + 1) / self.warmup
        return eta


# Named settings (`python -m charrnn train --preset NAME`); options given on the command line override them.
PRESETS = {
    # The best settings of the report's "best model in a fixed time" (notebook 07): benchmarks/screen.py trains
    # each candidate for the updates its speed makes in 180 s on this project's 2-core machine, under 3 seeds,
    # and the setting with the best worst seed wins (the figures are in benchmarks/screening.json and the
    # report). Two stacked GRU layers of 256 won: 1.329-1.332 held out in 2,500 updates, against 1.340-1.343
    # for one layer of 384 with dropout 0.1 and 1.337-1.341 for one of 512; dropout on the two layers cost
    # more in speed than it gave (1.340-1.346). The spike guard costs nothing where nothing spikes and
    # rescues a run that does. An average of the parameters (ema 0.98, the held-out loss read from it) lowered
    # every seed by 0.002-0.004 on a slower machine (1.348-1.350 against 1.351-1.354, 1,420 updates). A linear
    # fall of the learning rate to the same final rate instead of the cosine ended at 1.347-1.348 against the
    # cosine's 1.348-1.350 (another machine, 1,420 updates each): a worst seed better by 0.001.
    "budget": dict(cell="gru2", m=256, batch_size=32, seq_length=64, optimizer="adam", eta=1e-2,
                   schedule="linear", warmup=100, final_eta=0.05, clip_norm=5.0, objective="mean",
                   dtype="float32", sigma=0.05, val_streams=32, val_every=500, sample_every=2_000,
                   n_updates=1_000_000, spike_guard=2.0, ema=0.98),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


