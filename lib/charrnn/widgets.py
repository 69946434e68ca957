"""The interactive sampler for JupyterLab: a view over charrnn.sampling.

    from charrnn.widgets import SamplerUI
    SamplerUI.from_runs()            # every best/last checkpoint under runs/
    sampler_ui("runs/shakespeare")   # one checkpoint (file, run directory or Checkpoint)

All model code lives in charrnn.sampling; this module only wires widgets to
a checkpoint's Model (its parameters and the state they were trained in) and
renders the results. Sampling starts from the stored state by default; "zeros"
starts from h = 0, and checkpoints written before states were stored can only
do that. The pieces are attributes (picker, start, temperature, top_p, length,
prime, seed, random_seed, button, chart, output, message), so tests can drive
the UI the way a person does: set values, `ui.button.click()`, read
`ui.result_text`.
"""
from __future__ import annotations

import html
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w
import numpy as np

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .display import coloured_html, diverging, sequential
from .paths import repo_root, runs_dir
from .sampling import Model, SamplingError, check_sampling_args, distribution

TOP_K = 15                      # characters shown in the chart
KINDS = ("best", "best_val", "last")   # checkpoint files a run directory holds, in picker order
PRIME_CANDIDATES = ("The ", "And ", "the ", "He ", "A ")   # tried in order; must be in the vocabulary
CREATE_HINT = ("<code>make report</code> trains the report's models, or train one yourself: "
               "<code>python -m charrnn train --corpus data/shakespeare.txt --updates 20000 --out runs/NAME</code>")
READY = "Press Sample to generate text."
_SEEN = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
_DESC = {"description_width": "92px"}


def visible(ch: str) -> str:
    """ch with whitespace and control characters made visible: ' ' -> '␣', '\\n' -> '⏎'."""
    if ch in _SEEN:
        return _SEEN[ch]
    if not ch.isprintable():
        return f"U+{ord(ch):04X}"
    return ch


def entropy_bits(p) -> float:
    """Shannon entropy of the distribution p (K,), in bits."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0   # + 0.0 turns -0.0 into 0.0


def default_prime(vocab) -> str:
    """A short opening made of characters the model knows (its vocabulary is the corpus's)."""
    for cand in PRIME_CANDIDATES:
        if not vocab.missing(cand):
            return cand
    for pick in (str.isupper, str.isalpha, lambda c: c.isprintable() and not c.isspace()):
        for c in vocab.chars:
            if pick(c):
                return c
    return vocab.chars[0]


@dataclass
class CheckpointEntry:
    """One checkpoint file on offer in the picker."""
    checkpoint: Checkpoint
    run: str                    # the run directory, relative to the runs root
    mtime: float = 0.0

    @property
    def step(self) -> int:
        """Updates behind these parameters (for `best`: the step where the smooth loss was lowest, for
        `best_val`: where the held-out loss was)."""
        ck = self.checkpoint
        if ck.kind == "best_val" and ck.best_val_step is not None:
            return ck.best_val_step
        return ck.best_step if ck.kind == "best" and ck.best_step is not None else ck.step

    @property
    def loss(self) -> float | None:
        ck = self.checkpoint
        return ck.best_smooth_loss if ck.kind == "best" and ck.best_smooth_loss is not None else ck.smooth_loss

    @property
    def label(self) -> str:
        ck = self.checkpoint
        if ck.kind == "best_val" and ck.best_val_loss is not None:
            loss = f", held-out loss {ck.best_val_loss:.3f}"
        else:
            loss = "" if self.loss is None else f", smooth loss {self.loss:.2f}"
        return f"{self.run} · {ck.kind} ({ck.cell}, step {self.step:,}{loss})"

    @property
    def model(self) -> Model:
        return self.checkpoint.model()


def find_checkpoints(root=None) -> tuple[list[CheckpointEntry], list[str]]:
    """Every best.npz, best_val.npz and last.npz under root (default runs_dir()).

    Returns (entries sorted by run then best before last, one-line notes on files that could not be read).
    """
    root = _resolve(root)
    entries, skipped = [], []
    if not root.is_dir():
        return entries, skipped
    files = sorted({p for kind in KINDS for p in root.rglob(f"{kind}.npz")},
                   key=lambda p: (str(p.parent.relative_to(root)), KINDS.index(p.stem)))
    for p in files:
        try:
            ck = load_checkpoint(p)
        except (CheckpointError, OSError) as exc:
            skipped.append(str(exc).splitlines()[0])
            continue
        run = str(p.parent.relative_to(root)) if p.parent != root else root.name
        entries.append(CheckpointEntry(ck, run, p.stat().st_mtime))
    return entries, skipped


def _resolve(path) -> Path:
    """runs_dir() for None; a relative path is taken from the repository root, not the working directory."""
    if path is None:
        return runs_dir()
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def _default_index(entries: list[CheckpointEntry]) -> int:
    """The best checkpoint of the run trained longest (newest on a tie): usually the one worth reading."""
    run = max(entries, key=lambda e: (e.checkpoint.step, e.mtime)).run
    same = [i for i, e in enumerate(entries) if e.run == run]
    return min(same, key=lambda i: KINDS.index(entries[i].checkpoint.kind))


class SamplerUI:
    """Pick a checkpoint, set temperature / top-p / length / prime / seed, press Sample, read the text.

    The chart beside the controls shows the next-character distribution after
    the prime at the current temperature and top-p, with its entropy in bits.
    """

    def __init__(self, entries: list[CheckpointEntry], notes: list[str] | None = None, empty_message: str = ""):
        self.entries = list(entries)
        self._result = ""
        self._error = ""
        self._probs = None          # (K,) next-character distribution behind the chart
        self._full = None           # (K,) the same before top-p filtering
        self._logits = None         # (K,) their logits: the chart's order, the same at every temperature
        self._quiet = False         # True while the UI itself writes into a control
        self._skipped = list(notes or [])   # one line per checkpoint file that could not be read
        self._seeds = np.random.default_rng(secrets.randbits(64))

        # --- controls ---
        self.picker = w.Dropdown(description="Checkpoint", options=[(e.label, i) for i, e in enumerate(self.entries)],
                                 style=_DESC, layout=w.Layout(width="100%", max_width="760px"))
        self.start = w.ToggleButtons(options=[("carried state", "state"), ("zeros", "zeros")], value="state",
                                     description="Start from", style={**_DESC, "button_width": "112px"},
                                     tooltips=["the hidden state training carried at these parameters, and the "
                                               "character that came next", "h = 0, as at the start of an epoch"])
        self.temperature = w.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="Temperature",
                                         readout_format=".2f", style=_DESC, layout=w.Layout(width="100%"),
                                         tooltip="0 = greedy (always the most likely character); above 1 = wilder")
        self.top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="Top-p",
                                   readout_format=".2f", style=_DESC, layout=w.Layout(width="100%"),
                                   tooltip="sample only from the most likely characters covering this much probability")
        self.length = w.IntSlider(value=300, min=10, max=2000, step=1, description="Length",
                                  style=_DESC, layout=w.Layout(width="100%"), tooltip="characters to generate")
        self.prime = w.Text(value="", description="Prime", placeholder="opening text", style=_DESC,
                            layout=w.Layout(width="100%"), tooltip="text fed to the network before sampling")
        self.seed = w.BoundedIntText(value=0, min=0, max=2**32 - 1, description="Seed", style=_DESC,
                                     layout=w.Layout(width="210px"), tooltip="the same seed gives the same text")
        self.random_seed = w.Checkbox(value=True, description="random", indent=False,
                                      layout=w.Layout(width="auto", margin="0 0 0 12px"),
                                      tooltip="draw a fresh seed for every sample (shown in the box)")
        self.button = w.Button(description="Sample", button_style="primary", icon="play",
                               layout=w.Layout(width="140px", margin="8px 0 0 96px"))

        # --- views ---
        self.info = w.HTML(layout=w.Layout(margin="0 0 4px 96px"))
        self.chart = w.HTML()
        self.message = w.HTML()
        self.output = w.HTML()      # no width: 100% here, it would add the widget margins and overflow the cell

        controls = w.VBox([self.start, self.temperature, self.top_p, self.length, self.prime,
                           w.HBox([self.seed, self.random_seed], layout=w.Layout(align_items="center")),
                           self.button],
                          layout=w.Layout(flex="1 1 340px", min_width="300px", max_width="460px"))
        chart_box = w.VBox([self.chart], layout=w.Layout(flex="1 1 300px", min_width="260px", max_width="420px",
                                                         margin="0 0 0 24px"))
        self.widget = w.VBox(
            [self.picker, self.info,
             w.HBox([controls, chart_box], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
             self.message, self.output],
            layout=w.Layout(width="100%", max_width="900px"))

        # --- wiring ---
        self.picker.observe(self._on_checkpoint, names="value")
        for c in (self.start, self.temperature, self.top_p, self.prime):
            c.observe(self._on_change, names="value")
        self.seed.observe(self._on_seed, names="value")
        self.button.on_click(lambda _: self.sample())

        if not self.entries:
            for c in (self.picker, self.start, self.temperature, self.top_p, self.length, self.prime, self.seed,
                      self.random_seed, self.button):
                c.disabled = True
            self.info.value = _note(empty_message or f"No checkpoint yet. {CREATE_HINT}")
            self.chart.value = _chart_placeholder("no model")
        else:
            self.picker.value = _default_index(self.entries)
            self._on_checkpoint()

    # --- constructors ---
    @classmethod
    def from_runs(cls, path=None) -> "SamplerUI":
        """A UI over every best/last checkpoint under path (default runs_dir(); relative to the repo root)."""
        root = _resolve(path)
        entries, skipped = find_checkpoints(root)
        empty = ""
        if not entries:
            empty = f"No checkpoint under <code>{html.escape(str(root))}</code>. {CREATE_HINT}"
            if skipped:
                empty += "<br>Unreadable: " + html.escape("; ".join(skipped))
        return cls(entries, skipped, empty)

    # --- state the tests read ---
    @property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint currently picked."""
        return self.entries[self.picker.value].checkpoint if self.entries else None

    @property
    def model(self) -> Model | None:
        """The picked checkpoint's Model: its parameters and the state they were trained in."""
        return self.entries[self.picker.value].model if self.entries else None

    @property
    def result_text(self) -> str:
        """The characters drawn by the last successful Sample (the prime not included)."""
        return self._result

    @property
    def error(self) -> str:
        """The inline error line now shown ('' when all is well)."""
        return self._error

    @property
    def probabilities(self) -> np.ndarray | None:
        """(K,) the next-character distribution the chart shows (after temperature and top-p)."""
        return self._probs

    @property
    def nucleus_mass(self) -> float | None:
        """How much of the temperature-scaled distribution the characters kept by top-p cover."""
        return None if self._probs is None else float(self._full[self._probs > 0].sum())

    @property
    def chart_rows(self) -> list[tuple[str, float]]:
        """The chart's rows: (character, probability), most likely first (ranked by logit, so also at temperature 0)."""
        if self._probs is None:
            return []
        order = np.argsort(-self._logits, kind="stable")[:TOP_K]
        return [(self.checkpoint.vocab.chars[i], float(self._probs[i])) for i in order]

    # --- actions ---
    def sample(self) -> str:
        """Draw length characters with the current settings; show them (or one error line). Returns the text.

        Nothing is drawn, and no seed is used up, while the settings hold an error: the button is then off."""
        ck = self.checkpoint
        if ck is None:
            return ""
        temperature, top_p, n, prime = self._settings()
        start = self.start.value
        try:
            check_sampling_args(ck.vocab, n, prime, temperature, top_p, allow_empty_prime=start == "state")
        except SamplingError as exc:
            self._show_error(_one_line(exc))
            return ""
        if self.random_seed.value:
            self._quiet = True
            try:
                self.seed.value = int(self._seeds.integers(0, 2**31))
            finally:
                self._quiet = False
        seed = int(self.seed.value)
        self.button.disabled = True
        t0 = time.perf_counter()
        try:
            text = self.model.sample(n, prime=prime, start=start, temperature=temperature, top_p=top_p, seed=seed)
        except (SamplingError, ValueError) as exc:
            self._show_error(_one_line(exc))
            return ""
        finally:
            self.button.disabled = bool(self._error)
        ms = (time.perf_counter() - t0) * 1e3
        self._result = text
        self._show_error("")
        how = "greedy" if temperature == 0 else f"seed {seed} · temperature {temperature:.2f} · top-p {top_p:.2f}"
        where = "from the carried state" if start == "state" else "from h = 0"
        self.output.value = _render_text(prime, text, f"{len(text):,} characters in {ms:.0f} ms · {how} · {where}")
        return text

    def display(self):
        """Show the UI in the notebook (it also displays itself as a cell's last expression)."""
        from IPython.display import display
        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- reactions ---
    def _settings(self):
        return (round(float(self.temperature.value), 6), round(float(self.top_p.value), 6),
                int(self.length.value), self.prime.value)

    def _on_checkpoint(self, change=None):
        ck = self.checkpoint
        if ck is None:
            return
        model = self.model
        self._quiet = True
        try:
            if not self.prime.value or ck.vocab.missing(self.prime.value):
                self.prime.value = default_prime(ck.vocab)
            self.start.disabled = not model.has_state
            if not model.has_state:
                self.start.value = "zeros"
        finally:
            self._quiet = False
        e = self.entries[self.picker.value]
        parts = [ck.cell, f"{len(ck.vocab)} characters", f"{ck.config.m} hidden units", f"{e.step:,} updates",
                 f"seq length {ck.config.seq_length}"]
        if not model.has_state:
            parts.append("no stored state (an older checkpoint): samples start from h = 0")
        extra = "" if not self._skipped else (
            f"<br>Skipped {len(self._skipped)} unreadable checkpoint(s): " + html.escape("; ".join(self._skipped)))
        self.info.value = _note(html.escape(" · ".join(parts)) + extra)
        self._result = ""
        self.output.value = _render_text("", "", READY)
        self._refresh_chart()

    def _on_change(self, change=None):
        if not self._quiet:
            self._refresh_chart()

    def _on_seed(self, change):
        if not self._quiet and self.random_seed.value:
            self.random_seed.value = False      # typing a seed means: use this one

    def _refresh_chart(self):
        ck, start = self.checkpoint, self.start.value
        temperature, top_p, _, prime = self._settings()
        try:
            check_sampling_args(ck.vocab, 0, prime, temperature, top_p, allow_empty_prime=start == "state")
            _, logits = self.model.logits_after(prime, start)
        except (SamplingError, ValueError) as exc:
            self._probs = self._full = self._logits = None
            self.chart.value = _chart_placeholder("—")
            self._show_error(_one_line(exc))
            return
        self._logits = np.asarray(logits, dtype=np.float64)
        self._full = distribution(logits, temperature, 1.0)
        self._probs = distribution(logits, temperature, top_p)
        self._show_error("")
        self.chart.value = _render_chart(prime, start == "state", self.chart_rows, entropy_bits(self._probs),
                                         len(ck.vocab), int((self._probs > 0).sum()), self.nucleus_mass, top_p)

    def _show_error(self, text: str):
        """Show one error line (or clear it). While an error stands, Sample is off and the old text is
        cleared, so what is shown always belongs to the settings shown."""
        had = bool(self._error)
        self._error = text
        if text:
            self.message.value = (f'<div class="charrnn-error" style="color: var(--jp-error-color1, #c62828); '
                                  f'font-size: 13px; margin: 6px 0 0 0">⚠ {html.escape(text)}</div>')
            self.button.disabled = True
            self.button.tooltip = f"Sample is off: {text}"
            self._result = ""
            self.output.value = _render_text("", "", "Sample is off until the error above is fixed.")
        else:
            self.message.value = ""
            self.button.disabled = not self.entries
            self.button.tooltip = ""
            if had:
                self.output.value = _render_text("", "", READY)


def sampler_ui(checkpoint) -> SamplerUI:
    """A UI over one checkpoint: a Checkpoint, a checkpoint file, or a run directory (its last.npz)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(_resolve(checkpoint))
    run = Path(checkpoint.path).parent.name if checkpoint.path else "checkpoint"
    return SamplerUI([CheckpointEntry(checkpoint, run)])


# --- rendering (plain HTML with JupyterLab's theme variables, so it reads in light and dark themes) ---

def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _note(inner: str) -> str:
    return f'<div style="color: var(--jp-ui-font-color2, #616161); font-size: 12px">{inner}</div>'


def _chart_placeholder(text: str) -> str:
    return (f'<div class="charrnn-chart" style="color: var(--jp-ui-font-color2, #757575); font-size: 12px; '
            f'padding: 8px 0">Next-character distribution: {html.escape(text)}</div>')


def _render_chart(prime, from_state, rows, entropy, K, kept, mass, top_p) -> str:
    tail = prime[-18:]
    shown = html.escape("".join(visible(c) for c in tail))
    state = '<i>the carried state</i>' + (" + " if prime else "") if from_state else "h = 0 + "
    text = (f'<span style="font-family: var(--jp-code-font-family, monospace); background: var(--jp-layout-color2, '
            f'#eee); padding: 0 3px">{"…" if len(prime) > 18 else ""}{shown}</span>') if prime else ""
    head = (f'<div style="font-size: 12px; color: var(--jp-ui-font-color1); margin-bottom: 4px">'
            f'Next character after {state}{text}</div>')
    top = max((p for _, p in rows), default=0) or 1.0
    lines = []
    for ch, p in rows:
        cut = p == 0
        width = 100 * p / top
        color = "var(--jp-brand-color1, #1976d2)"
        label_color = "var(--jp-ui-font-color3, #9e9e9e)" if cut else "var(--jp-ui-font-color1, #212121)"
        ws = ch.isspace() or not ch.isprintable()
        lines.append(
            f'<div style="display: grid; grid-template-columns: 3.2em 1fr 3.8em; align-items: center; '
            f'height: 17px; column-gap: 6px" title="{html.escape(repr(ch))}: {p:.4f}">'
            f'<span style="font-family: var(--jp-code-font-family, monospace); text-align: center; color: {label_color};'
            f'{" opacity: 0.75;" if ws else ""}">{html.escape(visible(ch))}</span>'
            f'<span style="background: var(--jp-layout-color2, #eeeeee); height: 11px; border-radius: 2px">'
            f'<span style="display: block; height: 100%; width: {width:.1f}%; background: {color}; '
            f'border-radius: 2px"></span></span>'
            f'<span style="font-size: 11px; text-align: right; color: {label_color}; '
            f'font-variant-numeric: tabular-nums">{"cut" if cut else f"{100 * p:.1f}%"}</span></div>')
    nucleus = "" if top_p >= 1 else f" · top-p keeps {kept} of {K} ({100 * mass:.0f}% of the mass)"
    if kept == 1 and entropy == 0:
        nucleus = " · greedy: the most likely character, every time" if top_p >= 1 else nucleus
    foot = (f'<div style="font-size: 12px; color: var(--jp-ui-font-color2, #616161); margin-top: 6px">'
            f'<b style="color: var(--jp-ui-font-color1)">entropy {entropy:.2f} bits</b> '
            f'(uniform over {K}: {math.log2(K):.2f}){nucleus}</div>')
    return f'<div class="charrnn-chart">{head}{"".join(lines)}{foot}</div>'


def _render_text(prime: str, text: str, status: str) -> str:
    body = ""
    if prime or text:
        body = (f'<div class="charrnn-output" style="font-family: var(--jp-code-font-family, monospace); '
                f'font-size: 13px; line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere; '
                f'max-height: 420px; overflow-y: auto; padding: 10px 12px; border-radius: 4px; '
                f'border: 1px solid var(--jp-border-color2, #e0e0e0); background: var(--jp-layout-color1, #fff); '
                f'color: var(--jp-content-font-color1, #212121)">'
                f'<span class="charrnn-prime" style="color: var(--jp-ui-font-color2, #757575); '
                f'background: var(--jp-layout-color2, #f0f0f0)">{html.escape(prime)}</span>'
                f'<span class="charrnn-sample">{html.escape(text)}</span></div>')
    return (f'<div style="font-size: 12px; color: var(--jp-ui-font-color2, #616161); margin: 8px 0 4px 0" '
            f'class="charrnn-status">{html.escape(status)}</div>{body}')


class UnitViewer:
    """Pick a feature (its best unit is chosen) or any unit, and read the text coloured by that unit's
    activation; "where the model is sure" colours each character by the probability the model gave it.

    text: the stretch read; H (n, m) the hidden state after each character; P (n-1,) the probability of each
    next character; features: {name: (n,)} (charrnn.units.text_features).
    """

    SURE = "where the model is sure"

    def __init__(self, text: str, H, P, features: dict):
        from .units import best_units, correlations
        self.text, self.H, self.P, self.features = text, np.asarray(H), np.asarray(P), features
        self._correlations = correlations
        self.best = best_units(self.H, features)
        options = [f"{name} (unit {u}, r = {r:+.2f})" for name, (u, r) in self.best.items()] + [self.SURE]
        self.feature = w.Dropdown(options=options, description="Show", style=_DESC, layout=w.Layout(width="460px"))
        self.unit = w.BoundedIntText(value=0, min=0, max=self.H.shape[1] - 1, description="Unit", style=_DESC,
                                     layout=w.Layout(width="200px"))
        self.info = w.HTML()
        self.output = w.HTML()
        self.feature.observe(self._on_feature, names="value")
        self.unit.observe(lambda _: self._show(), names="value")
        self.widget = w.VBox([w.HBox([self.feature, self.unit]), self.info, self.output],
                             layout=w.Layout(width="100%", max_width="900px"))
        self._on_feature()

    def _on_feature(self, change=None):
        label = self.feature.value
        if label != self.SURE:
            name = label.split(" (unit ")[0]
            self.unit.value = self.best[name][0]
        self._show()

    def _show(self):
        if self.feature.value == self.SURE:
            values = np.concatenate([[np.nan], self.P])   # the first character has no prediction
            self.info.value = _note("each character on the probability the model gave it (green: sure)")
            self.output.value = coloured_html(self.text, values, sequential)
            return
        u = self.unit.value
        lines = [f"{name}: r = {self._correlations(self.H[:, [u]], f)[0]:+.2f}" for name, f in self.features.items()]
        self.info.value = _note(f"unit {u} (red positive, blue negative) · " + " · ".join(html.escape(s) for s in lines))
        self.output.value = coloured_html(self.text, self.H[:, u], diverging)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
