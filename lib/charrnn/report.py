"""The PDF report: execute the numbered notebooks, merge them, typeset report/report.pdf.

    python -m charrnn.report [--force] [--author NAME] [--out DIR] [--timeout SECONDS]

Steps: execute notebooks 01-04 and 06 in order (nbclient, a timeout per cell,
the kernel started in notebooks/ with paths resolved from the repository root),
save them under report/build/, merge them into one notebook (metadata: title,
authors, date, corpus), export that to HTML, then to PDF with
`jupyter nbconvert --to pdf --no-input` and the template in templates/, and
move the PDF to report/report.pdf (atomically). Without xelatex or pandoc the
build stops after the HTML export with one line naming the Debian packages.

Also here: Table and TextBlock, the two displays the notebooks use for tables
and sampled text; each renders as HTML in Jupyter and as LaTeX in the PDF.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from .fileio import write_atomic
from .paths import repo_root

NOTEBOOKS = ("01_data", "02_gradient_check", "03_training", "04_text_evolution", "06_beyond")
TITLE = "A character-level vanilla RNN in NumPy"
DEBIAN_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "charrnn_pdf.tex.j2"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------------------- displays

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """text with LaTeX's special characters escaped (for running text and table cells)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


class Table:
    """A small table: header and rows of strings. Cells wrapped in backticks are set in monospace."""

    def __init__(self, header, rows, align=None, caption: str | None = None, small: bool = False):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in r] for r in rows]
        self.align = align or "l" + "r" * (len(self.header) - 1)
        self.caption = caption
        self.small = small

    @staticmethod
    def _code(cell):
        return len(cell) >= 2 and cell.startswith("`") and cell.endswith("`")

    def _html_cell(self, cell, tag):
        body = f"<code>{html.escape(cell[1:-1])}</code>" if self._code(cell) else html.escape(cell)
        return f"<{tag}>{body}</{tag}>"

    def _repr_html_(self):
        head = "".join(self._html_cell(h, "th") for h in self.header)
        body = "".join("<tr>" + "".join(self._html_cell(c, "td") for c in r) + "</tr>" for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _latex_cell(self, cell):
        return rf"\texttt{{{latex_escape(cell[1:-1])}}}" if self._code(cell) else latex_escape(cell)

    def _repr_latex_(self):
        size = r"\small" if self.small else ""
        lines = [r"\begin{center}" + size, rf"\begin{{tabular}}{{{self.align}}}", r"\toprule",
                 " & ".join(rf"\textbf{{{self._latex_cell(h)}}}" for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(self._latex_cell(c) for c in r) + r" \\" for r in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        if self.caption:
            lines.append(rf"\par\smallskip{{\small {latex_escape(self.caption)}}}")
        lines.append(r"\end{center}")
        return "\n".join(lines)

    def __repr__(self):
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [self.header, *self.rows])


class TextBlock:
    """Sampled text shown exactly as generated, in a frame, wrapped at the margin (never cut).

    heading: a short line above the frame (plain text).
    """

    def __init__(self, text: str, heading: str = ""):
        self.text = text
        self.heading = heading

    def _repr_html_(self):
        head = f"<p><b>{html.escape(self.heading)}</b></p>" if self.heading else ""
        style = ("white-space: pre-wrap; word-break: break-all; border: 1px solid #bbb; padding: 6px; "
                 "font-family: 'DejaVu Sans Mono', monospace; font-size: 90%")
        return f"{head}<pre style=\"{style}\">{html.escape(self.text)}</pre>"

    def _repr_latex_(self):
        # Verbatim without commandchars: every character is literal. Only the closing
        # line could end the environment early, so make sure no line looks like it.
        body = self.text.replace("\r", "")
        body = body.replace("\\end{SampleText}", "\\end {SampleText}")
        head = rf"\noindent\textbf{{{latex_escape(self.heading)}}}" + "\n" if self.heading else ""
        return f"{head}\\begin{{SampleText}}\n{body}\n\\end{{SampleText}}\n"

    def __repr__(self):
        return (self.heading + "\n" if self.heading else "") + self.text


def markdown(text: str):
    """Display text as Markdown (prose computed from results)."""
    from IPython.display import Markdown, display
    display(Markdown(text))


# --------------------------------------------------------------------------- the build

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
        for j, cell in enumerate(nb.cells):
            cell["id"] = f"nb{i}-{j}"
            if cell.cell_type == "markdown":   # "# 01 · The data" -> "# The data": LaTeX numbers the sections
                cell.source = re.sub(r"^# \d+ · ", "# ", cell.source, flags=re.M)
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
    template = ["--template-file", str(TEMPLATE)] if fmt == "pdf" else []
    cmd = [sys.executable, "-m", "nbconvert", "--to", fmt, "--no-input", "--no-prompt", *template,
           "--output-dir", str(out_dir), str(merged_path)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    out = out_dir / (merged_path.stem + (".pdf" if fmt == "pdf" else ".html"))
    if run.returncode != 0 or not out.exists():
        log = out_dir / f"nbconvert-{fmt}.log"
        log.write_text(run.stdout + run.stderr)
        tail = [ln for ln in (run.stderr.strip().splitlines() or ["no output"]) if ln.strip()][-1:]
        raise BuildError(f"nbconvert --to {fmt} failed ({tail[0] if tail else ''}); full log in {log}")
    return out


def build_pdf(executed, out_pdf: Path, build_dir: Path, authors=None, corpus: str = "") -> Path:
    """Merge executed notebooks, export HTML, then the PDF, and move it to out_pdf atomically."""
    import nbformat
    merged = merge(executed, TITLE, authors or default_authors(), corpus)
    build_dir.mkdir(parents=True, exist_ok=True)
    merged_path = build_dir / "report.ipynb"
    nbformat.write(merged, merged_path)
    export(merged_path, "html", build_dir)
    missing = missing_tools()
    if missing:
        raise BuildError(f"{' and '.join(missing)} not found: install the Debian packages {DEBIAN_PACKAGES} "
                         f"(apt-get install --no-install-recommends ...); the executed notebooks and "
                         f"{build_dir / 'report.html'} are ready")
    pdf = export(merged_path, "pdf", build_dir)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_pdf, lambda f: f.write(pdf.read_bytes()))
    return out_pdf


def corpus_description(path) -> str:
    """'shakespeare.txt (1,158,240 characters)'."""
    from .corpus import load_text
    return f"{Path(path).name} ({len(load_text(path)):,} characters)"


def build(out_dir: Path | None = None, force: bool = False, authors=None, timeout: int = 1800,
          notebooks=NOTEBOOKS) -> Path:
    """The whole pipeline; returns the PDF path. Raises BuildError with one line on failure."""
    from .corpus import default_corpus_path
    out_dir = Path(out_dir) if out_dir else repo_root() / "report"
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    corpus = default_corpus_path(build=True)
    env = dict(os.environ)
    if force:
        env["CHARRNN_FORCE_BEFORE"] = str(time.time())
    executed = []
    for name in notebooks:
        t0 = time.perf_counter()
        print(f"report: executing {name}.ipynb ...", flush=True)
        executed.append(execute_notebook(notebooks_dir() / f"{name}.ipynb", build_dir / f"{name}.ipynb",
                                         env=env, timeout=timeout))
        print(f"report: {name}.ipynb done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("report: typesetting ...", flush=True)
    return build_pdf(executed, out_dir / "report.pdf", build_dir, authors, corpus_description(corpus))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m charrnn.report", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="retrain every run instead of reusing finished ones")
    parser.add_argument("--author", action="append", help="author name (repeatable; default: git user.name)")
    parser.add_argument("--out", help="output directory (default: report/ in the repository)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per notebook cell")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        pdf = build(args.out, args.force, args.author, args.timeout)
    except BuildError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("report: interrupted; finished and checkpointed runs are kept, run it again to resume",
              file=sys.stderr)
        return 130
    print(f"report: wrote {pdf} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
