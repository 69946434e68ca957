"""The command line: python -m charrnn {corpus,train,sample,gradcheck,bench}."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m charrnn")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("corpus", help="build or show the default corpus")
    p.add_argument("--build", action="store_true", help="build data/shakespeare.txt if it is missing")
    args = parser.parse_args(argv)
    from .corpus import default_corpus_path
    print(default_corpus_path(build=args.build))
    return 0
