"""The training loop, with the assignment's exact semantics.

- e starts at 0; X = ids[e : e+L], Y = ids[e+1 : e+L+1]; e += L after each update.
- hprev starts at zeros and is carried over; when fewer than L+1 characters
  remain, e = 0 and hprev = 0 again: a new epoch.
- smooth_loss starts at the first loss, then 0.999 * smooth_loss + 0.001 * loss.
- Before the first update and every sample_every updates, a sample of
  sample_length characters is drawn from hprev, fed the current input X[0].
- Gradients are clipped element-wise to [-clip, clip], then the optimiser steps.
- The best model is the parameters whose loss gave the lowest smooth loss
  (taken before the update that loss drives).
The loop returns a History; printing and progress bars only view it.
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
from .model import PARAM_NAMES, Workspace, backward, forward, init_params, mean_loss_per_char, param_shapes
from .optim import STATE_KEYS, STEPS, init_state
from .sampling import sample


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


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
    samples: list = field(default_factory=list)       # {"step", "smooth_loss", "text"}
    epoch_steps: list = field(default_factory=list)   # update counts at which epochs 2, 3, ... began
    best_smooth_loss: float | None = None
    best_step: int | None = None
    step: int = 0                                     # updates done
    elapsed: float = 0.0                              # seconds spent training (all sessions)
    updates_per_second: float = 0.0                   # over this call's updates
    stopped: str = ""                                 # "finished" or "time budget"
    corpus_sha256: str | None = None
    params: dict | None = None                        # final parameters
    best_params: dict | None = None                   # parameters with the lowest smooth loss

    JSON_FIELDS = ("config", "vocab", "steps", "loss", "smooth_loss", "val_steps", "val_loss", "samples",
                   "epoch_steps", "best_smooth_loss", "best_step", "step", "elapsed", "updates_per_second",
                   "stopped", "corpus_sha256")

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.JSON_FIELDS}

    @classmethod
    def from_json(cls, d: dict, params=None, best_params=None) -> "History":
        return cls(**{k: d[k] for k in cls.JSON_FIELDS if k in d}, params=params, best_params=best_params)


class _Flat:
    """All five parameter arrays as views into one flat vector (so clipping and the
    optimiser are a few NumPy calls each), with a gradient buffer of the same layout.

    There are two parameter vectors: the current one (`theta`, viewed by `params`)
    and the best one (`best`). When the current parameters become the best, the
    update writes the new parameters into the other vector and the two swap
    roles, so tracking the best model never copies (a copy is one more pass over
    all parameters, and early in training the best model changes at nearly
    every update).
    """

    def __init__(self, K: int, m: int, dtype):
        self.shapes = param_shapes(K, m)
        n = sum(math.prod(s) for s in self.shapes.values())
        self._vectors = (np.empty(n, dtype=dtype), np.empty(n, dtype=dtype))
        self._views = tuple(self.views(v) for v in self._vectors)
        self._cur = 0
        self.grad = np.empty(n, dtype=dtype)
        self.grads = self.views(self.grad)

    def views(self, flat) -> dict:
        """{name: view of flat shaped like that parameter}."""
        out, o = {}, 0
        for k in PARAM_NAMES:
            size = math.prod(self.shapes[k])
            out[k] = flat[o:o + size].reshape(self.shapes[k])
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
            for k in PARAM_NAMES:
                views[k][...] = source[k]

    def copy(self, flat=None) -> dict:
        """{name: a copy of that parameter} from flat (default: the current parameters)."""
        return {k: v.copy() for k, v in self.views(self.theta if flat is None else flat).items()}


def updates_per_epoch(n_chars: int, seq_length: int) -> int:
    """Sequences in one pass: e = 0, L, 2L, ... while e + L + 1 <= n_chars."""
    return (n_chars - seq_length - 1) // seq_length + 1


def split(ids: np.ndarray, val_fraction: float):
    """(train ids, validation ids): the validation set is the tail of the text."""
    n_val = int(len(ids) * val_fraction)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


def train(text, config: TrainConfig = TrainConfig(), params=None, *, progress: bool = False,
          callback=None) -> History:
    """Train on text (a str or a Corpus) and return the History.

    params: initial parameters (dict shaped like init_params's), or None for
    init_params(K, config.m, config.sigma, seed=config.seed).
    progress: show a tqdm progress bar with smooth loss and updates/s.
    callback: called with a dict for every event: {"event": "sample" | "log" | "val" | "checkpoint", ...}.
    Raises TrainingDiverged when the loss turns non-finite (the last good checkpoint is kept),
    TrainingInterrupted on Ctrl-C/SIGTERM (after saving a checkpoint when checkpoint_dir is set).
    """
    config.validate()
    corpus = text if isinstance(text, Corpus) else Corpus.from_text(text)
    vocab, L = corpus.vocab, config.seq_length
    train_ids, val_ids = split(corpus.ids, config.val_fraction)
    if len(train_ids) < L + 1:
        raise CorpusError(f"the training text has {len(train_ids)} characters; seq_length={L} needs at least {L + 1}")
    if config.val_fraction > 0 and len(val_ids) < 2:
        raise CorpusError(f"val_fraction={config.val_fraction} leaves {len(val_ids)} held-out characters; need 2")
    dtype = np.dtype(config.dtype)
    K, m = len(vocab), config.m
    flat = _Flat(K, m, dtype)
    target = config.n_updates if config.epochs is None else config.epochs * updates_per_epoch(len(train_ids), L)

    # --- state: fresh or resumed ---
    history = History(config=config.to_dict(), vocab=vocab.to_json(), corpus_sha256=corpus.sha256)
    opt_state = init_state(config.optimizer, flat.theta.size, dtype)
    rng = np.random.default_rng([config.seed, 1])   # sampling stream, apart from the init stream
    step, e, epoch, smooth, hprev = 0, 0, 0, None, np.zeros(m, dtype=dtype)
    best, best_step = math.inf, None
    if config.resume:
        ck = _checked_resume(config, corpus)
        flat.load(ck.params, ck.best_params)
        for k in STATE_KEYS[config.optimizer]:
            opt_state[k][...] = ck.opt_state[k]
        rng.bit_generator.state = ck.rng_state
        step, e, epoch, smooth = ck.step, ck.position, ck.epoch, ck.smooth_loss
        hprev = ck.hprev.astype(dtype)
        best = ck.best_smooth_loss if ck.best_smooth_loss is not None else math.inf
        best_step = ck.best_step
        saved = {k: v for k, v in ck.history.items() if k in History.JSON_FIELDS}
        history = History.from_json({**saved, "config": config.to_dict(), "corpus_sha256": corpus.sha256})
    else:
        flat.load(init_params(K, m, config.sigma, seed=config.seed, dtype=dtype) if params is None
                  else _checked_params(params, K, m))
    # only now, with every input checked, create the run directory: a refused run writes nothing
    fresh_dir = bool(config.checkpoint_dir) and not Path(config.checkpoint_dir).exists()
    run_dir = check_writable_dir(config.checkpoint_dir) if config.checkpoint_dir else None
    if run_dir is not None:
        remove_stale_temporaries(run_dir)           # left by a writer killed before its rename

    optimizer_step = STEPS[config.optimizer]
    loss_limit = config.max_loss_ratio * L * math.log(max(K, 2))
    hyper = dict(eta=config.eta, eps=config.eps, clip=config.clip, rho=config.rho, beta1=config.beta1,
                 beta2=config.beta2)
    G = flat.grads
    work = np.empty_like(flat.theta)                 # the optimiser's step
    ws = Workspace(L, K, m, dtype)                   # forward/backward buffers, reused every update
    emit = callback or (lambda ev: None)
    best_saved_step = best_step

    def checkpoint(finished=False):
        """Save `last` (and `best` when it improved since its last save); returns the path."""
        nonlocal best_saved_step
        if run_dir is None:
            return None
        if not (np.isfinite(flat.theta).all() and np.isfinite(flat.best).all()):
            raise TrainingDiverged(    # never overwrite the last good checkpoint with NaN/inf parameters
                f"training diverged: the parameters became non-finite by update {step} (eta={config.eta}); "
                + (f"the last good checkpoint is {run_dir / 'last.npz'}" if (run_dir / "last.npz").exists()
                   else "no checkpoint was written"))
        history.best_smooth_loss, history.best_step = (None if best == math.inf else best), best_step
        history.step, history.elapsed = step, elapsed()
        common = dict(vocab=vocab, config=config, step=step, position=e, epoch=epoch, smooth_loss=smooth,
                      hprev=hprev, opt_state=opt_state, best_smooth_loss=history.best_smooth_loss,
                      best_step=best_step, rng_state=rng.bit_generator.state, corpus_sha256=corpus.sha256,
                      corpus_path=corpus.path,
                      history=history.to_json(), finished=finished, elapsed=history.elapsed)
        if best_step is not None and best_step != best_saved_step or finished:
            # `best` is for sampling: parameters only, no training state to resume from
            best_only = {**common, "hprev": None, "opt_state": {}, "rng_state": None}
            save_checkpoint(Checkpoint(params=flat.copy(flat.best), best_params=None, kind="best", **best_only),
                            run_dir / "best.npz")
            best_saved_step = best_step
        path = save_checkpoint(Checkpoint(params=flat.params, best_params=flat.copy(flat.best), kind="last",
                                          **common), run_dir / "last.npz")
        write_json_atomic(run_dir / "history.json", {**history.to_json(), "finished": finished})
        emit({"event": "checkpoint", "step": step, "path": str(path)})
        return path

    def record_sample(x0, h):
        text_out = sample(flat.params, vocab, config.sample_length, h0=h, prime=vocab.chars[int(x0)], seed=rng)
        s = {"step": step, "smooth_loss": smooth, "text": text_out}
        history.samples.append(s)
        emit({"event": "sample", **s})

    def validate():
        v = mean_loss_per_char(flat.params, val_ids)
        history.val_steps.append(step)
        history.val_loss.append(v)
        emit({"event": "val", "step": step, "val_loss": v, "train_loss": None if smooth is None else smooth / L})

    start_elapsed, t0, start_step = (ck.elapsed if config.resume else 0.0), time.perf_counter(), step

    def elapsed():
        return start_elapsed + time.perf_counter() - t0

    stop = _SignalFlag()
    bar = _progress_bar(target, step, progress)
    try:
        with stop:
            while step < target:
                if e + L + 1 > len(train_ids):          # new epoch
                    e, epoch = 0, epoch + 1
                    hprev = np.zeros(m, dtype=dtype)
                    history.epoch_steps.append(step)
                x, y = train_ids[e:e + L], train_ids[e + 1:e + L + 1]
                if step % config.sample_every == 0 and config.sample_length and not _sampled_at(history, step):
                    record_sample(x[0], hprev)
                loss, cache = forward(flat.params, x, y, hprev, ws)
                if not math.isfinite(loss) or loss > loss_limit:
                    last = run_dir / "last.npz" if run_dir and (run_dir / "last.npz").exists() else None
                    what = f"became {loss}" if not math.isfinite(loss) else \
                        f"exploded to {loss:.4g} (over {config.max_loss_ratio:g} x seq_length*log(K) = {loss_limit:.4g})"
                    raise TrainingDiverged(
                        f"training diverged: the loss {what} at update {step + 1} (eta={config.eta}); "
                        + (f"the last good checkpoint is {last}" if last else "no checkpoint was written"))
                _, hprev = backward(flat.params, cache, out=G)
                smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
                improved = smooth < best                # then the parameters that produced this loss are the best
                if improved:
                    best, best_step = smooth, step
                optimizer_step(flat.grad, opt_state, work, t=step + 1, **hyper)   # clips flat.grad in place
                flat.step(work, keep_as_best=improved)
                step += 1
                e += L
                if step % config.log_every == 0 or step == 1:
                    history.steps.append(step)
                    history.loss.append(loss)
                    history.smooth_loss.append(smooth)
                    emit({"event": "log", "step": step, "loss": loss, "smooth_loss": smooth})
                    if bar is not None:
                        bar.update(step - bar.n)
                        bar.set_postfix(smooth_loss=f"{smooth:.2f}", refresh=False)
                if config.val_fraction > 0 and step % config.val_every == 0:
                    validate()
                if step % config.checkpoint_every == 0 and step < target:
                    checkpoint()
                if stop.signum is not None:
                    path = checkpoint()
                    name = signal.Signals(stop.signum).name
                    raise TrainingInterrupted(
                        f"interrupted by {name} after {step} updates; "
                        + (f"checkpoint saved to {path}" if path else "no checkpoint directory was set"),
                        stop.signum, path)
                if config.time_budget is not None and elapsed() >= config.time_budget:
                    history.stopped = "time budget"
                    break
            else:
                history.stopped = "finished"
        # the closing sample, when the last update lands on a sampling step
        if step % config.sample_every == 0 and config.sample_length and not _sampled_at(history, step):
            wrap = e + L + 1 > len(train_ids)
            record_sample(train_ids[0] if wrap else train_ids[e], np.zeros(m, dtype=dtype) if wrap else hprev)
        if config.val_fraction > 0 and (not history.val_steps or history.val_steps[-1] != step):
            validate()
        history.updates_per_second = (step - start_step) / max(time.perf_counter() - t0, 1e-9)
        history.best_smooth_loss, history.best_step = (None if best == math.inf else best), best_step
        history.step, history.elapsed = step, elapsed()
        checkpoint(finished=True)
    except TrainingDiverged:
        if fresh_dir and not any(run_dir.iterdir()):
            run_dir.rmdir()                         # diverged before its first checkpoint: leave nothing
        raise
    finally:
        if bar is not None:
            bar.update(step - bar.n)
            bar.close()
    history.params = flat.copy()
    history.best_params = flat.copy(flat.best)
    return history


def _sampled_at(history: History, step: int) -> bool:
    return bool(history.samples) and history.samples[-1]["step"] == step


def _checked_params(params, K, m):
    shapes = param_shapes(K, m)
    for k in PARAM_NAMES:
        if k not in params:
            raise ValueError(f"params lacks {k}")
        if np.shape(params[k]) != shapes[k]:
            raise ValueError(f"params[{k!r}] has shape {np.shape(params[k])}, expected {shapes[k]} (K={K}, m={m})")
    return params


def _checked_resume(config: TrainConfig, corpus: Corpus) -> Checkpoint:
    """Load the checkpoint to resume from and refuse one that does not fit this run."""
    ck = load_checkpoint(config.resume)
    if ck.vocab != corpus.vocab:
        extra = sorted(set(corpus.vocab.chars) - set(ck.vocab.chars))
        raise CheckpointError(
            f"cannot resume from {ck.path}: it was trained on a different vocabulary (K={len(ck.vocab)}, "
            f"this corpus has K={len(corpus.vocab)}" + (f", new characters {''.join(extra)!r}" if extra else "") + ")")
    if ck.corpus_sha256 and ck.corpus_sha256 != corpus.sha256:
        raise CheckpointError(f"cannot resume from {ck.path}: it was trained on a different corpus "
                              f"(sha256 {ck.corpus_sha256[:12]}..., this one {corpus.sha256[:12]}...)")
    mine, theirs = config.model_dict(), ck.config.model_dict()
    for k in mine:
        if k in ("n_updates", "epochs", "sample_every", "sample_length", "val_every"):
            continue
        if mine[k] != theirs[k]:
            raise ConfigError(f"cannot resume from {ck.path}: {k}={mine[k]!r} differs from the checkpoint's {theirs[k]!r}")
    missing = [k for k in STATE_KEYS[config.optimizer] if k not in ck.opt_state]
    if missing or ck.hprev is None or ck.rng_state is None:
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
