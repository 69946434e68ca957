"""Scale: a corpus is held once, as compact ids; a long sample does not grow memory per character.
Peak RSS on a 50 MB corpus is measured by benchmarks/scale.py, not here."""
import subprocess
import sys
import tracemalloc

import numpy as np

from charrnn import Corpus, Vocabulary, init_params, sample

LINE = "Mr and Mrs Dursley, of number four, Privet Drive \u2014 were proud to say that they were perfectly normal.\n"


def traced_peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_corpus_is_one_compact_copy(tmp_path):
    """20 MB of text with an em dash (so a str of it would take 2 bytes per character): reading it
    allocates the uint8 ids plus a few MB, never the text as str or bytes."""
    p = tmp_path / "big.txt"
    reps = 20_000_000 // len(LINE.encode("utf-8"))
    with open(p, "w", encoding="utf-8") as f:
        for _ in range(reps // 1000):
            f.write(LINE * 1000)
    corpus, peak = traced_peak(lambda: Corpus.from_file(p))
    n = len(LINE) * (reps // 1000) * 1000
    assert len(corpus) == n and corpus.ids.dtype == np.uint8 and corpus.ids.nbytes == n
    assert not any(isinstance(v, (str, bytes)) and len(v) > 100 for v in vars(corpus).values())
    assert peak < n + 12_000_000, f"{peak / 1e6:.1f} MB traced for {n / 1e6:.1f} MB of ids"


def test_ids_use_the_smallest_integer_type():
    assert Corpus.from_text("abc" * 10).ids.dtype == np.uint8
    wide = "".join(chr(0x4E00 + i) for i in range(300))
    assert Corpus.from_text(wide * 2).ids.dtype == np.uint16


def test_sample_memory_per_character_is_small():
    """Beyond the returned text, memory grows by a small constant per character (ids and uniforms):
    no per-step state is kept."""
    vocab = Vocabulary(tuple(chr(c) for c in range(32, 112)))
    params = init_params(len(vocab), 100, sigma=0.1, seed=0)
    short, p_short = traced_peak(lambda: sample(params, vocab, 2_000, prime=" ", seed=0))
    long, p_long = traced_peak(lambda: sample(params, vocab, 20_000, prime=" ", seed=0))
    assert len(long) == 20_000 and long.startswith(short)
    per_char = (p_long - p_short) / 18_000
    assert per_char < 20, f"{per_char:.1f} bytes per extra character"


def test_a_100000_character_sample_runs_in_flat_memory():
    """In a fresh process: the peak RSS after drawing 100,000 characters exceeds the peak after
    1,000 by under 5 MB (it holds the text, 1 byte/char, and 16 bytes/char of ids and uniforms)."""
    code = """
import resource
from charrnn import Vocabulary, init_params, sample
vocab = Vocabulary(tuple(chr(c) for c in range(32, 112)))
params = init_params(len(vocab), 100, sigma=0.1, seed=0)
sample(params, vocab, 1_000, prime=" ", seed=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text = sample(params, vocab, 100_000, prime=" ", seed=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(text), before, after)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    n, before, after = map(int, r.stdout.split())
    assert n == 100_000
    assert after - before < 5_000, f"peak RSS grew by {after - before} kB"
