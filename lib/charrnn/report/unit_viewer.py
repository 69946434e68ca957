"""The hidden units, interactively: pick a feature and read the text coloured by the unit that follows it
best, type any unit, or see where the model is sure (notebook 08).

    UnitViewer(text, H, P, text_features(text))      # H, P = units.read(model, ids)
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ..colours import coloured_html, diverging, sequential
from ..widgets import LABEL_WIDTH, legend_html, note
from .units import best_units, correlations


class UnitViewer:
    """Pick a feature (its best unit is shown) or type any unit, and read the text coloured by that unit's
    activation; "where the model is sure" colours each character by the probability the model gave it.

    text: the stretch read; H (n, m) the hidden state after each character; P (n-1,) the probability of each
    next character; features: {name: (n,)} (units.text_features).
    """

    SURE = "where the model is sure"
    ANY = "a unit you choose (type it)"

    def __init__(self, text: str, H, P, features: dict):
        self.text, self.H, self.P, self.features = text, np.asarray(H), np.asarray(P), features
        self.best = best_units(self.H, features)
        options = [(f"{name} (unit {u}, r = {r:+.2f})", ("feature", name)) for name, (u, r) in self.best.items()]
        options += [(self.ANY, ("unit", "")), (self.SURE, ("sure", ""))]
        self.feature = w.Dropdown(options=options, value=("feature", opening_feature(text, features, self.best))
                                  if self.best else options[-1][1], description="Show",
                                  style={"description_width": LABEL_WIDTH}, layout=w.Layout(width="460px"))
        self.unit = w.BoundedIntText(value=0, min=0, max=self.H.shape[1] - 1, description="Unit",
                                     style={"description_width": "40px"}, layout=w.Layout(width="140px"))
        self.info = w.HTML()
        self.legend = w.HTML()
        self.output = w.HTML(layout=w.Layout(max_height="420px", overflow="auto"))   # scrolls, the page does not
        self.feature.observe(self._on_feature, names="value")
        self.unit.observe(self._on_unit, names="value")
        self.widget = w.VBox([w.HBox([self.feature, self.unit]), self.info, self.legend, self.output],
                             layout=w.Layout(width="100%", max_width="900px"))
        self._on_feature()

    def _on_feature(self, change=None):
        kind, name = self.feature.value
        self.unit.disabled = kind == "sure"
        if kind == "feature":
            self.unit.value = self.best[name][0]
        self._show()

    def _on_unit(self, change):
        kind, name = self.feature.value
        if kind == "feature" and self.unit.value != self.best[name][0]:
            self.feature.value = ("unit", "")    # the dropdown names what is shown: now a unit of one's own
        else:
            self._show()

    def _show(self):
        kind, _ = self.feature.value
        if kind == "sure":
            values = np.concatenate([[np.nan], self.P])   # the first character has no prediction
            self.info.value = note("each character on the probability the model gave it")
            self.legend.value = legend_html(sequential, 0, 1, "probability 0", "1 (sure)")
            self.output.value = coloured_html(self.text, values, sequential)
            return
        u = self.unit.value
        lines = [f"{name}: r = {correlations(self.H[:, [u]], f)[0]:+.2f}" for name, f in self.features.items()]
        self.info.value = note(f"unit {u} · " + " · ".join(html.escape(s) for s in lines))
        self.legend.value = legend_html(diverging, -1, 1, "activation −1", "+1")
        self.output.value = coloured_html(self.text, self.H[:, u], diverging)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def opening_feature(text: str, features: dict, best: dict, least: int = 3) -> str:
    """The feature to open on: of those met at least `least` times in text (separate stretches where it
    leaves its lowest value), the one its best unit follows most closely (largest |r|)."""
    def stretches(f):
        low = f == f.min()
        return int((low[:-1] & ~low[1:]).sum() + (not low[0]))
    seen = [name for name, f in features.items() if stretches(np.asarray(f)) >= least] or list(features)
    return max(seen, key=lambda name: abs(best[name][1]))
