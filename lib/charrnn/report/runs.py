"""Named training runs shared between notebooks: train once, reuse afterwards.

A run lives in runs/NAME/ (runs/quick/NAME/ in the quick profile) as the
trainer's checkpoints: last.npz, best.npz and history.json. `run(name, config)`

- reuses a finished run whose configuration and corpus (sha256) match,
- resumes an unfinished one (an interrupted `make report`) from its last.npz,
- and otherwise trains from scratch.

A run's configuration comes from the report's settings (report.toml, see
charrnn.report.settings) through the *_config functions below, so changing one run's
settings retrains that run only. `run_many` trains several runs at once in
worker processes, one BLAS thread each; a run that continues another of the
same call (`continues`: the same settings, more updates) waits for it and
starts from its finished checkpoint instead of from the beginning.

Env CHARRNN_FORCE_BEFORE=<unix time>: runs finished before then are retrained,
only those whose names match one of the shell patterns in env
CHARRNN_FORCE_RUNS (comma-separated) when that is set. `make report FORCE=1`
sets the time once per build, so a run trained in this build is not trained
again by the next notebook that loads it.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from ..checkpoint import VERSION, load_checkpoint
from ..config import DECAYS, LENGTH, PRESETS, TrainConfig
from ..corpus import Corpus, default_corpus_path
from ..fileio import write_json_atomic
from ..paths import repo_root, runs_dir
from .settings import settings as load_settings
from ..trainer import History, train, updates_per_epoch

# Config fields that do not change what a finished run is.
_IGNORED = set(TrainConfig.names(keys_run=False))


# --------------------------------------------------------------------------- the report's runs

def corpus_path(s=None) -> Path:
    """The report's corpus: the settings' `corpus` (relative to the repository root), else the default."""
    s = s or load_settings()
    if s.get("corpus"):
        p = Path(s["corpus"]).expanduser()
        return p if p.is_absolute() else repo_root() / p
    return default_corpus_path(build=True)


def assignment_config(s, n_chars: int, seed: int | None = None) -> TrainConfig:
    """The assignment's run: AdaGrad, one stream, no validation split; `updates` updates, or
    `min_epochs` whole epochs if that is more."""
    a = s["assignment"]
    n = a["updates"]
    if a["min_epochs"]:
        n = max(n, a["min_epochs"] * updates_per_epoch(n_chars, a["seq_length"]))
    return TrainConfig(m=a["m"], seq_length=a["seq_length"], optimizer="adagrad", eta=a["eta"], sigma=a["sigma"],
                       n_updates=n, sample_every=a["sample_every"], sample_length=a["sample_length"],
                       seed=a["seed"] if seed is None else seed, log_every=max(1, min(100, a["updates"] // 200)))


def assignment_runs(s, n_chars: int) -> dict:
    """{run name: config} of the main assignment run and its spread seeds, then the same runs trained on to
    long_epochs epochs (assignment-long, assignment-long-seedK), whose best model writes Part I's passage."""
    a = s["assignment"]
    suffixes = {a["seed"]: "", **{k: f"-seed{k}" for k in a["spread_seeds"] if k != a["seed"]}}
    configs = {seed: assignment_config(s, n_chars, seed) for seed in suffixes}
    long = max(a["updates"], round(a["long_epochs"] * updates_per_epoch(n_chars, a["seq_length"])))
    jobs = {f"assignment{x}": configs[k].replace(sample_length=0) if x else configs[k] for k, x in suffixes.items()}
    jobs.update({f"assignment-long{x}": jobs[f"assignment{x}"].replace(n_updates=long) for x in suffixes.values()})
    return jobs        # each long run continues its short one (see continues), which run_many trains first


def experiment_config(s, **changes) -> TrainConfig:
    """One run of notebook 06's comparisons: the assignment's settings on `updates` updates, with the
    text's tail held out, changed by `changes`."""
    e, a = s["experiments"], s["assignment"]
    base = TrainConfig(m=a["m"], seq_length=a["seq_length"], eta=a["eta"], sigma=a["sigma"],
                       n_updates=e["updates"], val_fraction=e["val_fraction"], val_every=e["val_every"],
                       dtype=e["dtype"], sample_length=0, seed=a["seed"],
                       log_every=max(1, min(100, e["updates"] // 200)))
    return base.replace(**changes)


def experiment_run(s, optimizer: str, eta: float, m: int, reset_prob: float, seed: int) -> tuple[str, TrainConfig]:
    """(name, config) of one of notebook 06's comparison runs: exp-OPTIMIZER-mM[-resetP][-seedK], the seed
    suffix on every seed but the assignment's."""
    config = experiment_config(s, optimizer=optimizer, eta=eta, m=m, reset_prob=reset_prob)
    name = f"exp-{optimizer}-m{m}" + (f"-reset{reset_prob:g}" if reset_prob else "")
    return (name if seed == config.seed else f"{name}-seed{seed}"), config.replace(seed=seed)


def experiment_runs(s) -> dict:
    """{name: config} of every run notebook 06 compares, under each of its seeds: the optimisers at the
    assignment's m, AdaGrad at each hidden size, and AdaGrad with each reset probability (a run where two
    comparisons coincide is there once)."""
    e, a = s["experiments"], s["assignment"]
    specs = [*((o, eta, a["m"], 0.0) for o, eta in e["optimizers"]),
             *(("adagrad", a["eta"], m, 0.0) for m in e["hidden_sizes"]),
             *(("adagrad", a["eta"], a["m"], p) for p in e["reset_probs"])]
    seeds = [a["seed"], *(k for k in e["spread_seeds"] if k != a["seed"])]
    return dict(experiment_run(s, *spec, k) for spec in specs for k in seeds)


def untimed_runs(s, n_chars: int) -> dict:
    """{name: config} of every run of the report's parts that no timed run has to come before: the assignment's
    runs and, with Part II, notebook 06's comparisons. Trained in one run_many, they keep both workers busy
    to the end (the assignment's long runs alone would leave one idle)."""
    jobs = assignment_runs(s, n_chars)
    return {**jobs, **experiment_runs(s)} if "beyond" in s["parts"] else jobs


def cell_config(s, cell: str) -> TrainConfig:
    """A run of notebook 07's comparison: the budget preset with the cell's own table, for `seconds`."""
    c = s["cells"]
    return _budgeted(s, {**PRESETS[s["budget"]["preset"]], **c[cell], "cell": cell}, c["seconds"], c["val_every"])


def budget_config(s) -> TrainConfig:
    """The best model in a fixed time: the preset (with any settings the [budget] table adds) for `seconds`."""
    b = s["budget"]
    extra = {k: v for k, v in b.items() if k not in ("seconds", "preset", "val_every", "spread_seeds")}
    return _budgeted(s, {**PRESETS[b["preset"]], **extra}, b["seconds"], b["val_every"])


def same_work(name: str, config: TrainConfig, timed: History, seeds) -> dict:
    """{NAME-seedK: config} for each of seeds but config's own: the timed run's settings under another seed,
    for exactly the updates the timed run made in its time budget. Without a time budget they do the same
    work on any machine, whatever its speed or load, and can be trained two at a time; a decaying schedule
    follows their updates as the timed run's followed its seconds."""
    return {f"{name}-seed{k}": config.replace(seed=k, time_budget=None, n_updates=timed.step)
            for k in seeds if k != config.seed}


def over_seeds(name: str, config: TrainConfig, seeds, corpus=None, workers: int = 2) -> list:
    """[the timed run NAME, then the same_work runs under the other seeds]: trained (the others `workers` at a
    time) or reused."""
    timed = run(name, config, corpus)
    return [timed, *run_many(same_work(name, config, timed, seeds), corpus, workers=workers).values()]


def _budgeted(s, fields: dict, seconds: float, val_every: int) -> TrainConfig:
    return TrainConfig(**{**fields, "time_budget": float(seconds), "val_every": val_every,
                          "val_fraction": s["experiments"]["val_fraction"], "seed": s["assignment"]["seed"],
                          "sample_length": 0, "log_every": 10})


# --------------------------------------------------------------------------- train or reuse

def run_dir(name: str, prof: str | None = None) -> Path:
    """runs/NAME in the full profile, runs/quick/NAME in the quick one (so tests never clobber real runs)."""
    prof = prof or load_settings().profile
    return runs_dir() / name if prof == "full" else runs_dir() / prof / name


def load_corpus(corpus=None) -> Corpus:
    """A Corpus from a Corpus, a path, or None (the report's corpus, built if missing)."""
    if isinstance(corpus, Corpus):
        return corpus
    return Corpus.from_file(corpus if corpus is not None else corpus_path())


def run(name: str, config: TrainConfig, corpus=None, force: bool = False, progress: bool = True,
        start: str | None = None, start_config: TrainConfig | None = None) -> History:
    """The History (with parameters and states) of run NAME trained with config on corpus.

    Reuses runs/NAME when it finished with the same config and corpus, resumes it when it stopped
    part-way, and trains from scratch when there is none. A run is deleted only when its settings or
    corpus differ (or force=True / `make report FORCE=...`); one that cannot be read is moved aside to
    runs/NAME.broken-<time>/ (and the move printed), never deleted.

    start: the name of a run that this one continues (its settings start_config, see continues): when that
    run has finished, a run trained afresh starts from copies of its checkpoints rather than from the first
    update, to the same result.
    """
    corpus = load_corpus(corpus)
    d = run_dir(name)
    state, ck = _state(d, config, corpus)
    if force or _forced(d, name):
        state = "differs" if d.exists() else "fresh"
    if state == "finished":
        return _history_of(ck)
    if state == "differs":
        shutil.rmtree(d)
    elif state == "broken":
        aside = _move_aside(d)
        print(f"run {name}: {ck}; moved it to {aside} and training it again", file=sys.stderr, flush=True)
    d.mkdir(parents=True, exist_ok=True)
    if state != "unfinished" and start is not None and _copy_finished(start, start_config, d, corpus):
        state = "unfinished"
        print(f"run {name}: continuing run {start} from its last update", file=sys.stderr, flush=True)
    elif state == "unfinished":
        print(f"resuming run {name} from {d / 'last.npz'}", file=sys.stderr, flush=True)
    cfg = config.replace(checkpoint_dir=str(d), resume=str(d) if state == "unfinished" else None)
    history = train(corpus, cfg, progress=progress)
    write_json_atomic(d / "run.json", {"name": name, "finished_at": time.time()})
    return history


def continues(config: TrainConfig, earlier: TrainConfig) -> bool:
    """Whether a run of config is a run of earlier trained on: the same settings but more updates. Nothing of
    the training may follow the run's length (a cosine or linear schedule does, and a time budget or epochs
    leave it open). Resuming is exact, so such a run can start from earlier's last checkpoint to the same result."""
    mine, theirs = _key(config), _key(earlier)
    length = set(TrainConfig.names(role=LENGTH))
    open_ended = (config.epochs, earlier.epochs, config.time_budget, earlier.time_budget) != (None,) * 4
    return (all(v == theirs.get(k) for k, v in mine.items() if k not in length)
            and config.schedule not in DECAYS and not open_ended and earlier.n_updates < config.n_updates)


def starts(jobs: dict) -> dict:
    """{name: the job it continues} for each of jobs ({name: config}) that continues another (the longest)."""
    found = {}
    for n, cfg in jobs.items():
        earlier = [o for o, c in jobs.items() if continues(cfg, c)]
        if earlier:
            found[n] = max(earlier, key=lambda o: jobs[o].n_updates)
    return found


def _copy_finished(start: str, config: TrainConfig, d: Path, corpus: Corpus) -> bool:
    """Copy run START's checkpoints into run directory d when it finished with config (and was not trained
    before a forced rebuild); True when they were copied. Each file is written whole (a .tmp, then renamed)."""
    src = run_dir(start)
    if config is None or _forced(src, start) or _state(src, config, corpus)[0] != "finished":
        return False
    for f in ("last.npz", "best.npz"):     # killed in between, d holds START's last.npz: another run's, which the
        if (src / f).exists():
            shutil.copyfile(src / f, d / f"{f}.tmp")            # next run() replaces (_state: "differs")
            os.replace(d / f"{f}.tmp", d / f)
    return True


def run_many(jobs: dict, corpus=None, workers: int = 2, force: bool = False) -> dict:
    """{name: History} of several runs ({name: config}), those that need training trained `workers` at a
    time in separate processes (each with one BLAS thread), the others reused.

    A run that continues another of jobs (starts) waits for it and starts where it finished. Runs start in
    order of the longest work still behind them (their own updates and those of the runs continuing them),
    so that the workers finish together."""
    corpus = load_corpus(corpus)
    after = starts(jobs)
    todo = [n for n, cfg in jobs.items()
            if force or _forced(run_dir(n), n) or _state(run_dir(n), cfg, corpus)[0] != "finished"]
    order = sorted(todo, key=lambda n: -_work_behind(n, jobs, after))
    trained = {}
    if workers > 1 and len(todo) > 1:
        print(f"training {len(todo)} runs, {min(workers, len(todo))} at a time: {', '.join(todo)}", file=sys.stderr,
              flush=True)
        with _one_blas_thread(), ProcessPoolExecutor(min(workers, len(todo)),
                                                     mp_context=multiprocessing.get_context("spawn")) as pool:
            running = {}
            while order or running:
                for n in [n for n in order if after.get(n) not in order + list(running.values())]:
                    if len(running) == workers:
                        break
                    order.remove(n)
                    running[pool.submit(_run_in_worker, n, jobs, after, corpus, force)] = n
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()                           # a failed run fails here, with its own error
                    print(f"  finished {running.pop(f)}", file=sys.stderr, flush=True)
    else:
        trained = {n: _run_after(n, jobs, after, corpus, force) for n in order}   # here, each run after its start
    return {n: trained[n] if n in trained else run(n, cfg, corpus, progress=False) for n, cfg in jobs.items()}


def _work_behind(name: str, jobs: dict, after: dict) -> int:
    """Characters run NAME trains past its start, plus the most that any chain of runs continuing it adds."""
    own = _chars(jobs[name]) - (_chars(jobs[after[name]]) if name in after else 0)
    return own + max((_work_behind(n, jobs, after) for n, s in after.items() if s == name), default=0)


def _chars(config: TrainConfig) -> int:
    return config.n_updates * config.seq_length * config.batch_size


def _run_after(name, jobs, after, corpus, force) -> History:
    start = after.get(name)
    return run(name, jobs[name], corpus, force=force, progress=False, start=start, start_config=jobs.get(start))


def _run_in_worker(name, jobs, after, corpus, force) -> None:
    _run_after(name, jobs, after, corpus, force)                 # the History stays in the worker: it is on disk


@contextlib.contextmanager
def _one_blas_thread():
    """Worker processes started inside inherit one BLAS/OpenMP thread (this process keeps its own)."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_history(path) -> History:
    """The History stored in a run directory, with final and best parameters and their states."""
    return _history_of(load_checkpoint(Path(path) / "last.npz"))


def _history_of(ck) -> History:
    return History.from_json(ck.history, params=ck.params, best_params=ck.best_params, state=ck.state,
                             state_input=ck.state_input, best_state=ck.best_state,
                             best_state_input=ck.best_state_input, best_val_params=ck.best_val_params,
                             best_val_state=ck.best_val_state, best_val_state_input=ck.best_val_state_input)


def cached(name: str, key: dict, compute, force: bool = False) -> dict:
    """A JSON result stored as runs/NAME.json, recomputed when key changes (or force). The key is compared
    as JSON stores it (a tuple in it reads back as a list)."""
    key = json.loads(json.dumps(key))
    path = run_dir(name).with_suffix(".json")
    if path.exists() and not force and not _forced(path, name):
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
    """What run directory d holds, and what goes with it:
    ("finished", its last checkpoint): done with this config and corpus, to reuse;
    ("unfinished", checkpoint): the same run stopped part-way, to resume;
    ("differs", None): a readable run of other settings or corpus, or of an older charrnn (checkpoint
    format < VERSION, whose models carry no states), to replace;
    ("broken", the reason): a run that cannot be read, to keep aside;
    ("fresh", None): nothing there but a killed writer's temporaries, or no directory at all.
    Only the checkpoint decides: history.json is a copy of its history for people and tools."""
    last = d / "last.npz"
    if not last.exists():
        kept = [p.name for p in d.iterdir() if not p.name.endswith(".tmp")] if d.is_dir() else []
        return ("broken", f"{d} holds {', '.join(sorted(kept))} but no last.npz") if kept else ("fresh", None)
    try:
        ck = load_checkpoint(last)
    except (OSError, ValueError) as exc:              # CheckpointError is a ValueError
        return "broken", f"{last} cannot be read ({exc})"
    if ck.version < VERSION or ck.corpus_sha256 != corpus.sha256 or _key(ck.config) != _key(config):
        return "differs", None
    return ("finished" if ck.finished else "unfinished"), ck


def _move_aside(d: Path) -> Path:
    """Rename run directory d to d.broken-<time> (or -<time>-2, ...) beside it; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = d.with_name(f"{d.name}.broken-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = d.with_name(f"{d.name}.broken-{stamp}-{n}")
    d.rename(aside)
    return aside


def _key(config: TrainConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in _IGNORED}


def _forced(path: Path, name: str) -> bool:
    """True when env CHARRNN_FORCE_BEFORE is set, path was written before that time, and name matches
    env CHARRNN_FORCE_RUNS (when set)."""
    before = os.environ.get("CHARRNN_FORCE_BEFORE")
    if not before or not path.exists():
        return False
    patterns = [p.strip() for p in os.environ.get("CHARRNN_FORCE_RUNS", "").split(",") if p.strip()]
    if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
        return False
    stamp = path / "run.json" if path.is_dir() else path
    try:
        return stamp.stat().st_mtime < float(before)
    except (OSError, ValueError):
        return True
