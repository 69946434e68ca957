"""Kept only until widgets.py imports from the new place: charrnn.report.units."""
from .report.units import best_units, correlations  # noqa: F401
