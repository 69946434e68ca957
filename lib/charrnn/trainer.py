"""The training loop: the assignment's exact semantics, and mini-batches of parallel streams.

The assignment (one stream, the defaults):
- e starts at 0; X = ids[e : e+T], Y = ids[e+1 : e+T+1]; e += T after each update.
- The state (hprev) starts at zeros and is carried over; when fewer than T+1
  characters remain, e = 0 and the state = 0 again: a new epoch.
- smooth_loss starts at the first loss, then 0.999 * smooth_loss + 0.001 * loss.
- Before the first update and every sample_every updates, a sample of
  sample_length characters is drawn from the state, fed the current input X[0].
- Gradients are clipped element-wise to [-clip, clip], then the optimiser steps.
- The best model is the parameters whose loss gave the lowest smooth loss
  (taken before the update that loss drives), kept with the state and the
  input character that update was fed: a model's state travels with it, so it
  can be sampled from where it was trained (best.npz).

With B streams (batch_size, as char-rnn's loader): the training text is cut
into B contiguous pieces of equal length, read side by side, each carrying
its own state; X and Y are (B, T) and the rules above hold per piece. The loss
of an update is the mean over the streams of each sequence's summed loss, so
at B = 1 it is exactly the assignment's. objective="mean" minimises the loss
per character instead, which divides the gradient by T; the loss, smooth loss
and best smooth loss that the History records stay in the unit above (nats
per sequence of T characters) with either objective, so every run's figures
read alike (divide by seq_length for nats per character).
Beyond the assignment: clip_norm, a learning-rate schedule, ema (an average of the parameters that the
held-out loss is measured on), and reset_prob,
which resets a stream's state to zeros at random so the model also learns to
start from zeros.

train() returns a History; printing and progress bars only view it.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .corpus import Corpus, CorpusError
from .fileio import check_writable_dir, remove_stale_temporaries, write_json_atomic
from .guard import Guard
from .models import char_losses, get_cell, initial_params, mean_loss_per_char, zero_state
from .models import output as output_layer
from .optim import EMA_KEY, STEPS, ema_step_, init_state, state_keys
from .sampling import Model, sample
from .vocab import Vocabulary


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite, or exploded."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during training; a checkpoint was saved when possible."""

    def __init__(self, message, signum, checkpoint=None):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


@dataclass
class History:
    """What a run produced. Lists are aligned: steps[i] goes with loss[i] and smooth_loss[i]."""
    config: dict
    vocab: list
    steps: list = field(default_factory=list)         # update counts at the logged points
    loss: list = field(default_factory=list)          # the loss of the update that ended there
    smooth_loss: list = field(default_factory=list)   # smooth loss there
    val_steps: list = field(default_factory=list)     # update counts where validation was measured
    val_loss: list = field(default_factory=list)      # held-out loss, nats per character
    val_seconds: list = field(default_factory=list)   # seconds of training at those points
    samples: list = field(default_factory=list)       # {"step", "smooth_loss", "text", "loss": nats per char}
    epoch_steps: list = field(default_factory=list)   # update counts at which epochs 2, 3, ... began
    best_smooth_loss: float | None = None
    best_step: int | None = None
    best_val_loss: float | None = None                # the lowest held-out loss measured, and where
    best_val_step: int | None = None
    spikes: list | None = None                        # the spike guard's events (None when it is off)
    step: int = 0                                     # updates done
    elapsed: float = 0.0                              # seconds spent training (all sessions)
    updates_per_second: float = 0.0                   # over this call's updates
    stopped: str = ""                                 # "finished" or "time budget"
    corpus_sha256: str | None = None
    # arrays, not JSON: the parameters and the states they were trained in
    params: dict | None = None                        # final parameters
    best_params: dict | None = None                   # parameters with the lowest smooth loss
    state: np.ndarray | None = None                   # (B, S) the state after the last update
    state_input: np.ndarray | None = None             # (B,) the characters that follow it in the text
    best_state: np.ndarray | None = None              # (B, S) the state fed to the best update
    best_state_input: np.ndarray | None = None        # (B,) its input characters X[:, 0]
    best_val_params: dict | None = None               # parameters with the lowest held-out loss
    best_val_state: np.ndarray | None = None          # (B, S) the state they had reached, and
    best_val_state_input: np.ndarray | None = None    # (B,) the characters that came next

    JSON_FIELDS = ("config", "vocab", "steps", "loss", "smooth_loss", "val_steps", "val_loss", "val_seconds",
                   "samples", "epoch_steps", "best_smooth_loss", "best_step", "best_val_loss", "best_val_step",
                   "spikes", "step", "elapsed", "updates_per_second", "stopped", "corpus_sha256")

    def to_json(self) -> dict:
        """The JSON fields; `spikes` only when the spike guard is on."""
        return {k: getattr(self, k) for k in self.JSON_FIELDS if not (k == "spikes" and self.spikes is None)}

    @classmethod
    def from_json(cls, d: dict, **arrays) -> "History":
        return cls(**{k: d[k] for k in cls.JSON_FIELDS if k in d}, **arrays)

    def model(self, best: bool = True) -> Model:
        """The best (or final) parameters with the state they were trained in, ready to sample."""
        params, states, inputs = ((self.best_params, self.best_state, self.best_state_input) if best else
                                  (self.params, self.state, self.state_input))
        return Model.from_arrays(params, Vocabulary.from_json(self.vocab), self.config.get("cell", "rnn"), states, inputs)

    def best_val_model(self) -> Model:
        """The parameters with the lowest held-out loss and the state they had reached (a run with
        val_fraction > 0)."""
        if self.best_val_params is None:
            raise ValueError("this run measured no held-out loss (val_fraction = 0), so it has no best held-out model")
        return Model.from_arrays(self.best_val_params, Vocabulary.from_json(self.vocab), self.config.get("cell", "rnn"),
                                 self.best_val_state, self.best_val_state_input)


@dataclass
class TrainState:
    """Where a run is: with the parameters and the optimiser's arrays, everything a checkpoint
    stores to resume the run exactly. Saved and restored whole."""
    state: np.ndarray                     # (B, S) the model state carried into the next update
    rng: np.random.Generator              # the samples' stream
    reset_rng: np.random.Generator        # the stream of reset_prob's and dropout's draws (untouched when both are 0)
    step: int = 0                         # updates done
    position: int = 0                     # e: where every stream's next sequence starts in its piece
    epoch: int = 0                        # completed passes over the text
    smooth_loss: float | None = None
    best_smooth_loss: float = math.inf
    best_step: int | None = None
    best_state: np.ndarray | None = None  # (B, S) the state fed to the best update
    best_input: np.ndarray | None = None  # (B,) the input characters X[:, 0] of that update
    best_val_loss: float = math.inf       # the lowest held-out loss so far, after best_val_step updates,
    best_val_step: int | None = None
    best_val_params: dict | None = None   # with those parameters (copies),
    best_val_state: np.ndarray | None = None    # (B, S) the state they had reached and
    best_val_input: np.ndarray | None = None    # (B,) the characters each stream read next
    guard: Guard | None = None            # the spike guard (config.spike_guard), None when off
    elapsed: float = 0.0                  # seconds of training before this session

    @classmethod
    def fresh(cls, config: TrainConfig, state: np.ndarray) -> "TrainState":
        return cls(state=state, rng=np.random.default_rng([config.seed, 1]),
                   reset_rng=np.random.default_rng([config.seed, 2]), guard=Guard.from_config(config))

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, dtype) -> "TrainState":
        rng, reset_rng = np.random.default_rng(), np.random.default_rng([ck.config.seed, 2])
        rng.bit_generator.state = ck.rng_state
        if ck.reset_rng_state is not None:
            reset_rng.bit_generator.state = ck.reset_rng_state
        guard = Guard.from_config(ck.config)
        if guard is not None:
            n = sum(v.size for v in ck.params.values())
            guard.restore(ck.guard, ck.guard_arrays, n, state_keys(ck.config.optimizer, ck.config.ema), dtype)
        return cls(state=ck.state.astype(dtype), rng=rng, reset_rng=reset_rng, step=ck.step,
                   position=ck.position, epoch=ck.epoch, smooth_loss=ck.smooth_loss,
                   best_smooth_loss=math.inf if ck.best_smooth_loss is None else ck.best_smooth_loss,
                   best_step=ck.best_step, best_state=ck.best_state, best_input=ck.best_state_input,
                   best_val_loss=math.inf if ck.best_val_loss is None else ck.best_val_loss,
                   best_val_step=ck.best_val_step, best_val_params=ck.best_val_params,
                   best_val_state=ck.best_val_state, best_val_input=ck.best_val_state_input, guard=guard,
                   elapsed=ck.elapsed)

    def standing(self) -> dict:
        """The Checkpoint fields that say where the run stands (in every file of the run)."""
        return dict(step=self.step, position=self.position, epoch=self.epoch, smooth_loss=self.smooth_loss,
                    best_smooth_loss=None if self.best_smooth_loss == math.inf else self.best_smooth_loss,
                    best_step=self.best_step,
                    best_val_loss=None if self.best_val_loss == math.inf else self.best_val_loss,
                    best_val_step=self.best_val_step)

    def resume_fields(self) -> dict:
        """The Checkpoint fields that only `last` holds: the rest of what resuming needs."""
        guard, guard_arrays = self.guard.to_checkpoint() if self.guard is not None else (None, {})
        return dict(state=self.state, rng_state=self.rng.bit_generator.state,
                    reset_rng_state=self.reset_rng.bit_generator.state,
                    best_state=self.best_state, best_state_input=self.best_input,
                    best_val_params=self.best_val_params, best_val_state=self.best_val_state,
                    best_val_state_input=self.best_val_input, guard=guard, guard_arrays=guard_arrays)


class _Flat:
    """All parameter arrays as views into one flat vector (so clipping and the optimiser are a
    few NumPy calls each), with a gradient buffer of the same layout.

    There are two parameter vectors: the current one (`theta`, viewed by `params`)
    and the best one (`best`). When the current parameters become the best, the
    update writes the new parameters into the other vector and the two swap
    roles, so tracking the best model never copies (a copy is one more pass over
    all parameters, and early in training the best model changes at nearly
    every update).
    """

    def __init__(self, shapes: dict, dtype):
        self.shapes = shapes
        n = sum(math.prod(s) for s in shapes.values())
        self._vectors = (np.empty(n, dtype=dtype), np.empty(n, dtype=dtype))
        self._views = tuple(self.views(v) for v in self._vectors)
        self._cur = 0
        self.grad = np.empty(n, dtype=dtype)
        self.grads = self.views(self.grad)

    def views(self, flat) -> dict:
        """{name: view of flat shaped like that parameter}."""
        out, o = {}, 0
        for k, shape in self.shapes.items():
            size = math.prod(shape)
            out[k] = flat[o:o + size].reshape(shape)
            o += size
        return out

    @property
    def theta(self) -> np.ndarray:
        return self._vectors[self._cur]

    @property
    def best(self) -> np.ndarray:
        return self._vectors[1 - self._cur]

    @property
    def params(self) -> dict:
        return self._views[self._cur]

    def step(self, delta, keep_as_best: bool) -> None:
        """theta -= delta; with keep_as_best, the parameters before the step become the best."""
        theta = self.theta
        if keep_as_best:
            np.subtract(theta, delta, self.best)
            self._cur = 1 - self._cur
        else:
            theta -= delta

    def load(self, params, best=None) -> None:
        """Set the current parameters, and the best ones (a copy of params when None)."""
        for views, source in ((self.params, params), (self._views[1 - self._cur], best or params)):
            for k in self.shapes:
                views[k][...] = source[k]

    def copy(self, flat=None) -> dict:
        """{name: a copy of that parameter} from flat (default: the current parameters)."""
        return {k: v.copy() for k, v in self.views(self.theta if flat is None else flat).items()}


def updates_per_epoch(n_chars: int, seq_length: int) -> int:
    """Sequences in one pass over a piece of n_chars: e = 0, T, 2T, ... while e + T + 1 <= n_chars."""
    return (n_chars - seq_length - 1) // seq_length + 1


def split(ids: np.ndarray, val_fraction: float):
    """(train ids, validation ids): the validation set is the tail of the text."""
    n_val = int(len(ids) * val_fraction)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


def streams(ids: np.ndarray, batch_size: int, seq_length: int) -> np.ndarray:
    """The training text cut into batch_size contiguous pieces of equal length: a (B, P) view.
    At B = 1 the whole text. Raises CorpusError when a piece cannot hold one sequence."""
    piece = len(ids) // batch_size
    if piece < seq_length + 1:
        need = batch_size * (seq_length + 1)
        raise CorpusError(f"the training text has {len(ids)} characters; batch_size={batch_size} streams of "
                          f"seq_length={seq_length} need at least {need}")
    return ids[:batch_size * piece].reshape(batch_size, piece)


def train(text, config: TrainConfig = TrainConfig(), params=None, *, progress: bool = False,
          callback=None) -> History:
    """Train on text (a str or a Corpus) and return the History.

    params: initial parameters (a dict shaped like the cell's init_params), or None for
    initial_params(cell, K, config.m, config.sigma, config.seed, config.dtype, config.init).
    progress: show a tqdm progress bar with smooth loss and updates/s.
    callback: called with a dict for every event: {"event": "sample" | "log" | "val" | "checkpoint", ...}.
    Raises TrainingDiverged when the loss turns non-finite or explodes (the last good checkpoint is
    kept), TrainingInterrupted on Ctrl-C/SIGTERM (after saving a checkpoint when checkpoint_dir is set).
    """
    return _Trainer(text, config, params, callback).run(progress)


class Batches:
    """The training text as B streams side by side, as char-rnn's CharSplitLMMinibatchLoader: each update's
    batch, where the streams go next, the epoch rule, and the resets (zeros at a new epoch, and each stream's
    reset with probability reset_prob). Where the streams are (the position e and the epoch) is kept in
    TrainState, which the checkpoints save.

    pieces: (B, P) character ids; zeros: a function giving the (B, S) state of a new epoch."""

    def __init__(self, pieces: np.ndarray, seq_length: int, zeros, reset_prob: float = 0.0):
        self.pieces, self.T, self.zeros, self.reset_prob = pieces, seq_length, zeros, reset_prob

    def wraps(self, position: int) -> bool:
        """Fewer than T + 1 characters remain from position: the next batch starts a new epoch."""
        return position + self.T + 1 > self.pieces.shape[1]

    def next(self, s: "TrainState", history: "History"):
        """(X, Y, from_zeros) for update s.step + 1: X = pieces[:, e:e+T] (B, T) and Y = pieces[:, e+1:e+T+1].
        When fewer than T + 1 characters remain: a new epoch, e = 0 and every stream's state back to zeros.
        Then, with reset_prob > 0, each stream's state goes back to zeros with that probability."""
        if self.wraps(s.position):
            s.position, s.epoch, s.state = 0, s.epoch + 1, self.zeros()
            history.epoch_steps.append(s.step)
        if self.reset_prob > 0:
            reset = s.reset_rng.random(len(s.state)) < self.reset_prob
            if reset.any():
                s.state = np.where(reset[:, None], s.state.dtype.type(0), s.state)
        e, T = s.position, self.T
        return self.pieces[:, e:e + T], self.pieces[:, e + 1:e + T + 1], e == 0

    def advance(self, s: "TrainState") -> None:
        """After an update: the streams move on by one sequence."""
        s.position += self.T

    def peek(self, s: "TrainState"):
        """(the first stream's next input character, its state (S,)): what update s.step + 1 will read,
        for a sample drawn before it."""
        if self.wraps(s.position):
            return self.pieces[0, 0], self.zeros()[0]
        return self.pieces[0, s.position], s.state[0]

    def next_inputs(self, position: int) -> np.ndarray:
        """(B,) the character each stream reads next: the input that goes with the carried state."""
        return self.pieces[:, min(position, self.pieces.shape[1] - 1)].copy()


class _Trainer:
    """One call of train(): set-up (fresh or resumed), the loop, samples, validation, checkpoints."""

    def __init__(self, text, config: TrainConfig, params, callback):
        config.validate()
        self.config = config
        self.corpus = corpus = text if isinstance(text, Corpus) else Corpus.from_text(text)
        self.vocab, T, B = corpus.vocab, config.seq_length, config.batch_size
        train_ids, self.val_ids = split(corpus.ids, config.val_fraction)
        if len(train_ids) < T + 1:
            raise CorpusError(f"the training text has {len(train_ids)} characters; seq_length={T} needs at least {T + 1}")
        if config.val_fraction > 0 and len(self.val_ids) < 2:
            raise CorpusError(f"val_fraction={config.val_fraction} leaves {len(self.val_ids)} held-out characters; need 2")
        pieces = streams(train_ids, B, T)                       # (B, P)
        self.cell = cell = get_cell(config.cell)
        self.dtype = dtype = np.dtype(config.dtype)
        self.K, self.m = K, m = len(self.vocab), config.m
        self.batches = Batches(pieces, T, lambda: zero_state(cell, B, m, dtype), config.reset_prob)
        self.flat = _Flat(cell.param_shapes(K, m), dtype)
        self.target = config.n_updates if config.epochs is None else \
            config.epochs * updates_per_epoch(pieces.shape[1], T)
        self.opt_state = init_state(config.optimizer, self.flat.theta.size, dtype, config.ema)
        self.history = History(config=config.to_dict(), vocab=self.vocab.to_json(), corpus_sha256=corpus.sha256)
        if config.resume:
            ck = _checked_resume(config, corpus)
            self.flat.load(ck.params, ck.best_params)
            for k in state_keys(config.optimizer, config.ema):
                self.opt_state[k][...] = ck.opt_state[k]
            self.s = TrainState.from_checkpoint(ck, dtype)
            saved = {k: v for k, v in ck.history.items() if k in History.JSON_FIELDS}
            self.history = History.from_json({**saved, "config": config.to_dict(), "corpus_sha256": corpus.sha256})
        else:
            self.flat.load(initial_params(cell, K, m, config.sigma, config.seed, dtype, config.init) if params is None
                           else _checked_params(params, cell.param_shapes(K, m)))
            if config.ema:
                self.opt_state[EMA_KEY][...] = self.flat.theta   # the parameters' average starts at theta_0
            self.s = TrainState.fresh(config, zero_state(cell, B, m, dtype))
        self.guard = self.s.guard
        if self.guard is not None:
            self.history.spikes = self.guard.spikes = self.history.spikes or []
            if not config.resume:
                self.guard.keep(0, self.flat.theta, self.opt_state)   # the first copy: the initial parameters
        # only now, with every input checked, create the run directory: a refused run writes nothing
        self.fresh_dir = bool(config.checkpoint_dir) and not Path(config.checkpoint_dir).exists()
        self.run_dir = check_writable_dir(config.checkpoint_dir) if config.checkpoint_dir else None
        if self.run_dir is not None:
            remove_stale_temporaries(self.run_dir)               # left by a writer killed before its rename
        self.best_saved_step = self.s.best_step
        self.emit = callback or (lambda ev: None)

    # --- the loop ---
    def run(self, progress: bool) -> History:
        config, s, history = self.config, self.s, self.history
        self._prepare()
        start_step, stop = s.step, _SignalFlag()
        self.bar = _progress_bar(self.target, s.step, progress)
        try:
            with stop:
                while s.step < self.target:
                    X, Y, from_zeros = self.batches.next(s, history)   # a new epoch restarts every stream at zeros
                    if self._sample_due():
                        self._sample(X[0, 0], s.state[0])
                    loss = self._update(X, Y, from_zeros)
                    s.step += 1
                    self.batches.advance(s)
                    if s.step % config.log_every == 0 or s.step == 1:
                        self._log(loss)
                    if config.val_fraction > 0 and s.step % config.val_every == 0:
                        self._validate()
                    if s.step % config.checkpoint_every == 0 and s.step < self.target:
                        self._checkpoint()
                    if stop.signum is not None:
                        self._stop(stop.signum)
                    if config.time_budget is not None and self.elapsed() >= config.time_budget:
                        history.stopped = "time budget"
                        break
                else:
                    history.stopped = "finished"
            if self._sample_due():                       # the last update landed on a sampling step
                self._sample(*self.batches.peek(s))
            if config.val_fraction > 0 and (not history.val_steps or history.val_steps[-1] != s.step):
                self._validate()
            history.updates_per_second = (s.step - start_step) / max(self.elapsed() - s.elapsed, 1e-9)
            self._checkpoint(finished=True)
        except TrainingDiverged:
            if self.fresh_dir and not any(self.run_dir.iterdir()):
                self.run_dir.rmdir()                     # diverged before its first checkpoint: leave nothing
            raise
        finally:
            if self.bar is not None:
                self.bar.update(s.step - self.bar.n)
                self.bar.close()
        self._fill_history()
        history.params, history.best_params = self.flat.copy(), self.flat.copy(self.flat.best)
        return history

    def _prepare(self):
        """The loop's constants and the buffers every update reuses."""
        config, B, T = self.config, self.config.batch_size, self.config.seq_length
        self.step_fn = STEPS[config.optimizer]
        self.loss_limit = config.max_loss_ratio * T * math.log(max(self.K, 2))
        self.hyper = dict(eta=config.eta, eps=config.eps, clip=config.clip, rho=config.rho, beta1=config.beta1,
                          beta2=config.beta2)
        self.scheduled = config.schedule != "constant" or config.warmup > 0 or self.guard is not None
        self.scale = 1.0 / (B * T) if config.objective == "mean" else 1.0 / B   # d(update's loss)/d(summed loss)
        self.work = np.empty_like(self.flat.theta)       # the optimiser's step
        self.ws = self.cell.workspace(B, T, self.K, self.m, self.dtype)   # forward/backward buffers
        if config.dropout:
            output_layer.dropout_buffers(self.ws, B * T, self.m, self.dtype)
        self.t0, self.validating = time.perf_counter(), 0.0

    def _update(self, X, Y, from_zeros: bool) -> float:
        """One update on the batch X, Y (B, T) from the carried state: forward, backward, then (unless the
        spike guard refuses it) clipping, the smooth loss and the best model, the optimiser's step. The
        state moves on either way. Returns the update's loss (per sequence, averaged over the streams)."""
        config, s, flat, guard, hyper = self.config, self.s, self.flat, self.guard, self.hyper
        if self.scheduled:
            hyper["eta"] = config.eta_at(s.step, self._progress()) * (guard.eta_scale if guard else 1.0)
        if config.dropout:
            self._dropout(self.ws.keep)
        loss, cache = self.cell.forward_batch(flat.params, X, Y, s.state, self.ws)
        if config.batch_size > 1:
            loss /= config.batch_size                    # per stream: a sequence's summed loss, as at B = 1
        if guard is None and (not math.isfinite(loss) or loss > self.loss_limit):
            raise self._diverged(loss, self.loss_limit)
        state_in = s.state
        _, s.state = self.cell.backward_batch(flat.params, cache, out=flat.grads)   # also past a refused batch
        if self.scale != 1.0:
            flat.grad *= self.scale
        norm = None if config.clip_norm is None and guard is None else math.sqrt(float(np.dot(flat.grad, flat.grad)))
        if guard is not None and guard.trips(s.step + 1, loss, norm, self.loss_limit, from_zeros=from_zeros):
            self._recover(loss, norm, hyper["eta"], self.loss_limit)   # nothing applied
            return loss
        if config.clip_norm is not None and norm > config.clip_norm:
            flat.grad *= config.clip_norm / norm
        s.smooth_loss = loss if s.smooth_loss is None else 0.999 * s.smooth_loss + 0.001 * loss
        improved = s.smooth_loss < s.best_smooth_loss    # then the parameters that produced it are the best
        if improved:
            s.best_smooth_loss, s.best_step = s.smooth_loss, s.step
            s.best_state, s.best_input = state_in, X[:, 0].copy()
        self.step_fn(flat.grad, self.opt_state, self.work, t=s.step + 1, **hyper)   # clips flat.grad in place
        flat.step(self.work, keep_as_best=improved)
        if config.weight_decay:                          # decoupled (AdamW): the weight matrices shrink by eta * wd
            for v in flat.params.values():
                if v.ndim == 2:
                    v *= 1.0 - hyper["eta"] * config.weight_decay
        if config.ema:
            ema_step_(self.opt_state[EMA_KEY], flat.theta, config.ema, self.work)
        if guard is not None:
            guard.accept(loss, norm)
            guard.keep(s.step + 1, flat.theta, self.opt_state)
        return loss

    def _sample_due(self) -> bool:
        s, config = self.s, self.config
        return s.step % config.sample_every == 0 and config.sample_length > 0 and not _sampled_at(self.history, s.step)

    def _stop(self, signum):
        """Ctrl-C or SIGTERM arrived during the update just made: save `last` and say where it is."""
        path = self._checkpoint()
        raise TrainingInterrupted(f"interrupted by {signal.Signals(signum).name} after {self.s.step} updates; "
                                  + (f"checkpoint saved to {path}" if path else "no checkpoint directory was set"),
                                  signum, path)

    # --- pieces of the loop ---
    def elapsed(self) -> float:
        """Seconds of training, all sessions: validation is not counted, so a time budget and the held-out
        loss against seconds are both about training."""
        return self.s.elapsed + time.perf_counter() - self.t0 - self.validating

    def _progress(self) -> float:
        """How far the run is, in [0, 1]: its share of the updates or of the time budget, whichever is larger."""
        done = self.s.step / self.target
        if self.config.time_budget is not None:
            done = max(done, self.elapsed() / self.config.time_budget)
        return done

    def _log(self, loss):
        s, history, bar = self.s, self.history, self.bar
        history.steps.append(s.step)
        history.loss.append(loss)
        history.smooth_loss.append(s.smooth_loss)
        self.emit({"event": "log", "step": s.step, "loss": loss, "smooth_loss": s.smooth_loss})
        if bar is not None:
            bar.update(s.step - bar.n)
            post = {"smooth_loss": f"{s.smooth_loss:.2f}"} if s.smooth_loss is not None else {}
            if history.spikes is not None:
                post["spikes"] = len(history.spikes)
            bar.set_postfix(post, refresh=False)

    def _recover(self, loss, norm, eta, limit):
        """The spike guard refuses this update: the batch is skipped, or the parameters and optimiser state
        go back to a copy and the learning rate drops; recorded in history.spikes and announced as a
        "spike" event."""
        s, guard = self.s, self.guard
        if not guard.can_recover:
            if not math.isfinite(loss) or loss > limit:
                raise self._diverged(loss, limit, f"; the spike guard had recovered {guard.strikes} times in a row "
                                                  f"without getting past it")
            raise TrainingDiverged(f"training diverged: the spike guard refused {guard.strikes + 1} updates in a "
                                   f"row up to update {s.step + 1} (loss {loss:.4g}, gradient norm {norm:.4g}; "
                                   f"recent levels {guard.level:.4g} and {guard.norm_level:.4g}) (eta={self.config.eta})")
        event = guard.recover(s.step + 1, loss, norm, eta, self.flat.theta, self.opt_state)
        self.emit({"event": "spike", **event})
        if self.bar is not None:
            self.bar.set_postfix(smooth_loss=f"{s.smooth_loss:.2f}", spikes=len(guard.spikes), refresh=True)

    def _dropout(self, keep):
        """Fill keep (N, m) with dropout's multipliers: 1/q with probability q = 1 - dropout, else 0, from
        16 random bits per entry of the reset stream (so q is a multiple of 1/65536)."""
        below = round((1.0 - self.config.dropout) * 65536)
        bits = np.frombuffer(self.s.reset_rng.bytes(2 * keep.size), np.uint16).reshape(keep.shape)
        np.less(bits, below, out=keep, casting="unsafe")
        keep *= 65536 / below

    def _sample(self, x0, h):
        """An evolution sample: from state h (S,), fed the current input x0, as the trainer sees the text;
        recorded with the model's own mean -log p per character of what it wrote (how sure it was)."""
        s, history = self.s, self.history
        lead = self.vocab.chars[int(x0)]
        text = sample(self.flat.params, self.vocab, self.config.sample_length, h0=h, prime=lead, seed=s.rng,
                      cell=self.config.cell)
        loss = float(char_losses(self.cell, self.flat.params, self.vocab.encode(lead + text), h).mean())
        item = {"step": s.step, "smooth_loss": s.smooth_loss, "text": text, "loss": loss}
        history.samples.append(item)
        self.emit({"event": "sample", **item})

    def _validate(self):
        t0 = time.perf_counter()
        measured = self.opt_state[EMA_KEY] if self.config.ema else self.flat.theta   # the average, or theta
        v = mean_loss_per_char(self.cell, self.flat.views(measured), self.val_ids, streams=self.config.val_streams)
        self.validating += time.perf_counter() - t0
        s, history = self.s, self.history
        history.val_steps.append(s.step)
        history.val_loss.append(v)
        history.val_seconds.append(round(self.elapsed(), 3))
        if v < s.best_val_loss:                          # the best held-out model so far, kept with its state
            s.best_val_loss, s.best_val_step = v, s.step
            s.best_val_params = self.flat.copy(measured)
            s.best_val_state, s.best_val_input = s.state, self._state_input()
            self._save_best_val()
        train_loss = None if s.smooth_loss is None else s.smooth_loss / self.config.seq_length
        self.emit({"event": "val", "step": s.step, "val_loss": v, "train_loss": train_loss})

    def _diverged(self, loss, limit, why: str = "") -> TrainingDiverged:
        config, run_dir = self.config, self.run_dir
        last = run_dir / "last.npz" if run_dir and (run_dir / "last.npz").exists() else None
        what = f"became {loss}" if not math.isfinite(loss) else \
            f"exploded to {loss:.4g}" + (f" (over {config.max_loss_ratio:g} x seq_length*log(K) = {limit:.4g})"
                                         if loss > limit else "")
        return TrainingDiverged(f"training diverged: the loss {what} at update {self.s.step + 1} (eta={config.eta})"
                                f"{why}; " + (f"the last good checkpoint is {last}" if last else "no checkpoint was written"))

    def _state_input(self) -> np.ndarray:
        """(B,) the character each stream reads next: the input that goes with the carried state."""
        return self.batches.next_inputs(self.s.position)

    def _fill_history(self):
        s, history = self.s, self.history
        history.best_smooth_loss = None if s.best_smooth_loss == math.inf else s.best_smooth_loss
        history.best_step, history.step, history.elapsed = s.best_step, s.step, self.elapsed()
        history.best_val_loss = None if s.best_val_loss == math.inf else s.best_val_loss
        history.best_val_step = s.best_val_step
        history.state, history.state_input = s.state, self._state_input()
        history.best_state, history.best_state_input = s.best_state, s.best_input
        history.best_val_params, history.best_val_state = s.best_val_params, s.best_val_state
        history.best_val_state_input = s.best_val_input

    def _about(self, finished: bool) -> dict:
        """The Checkpoint fields every file of the run shares: what it is, where it stands, its history."""
        self._fill_history()
        return dict(vocab=self.vocab, config=self.config, corpus_sha256=self.corpus.sha256,
                    corpus_path=self.corpus.path, keep_line_endings=self.corpus.keep_line_endings,
                    history=self.history.to_json(), finished=finished, elapsed=self.history.elapsed,
                    **self.s.standing())

    def _sampling_file(self, name: str, kind: str, params, state, state_input, finished: bool) -> None:
        """Write run_dir/name: one model to sample (params with the state they go with), no training state."""
        save_checkpoint(Checkpoint.for_sampling(kind, params, state, state_input, **self._about(finished)),
                        self.run_dir / name)

    def _save_best_val(self):
        """best_val.npz, written whenever the held-out loss improves (the file a reader samples from)."""
        if self.run_dir is not None:
            s = self.s
            self._sampling_file("best_val.npz", "best_val", s.best_val_params, s.best_val_state, s.best_val_input,
                                finished=False)

    def _checkpoint(self, finished=False):
        """Save `last` (and `best` when it improved since its last save); returns the path of `last`."""
        run_dir, flat, s = self.run_dir, self.flat, self.s
        if run_dir is None:
            return None
        if not (np.isfinite(flat.theta).all() and np.isfinite(flat.best).all()):
            raise TrainingDiverged(    # never overwrite the last good checkpoint with NaN/inf parameters
                f"training diverged: the parameters became non-finite by update {s.step} (eta={self.config.eta}); "
                + (f"the last good checkpoint is {run_dir / 'last.npz'}" if (run_dir / "last.npz").exists()
                   else "no checkpoint was written"))
        about = self._about(finished)
        if s.best_step is not None and s.best_step != self.best_saved_step or finished:
            # `best` is for sampling: the best parameters and the state they were trained in, no training state
            self._sampling_file("best.npz", "best", flat.copy(flat.best), s.best_state, s.best_input, finished)
            self.best_saved_step = s.best_step
        path = save_checkpoint(Checkpoint.last(flat.params, flat.copy(flat.best), self.opt_state, self._state_input(),
                                               **about, **s.resume_fields()), run_dir / "last.npz")
        write_json_atomic(run_dir / "history.json", {**self.history.to_json(), "finished": finished})
        self.emit({"event": "checkpoint", "step": s.step, "path": str(path)})
        return path


def _sampled_at(history: History, step: int) -> bool:
    return bool(history.samples) and history.samples[-1]["step"] == step


def _checked_params(params, shapes: dict):
    for k, shape in shapes.items():
        if k not in params:
            raise ValueError(f"params lacks {k}")
        if np.shape(params[k]) != shape:
            raise ValueError(f"params[{k!r}] has shape {np.shape(params[k])}, expected {shape}")
    return params


def _checked_resume(config: TrainConfig, corpus: Corpus) -> Checkpoint:
    """Load the checkpoint to resume from and refuse one that does not fit this run: another vocabulary or
    corpus, or a setting whose metadata says a resume must keep it (TrainConfig.names(on_resume="fixed"))."""
    ck = load_checkpoint(config.resume)
    if ck.vocab != corpus.vocab:
        extra = sorted(set(corpus.vocab.chars) - set(ck.vocab.chars))
        raise CheckpointError(
            f"cannot resume from {ck.path}: it was trained on a different vocabulary (K={len(ck.vocab)}, "
            f"this corpus has K={len(corpus.vocab)}" + (f", new characters {''.join(extra)!r}" if extra else "") + ")")
    if ck.corpus_sha256 and ck.corpus_sha256 != corpus.sha256:
        raise CheckpointError(f"cannot resume from {ck.path}: it was trained on a different corpus "
                              f"(sha256 {ck.corpus_sha256[:12]}..., this one {corpus.sha256[:12]}...)")
    mine, theirs = config.to_dict(), ck.config.to_dict()
    for k in TrainConfig.names(on_resume="fixed"):
        if mine[k] != theirs[k]:
            raise ConfigError(f"cannot resume from {ck.path}: {k}={mine[k]!r} differs from the checkpoint's {theirs[k]!r}")
    missing = [k for k in state_keys(config.optimizer, config.ema) if k not in ck.opt_state]
    if missing or ck.state is None or ck.rng_state is None:
        raise CheckpointError(f"cannot resume from {ck.path}: it is a `{ck.kind}` checkpoint without training state; "
                              f"resume from last.npz")
    return ck


class _SignalFlag:
    """Within `with`, SIGINT and SIGTERM set .signum instead of stopping at once (main thread only);
    a second signal stops at once."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def _progress_bar(total, initial, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="upd", dynamic_ncols=True, mininterval=0.5)
