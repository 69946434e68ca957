"""Self-describing checkpoints: arrays in one .npz, metadata as JSON inside it.

A checkpoint file holds the arrays `param/<name>` (the cell's parameters),
`best/<name>`, `opt/<state>` (with `opt/E`, the parameters' average, when the
run keeps one: config.ema), the model state the run carries, `state` (B, S),
with `state_input` (B,), the character ids each stream reads next, the best
parameters' state `best_state`/`best_state_input`, in a run with held-out text
the parameters with the lowest held-out loss `bestval/<name>` and their state
`best_val_state`/`best_val_state_input`, with the spike guard on its copies
`guard/<i>/theta`, `guard/<i>/opt/<state>`, and `meta`: the UTF-8 bytes of a
JSON object with the format version, config (which names the cell),
vocabulary, step, position, smooth loss, best so far, RNG states, the guard's
state and the training history. A `best.npz` holds the best parameters and,
as its `state`, the state they were trained in: the hidden state and input
character of the update that gave the lowest smooth loss; `best_val.npz`
likewise the parameters with the lowest held-out loss (kind "best_val"; the
average, when the run keeps one), with the state the run had reached when it
was measured. No pickle anywhere. Files
are written to a temporary name in the same directory, flushed, then renamed
over the old one, so a crash never leaves a half-written checkpoint behind.

Version 1 (charrnn before the model family) is still read: a vanilla RNN with
`hprev` (m,) and no state inputs, so its models can only be sampled from zeros.
"""
from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import write_atomic
from .config import ConfigError, TrainConfig
from .models import get_cell
from .optim import state_keys
from .sampling import Model
from .vocab import Vocabulary

FORMAT = "charrnn-checkpoint"
VERSION = 2
READS = (1, 2)
SAMPLING_KINDS = ("best", "best_val")    # files that hold one model to sample, no training state


class CheckpointError(ValueError):
    """A checkpoint that is missing a piece, truncated, corrupted or inconsistent."""


@dataclass
class Checkpoint:
    """Everything needed to sample from a model or resume its training exactly."""
    params: dict                     # the cell's parameters (for the rnn U (m,K), W (m,m), V (K,m), b (m,), c (K,))
    vocab: Vocabulary
    config: TrainConfig              # names the cell (config.cell)
    step: int = 0                    # updates done
    position: int = 0                # e: index of each stream's next sequence in its piece
    epoch: int = 0                   # completed passes over the text
    smooth_loss: float | None = None
    state: np.ndarray | None = None  # (B, S) the model state carried into the next update (`best`: of these params)
    state_input: np.ndarray | None = None   # (B,) the character ids that follow it in the text
    opt_state: dict = field(default_factory=dict)   # flat optimiser arrays
    best_params: dict | None = None
    best_smooth_loss: float | None = None
    best_step: int | None = None
    best_state: np.ndarray | None = None        # (B, S) the state the best parameters were fed
    best_state_input: np.ndarray | None = None  # (B,) and their input characters
    best_val_params: dict | None = None         # the parameters with the lowest held-out loss,
    best_val_loss: float | None = None          # that loss (nats per character),
    best_val_step: int | None = None            # after this many updates,
    best_val_state: np.ndarray | None = None    # (B, S) the state the run had reached then,
    best_val_state_input: np.ndarray | None = None   # (B,) and the characters it read next
    guard: dict | None = None        # the spike guard's state (charrnn.guard), None when it is off
    guard_arrays: dict = field(default_factory=dict)  # its copies: {"<i>/theta" | "<i>/opt/<key>": (n,)}
    rng_state: dict | None = None    # the sampling Generator's bit_generator.state
    reset_rng_state: dict | None = None   # the Generator of reset_prob's draws
    corpus_sha256: str | None = None
    corpus_path: str | None = None   # where the corpus was read from, when it came from a file
    keep_line_endings: bool = False  # how it was read: \r\n kept (True) or read as \n (universal newlines)
    history: dict = field(default_factory=dict)
    finished: bool = False
    elapsed: float = 0.0             # seconds of training so far
    kind: str = "last"               # "last", "best" (lowest smooth loss) or "best_val" (lowest held-out loss)
    path: str | None = None
    version: int = VERSION           # the format version it was read from

    @classmethod
    def last(cls, params, best_params, opt_state, state_input, **fields) -> "Checkpoint":
        """`last`: everything to resume the run exactly (fields: the run's description, where it stands and
        its training state, as the trainer gives them)."""
        return cls(params=params, best_params=best_params, opt_state=opt_state, state_input=state_input, kind="last",
                   **fields)

    @classmethod
    def for_sampling(cls, kind: str, params, state, state_input, **fields) -> "Checkpoint":
        """`best` or `best_val`: one model to sample, params with the state (B, S) they go with and the
        characters (B,) that follow it; no optimiser or generator state, so it cannot be resumed."""
        if kind not in SAMPLING_KINDS:
            raise ValueError(f"a sampling checkpoint is one of {', '.join(SAMPLING_KINDS)}, not {kind!r}")
        return cls(params=params, state=state, state_input=state_input, kind=kind, **fields)

    @property
    def cell(self) -> str:
        return self.config.cell

    @property
    def hprev(self) -> np.ndarray | None:
        """(m,) the hidden state h of the first stream (the assignment's hprev), or None."""
        return None if self.state is None else self.state[0, :self.config.m]

    def model(self) -> Model:
        """This file's parameters with the state they were trained in, ready to sample."""
        return Model.from_arrays(self.params, self.vocab, self.cell, self.state, self.state_input)

    def best_model(self) -> Model:
        """The best parameters with their state: a `last` checkpoint's best, or a `best` file's own."""
        if self.kind in SAMPLING_KINDS or self.best_params is None:
            return self.model()
        return Model.from_arrays(self.best_params, self.vocab, self.cell, self.best_state, self.best_state_input)


def save_checkpoint(ckpt: Checkpoint, path) -> Path:
    """Write ckpt to path atomically (temporary file, fsync, rename). Returns the path."""
    path = Path(path)
    meta = {
        "format": FORMAT, "version": VERSION, "kind": ckpt.kind, "saved_at": time.time(),
        "config": ckpt.config.to_dict(), "vocab": ckpt.vocab.to_json(),
        "step": ckpt.step, "position": ckpt.position, "epoch": ckpt.epoch,
        "smooth_loss": ckpt.smooth_loss, "best_smooth_loss": ckpt.best_smooth_loss,
        "best_step": ckpt.best_step, "rng_state": ckpt.rng_state, "reset_rng_state": ckpt.reset_rng_state,
        "best_val_loss": ckpt.best_val_loss, "best_val_step": ckpt.best_val_step, "guard": ckpt.guard,
        "cell": ckpt.config.cell,
        "corpus_sha256": ckpt.corpus_sha256, "corpus_path": ckpt.corpus_path,
        "keep_line_endings": ckpt.keep_line_endings, "history": ckpt.history,
        "finished": ckpt.finished, "elapsed": ckpt.elapsed,
    }
    names = get_cell(ckpt.config.cell).PARAM_NAMES
    arrays = {f"param/{k}": np.asarray(ckpt.params[k]) for k in names}
    for prefix, group in (("best", ckpt.best_params), ("bestval", ckpt.best_val_params)):
        if group is not None:
            arrays.update({f"{prefix}/{k}": np.asarray(group[k]) for k in names})
    arrays.update({f"opt/{k}": np.asarray(v) for k, v in ckpt.opt_state.items()})
    arrays.update({f"guard/{k}": np.asarray(v) for k, v in ckpt.guard_arrays.items()})
    for k in ("state", "state_input", "best_state", "best_state_input", "best_val_state", "best_val_state_input"):
        if getattr(ckpt, k) is not None:
            arrays[k] = np.asarray(getattr(ckpt, k))
    for k, a in arrays.items():   # never write what load_checkpoint would refuse
        if k.startswith(("param/", "best/", "bestval/", "guard/")) and not np.all(np.isfinite(a)):
            raise CheckpointError(f"refusing to write checkpoint {path}: {k} holds non-finite values")
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


def resolve(path) -> Path:
    """A checkpoint file, or a run directory's `last.npz`."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.npz"
        if not p.exists():
            raise CheckpointError(f"no checkpoint in run directory {path} (expected {p.name})")
    elif not p.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return p


def load_checkpoint(path) -> Checkpoint:
    """Load a checkpoint file, or a run directory (then its `last.npz`).

    Raises CheckpointError (a ValueError) with one readable line for a missing,
    truncated, corrupted or inconsistent checkpoint.
    """
    p = resolve(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"checkpoint {p} is truncated or corrupted ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except KeyError:
        raise CheckpointError(f"checkpoint {p} has no metadata") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {p} has corrupted metadata ({exc})") from None
    try:
        return _from_parts(meta, arrays, p)
    except CheckpointError:
        raise
    except (ConfigError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {p} is inconsistent: {exc}") from None


def _from_parts(meta, arrays, p: Path) -> Checkpoint:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a charrnn checkpoint")
    version = meta.get("version")
    if version not in READS:
        raise CheckpointError(f"checkpoint {p} has format version {version}, this charrnn reads "
                              f"{' and '.join(map(str, READS))}")
    config = TrainConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_json(meta["vocab"])
    cell = get_cell(config.cell)
    PARAM_NAMES, shapes = cell.PARAM_NAMES, cell.param_shapes(len(vocab), config.m)
    B, S = config.batch_size, cell.state_size(config.m)

    def group(prefix, required):
        names = [k for k in PARAM_NAMES if f"{prefix}/{k}" in arrays]
        if not names and not required:
            return None
        out = {}
        for k in PARAM_NAMES:
            a = arrays.get(f"{prefix}/{k}")
            if a is None:
                raise CheckpointError(f"checkpoint {p} lacks array {prefix}/{k}")
            if a.shape != shapes[k]:
                raise CheckpointError(f"checkpoint {p}: {prefix}/{k} has shape {a.shape}, expected {shapes[k]} "
                                      f"(K={len(vocab)}, m={config.m})")
            if a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                raise CheckpointError(f"checkpoint {p}: {prefix}/{k} holds non-finite or non-float values")
            out[k] = a
        return out

    params = group("param", True)
    best = group("best", False)
    best_val = group("bestval", False)
    n = sum(a.size for a in params.values())
    opt = {}
    for k in state_keys(config.optimizer, config.ema):
        a = arrays.get(f"opt/{k}")
        if a is not None:
            if a.shape != (n,):
                raise CheckpointError(f"checkpoint {p}: opt/{k} has shape {a.shape}, expected ({n},)")
            opt[k] = a
    if version == 1:                   # the vanilla RNN's hprev (m,): one stream, no inputs stored
        hprev = arrays.get("hprev")
        if hprev is not None and hprev.shape != (config.m,):
            raise CheckpointError(f"checkpoint {p}: hprev has shape {hprev.shape}, expected ({config.m},)")
        arrays = {**arrays, "state": None if hprev is None else hprev[None]}

    def state(name):
        a = arrays.get(name)
        if a is not None and (a.shape != (B, S) or a.dtype.kind != "f" or not np.all(np.isfinite(a))):
            raise CheckpointError(f"checkpoint {p}: {name} has shape {a.shape}, expected ({B}, {S}) finite floats")
        return a

    def inputs(name):
        a = arrays.get(name)
        if a is not None and (a.shape != (B,) or a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= len(vocab)):
            raise CheckpointError(f"checkpoint {p}: {name} must be {B} character ids below K={len(vocab)}")
        return a

    guard = meta.get("guard")
    guard_arrays = {k[len("guard/"):]: a for k, a in arrays.items() if k.startswith("guard/")}
    if config.spike_guard is not None and meta.get("kind", "last") == "last":   # training state: complete
        copies = guard.get("copies") if isinstance(guard, dict) else None
        per_copy = 1 + len(state_keys(config.optimizer, config.ema))          # theta and each state array
        if not isinstance(copies, list) or len(guard_arrays) != len(copies) * per_copy:
            raise CheckpointError(f"checkpoint {p}: the spike guard is on but its state is missing or incomplete")
    for k, a in guard_arrays.items():
        if a.shape != (n,) or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
            raise CheckpointError(f"checkpoint {p}: guard/{k} must be ({n},) finite floats")
    step = meta["step"]
    if not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {p}: step must be an integer >= 0, got {step!r}")
    return Checkpoint(
        params=params, vocab=vocab, config=config, step=step,
        position=int(meta["position"]), epoch=int(meta["epoch"]), smooth_loss=meta["smooth_loss"],
        state=state("state"), state_input=inputs("state_input"), opt_state=opt, best_params=best,
        best_smooth_loss=meta["best_smooth_loss"], best_step=meta["best_step"], best_state=state("best_state"),
        best_state_input=inputs("best_state_input"), best_val_params=best_val,
        best_val_loss=meta.get("best_val_loss"), best_val_step=meta.get("best_val_step"),
        best_val_state=state("best_val_state"), best_val_state_input=inputs("best_val_state_input"),
        guard=guard, guard_arrays=guard_arrays, rng_state=meta["rng_state"],
        reset_rng_state=meta.get("reset_rng_state"), corpus_sha256=meta["corpus_sha256"],
        corpus_path=meta.get("corpus_path"), keep_line_endings=bool(meta.get("keep_line_endings", False)),
        history=meta.get("history") or {}, finished=bool(meta.get("finished")),
        elapsed=float(meta.get("elapsed", 0.0)), kind=meta.get("kind", "last"), path=str(p), version=version,
    )
