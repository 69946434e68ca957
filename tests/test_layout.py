"""The core reads alone: importing any module outside charrnn.report loads nothing of the report, and no
module of the core names the report at all (the report imports the core, never the other way)."""
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


def test_no_core_module_names_the_report():
    from pathlib import Path
    root = Path(charrnn.__file__).parent
    for path in root.rglob("*.py"):
        if "report" in path.relative_to(root).parts:
            continue
        text = path.read_text()
        assert "from .report" not in text and "charrnn.report import" not in text and "from ..report" not in text, path
