"""Memory at scale: peak RSS of `python -m charrnn train` on a 50 MB corpus, and the memory
of a 100,000-character sample.

    .venv/bin/python benchmarks/scale.py [--mb 50] [--updates 200]

Needs GNU time at /usr/bin/time (Debian package `time`). Everything is written to a
temporary directory that is removed afterwards. Prints one line per measurement.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

WORDS = ("the of and to a in that is was he for it with as his on be at by had are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "Harry Hermione Ron Dumbledore wand \u2014 caf\u00e9 na\u00efve").split()


def make_corpus(path: Path, mb: float, seed: int = 0) -> int:
    """Seeded pseudo-English (with an em dash and accents, as in real books) of about mb megabytes."""
    rng = np.random.default_rng(seed)
    target, size = int(mb * 1_000_000), 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        while size < target:
            words = [WORDS[i] for i in rng.integers(len(WORDS), size=20_000)]
            chunk = " ".join(words) + ".\n"
            f.write(chunk)
            size += len(chunk.encode("utf-8"))
    return path.stat().st_size


def peak_rss_kb(cmd) -> tuple[int, str]:
    """(maximum resident set size in kB, stderr) of cmd under /usr/bin/time -v."""
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)), r.stderr


def train_cmd(corpus, out, updates):
    return [sys.executable, "-m", "charrnn", "train", "--corpus", str(corpus), "--out", str(out), "--updates",
            str(updates), "--checkpoint-every", str(max(1, updates // 2)), "--sample-every", str(updates),
            "--quiet"]


def sample_memory(lengths=(1_000, 10_000, 100_000)):
    """tracemalloc peak (bytes) of sample() for each length, on a K=80, m=100 model."""
    from charrnn import Vocabulary, init_params, sample
    vocab = Vocabulary(tuple(chr(c) for c in range(32, 112)))
    params = init_params(len(vocab), 100, sigma=0.1, seed=0)
    out = {}
    for n in lengths:
        tracemalloc.start()
        text = sample(params, vocab, n, prime=" ", top_p=0.9, seed=0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(text) == n
        out[n] = peak
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="corpus size in MB (default 50)")
    ap.add_argument("--updates", type=int, default=200, help="training updates (default 200)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="charrnn-scale-") as tmp:
        tmp = Path(tmp)
        small, big = tmp / "small.txt", tmp / "big.txt"
        make_corpus(small, 0.05)
        nbytes = make_corpus(big, args.mb)
        base, _ = peak_rss_kb(train_cmd(small, tmp / "run-small", args.updates))
        peak, _ = peak_rss_kb(train_cmd(big, tmp / "run-big", args.updates))
        from charrnn import Corpus
        c = Corpus.from_file(big)
        print(f"corpus: {nbytes / 1e6:.1f} MB, {len(c):,} characters, K={len(c.vocab)}, ids {c.ids.dtype} "
              f"({c.ids.nbytes / 1e6:.1f} MB)")
        del c
        print(f"train peak RSS: {peak / 1024:.0f} MiB on the {args.mb:g} MB corpus, {base / 1024:.0f} MiB on a 50 kB "
              f"one: {(peak - base) / 1024:.0f} MiB for the text = {(peak - base) * 1024 / nbytes:.2f} bytes per byte")
        r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(tmp / "run-small"),
                            "--length", "100000", "--seed", "0"], capture_output=True, text=True)
        assert r.returncode == 0 and len(r.stdout) >= 100_000, r.stderr
        rss = {}
        for n in (1_000, 100_000):
            rss[n], _ = peak_rss_kb([sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(tmp / "run-small"),
                                     "--length", str(n), "--seed", "0"])
        print(f"sample peak RSS (CLI): {rss[1000] / 1024:.1f} MiB for 1,000 characters, "
              f"{rss[100000] / 1024:.1f} MiB for 100,000")
    peaks = sample_memory()
    print("sample() traced peak: " + ", ".join(f"{n:,} chars {p / 1024:.0f} KiB" for n, p in peaks.items())
          + f" ({(peaks[100_000] - peaks[1_000]) / 99_000:.1f} bytes per extra character, the text itself included)")


if __name__ == "__main__":
    main()
