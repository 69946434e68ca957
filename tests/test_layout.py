"""The core reads alone: importing any module outside charrnn.report loads nothing of the report (a call may
still: widgets.UnitViewer imports charrnn.report.units when it is built)."""
import pkgutil
import subprocess
import sys

import charrnn


def test_the_core_never_imports_the_report():
    core = [m.name for m in pkgutil.walk_packages(charrnn.__path__, "charrnn.")
            if not m.name.startswith("charrnn.report") and m.name != "charrnn.__main__"]
    assert "charrnn.trainer" in core and "charrnn.widgets" in core and "charrnn.colours" in core
    code = "".join(f"import {m}\n" for m in core) + (
        "import sys\nprint([m for m in sys.modules if m.startswith('charrnn.report')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
