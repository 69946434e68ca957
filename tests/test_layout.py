"""The core reads alone: importing any module outside charrnn.report loads nothing of the report."""
import pkgutil
import subprocess
import sys

import charrnn

SHIMS = {"charrnn.display", "charrnn.units"}      # kept only until widgets.py imports from the new places


def test_the_core_never_imports_the_report():
    core = [m.name for m in pkgutil.walk_packages(charrnn.__path__, "charrnn.")
            if not m.name.startswith("charrnn.report") and m.name not in SHIMS and m.name != "charrnn.__main__"]
    assert "charrnn.trainer" in core and "charrnn.widgets" in core and "charrnn.colours" in core
    code = "".join(f"import {m}\n" for m in core) + (
        "import sys\nprint([m for m in sys.modules if m.startswith('charrnn.report')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
