"""Bad input, case by case: the command line answers with one line on stderr and a
non-zero exit, writes nothing, and the library raises a ValueError/OSError
subclass carrying exactly that line's message."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn import Corpus, TrainConfig, load_checkpoint, sample, train
from charrnn.fileio import check_writable_dir

SMALL = dict(m=6, seq_length=8, n_updates=30, checkpoint_every=10, sample_every=1000, sample_length=5, log_every=5)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, text_small):
    """A workspace of good and broken files; the tests write elsewhere."""
    d = tmp_path_factory.mktemp("bad-input")
    (d / "corpus.txt").write_text(text_small, encoding="utf-8")
    (d / "other.txt").write_text(text_small + " Zebra? 42!", encoding="utf-8")   # a different vocabulary
    (d / "empty.txt").write_bytes(b"")
    (d / "image.png").write_bytes(PNG)
    (d / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me, na\u00efve.\n".encode("latin-1"))
    (d / "short.txt").write_text("tiny text", encoding="utf-8")
    (d / "adir").mkdir()
    (d / "afile").write_text("a regular file", encoding="utf-8")
    train(text_small, TrainConfig(**SMALL, checkpoint_dir=str(d / "run")))
    good = (d / "run" / "last.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[:len(good) // 2])
    ck = dict(np.load(d / "run" / "last.npz", allow_pickle=False))
    meta = bytes(ck["meta"]).decode()
    np.savez(d / "bad-json.npz", **{**ck, "meta": np.frombuffer(meta[:-7].encode(), np.uint8)})
    m = json.loads(meta)
    m["config"]["m"] = 7                          # JSON now disagrees with every array's shape
    np.savez(d / "bad-meta-shape.npz", **{**ck, "meta": np.frombuffer(json.dumps(m).encode(), np.uint8)})
    np.savez(d / "bad-array-shape.npz", **{**ck, "param/W": ck["param/W"][:, :-1]})
    return d


def ck_args(ws, *more):
    return ["sample", "--checkpoint", str(ws / "run" / "last.npz"), "--seed", "0", *more]


def train_args(ws, corpus="corpus.txt", *more, out="out"):
    return ["train", "--corpus", str(ws / corpus), "--out", str(ws.parent / "scratch" / out), "--quiet",
            "--m", "6", "--seq-length", "8", "--updates", "30", *more]


def lib_corpus(ws, name, min_chars=9):
    return lambda: Corpus.from_file(ws / name, min_chars=min_chars)


def lib_config(**kw):
    return lambda ws: TrainConfig(**{**SMALL, **kw})


def lib_sample(ws, **kw):
    ck = load_checkpoint(ws / "run" / "last.npz")
    args = dict(n=20, prime="\n", temperature=1.0, top_p=1.0, seed=0)
    args.update(kw)
    return sample(ck.params, ck.vocab, **args)


def lib_resume_other_corpus(ws):
    ck = load_checkpoint(ws / "run" / "last.npz")
    cfg = ck.config.replace(resume=ck.path, checkpoint_dir=str(ws.parent / "scratch" / "out"), n_updates=60)
    train(Corpus.from_file(ws / "other.txt"), cfg)


def lib_unwritable(path):
    def call(ws):
        corpus = Corpus.from_file(ws / "corpus.txt")
        train(corpus, TrainConfig(**{**SMALL, "checkpoint_dir": path.format(ws=ws)}))
    return call


# id, command-line arguments (from ws), library call (from ws), words the message must contain
CASES = [
    ("missing corpus", lambda ws: train_args(ws, "nope.txt"),
     lambda ws: lib_corpus(ws, "nope.txt")(), ["corpus not found", "nope.txt"]),
    ("corpus is a directory", lambda ws: train_args(ws, "adir"),
     lambda ws: lib_corpus(ws, "adir")(), ["directory", "adir"]),
    ("empty corpus", lambda ws: train_args(ws, "empty.txt"),
     lambda ws: lib_corpus(ws, "empty.txt")(), ["empty", "empty.txt"]),
    ("binary corpus (PNG)", lambda ws: train_args(ws, "image.png"),
     lambda ws: lib_corpus(ws, "image.png")(), ["binary", "offset 0"]),
    ("Latin-1 corpus", lambda ws: train_args(ws, "latin1.txt"),
     lambda ws: lib_corpus(ws, "latin1.txt")(), ["not valid UTF-8", "0xe9", "offset 3"]),
    ("text shorter than seq_length + 1", lambda ws: train_args(ws, "short.txt", "--seq-length", "25"),
     lambda ws: lib_corpus(ws, "short.txt", 26)(), ["9 characters", "at least 26"]),
    ("m = 0", lambda ws: train_args(ws, "corpus.txt", "--m", "0"), lib_config(m=0), ["m (hidden units)", ">= 1"]),
    ("seq_length = 0", lambda ws: train_args(ws, "corpus.txt", "--seq-length", "0"),
     lib_config(seq_length=0), ["seq_length", ">= 1"]),
    ("eta = 0", lambda ws: train_args(ws, "corpus.txt", "--eta", "0"), lib_config(eta=0.0), ["eta", "> 0"]),
    ("eta < 0", lambda ws: train_args(ws, "corpus.txt", "--eta", "-0.1"), lib_config(eta=-0.1), ["eta", "> 0"]),
    ("eta = nan", lambda ws: train_args(ws, "corpus.txt", "--eta", "nan"), lib_config(eta=float("nan")), ["eta"]),
    ("updates = 0", lambda ws: train_args(ws, "corpus.txt", "--updates", "0"),
     lib_config(n_updates=0), ["updates", ">= 1"]),
    ("updates < 0", lambda ws: train_args(ws, "corpus.txt", "--updates", "-5"),
     lib_config(n_updates=-5), ["updates", "-5"]),
    ("epochs = 0", lambda ws: train_args(ws, "corpus.txt", "--epochs", "0"), lib_config(epochs=0), ["epochs"]),
    ("epochs < 0", lambda ws: train_args(ws, "corpus.txt", "--epochs", "-2"), lib_config(epochs=-2), ["epochs"]),
    ("clip = 0", lambda ws: train_args(ws, "corpus.txt", "--clip", "0"), lib_config(clip=0.0), ["clip", "> 0"]),
    ("clip < 0", lambda ws: train_args(ws, "corpus.txt", "--clip", "-1"), lib_config(clip=-1.0), ["clip"]),
    ("spike guard <= 1", lambda ws: train_args(ws, "corpus.txt", "--spike-guard", "1"), lib_config(spike_guard=1.0),
     ["spike_guard", "> 1"]),
    ("spike eta = 0", lambda ws: train_args(ws, "corpus.txt", "--spike-guard", "2", "--spike-eta", "0"),
     lib_config(spike_guard=2.0, spike_eta=0.0), ["spike_eta", "(0, 1]"]),
    ("ema = 1", lambda ws: train_args(ws, "corpus.txt", "--ema", "1"), lib_config(ema=1.0), ["ema", "(0, 1)"]),
    ("temperature < 0", lambda ws: ck_args(ws, "--temperature", "-0.5", "--length", "20"),
     lambda ws: lib_sample(ws, temperature=-0.5), ["temperature", ">= 0"]),
    ("top-p = 0", lambda ws: ck_args(ws, "--top-p", "0", "--length", "20"),
     lambda ws: lib_sample(ws, top_p=0.0), ["top-p", "(0, 1]"]),
    ("top-p > 1", lambda ws: ck_args(ws, "--top-p", "1.5", "--length", "20"),
     lambda ws: lib_sample(ws, top_p=1.5), ["top-p", "1.5"]),
    ("top-p < 0", lambda ws: ck_args(ws, "--top-p", "-0.2", "--length", "20"),
     lambda ws: lib_sample(ws, top_p=-0.2), ["top-p"]),
    ("length < 0", lambda ws: ck_args(ws, "--length", "-1"), lambda ws: lib_sample(ws, n=-1), ["length", "-1"]),
    ("prime outside the vocabulary", lambda ws: ck_args(ws, "--prime", "the Zq\u2603", "--length", "20"),
     lambda ws: lib_sample(ws, prime="the Zq\u2603"), ["'Z' (U+005A)", "'\u2603' (U+2603)", "not in the vocabulary"]),
    ("missing checkpoint (sample)", lambda ws: ["sample", "--checkpoint", str(ws / "nope.npz")],
     lambda ws: load_checkpoint(ws / "nope.npz"), ["not found", "nope.npz"]),
    ("missing checkpoint (resume)", lambda ws: train_args(ws, "corpus.txt", "--resume", str(ws / "nope.npz")),
     lambda ws: load_checkpoint(ws / "nope.npz"), ["not found", "nope.npz"]),
    ("run directory without a checkpoint", lambda ws: ["sample", "--checkpoint", str(ws / "adir")],
     lambda ws: load_checkpoint(ws / "adir"), ["no checkpoint", "adir"]),
    ("truncated checkpoint", lambda ws: ["sample", "--checkpoint", str(ws / "truncated.npz")],
     lambda ws: load_checkpoint(ws / "truncated.npz"), ["truncated or corrupted"]),
    ("corpus given as a checkpoint", lambda ws: ["sample", "--checkpoint", str(ws / "corpus.txt")],
     lambda ws: load_checkpoint(ws / "corpus.txt"), ["truncated or corrupted"]),
    ("checkpoint with tampered JSON", lambda ws: ["sample", "--checkpoint", str(ws / "bad-json.npz")],
     lambda ws: load_checkpoint(ws / "bad-json.npz"), ["corrupted metadata"]),
    ("checkpoint JSON disagreeing with its arrays", lambda ws: ["sample", "--checkpoint", str(ws / "bad-meta-shape.npz")],
     lambda ws: load_checkpoint(ws / "bad-meta-shape.npz"), ["has shape", "m=7"]),
    ("checkpoint with a tampered array shape", lambda ws: ["sample", "--checkpoint", str(ws / "bad-array-shape.npz")],
     lambda ws: load_checkpoint(ws / "bad-array-shape.npz"), ["param/W has shape (6, 5)", "expected (6, 6)"]),
    ("resume on a different corpus", lambda ws: train_args(ws, "other.txt", "--resume", str(ws / "run"),
                                                            "--updates", "60"),
     lib_resume_other_corpus, ["different vocabulary", "new characters"]),
    ("resume from a best-only checkpoint", lambda ws: train_args(ws, "corpus.txt", "--resume", str(ws / "run" / "best.npz"),
                                                                  "--updates", "60"),
     lambda ws: train(Corpus.from_file(ws / "corpus.txt"), load_checkpoint(ws / "run" / "best.npz").config.replace(
         resume=str(ws / "run" / "best.npz"), checkpoint_dir=str(ws.parent / "scratch" / "out"), n_updates=60)),
     ["without training state", "last.npz"]),
    ("output directory under a regular file", lambda ws: train_args(ws, out="x") [:4] + [str(ws / "afile" / "run")]
     + train_args(ws)[5:], lib_unwritable("{ws}/afile/run"), ["cannot write to output directory", "Not a directory"]),
    ("output directory in /proc", lambda ws: train_args(ws)[:4] + ["/proc/charrnn-test-run"] + train_args(ws)[5:],
     lib_unwritable("/proc/charrnn-test-run"), ["cannot write to output directory", "/proc/charrnn-test-run"]),
]


def snapshot(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_cli(args, cwd):
    env = {**os.environ, "CHARRNN_RUNS": str(Path(cwd) / "runs")}
    return subprocess.run([sys.executable, "-m", "charrnn", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize("name, argv, lib, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ws, name, argv, lib, words):
    before = snapshot(ws.parent)
    r = run_cli(argv(ws), cwd=ws)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""
    command = argv(ws)[0]
    prefix = f"charrnn {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix):]
    for w in words:
        assert w in message, (w, message)
    assert snapshot(ws.parent) == before, "a refused command wrote files"

    with pytest.raises((ValueError, OSError)) as exc:
        lib(ws)
    assert str(exc.value) == message
    assert snapshot(ws.parent) == before, "a refused library call wrote files"


def test_the_table_covers_the_issue():
    """The issue lists 20 kinds of bad input; the table has each (several in more than one form)
    plus four more: eta = nan, a run directory with no checkpoint, a text file given as a
    checkpoint, resuming from best.npz; the spike guard's two settings a user types, and the parameters'
    average's decay."""
    assert len(CASES) == 38 and len({c[0] for c in CASES}) == len(CASES)


def test_unwritable_output_is_refused_before_training(ws):
    """The probe runs before the first update: no time is spent training into a directory that cannot be kept."""
    with pytest.raises(OSError, match="cannot write to output directory"):
        check_writable_dir(ws / "afile" / "run")
    events = []
    with pytest.raises(OSError):
        train(Corpus.from_file(ws / "corpus.txt"), TrainConfig(**{**SMALL, "checkpoint_dir": str(ws / "afile" / "r")}),
              callback=events.append)
    assert events == []


def test_usage_mistakes_are_one_line_exit_2(ws):
    for args in (["train", "--m", "ten"], ["sample"], ["frobnicate"], ["sample", "--checkpoint", "x", "--top-p", "a"]):
        r = run_cli(args, cwd=ws)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, args
