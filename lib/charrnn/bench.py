"""Speed benchmark: this library against the classic per-timestep implementation.

Both train with AdaGrad on the same text from the same initial parameters,
side by side in one process; rounds alternate between them so that a noisy
machine slows both alike, and each rate is the best of its rounds. In a round
the classic loop makes a quarter of the updates, so that each implementation
runs for about the same time and has the same chance of a quiet moment; many
short rounds give both many chances (on the shared 2-core machine this was
written on, a single second can run 15% slower than the next).
"""
from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .corpus import Corpus
from .paths import repo_root
from .model import init_params
from .trainer import train


def load_classic():
    """The module benchmarks/classic.py of this checkout."""
    path = repo_root() / "benchmarks" / "classic.py"
    if not path.exists():
        raise FileNotFoundError(f"the classic implementation is missing: {path}")
    spec = importlib.util.spec_from_file_location("charrnn_classic", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def code_version() -> str:
    """A short hash of the code a speed measurement depends on (the measured code and this
    module, which measures), so a stored result is measured again after either changes."""
    h = hashlib.sha256()
    for path in [Path(__file__).parent / f"{name}.py" for name in ("model", "optim", "trainer", "bench")] + \
            [repo_root() / "benchmarks" / "classic.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def compare(text, updates: int = 1000, rounds: int = 15, m: int = 100, seq_length: int = 25,
            seed: int = 0) -> dict:
    """Updates per second of the classic loop, of charrnn in float64 and in float32.

    updates: charrnn's updates per round (the classic loop makes updates // 4).
    Returns {"classic", "float64", "float32": the best round's rate; "ratio64", "ratio32": best rate
    over the classic's best rate; "paired64", "paired32": the median over rounds of the ratio within
    a round; "updates", "classic_updates", "rounds", "m", "seq_length"}.
    """
    corpus = text if isinstance(text, Corpus) else Corpus.from_text(text)
    classic = load_classic()
    params = init_params(len(corpus.vocab), m, seed=seed)
    rates = {"classic": [], "float64": [], "float32": []}
    classic_updates = max(1, updates // 4)
    for _ in range(rounds):
        t0 = time.perf_counter()
        classic.classic_train(corpus.ids, params, classic_updates, seq_length=seq_length)
        rates["classic"].append(classic_updates / (time.perf_counter() - t0))
        for dtype in ("float64", "float32"):
            cfg = TrainConfig(m=m, seq_length=seq_length, n_updates=updates, sample_length=0,
                              dtype=dtype, seed=seed)
            rates[dtype].append(train(corpus, cfg, params=params).updates_per_second)
    best = {k: max(v) for k, v in rates.items()}
    classic_rates = np.array(rates["classic"])
    return {**best, "ratio64": best["float64"] / best["classic"], "ratio32": best["float32"] / best["classic"],
            "paired64": float(np.median(np.array(rates["float64"]) / classic_rates)),
            "paired32": float(np.median(np.array(rates["float32"]) / classic_rates)),
            "updates": updates, "classic_updates": classic_updates, "rounds": rounds, "m": m,
            "seq_length": seq_length}


def format_result(r: dict) -> str:
    return (f"m={r['m']} seq_length={r['seq_length']}, {r['rounds']} alternating rounds of {r['updates']} updates "
            f"({r['classic_updates']} for the classic loop), best round of each\n"
            f"  classic per-timestep : {r['classic']:8.0f} updates/s\n"
            f"  charrnn float64      : {r['float64']:8.0f} updates/s  ({r['ratio64']:.2f}x classic; "
            f"median of the rounds' own ratios {r['paired64']:.2f}x)\n"
            f"  charrnn float32      : {r['float32']:8.0f} updates/s  ({r['ratio32']:.2f}x classic; "
            f"median of the rounds' own ratios {r['paired32']:.2f}x)\n"
            f"  100,000 updates at float64: {100_000 / r['float64']:.0f} s")
