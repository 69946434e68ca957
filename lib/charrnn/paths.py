"""Where things live: every path is resolved from the repository root, never the working directory."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """CHARRNN_ROOT if set, else the checkout this package lives in, else the working directory."""
    if os.environ.get("CHARRNN_ROOT"):
        return Path(os.environ["CHARRNN_ROOT"]).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "lib" / "charrnn").is_dir():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    """data/: the corpora."""
    return repo_root() / "data"


def runs_dir() -> Path:
    """runs/ (or CHARRNN_RUNS): one directory per training run with last.npz, best.npz, history.json."""
    return Path(os.environ["CHARRNN_RUNS"]) if os.environ.get("CHARRNN_RUNS") else repo_root() / "runs"


def figures_dir() -> Path:
    """figures/ (or CHARRNN_FIGURES): PNGs saved by the notebooks."""
    return Path(os.environ["CHARRNN_FIGURES"]) if os.environ.get("CHARRNN_FIGURES") else repo_root() / "figures"
