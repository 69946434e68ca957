"""The PDF report: execute the numbered notebooks, merge them, typeset report/report.pdf.

    python -m charrnn.report [--settings FILE] [--corpus FILE] [--only NN ...] [--force [NAME ...]]
                             [--author NAME] [--out DIR] [--timeout SECONDS]

Steps: execute the numbered notebooks of the report in order (nbclient, a
timeout per cell, the kernel started in notebooks/ with paths resolved from
the repository root, the settings of report.toml), save them under
report/build/, merge them into one notebook (metadata: title, authors, date,
corpus), export that to HTML and to LaTeX (report/build/report.tex and its
figures, for editing), then to PDF with `jupyter nbconvert --to pdf
--no-input` and the template in templates/, and move the PDF to
report/report.pdf (atomically). Without xelatex or pandoc the build stops
after the HTML and LaTeX exports with one line naming the Debian packages.

--only 03 executes that notebook again and rebuilds the PDF with the stored
outputs of the others; --force retrains every run, --force NAME the runs
whose names match (shell patterns, e.g. 'assignment*').

The report has two parts (PARTS): --parts assignment builds Part I alone, and
trains only what it needs. What the notebooks display (tables, figures, text)
is charrnn.report.display.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from .display import latex_escape
from ..fileio import write_atomic
from ..paths import repo_root

# The report's two parts, each a title and its notebooks in order. Part I answers the assignment and can be
# built alone for handing in (report.toml's parts, `make report PARTS=assignment`); Part II is optional.
PARTS = {
    "assignment": ("The assignment", ("00_summary", "01_data", "02_gradient_check", "03_training",
                                      "04_text_evolution")),
    "beyond": ("Beyond the assignment (optional)", ("06_beyond", "07_cells", "08_hidden_units", "09_conclusion")),
}
NOTEBOOKS = tuple(n for _, notebooks in PARTS.values() for n in notebooks)
UNNUMBERED = ("00_summary",)                      # its heading is not a numbered section
TITLE = "A character-level RNN in NumPy"          # report.toml's title replaces it
DEBIAN_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "charrnn_pdf.tex.j2"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------------------- the build

def section_number(notebook: str) -> int:
    """The number of the report's section that notebook (its stem, e.g. "03_training") makes: sections are
    numbered through both parts, so Part I's numbers are the same whether or not Part II is built."""
    numbered = [n for n in NOTEBOOKS if n not in UNNUMBERED]
    if notebook not in numbered:
        raise ValueError(f"{notebook} is not a numbered section of the report (choose from {', '.join(numbered)})")
    return numbered.index(notebook) + 1


def notebooks_of(parts) -> list[str]:
    """The notebooks of the named parts, in the report's order; BuildError for an unknown part."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise BuildError(f"parts: {', '.join(map(repr, unknown)) or 'none given'}: choose from {', '.join(PARTS)}")
    return [n for part, (_, notebooks) in PARTS.items() if part in parts for n in notebooks]


class BuildError(RuntimeError):
    """A notebook failed or a tool is missing; the message is one line."""


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def execute_notebook(src: Path, dst: Path, env: dict | None = None, timeout: int = 1800) -> Path:
    """Execute notebook src top to bottom and write it, with outputs, to dst.

    The kernel starts in notebooks/ with env (default: this process's). A failing
    cell raises BuildError naming the notebook and the error; dst still gets the
    partly executed notebook.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebooks_dir())}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    log = dst.with_suffix(".kernel.log")          # the kernel's own stderr (warnings, crashes)
    try:
        with open(log, "w") as kernel_stderr:
            client.execute(env=dict(os.environ if env is None else env), stderr=kernel_stderr)
    except CellTimeoutError as exc:
        raise BuildError(f"{src.name}: a cell ran longer than {timeout} s ({_first_line(exc)})") from None
    except CellExecutionError as exc:
        raise BuildError(f"{src.name}: a cell failed: {exc.ename}: {exc.evalue} (executed notebook: {dst})") from None
    except (RuntimeError, AssertionError) as exc:
        # the kernel died (Ctrl-C reaches it too) or would not start; nbclient's own clean-up may
        # raise an AssertionError on top of the DeadKernelError, so name the first error of the chain
        chain = [exc]
        while chain[-1].__context__ is not None:
            chain.append(chain[-1].__context__)
        died = any(type(e).__name__ == "DeadKernelError" for e in chain)
        what = "the notebook's kernel stopped (interrupted or killed)" if died else _first_line(chain[-1])
        raise BuildError(f"{src.name}: {what}; runs finished or checkpointed so far are kept and the next "
                         f"build resumes them (kernel log: {log})") from None
    finally:
        nbformat.write(nb, dst)
    return dst


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def merge(paths, title: str, authors, corpus: str, day: str | None = None):
    """One notebook holding the cells of paths in order, with report metadata.

    Progress bars (widgets) and stderr are dropped: they are live views, not results.
    """
    import nbformat
    merged = nbformat.v4.new_notebook()
    for i, p in enumerate(paths):
        nb = nbformat.read(p, as_version=4)
        if i == 0:
            merged.metadata.update({k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")})
        for part, (heading, notebooks) in PARTS.items():
            if Path(p).stem == notebooks[0]:     # a part begins: its heading, in the PDF only
                merged.cells.append(nbformat.v4.new_raw_cell(rf"\part{{{latex_escape(heading)}}}",
                                                             metadata={"raw_mimetype": "text/latex"}, id=f"part-{part}"))
        for j, cell in enumerate(nb.cells):
            cell["id"] = f"nb{i}-{j}"
            if cell.cell_type == "markdown":   # "# 01 · The data" -> "# The data": LaTeX numbers the sections
                cell.source = re.sub(r"^# \d+ · ", "# ", cell.source, flags=re.M)
                if Path(p).stem in UNNUMBERED:
                    cell.source = re.sub(r"^(# .+)$", r"\1 {.unnumbered}", cell.source, flags=re.M)
            if cell.cell_type == "code":
                cell.outputs = [o for o in (_clean(o) for o in cell.outputs) if o is not None]
            merged.cells.append(cell)
    merged.metadata.update({
        "title": title,
        "authors": [{"name": a} for a in authors],
        "date": day or date.today().isoformat(),
        "corpus": corpus,
    })
    return merged


def _clean(output):
    if output.output_type == "stream" and output.name == "stderr":
        return None
    if output.output_type in ("display_data", "execute_result") and WIDGET_MIME in output.get("data", {}):
        return None
    return output


def default_authors() -> list[str]:
    """env CHARRNN_AUTHORS (comma-separated), else git's user.name, else 'charrnn'."""
    env = os.environ.get("CHARRNN_AUTHORS")
    if env:
        return [a.strip() for a in env.split(",") if a.strip()]
    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True,
                              cwd=repo_root(), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return [name or "charrnn"]


def missing_tools() -> list[str]:
    """The programs the LaTeX route needs that are not on PATH."""
    return [t for t in ("xelatex", "pandoc") if shutil.which(t) is None]


def export(merged_path: Path, fmt: str, out_dir: Path) -> Path:
    """`jupyter nbconvert --to fmt --no-input` of merged_path into out_dir; returns the file written."""
    template = ["--template-file", str(TEMPLATE)] if fmt in ("pdf", "latex") else []
    cmd = [sys.executable, "-m", "nbconvert", "--to", fmt, "--no-input", "--no-prompt", *template,
           "--output-dir", str(out_dir), str(merged_path)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    out = out_dir / (merged_path.stem + {"pdf": ".pdf", "latex": ".tex", "html": ".html"}[fmt])
    if run.returncode != 0 or not out.exists():
        log = out_dir / f"nbconvert-{fmt}.log"
        log.write_text(run.stdout + run.stderr)
        tail = [ln for ln in (run.stderr.strip().splitlines() or ["no output"]) if ln.strip()][-1:]
        raise BuildError(f"nbconvert --to {fmt} failed ({tail[0] if tail else ''}); full log in {log}")
    return out


def _figures_beside(tex: Path) -> None:
    """Copy the figures the LaTeX names by absolute path (charrnn.report.display.Figure's saved files) into
    report_files/ beside it and name them there, so the LaTeX source and its figures travel together."""
    files = tex.parent / "report_files"

    def local(match):
        src = Path(match.group(2))
        files.mkdir(exist_ok=True)
        shutil.copyfile(src, files / src.name)
        return f"{match.group(1)}{{report_files/{src.name}}}"

    text = tex.read_text(encoding="utf-8")
    tex.write_text(re.sub(r"(\\includegraphics\[[^\]]*\])\{(/[^}]+)\}", local, text), encoding="utf-8")


def typeset(tex: Path, passes: int = 2) -> Path:
    """xelatex on the LaTeX that export wrote (in its directory, beside its figures): two passes, which
    settle the page references, instead of nbconvert's PDF route, which converts the notebook to LaTeX
    again and runs three (about 10 s of a rebuild's 70). Returns the PDF."""
    for _ in range(passes):
        run = subprocess.run(["xelatex", "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tex.parent,
                             capture_output=True, text=True)
        if run.returncode != 0 or not tex.with_suffix(".pdf").exists():
            log = tex.with_name("xelatex.log")
            log.write_text(run.stdout + run.stderr)
            errors = [ln for ln in run.stdout.splitlines() if ln.startswith("!")] or ["no error line"]
            raise BuildError(f"xelatex failed on {tex.name} ({errors[0][:200]}); full log in {log}")
    return tex.with_suffix(".pdf")


def build_pdf(executed, out_pdf: Path, build_dir: Path, authors=None, corpus: str = "", title: str = TITLE) -> Path:
    """Merge executed notebooks, export HTML and LaTeX, then the PDF, and move it to out_pdf atomically."""
    import nbformat
    merged = merge(executed, title, authors or default_authors(), corpus)
    build_dir.mkdir(parents=True, exist_ok=True)
    merged_path = build_dir / "report.ipynb"
    nbformat.write(merged, merged_path)
    export(merged_path, "html", build_dir)
    _figures_beside(export(merged_path, "latex", build_dir))
    missing = missing_tools()
    if missing:
        raise BuildError(f"{' and '.join(missing)} not found: install the Debian packages {DEBIAN_PACKAGES} "
                         f"(apt-get install --no-install-recommends ...); the executed notebooks, "
                         f"{build_dir / 'report.html'} and {build_dir / 'report.tex'} are ready")
    pdf = typeset(build_dir / "report.tex")
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_pdf, lambda f: f.write(pdf.read_bytes()))
    return out_pdf


def corpus_description(path) -> str:
    """'shakespeare.txt (1,158,240 characters)'."""
    from ..corpus import Corpus
    return f"{Path(path).name} ({len(Corpus.from_file(path)):,} characters)"


def pick(only) -> list[str]:
    """The notebooks named by `only` ("03", "03_training" or "03_training.ipynb"); BuildError for others."""
    picked = []
    for o in only:
        stem = Path(o).stem
        found = [n for n in NOTEBOOKS if n == stem or n.split("_")[0] == stem]
        if not found:
            raise BuildError(f"--only {o}: no such report notebook (choose from {', '.join(NOTEBOOKS)})")
        picked += found
    return picked


def build(out_dir: Path | None = None, force=False, authors=None, timeout: int = 1800, notebooks=None,
          only=(), settings_path=None, corpus=None, parts=None) -> Path:
    """The whole pipeline; returns the PDF path. Raises BuildError with one line on failure.

    parts: the parts to build (default: the settings' parts, both unless report.toml says otherwise); notebooks,
    if given, replaces the parts' notebooks.

    force: True retrains every run, a list of names (shell patterns) those runs only.
    only: notebooks to execute again; the others' stored outputs under out_dir/build are reused.
    settings_path, corpus: a settings file over report.toml, a corpus file (env CHARRNN_SETTINGS, CHARRNN_CORPUS).
    """
    from .runs import corpus_path
    from .settings import SettingsError, settings
    out_dir = Path(out_dir) if out_dir else repo_root() / "report"
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if settings_path:
        env["CHARRNN_SETTINGS"] = str(Path(settings_path).resolve())
    if corpus:
        env["CHARRNN_CORPUS"] = str(Path(corpus).resolve())
    if parts:
        env["CHARRNN_PARTS"] = ",".join(parts)
    try:                                   # the settings as the kernels will read them, from env
        s = settings(environ=env)
        corpus_file = corpus_path(s)
        description = corpus_description(corpus_file)
    except (SettingsError, OSError, ValueError) as exc:
        raise BuildError(str(exc)) from None
    if notebooks is None:
        notebooks = notebooks_of(s["parts"])
    if force:
        env["CHARRNN_FORCE_BEFORE"] = str(time.time())
        if force is not True:
            env["CHARRNN_FORCE_RUNS"] = ",".join(force)
    todo = pick(only) if only else list(notebooks)
    outside = [n for n in todo if n not in notebooks]
    if outside:
        raise BuildError(f"--only {outside[0]}: not in the parts being built ({', '.join(s['parts'])})")
    missing = [n for n in notebooks if n not in todo and not (build_dir / f"{n}.ipynb").exists()]
    if missing:
        raise BuildError(f"--only needs the stored outputs of the other notebooks, and {build_dir / missing[0]}.ipynb "
                         f"is missing: run the whole build once first")
    for name in todo:
        t0 = time.perf_counter()
        print(f"report: executing {name}.ipynb ...", flush=True)
        execute_notebook(notebooks_dir() / f"{name}.ipynb", build_dir / f"{name}.ipynb", env=env, timeout=timeout)
        print(f"report: {name}.ipynb done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("report: typesetting ...", flush=True)
    return build_pdf([build_dir / f"{n}.ipynb" for n in notebooks], out_dir / "report.pdf", build_dir,
                     authors or s["authors"] or None, description, s["title"] or TITLE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m charrnn.report", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", help="settings file laid over report.toml (default: report.toml alone)")
    parser.add_argument("--corpus", help="text file to train on (default: the settings' corpus)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NN",
                        help="execute only these notebooks (e.g. 03) and reuse the stored outputs of the others")
    parser.add_argument("--force", nargs="*", metavar="NAME",
                        help="retrain runs instead of reusing them: every run, or those named (shell patterns)")
    parser.add_argument("--parts", nargs="+", metavar="PART", choices=list(PARTS),
                        help="build only these parts (default: the settings' parts): " + ", ".join(
                            f"{k} ({v[0]})" for k, v in PARTS.items()))
    parser.add_argument("--author", action="append", help="author name (repeatable; default: the settings' "
                                                          "authors, else git user.name)")
    parser.add_argument("--out", help="output directory (default: report/ in the repository)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per notebook cell")
    args = parser.parse_args(argv)
    force = False if args.force is None else (args.force or True)
    t0 = time.perf_counter()
    try:
        pdf = build(args.out, force, args.author, args.timeout, only=args.only, settings_path=args.settings,
                    corpus=args.corpus, parts=args.parts)
    except BuildError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("report: interrupted; finished and checkpointed runs are kept, run it again to resume",
              file=sys.stderr)
        return 130
    print(f"report: wrote {pdf} in {time.perf_counter() - t0:.0f} s (LaTeX source: {pdf.parent / 'build' / 'report.tex'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
