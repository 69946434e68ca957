"""What a report notebook shows: tables, sampled text, figures, text coloured character by character, and prose
computed from results. Each renders as HTML in Jupyter and as LaTeX in the PDF.

    sec = Section("03_training")           # this notebook's section of the report: numbers its figures and tables
    sec.figure("loss")                     # 'Figure 3.1' (the same number wherever it is named, before or after)
    sec.show(fig, "loss", "caption")       # save the matplotlib figure, show it numbered and captioned
    Table(header, rows, caption="...", number=sec.table("seeds"))

The notebooks import this module only, never the build (charrnn.report.build). The colour scales
and the coloured HTML are charrnn.colours, shared with the core's widgets; diverging and sequential
are imported here too, for ColouredText's colour argument.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from ..colours import LINE_BREAK, coloured_html, diverging, sequential  # noqa: F401 (the notebooks' scales)

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "⏎": r"\texttt{⏎}", "␣": r"\texttt{␣}"}    # only the monospace font has these two


def latex_escape(text: str) -> str:
    """text with LaTeX's special characters escaped (for running text and table cells)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _caption_latex(number: str | None, caption: str | None) -> str:
    if not caption and not number:
        return ""
    lead = rf"\textbf{{{latex_escape(number)}.}} " if number else ""
    return rf"\par\smallskip{{\centering\small {lead}{latex_escape(caption or '')}\par}}"


def _caption_html(number: str | None, caption: str | None) -> str:
    lead = f"<b>{html.escape(number)}.</b> " if number else ""
    return f"{lead}{html.escape(caption or '')}"


def _together(body: str, centred: bool = True) -> str:
    """LaTeX that keeps body (a figure or table and its caption) on one page, centred."""
    return ("\\begin{center}\\begin{minipage}{\\linewidth}" + ("\\centering" if centred else "") + "\n" + body
            + "\n\\end{minipage}\\end{center}")


class Section:
    """The numbering of one notebook's figures and tables: 'Figure 3.2' is the second figure named in the
    report's section 3. The section's number is the notebook's place in the report (build.NOTEBOOKS)."""

    def __init__(self, notebook: str):
        from .build import section_number
        self.number = section_number(notebook)
        self._numbers: dict[tuple[str, str], int] = {}

    def _name(self, kind: str, key: str) -> str:
        taken = [n for (k, _), n in self._numbers.items() if k == kind]
        n = self._numbers.setdefault((kind, key), len(taken) + 1)
        return f"{kind} {self.number}.{n}"

    def figure(self, key: str) -> str:
        """'Figure S.N' for the figure called key (numbered in the order figures are first named)."""
        return self._name("Figure", key)

    def table(self, key: str) -> str:
        """'Table S.N' for the table called key."""
        return self._name("Table", key)

    def show(self, fig, key: str, caption: str | None = None, width: float = 0.9):
        """Save the matplotlib figure under figures/ (file SS-key.png), close it and display it with its
        number and caption, at width (a fraction of the text width). Without a caption the figure's own title
        (its suptitle, or its one axes title) becomes the caption and leaves the picture. Returns 'Figure S.N'."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .plots import save
        if caption is None:
            caption = _take_title(fig)
        number = self.figure(key)
        path = save(fig, f"{self.number:02d}-{key}")
        plt.close(fig)
        display(Figure(path, number, caption, width))
        return number


def _take_title(fig) -> str:
    """The figure's title, removed from it: its suptitle, else the title of its only titled axes."""
    if fig._suptitle is not None and fig._suptitle.get_text():
        title = fig._suptitle.get_text()
        fig._suptitle.remove()
        fig._suptitle = None
    else:
        titled = [ax for ax in fig.axes if ax.get_title()]
        if len(titled) != 1:
            return ""
        title = titled[0].get_title()
        titled[0].set_title("")
    title = " ".join(title.split())
    return title if title.endswith(".") else title + "."


class Figure:
    """A saved image with its number and caption."""

    def __init__(self, path, number: str | None, caption: str, width: float = 0.9):
        self.path, self.number, self.caption, self.width = Path(path), number, caption, width

    def _repr_html_(self):
        data = base64.b64encode(self.path.read_bytes()).decode("ascii")
        return (f'<figure style="margin: 0.5em 0"><img src="data:image/png;base64,{data}" '
                f'style="width: {self.width * 100:.0f}%; max-width: 760px"/>'
                f'<figcaption style="font-size: 90%">{_caption_html(self.number, self.caption)}</figcaption></figure>')

    def _repr_latex_(self):
        return _together(rf"\includegraphics[width={self.width:g}\linewidth]{{{self.path.as_posix()}}}"
                         + "\n" + _caption_latex(self.number, self.caption))

    def __repr__(self):
        return f"{self.number}: {self.caption} ({self.path})"


class Table:
    """A small table: header and rows of strings. Cells wrapped in backticks are set in monospace. A table wider
    than the text is scaled down to fit it."""

    def __init__(self, header, rows, align=None, caption: str | None = None, small: bool = False,
                 number: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in r] for r in rows]
        self.align = align or "l" + "r" * (len(self.header) - 1)
        self.caption, self.small, self.number = caption, small, number

    @staticmethod
    def _code(cell):
        return len(cell) >= 2 and cell.startswith("`") and cell.endswith("`")

    def _html_cell(self, cell, tag):
        body = f"<code>{html.escape(cell[1:-1])}</code>" if self._code(cell) else html.escape(cell)
        return f"<{tag}>{body}</{tag}>"

    def _repr_html_(self):
        head = "".join(self._html_cell(h, "th") for h in self.header)
        body = "".join("<tr>" + "".join(self._html_cell(c, "td") for c in r) + "</tr>" for r in self.rows)
        cap = (f'<caption style="caption-side: bottom">{_caption_html(self.number, self.caption)}</caption>'
               if self.caption or self.number else "")
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _latex_cell(self, cell):
        return rf"\texttt{{{latex_escape(cell[1:-1])}}}" if self._code(cell) else latex_escape(cell)

    def _repr_latex_(self):
        size = r"\small" if self.small else ""
        lines = [size, r"\begin{adjustbox}{max width=\linewidth}",
                 rf"\begin{{tabular}}{{{self.align}}}", r"\toprule",
                 " & ".join(rf"\textbf{{{self._latex_cell(h)}}}" for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(self._latex_cell(c) for c in r) + r" \\" for r in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}"]
        lines.append(_caption_latex(self.number, self.caption))
        return _together("\n".join(lines))

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


# --------------------------------------------------------------------------- text coloured by a value

def _legend_colours(low: float, high: float, colour, stops: int = 9):
    """The colours of stops evenly spaced values from low to high."""
    return [colour(low + (high - low) * i / (stops - 1)) for i in range(stops)]


class ColouredText:
    """Text set in monospace, each character on its own cell coloured by a value, as in Karpathy, Johnson and
    Fei-Fei's figures of hidden units; with a colour legend, a number and a caption. In the PDF each character
    is a coloured box of the text font (never an image), so it reads at any zoom.

    text: n characters; values: (n,) floats; colour: value -> RGB (diverging for -1..1, sequential for 0..1);
    legend: (low, high, what) for the legend's scale; width: characters per line before a line is wrapped.
    """

    def __init__(self, text: str, values, colour, legend, number: str | None = None, caption: str = "",
                 width: int = 84):
        self.text, self.values = text, [float(v) for v in values]
        self.colour, self.legend, self.number, self.caption, self.width = colour, legend, number, caption, width

    def _lines(self):
        """[(char, value), ...] per printed line: a line break ends a line (shown as LINE_BREAK); long lines
        wrap at width."""
        lines, line = [], []
        for ch, v in zip(self.text, self.values):
            if len(line) >= self.width:
                lines.append(line)
                line = []
            line.append((LINE_BREAK if ch == "\n" else ch, v))
            if ch == "\n":
                lines.append(line)
                line = []
        return lines + ([line] if line else [])

    def _legend_text(self):
        low, high, what = self.legend
        return f"{what}: {low:g} … {high:g}"

    def _repr_html_(self):
        low, high, what = self.legend
        boxes = "".join(f'<span style="background: rgb{c}; display: inline-block; width: 1.4em">&nbsp;</span>'
                        for c in _legend_colours(low, high, self.colour))
        legend = f'<div style="font-size: 85%">{html.escape(what)}: {low:g} {boxes} {high:g}</div>'
        cap = f'<div style="font-size: 90%">{_caption_html(self.number, self.caption)}</div>'
        return coloured_html(self.text, self.values, self.colour) + legend + cap

    @staticmethod
    def _cell(ch, rgb, grey=False):
        r, g, b = rgb
        if ch == " ":
            body = r"\hphantom{x}"
        else:
            body = latex_escape(ch)
            if grey:
                body = rf"\textcolor[gray]{{0.55}}{{{body}}}"
        return rf"\cc{{{r:02X}{g:02X}{b:02X}}}{{{body}}}"

    def _repr_latex_(self):
        rows = ["".join(self._cell(ch, self.colour(v), ch == LINE_BREAK) for ch, v in line) + r"\par"
                for line in self._lines()]
        low, high, what = self.legend
        legend = "".join(self._cell(" ", c) for c in _legend_colours(low, high, self.colour))
        return _together("{\\ColouredText\n" + "\n".join(rows) + "}\\par\\smallskip\n"
                         + rf"{{\centering\small {latex_escape(what)}: {low:g}\,{legend}\,{high:g}\par}}" + "\n"
                         + _caption_latex(self.number, self.caption), centred=False)

    def __repr__(self):
        return f"{self.number or ''} {self.caption} ({len(self.text)} characters; {self._legend_text()})"


def markdown(text: str):
    """Display text as Markdown (prose computed from results)."""
    from IPython.display import Markdown, display
    display(Markdown(text))
