"""Kept only until widgets.py imports from the new place: charrnn.colours."""
from .colours import coloured_html, diverging, mix, sequential  # noqa: F401
