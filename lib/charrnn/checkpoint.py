"""Self-describing checkpoints: arrays in one .npz, metadata as JSON inside it.

A checkpoint file holds the arrays `param/U` ... `param/c`, `best/U` ...,
`opt/<state>`, `hprev`, and `meta`: the UTF-8 bytes of a JSON object with the
format version, config, vocabulary, step, position, smooth loss, best so far,
RNG state and the training history. No pickle anywhere. Files are written to
a temporary name in the same directory, flushed, then renamed over the old
one, so a crash never leaves a half-written checkpoint behind.
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
from .model import PARAM_NAMES, param_shapes
from .optim import STATE_KEYS
from .vocab import Vocabulary

FORMAT = "charrnn-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing a piece, truncated, corrupted or inconsistent."""


@dataclass
class Checkpoint:
    """Everything needed to sample from a model or resume its training exactly."""
    params: dict                     # U (m,K), W (m,m), V (K,m), b (m,), c (K,)
    vocab: Vocabulary
    config: TrainConfig
    step: int = 0                    # updates done
    position: int = 0                # e: index of the next sequence's first character
    epoch: int = 0                   # completed passes over the text
    smooth_loss: float | None = None
    hprev: np.ndarray | None = None  # (m,) hidden state carried into the next update
    opt_state: dict = field(default_factory=dict)   # flat optimiser arrays
    best_params: dict | None = None
    best_smooth_loss: float | None = None
    best_step: int | None = None
    rng_state: dict | None = None    # the sampling Generator's bit_generator.state
    corpus_sha256: str | None = None
    corpus_path: str | None = None   # where the corpus was read from, when it came from a file
    history: dict = field(default_factory=dict)
    finished: bool = False
    elapsed: float = 0.0             # seconds of training so far
    kind: str = "last"               # "last" or "best"
    path: str | None = None


def save_checkpoint(ckpt: Checkpoint, path) -> Path:
    """Write ckpt to path atomically (temporary file, fsync, rename). Returns the path."""
    path = Path(path)
    meta = {
        "format": FORMAT, "version": VERSION, "kind": ckpt.kind, "saved_at": time.time(),
        "config": ckpt.config.to_dict(), "vocab": ckpt.vocab.to_json(),
        "step": ckpt.step, "position": ckpt.position, "epoch": ckpt.epoch,
        "smooth_loss": ckpt.smooth_loss, "best_smooth_loss": ckpt.best_smooth_loss,
        "best_step": ckpt.best_step, "rng_state": ckpt.rng_state,
        "corpus_sha256": ckpt.corpus_sha256, "corpus_path": ckpt.corpus_path, "history": ckpt.history,
        "finished": ckpt.finished, "elapsed": ckpt.elapsed,
    }
    arrays = {f"param/{k}": np.asarray(ckpt.params[k]) for k in PARAM_NAMES}
    if ckpt.best_params is not None:
        arrays.update({f"best/{k}": np.asarray(ckpt.best_params[k]) for k in PARAM_NAMES})
    arrays.update({f"opt/{k}": np.asarray(v) for k, v in ckpt.opt_state.items()})
    if ckpt.hprev is not None:
        arrays["hprev"] = np.asarray(ckpt.hprev)
    for k, a in arrays.items():   # never write what load_checkpoint would refuse
        if k.startswith(("param/", "best/")) and not np.all(np.isfinite(a)):
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
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {meta.get('version')}, this charrnn reads {VERSION}")
    config = TrainConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_json(meta["vocab"])
    shapes = param_shapes(len(vocab), config.m)

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
    n = sum(a.size for a in params.values())
    opt = {}
    for k in STATE_KEYS[config.optimizer]:
        a = arrays.get(f"opt/{k}")
        if a is not None:
            if a.shape != (n,):
                raise CheckpointError(f"checkpoint {p}: opt/{k} has shape {a.shape}, expected ({n},)")
            opt[k] = a
    hprev = arrays.get("hprev")
    if hprev is not None and hprev.shape != (config.m,):
        raise CheckpointError(f"checkpoint {p}: hprev has shape {hprev.shape}, expected ({config.m},)")
    step = meta["step"]
    if not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {p}: step must be an integer >= 0, got {step!r}")
    return Checkpoint(
        params=params, vocab=vocab, config=config, step=step,
        position=int(meta["position"]), epoch=int(meta["epoch"]), smooth_loss=meta["smooth_loss"],
        hprev=hprev, opt_state=opt, best_params=best, best_smooth_loss=meta["best_smooth_loss"],
        best_step=meta["best_step"], rng_state=meta["rng_state"], corpus_sha256=meta["corpus_sha256"],
        corpus_path=meta.get("corpus_path"),
        history=meta.get("history") or {}, finished=bool(meta.get("finished")),
        elapsed=float(meta.get("elapsed", 0.0)), kind=meta.get("kind", "last"), path=str(p),
    )
