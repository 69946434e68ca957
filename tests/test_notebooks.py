"""Every notebook runs top to bottom in the quick profile; committed notebooks carry no outputs.

The report's notebooks are executed once per session (`quick_build`, shared with
test_report.py) into a temporary directory, with runs and figures there too, so
the repository's runs/ and figures/ are never touched.
"""
import atexit
import functools
import os
import shutil
import struct
import tempfile
from pathlib import Path

import nbformat
import pytest

from charrnn.report import build as report

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
FIGURES = ("03-smooth_loss", "04-long", "05-validation", "05-optimisers", "05-hidden_size", "05-speed",
           "05-start_state", "06-cells", "06-budget", "06-time_to_quality")     # section-key, as display.Section saves them


@functools.lru_cache(maxsize=None)
def quick_build():
    """Execute the report's notebooks in the quick profile, once per session.

    Returns (base directory, kernel environment, {notebook: None or the error line}).
    """
    base = Path(tempfile.mkdtemp(prefix="charrnn-quick-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    env = {**os.environ, "CHARRNN_PROFILE": "quick", "CHARRNN_RUNS": str(base / "runs"),
           "CHARRNN_FIGURES": str(base / "figures")}
    for k in ("CHARRNN_FORCE_BEFORE", "CHARRNN_FORCE_RUNS", "CHARRNN_SETTINGS", "CHARRNN_CORPUS"):
        env.pop(k, None)
    errors = {}
    for name in report.NOTEBOOKS:
        try:
            report.execute_notebook(NB_DIR / f"{name}.ipynb", base / "build" / f"{name}.ipynb", env=env, timeout=600)
            errors[name] = None
        except report.BuildError as exc:
            errors[name] = str(exc)
    return base, env, errors


def committed_notebooks():
    return sorted(NB_DIR.glob("*.ipynb"))


def test_the_numbered_notebooks_exist():
    names = {p.stem for p in committed_notebooks()}
    assert set(report.NOTEBOOKS) <= names


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {cell.get('id')} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name}: cell {cell.get('id')} has an execution count"


@pytest.mark.parametrize("name", report.NOTEBOOKS)
def test_notebook_runs_without_errors(name):
    base, _, errors = quick_build()
    assert errors[name] is None, errors[name]
    nb = nbformat.read(base / "build" / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], f"{name}: cell {cell.id} failed"
            assert cell.execution_count is not None, f"{name}: cell {cell.id} did not run"


def test_interactive_notebook_runs_without_errors():
    path = NB_DIR / "05_interactive_sampling.ipynb"
    if not path.exists():
        pytest.skip("notebooks/05_interactive_sampling.ipynb does not exist yet")
    base, env, _ = quick_build()                 # after the report's notebooks: runs/ has checkpoints
    report.execute_notebook(path, base / "build" / path.name, env=env, timeout=600)


def png_dpi(path: Path) -> float:
    """Horizontal dots per inch from a PNG's pHYs chunk (0 when it has none)."""
    data = path.read_bytes()
    i = data.find(b"pHYs")
    if i < 0:
        return 0.0
    ppx, _, unit = struct.unpack(">IIB", data[i + 4:i + 13])
    return ppx * 0.0254 if unit == 1 else 0.0


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_saved_as_png_at_150_dpi_or_more(name):
    base, _, errors = quick_build()
    path = base / "figures" / f"{name}.png"
    assert path.exists(), f"figure {name}.png was not saved ({errors})"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_dpi(path) >= 150
