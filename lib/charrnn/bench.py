"""Speed benchmark: this library against the classic per-timestep implementation
(charrnn.models.reference.classic_train).

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
import time
from pathlib import Path

import numpy as np

from . import jit
from .config import TrainConfig
from .corpus import Corpus
from .models.reference import classic_train
from .models.rnn import init_params
from .trainer import train


def code_version(package: Path | None = None) -> str:
    """A short hash of the code a speed measurement depends on (the measured code, the classic loop
    in models/reference.py among it, and this module, which measures), so a stored result is measured
    again after either changes. package: the charrnn directory to read (default: this one)."""
    h = hashlib.sha256()
    here = Path(__file__).parent if package is None else Path(package)
    for path in sorted((here / "models").glob("*.py")) + [here / f"{n}.py" for n in ("optim", "trainer", "bench", "jit")]:
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
    params = init_params(len(corpus.vocab), m, seed=seed)
    rates = {"classic": [], "float64": [], "float32": []}
    classic_updates = max(1, updates // 4)
    for _ in range(rounds):
        t0 = time.perf_counter()
        classic_train(corpus.ids, params, classic_updates, seq_length=seq_length)
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


# --------------------------------------------------------------------------- any cell: characters/s and the GEMM share

def matmul_flops_per_char(G: int, K: int, m: int, layers: int = 1) -> int:
    """Floating-point operations of the matrix products one character costs in training, from the shapes:
    in each of the `layers` recurrent layers, the recurrent product forward (W h), backward (dz W) and for
    dW, each 2 G m^2 for G gate blocks of m rows (1 rnn, 3 gru and gru2, 4 lstm); in each layer above the
    first, the same three for its dense input (U2 h1: forward, dL/dh1 and dU2); and the output layer
    forward, backward and for dV, each 2 K m. The first layer's input weights cost none: U x_t is a column
    lookup (and the one-hot product for dU is not counted)."""
    return 6 * G * m * m * (2 * layers - 1) + 6 * K * m


def matmul_seconds(G: int, B: int, T: int, K: int, m: int, dtype, repeats: int = 3, layers: int = 1) -> float:
    """The best time of `repeats` runs of exactly the matrix products of one training update at these
    shapes and dtype (those matmul_flops_per_char counts): per recurrent layer T recurrent products forward
    and T backward and dW over all B*T rows, per layer above the first its dense input's three products
    over all B*T positions, and the output layer's three products. The recurrent products are timed in
    both layouts, one stream per row ((B, m) @ (m, G m), as the vanilla RNN computes) and one stream per
    column ((G m, m) @ (m, B), as the gated cells do), and the faster counts: the rate a cell is measured
    against is the best at its shapes."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((G * m, m)).astype(dtype)
    V = rng.standard_normal((K, m)).astype(dtype)
    Hs = rng.standard_normal((T * B, m)).astype(dtype)
    O = np.empty((T * B, K), dtype)
    dV, dW = np.empty((K, m), dtype), np.empty((G * m, m), dtype)
    rows = (rng.standard_normal((T + 1, B, m)).astype(dtype), rng.standard_normal((T, B, G * m)).astype(dtype),
            np.empty((B, m), dtype))
    cols = (rng.standard_normal((T + 1, m, B)).astype(dtype), rng.standard_normal((T, G * m, B)).astype(dtype),
            np.empty((m, B), dtype))
    Zs = rng.standard_normal((G * m, T * B)).astype(dtype)
    Hc = rng.standard_normal((m, T * B)).astype(dtype)   # an upper layer's input, one column per position

    def recurrent(by_rows: bool, backward: bool):
        H, Z, dH = rows if by_rows else cols
        for t in (range(T - 1, -1, -1) if backward else range(T)):
            if backward:
                np.dot(Z[t], W, dH) if by_rows else np.dot(W.T, Z[t], dH)
            else:
                np.dot(H[t], W.T, Z[t]) if by_rows else np.dot(W, H[t], Z[t])

    def update(by_rows: bool):
        for _ in range(layers - 1):                  # forward: an upper layer's dense input, then its loop
            np.dot(W, Hc, Zs)
            recurrent(by_rows, False)
        recurrent(by_rows, False)
        np.dot(Hs, V.T, O)
        np.dot(O, V, Hs)
        np.dot(O.T, Hs, dV)
        for layer in range(layers):                  # backward, top down: the loop, dW, an upper layer's input
            recurrent(by_rows, True)
            np.dot(Zs, Hs, dW)
            if layer < layers - 1:
                np.dot(Zs, Hs, dW)
                np.dot(Zs.T, W, Hs)

    best = np.inf
    for _ in range(repeats):
        for by_rows in (True, False):
            t0 = time.perf_counter()
            update(by_rows)
            best = min(best, time.perf_counter() - t0)
    return best


def cell_speed(text, cell: str = "lstm", batch_size: int = 32, seq_length: int = 64, m: int = 256,
               dtype: str = "float32", updates: int | None = None, rounds: int = 5, seed: int = 0,
               kernels: bool = True) -> dict:
    """Training speed of a cell, and the share of this machine's matrix-multiply rate it reaches.

    Rounds alternate a training run of `updates` updates (Adam, per-character loss) with timing the same
    update's matrix products alone (matmul_seconds); each figure is the best round's. kernels=False runs
    NumPy's path even where the compiled kernels (charrnn/jit.py) would run.
    Returns {"chars_per_s", "gemm_fraction", "flops_per_char", "gemm_flops_per_s", "ms_per_update",
    "gemm_ms_per_update", "cell", "batch_size", "seq_length", "m", "dtype", "updates", "rounds",
    "kernels": whether the kernels ran (Adam's for any float32 cell, the gates' for gru and gru2)}.
    """
    if not kernels:
        with jit.numpy_only():
            return cell_speed(text, cell, batch_size, seq_length, m, dtype, updates, rounds, seed)
    from .models import get_cell
    corpus = text if isinstance(text, Corpus) else Corpus.from_text(text)
    K, B, T = len(corpus.vocab), batch_size, seq_length
    updates = updates or max(3, 60_000 // (B * T))
    c = get_cell(cell)
    G, layers = c.param_shapes(K, m)["W"][0] // m, c.LAYERS
    config = TrainConfig(cell=cell, m=m, batch_size=B, seq_length=T, dtype=dtype, n_updates=updates,
                         optimizer="adam", eta=1e-3, objective="mean", sample_length=0, seed=seed, sigma=0.05)
    params = c.init_params(K, m, 0.05, seed=seed, dtype=np.dtype(dtype))
    per_update, gemm = np.inf, np.inf
    for _ in range(rounds):
        h = train(corpus, config, params=params)
        per_update = min(per_update, 1.0 / h.updates_per_second)
        gemm = min(gemm, matmul_seconds(G, B, T, K, m, np.dtype(dtype), layers=layers))
    flops = matmul_flops_per_char(G, K, m, layers)
    chars = B * T / per_update
    rate = flops * B * T / gemm
    return {"chars_per_s": chars, "gemm_fraction": chars * flops / rate, "flops_per_char": flops,
            "gemm_flops_per_s": rate, "ms_per_update": per_update * 1e3, "gemm_ms_per_update": gemm * 1e3,
            "cell": cell, "batch_size": B, "seq_length": T, "m": m, "dtype": dtype, "updates": updates,
            "rounds": rounds, "kernels": jit.enabled(dtype)}


def format_cell_speed(r: dict) -> str:
    return (f"cell={r['cell']} batch_size={r['batch_size']} seq_length={r['seq_length']} m={r['m']} {r['dtype']}"
            f"{', compiled kernels' if r.get('kernels') else ''}: "
            f"{r['rounds']} alternating rounds of {r['updates']} updates, best round of each\n"
            f"  training                 : {r['chars_per_s']:10,.0f} characters/s ({r['ms_per_update']:.2f} ms per update)\n"
            f"  matrix products alone    : {r['gemm_ms_per_update']:10.2f} ms per update = "
            f"{r['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s ({r['flops_per_char'] / 1e6:.2f} MFLOP per character)\n"
            f"  share of that GEMM rate  : {r['gemm_fraction']:10.2f}")
