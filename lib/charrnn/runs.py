"""Named training runs shared between notebooks: train once, reuse afterwards.

A run lives in runs/NAME/ (runs/quick/NAME/ in the quick profile) as the
trainer's checkpoints: last.npz, best.npz and history.json. `run(name, config)`

- reuses a finished run whose configuration and corpus (sha256) match,
- resumes an unfinished one (an interrupted `make report`) from its last.npz,
- and otherwise trains from scratch.

Profiles (env CHARRNN_PROFILE): `full` (default: the assignment's numbers) and
`quick` (a few thousand updates, tiny experiments; the same code paths, for tests).
Env CHARRNN_FORCE_BEFORE=<unix time>: runs finished before then are retrained
(`make report FORCE=1` sets it once per build, so a run trained in this build is
not trained again by the next notebook that loads it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig
from .corpus import Corpus, default_corpus_path
from .fileio import write_json_atomic
from .paths import runs_dir
from .sampling import sample
from .trainer import History, train, updates_per_epoch
from .vocab import Vocabulary

PROFILES = ("full", "quick")
# Config fields that do not change what a finished run is.
_IGNORED = {"checkpoint_dir", "resume", "checkpoint_every", "log_every"}


@dataclass(frozen=True)
class Profile:
    """How much work each notebook does."""
    name: str
    updates: int                 # the assignment run (notebook 03): 100,000 updates
    sample_every: int            # its text-evolution samples: 11 of them from step 0 to `updates`
    min_epochs: int              # ...run on to this many full epochs on a larger corpus (0: never)
    experiment_updates: int      # each run of the comparisons in notebook 06
    val_every: int               # validation interval of those runs
    optimizers: tuple            # (name, learning rate) pairs compared in 06 (b)
    hidden_sizes: tuple          # m compared in 06 (c)
    gradcheck_entries: int       # sampled entries of the m = 100 gradient check
    bench_updates: int           # updates per round of the speed comparison, 06 (e)
    bench_rounds: int
    best_budget: float           # seconds of the "best model" run, 06 (f)
    best_val_every: int          # its validation interval (each validation reads the held-out 10%)
    passage_length: int = 1000   # characters of the passages from the best models
    seed: int = 0

    def assignment_config(self, n_chars: int) -> TrainConfig:
        """The assignment's run: m=100, seq_length=25, AdaGrad eta=0.1, `updates` updates
        (or min_epochs full epochs, whichever is more), no validation split."""
        n = self.updates
        if self.min_epochs:
            n = max(n, self.min_epochs * updates_per_epoch(n_chars, 25))
        return TrainConfig(m=100, seq_length=25, optimizer="adagrad", eta=0.1, n_updates=n,
                           sample_every=self.sample_every, sample_length=200, seed=self.seed,
                           log_every=max(1, min(100, self.updates // 200)))

    def experiment_config(self, **changes) -> TrainConfig:
        """One run of the comparisons: the assignment's settings on `experiment_updates`
        updates, with the last 10% of the text held out, changed by `changes`."""
        base = TrainConfig(n_updates=self.experiment_updates, val_fraction=0.1, val_every=self.val_every,
                           sample_length=0, seed=self.seed, log_every=max(1, min(100, self.experiment_updates // 200)))
        return base.replace(**changes)


FULL = Profile(
    name="full", updates=100_000, sample_every=10_000, min_epochs=2,
    experiment_updates=20_000, val_every=4_000,
    optimizers=(("adagrad", 0.1), ("rmsprop", 0.001), ("adam", 0.001)),   # each at its usual rate
    hidden_sizes=(50, 100, 200), gradcheck_entries=200,
    bench_updates=1_000, bench_rounds=15, best_budget=180.0, best_val_every=20_000,
)
QUICK = Profile(
    name="quick", updates=2_000, sample_every=200, min_epochs=0,
    experiment_updates=400, val_every=200,
    optimizers=FULL.optimizers, hidden_sizes=(20, 50, 100), gradcheck_entries=30,
    bench_updates=100, bench_rounds=1, best_budget=4.0, best_val_every=500,
)


def profile(name: str | None = None) -> Profile:
    """The settings of profile `name`, or of env CHARRNN_PROFILE (default "full")."""
    name = (name or os.environ.get("CHARRNN_PROFILE") or "full").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"CHARRNN_PROFILE must be one of {', '.join(PROFILES)}, got {name!r}")
    return FULL if name == "full" else QUICK


def run_dir(name: str, prof: Profile | None = None) -> Path:
    """runs/NAME in the full profile, runs/quick/NAME in the quick one (so tests never clobber real runs)."""
    prof = prof or profile()
    return runs_dir() / name if prof.name == "full" else runs_dir() / prof.name / name


def load_corpus(corpus=None) -> Corpus:
    """A Corpus from a Corpus, a path, or None (the default corpus, built if missing)."""
    if isinstance(corpus, Corpus):
        return corpus
    return Corpus.from_file(corpus if corpus is not None else default_corpus_path(build=True))


def run(name: str, config: TrainConfig, corpus=None, force: bool = False, progress: bool = True) -> History:
    """The History (with params and best_params) of run NAME trained with config on corpus.

    Reuses runs/NAME when it finished with the same config and corpus, resumes it
    when it stopped part-way, and trains from scratch otherwise or when force=True.
    """
    corpus = load_corpus(corpus)
    d = run_dir(name)
    state, ck = _state(d, config, corpus)
    if force or _forced(d):
        state = "fresh"
    if state == "finished":
        return _history_of(ck)
    if state == "fresh" and d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = config.replace(checkpoint_dir=str(d), resume=str(d) if state == "unfinished" else None)
    if state == "unfinished":
        print(f"resuming run {name} from {d / 'last.npz'}", flush=True)
    history = train(corpus, cfg, progress=progress)
    write_json_atomic(d / "run.json", {"name": name, "finished_at": time.time()})
    return history


def load_history(path) -> History:
    """The History stored in a run directory, with final and best parameters."""
    return _history_of(load_checkpoint(Path(path) / "last.npz"))


def _history_of(ck) -> History:
    return History.from_json(ck.history, params=ck.params, best_params=ck.best_params)


def vocab_of(history: History) -> Vocabulary:
    return Vocabulary.from_json(history.vocab)


def best_passage(history: History, length: int = 1000, seed: int = 0) -> str:
    """`length` characters from the best parameters of a run, primed with a newline
    (or the first character of the vocabulary) from a zero state; deterministic in seed."""
    vocab = vocab_of(history)
    prime = "\n" if "\n" in vocab else vocab.chars[0]
    return sample(history.best_params, vocab, length, prime=prime, seed=seed)


def cached(name: str, key: dict, compute, force: bool = False) -> dict:
    """A JSON result stored as runs/NAME.json, recomputed when key changes (or force)."""
    path = run_dir(name).with_suffix(".json")
    if path.exists() and not force and not _forced(path):
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                return stored["result"]
        except (OSError, ValueError, KeyError):
            pass
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "result": result})
    return result


def _state(d: Path, config: TrainConfig, corpus: Corpus):
    """("finished" | "unfinished" (resumable) | "fresh", its last checkpoint or None) for run directory d."""
    try:
        meta = json.loads((d / "history.json").read_text())
        ck = load_checkpoint(d / "last.npz")
    except (OSError, ValueError, CheckpointError):
        return "fresh", None
    if ck.corpus_sha256 != corpus.sha256 or _key(ck.config) != _key(config):
        return "fresh", None
    return ("finished" if meta.get("finished") and ck.finished else "unfinished"), ck


def _key(config: TrainConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in _IGNORED}


def _forced(path: Path) -> bool:
    """True when env CHARRNN_FORCE_BEFORE is set and path was written before that time."""
    before = os.environ.get("CHARRNN_FORCE_BEFORE")
    if not before or not path.exists():
        return False
    stamp = path / "run.json" if path.is_dir() else path
    try:
        return stamp.stat().st_mtime < float(before)
    except (OSError, ValueError):
        return True


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of text (letters, with inner apostrophes)."""
    return _WORD.findall(text.lower())


def word_diversity(text: str, known: set) -> dict:
    """How varied and how real the words of a generated text are.

    Returns {"words": count, "distinct": distinct words, "distinct_fraction": distinct / count,
    "in_corpus": fraction of the generated words that occur in `known` (the corpus's words)}.
    """
    ws = words(text)
    n = len(ws)
    return {"words": n, "distinct": len(set(ws)), "distinct_fraction": len(set(ws)) / n if n else 0.0,
            "in_corpus": sum(w in known for w in ws) / n if n else 0.0}
