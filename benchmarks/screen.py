"""The screening behind `--preset budget`: settings compared for the same training time, each over seeds.

    python benchmarks/screen.py [--seconds 180] [--seeds 0 1 2] [--only NAME ...] [--updates N] [--out benchmarks/screening.json]

For each setting (the budget preset changed by a few fields, SETTINGS below):
1. its speed is measured alone, with the machine's BLAS threads, over 200 updates after 20 to warm up;
2. it is trained for the updates that speed makes in `seconds`, under every seed, on the default corpus
   with the last 10% held out, two runs at a time with one BLAS thread each (the same work on any machine,
   and a seed's result does not depend on the machine's load);
3. the final and best held-out loss of every seed and the spike guard's events are written to --out, under
   the machine and date they were measured on: {machine: {setting: result}}, since only settings measured
   on one machine are compared (the same shapes ran 1.8 times slower on one 2-core machine than on another).

Training is chaotic, so a setting is judged by its worst seed. On this project's 2-core machine the whole
screening takes about 7 minutes per setting. Run it on a quiet machine: the speeds of step 1 set the work,
and the same machine measured 7.9 and 9.7 updates/s for the same shapes twenty minutes apart. A setting that
changes no shape (a learning rate, beta2) runs at its baseline's speed, so it is better given the baseline's
updates with --updates than probed again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (what it changes, the fields it sets on the preset). The rows measured before the preset took ema=0.98
# (all but the two ema rows) read the held-out loss from the trained weights; run again, they would average them.
# The rows measured before it took schedule="linear" (all but the linear rows) ran the cosine: screening.json
# records it in their fields, and run again they would fall linearly.
SETTINGS = {
    "gru m=256 (the previous preset)": {"cell": "gru", "m": 256},
    "gru m=256, eta 2e-2": {"cell": "gru", "m": 256, "eta": 2e-2},
    "gru m=256, eta 2e-2, no spike guard": {"cell": "gru", "m": 256, "eta": 2e-2, "spike_guard": None},
    "gru m=256, B=64": {"cell": "gru", "m": 256, "batch_size": 64},
    "gru m=384": {"cell": "gru", "m": 384},
    "gru m=384, eta 7e-3": {"cell": "gru", "m": 384, "eta": 7e-3},
    "gru m=384, eta 1.4e-2": {"cell": "gru", "m": 384, "eta": 1.4e-2},
    "gru m=384, dropout 0.1": {"cell": "gru", "m": 384, "dropout": 0.1},
    "gru m=512": {"cell": "gru", "m": 512},
    "two GRU layers (gru2), m=256": {"cell": "gru2", "m": 256},
    "two GRU layers (gru2), m=256, dropout 0.1": {"cell": "gru2", "m": 256, "dropout": 0.1},
    "gru2, seq_length 32": {"cell": "gru2", "m": 256, "seq_length": 32},
    "gru2, batch_size 16": {"cell": "gru2", "m": 256, "batch_size": 16},
    "gru2, Adam beta2 0.99": {"cell": "gru2", "m": 256, "beta2": 0.99},
    "gru2, eta 1.5e-2": {"cell": "gru2", "m": 256, "eta": 1.5e-2},
    "gru2, eta 7e-3": {"cell": "gru2", "m": 256, "eta": 7e-3},
    "gru2, warmup 30": {"cell": "gru2", "m": 256, "warmup": 30},
    "gru2, final_eta 0.01": {"cell": "gru2", "m": 256, "final_eta": 0.01},
    "gru2, final_eta 0.2": {"cell": "gru2", "m": 256, "final_eta": 0.2},
    "gru2, weight_decay 0.01": {"cell": "gru2", "m": 256, "weight_decay": 0.01},
    "gru2, clip_norm 1": {"cell": "gru2", "m": 256, "clip_norm": 1.0},
    "gru2, ema 0.99": {"cell": "gru2", "m": 256, "ema": 0.99},
    "gru2, ema 0.98": {"cell": "gru2", "m": 256, "ema": 0.98},
    "gru2, orthogonal recurrent init": {"cell": "gru2", "m": 256, "init": "orthogonal"},
    "gru2, linear decay": {"cell": "gru2", "m": 256, "schedule": "linear"},
    "gru2, linear decay to 0": {"cell": "gru2", "m": 256, "schedule": "linear", "final_eta": 0.0},
    "gru2 linear, eta 1.2e-2": {"cell": "gru2", "m": 256, "schedule": "linear", "eta": 1.2e-2},
    "gru2 linear, warmup 50": {"cell": "gru2", "m": 256, "schedule": "linear", "warmup": 50},
    "gru2 linear, final_eta 0.1": {"cell": "gru2", "m": 256, "schedule": "linear", "final_eta": 0.1},
    "gru2, cosine decay": {"cell": "gru2", "m": 256, "schedule": "cosine"},
}


def base_fields() -> dict:
    from charrnn.config import PRESETS
    return {**PRESETS["budget"], "val_fraction": 0.1, "sample_length": 0, "val_every": 500, "log_every": 50}


def machine() -> str:
    """The processor, cores and NumPy a screening ran on, for the record: settings are compared by their
    worst seed only when measured on the same machine."""
    import platform
    import numpy as np
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (info.read_text().splitlines() if info.exists() else [])
             if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, NumPy {np.__version__}"


def probe(fields: dict, corpus) -> float:
    """Updates per second of these settings, alone, after 20 updates to warm up."""
    from charrnn import TrainConfig, train
    cfg = TrainConfig(**{**fields, "val_every": 10**6, "n_updates": 20})
    train(corpus, cfg)
    return train(corpus, cfg.replace(n_updates=200)).updates_per_second


def one_seed(fields: dict, seed: int, n_updates: int, corpus_path: str) -> dict:
    from charrnn import Corpus, TrainConfig, train
    h = train(Corpus.from_file(corpus_path), TrainConfig(**{**fields, "seed": seed, "n_updates": n_updates}))
    return {"seed": seed, "final": h.val_loss[-1], "best": h.best_val_loss, "best_step": h.best_val_step,
            "spikes": h.spikes, "val_steps": h.val_steps, "val_loss": h.val_loss}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, help="train every setting for this many updates instead of probing its "
                        "speed: for settings that change no shape and so not the speed (a learning rate, beta2), "
                        "compared with a baseline at the updates its probe gave, free of the probe's noise")
    parser.add_argument("--only", nargs="+", help="settings to run (names as in SETTINGS); default: all")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "screening.json"))
    args = parser.parse_args(argv)
    from charrnn import Corpus
    from charrnn.corpus import default_corpus_path
    corpus_path = str(default_corpus_path(build=True))
    corpus = Corpus.from_file(corpus_path)
    names = args.only or list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(f"screen: unknown setting {unknown[0]!r}; choose from: {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    measured = f"{time.strftime('%Y-%m-%d')}, {machine()}"
    stored = json.loads(out.read_text()) if out.exists() else {}
    results = stored.setdefault(measured, {})
    plan = {}
    for name in names:                               # step 1, alone on the machine
        fields = {**base_fields(), **SETTINGS[name]}
        rate = probe(fields, corpus) if args.updates is None else args.updates / args.seconds
        plan[name] = (fields, rate, args.updates or int(args.seconds * rate))
        how = "alone" if args.updates is None else "(given)"
        print(f"{name}: {rate:.2f} updates/s {how}, {plan[name][2]:,} updates in {args.seconds:g} s", flush=True)
    os.environ.update({k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    t0 = time.time()
    import multiprocessing
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:   # step 2
        futures = {(name, seed): pool.submit(one_seed, fields, seed, n, corpus_path)
                   for name, (fields, rate, n) in plan.items() for seed in args.seeds}
        for (name, seed), f in futures.items():
            r = f.result()
            fields, rate, n = plan[name]
            entry = results.setdefault(name, {})
            entry.update({"fields": SETTINGS[name], "updates_per_s": rate,
                          "chars_per_s": rate * fields["batch_size"] * fields["seq_length"], "updates": n,
                          "seconds": args.seconds})
            entry.setdefault("seeds", {})[str(seed)] = r
            print(f"  {name}, seed {seed}: held-out {r['final']:.4f} (best {r['best']:.4f}), "
                  f"{len(r['spikes'] or ())} refused; {time.time() - t0:.0f} s", flush=True)
            out.write_text(json.dumps(stored, indent=1))    # step 3, after every run
    for name in names:
        finals = [s["final"] for s in results[name]["seeds"].values()]
        print(f"{name}: {results[name]['chars_per_s']:,.0f} characters/s, held-out {min(finals):.3f}-{max(finals):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
