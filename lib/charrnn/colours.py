"""Text coloured character by character: colour scales and the HTML of coloured text, shared by the
interactive hidden-unit viewer (charrnn.widgets) and the report's ColouredText (charrnn.report.display)."""
from __future__ import annotations

import html

LINE_BREAK = "⏎"    # how coloured text shows a line break


def mix(a, b, t):
    """The colour t of the way from a to b (RGB 0-255); t is clipped to [0, 1], NaN gives a."""
    t = 0.0 if t != t else min(max(float(t), 0.0), 1.0)
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


# the darkest colours a cell takes: light enough that black text on them reads in print
_RED, _BLUE, _GREEN = (229, 115, 115), (100, 149, 237), (102, 187, 106)


def diverging(v):
    """-1 blue, 0 white, +1 red (all light enough to read black text on)."""
    return mix((255, 255, 255), _RED, v) if v >= 0 else mix((255, 255, 255), _BLUE, -v)


def sequential(v):
    """0 white, 1 green."""
    return mix((255, 255, 255), _GREEN, v)


def coloured_html(text: str, values, colour) -> str:
    """text in monospace, each character on the background colour(value) (values (n,)), line breaks kept."""
    spans = []
    for ch, v in zip(text, values):
        r, g, b = colour(v)
        shown = f'<span style="color: #9e9e9e">{LINE_BREAK}</span>\n' if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background: rgb({r},{g},{b})">{shown}</span>')
    return ('<div style="font-family: var(--jp-code-font-family, monospace); font-size: 12.5px; line-height: 1.5; '
            'white-space: pre-wrap; color: #212121; padding: 8px; border: 1px solid var(--jp-border-color2, #ddd)">'
            + "".join(spans) + "</div>")
