"""The interactive sampler for JupyterLab: a model (Sampler) and a view (SamplerUI) over charrnn.sampling.
(The hidden units' viewer of notebook 08 is charrnn.report.unit_viewer; it shares this module's HTML pieces.)

    from charrnn.widgets import SamplerUI
    SamplerUI.from_runs()            # every best/last checkpoint under runs/
    sampler_ui("runs/shakespeare")   # one checkpoint (file, run directory or Checkpoint)

`Sampler` holds no widget: it turns a checkpoint and a `Settings` into a preview of the next-character
distribution, or into one error line a student can act on, and draws text. `SamplerUI` creates the
widgets, binds them to a Sampler and renders its answers with the HTML functions at the end of this
module. Sampling starts from the stored state by default; "zeros" starts from h = 0, and checkpoints
written before states were stored can only do that. The widgets are attributes (picker, seeds_shown,
start, temperature, top_p, length, prime, seed, random_seed, button, chart, output, message), so tests
drive the UI the way a person does: set values, `ui.button.click()`, read `ui.result_text`.
"""
from __future__ import annotations

import html
import math
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w
import numpy as np

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .paths import repo_root, runs_dir
from .sampling import Model, SamplingError, check_sampling_args, distribution

TOP_K = 15                      # characters shown in the chart
KINDS = ("best_val", "best", "last")   # checkpoint files a run directory holds, in picker order
MAIN_RUNS = ("assignment-long", "assignment")   # the report's main models: the picker opens on the first found
PRIME_CANDIDATES = ("The ", "And ", "the ", "He ", "A ")   # tried in order; must be in the vocabulary
CREATE_HINT = ("<code>make report</code> trains the report's models, or train one yourself: "
               "<code>python -m charrnn train --corpus data/shakespeare.txt --updates 20000 --out runs/NAME</code>")
READY = "Press Sample to generate text."
NEEDS_PRIME = ("From zeros the network has nothing to go on: type at least one character as a prime "
               "(or start from the carried state).")
_SEEN = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
_SEED_RUN = re.compile(r"^(?P<base>.+)-seed\d+$")
LABEL_WIDTH = "92px"                 # the width of every control's description, so the controls line up


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


# --- the checkpoints on offer ---

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
    def loss(self) -> tuple[float, str] | None:
        """(nats per character, "held-out" or "training"): the held-out loss where one was measured at
        these parameters, else the smooth training loss over the characters of one update's sequence."""
        ck = self.checkpoint
        if ck.kind == "best_val" and ck.best_val_loss is not None:
            return ck.best_val_loss, "held-out"
        smooth = ck.best_smooth_loss if ck.kind == "best" and ck.best_smooth_loss is not None else ck.smooth_loss
        return None if smooth is None else (smooth / ck.config.seq_length, "training")

    @property
    def seed_of(self) -> str | None:
        """The run this one repeats under another seed (its name without -seedK), or None."""
        found = _SEED_RUN.match(self.run)
        return found["base"] if found else None

    @property
    def label(self) -> str:
        ck, loss = self.checkpoint, self.loss
        shown = "" if loss is None else f", {loss[1]} loss {loss[0]:.3f} nats/char"
        return f"{self.run} · {ck.kind} ({ck.cell}, step {self.step:,}{shown})"

    @property
    def model(self) -> Model:
        return self.checkpoint.model()


def find_checkpoints(root=None) -> tuple[list[CheckpointEntry], list[str]]:
    """Every best_val.npz, best.npz and last.npz under root (default runs_dir()).

    Returns (entries sorted by run then best_val, best, last; one-line notes on files that could not be read).
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


def default_index(entries: list[CheckpointEntry], among: list[int] | None = None) -> int:
    """Of the entries at indices among (default all): the report's main model when it is there
    (MAIN_RUNS), else the run trained longest (newest on a tie); of that run, its first file in KINDS
    order (held-out best, then best, then last)."""
    among = range(len(entries)) if among is None else among
    names = {entries[i].run for i in among}
    main = next((name for name in MAIN_RUNS if name in names), None)
    run = main or entries[max(among, key=lambda i: (entries[i].checkpoint.step, entries[i].mtime))].run
    same = [i for i in among if entries[i].run == run]
    return min(same, key=lambda i: KINDS.index(entries[i].checkpoint.kind))


def listed(entries: list[CheckpointEntry], seeds: bool) -> list[int]:
    """The indices of the entries the picker offers: every run's files, the main runs' first; a run that
    repeats another under a new seed (NAME-seedK beside NAME) only when seeds is True."""
    names = {e.run for e in entries}
    keep = [i for i, e in enumerate(entries) if seeds or e.seed_of not in names]
    main = {name: k for k, name in enumerate(MAIN_RUNS)}
    return sorted(keep, key=lambda i: main.get(entries[i].run, len(main)))   # stable: runs stay in order


# --- the model: settings in, a preview or an error out, text drawn ---

@dataclass(frozen=True)
class Settings:
    """What the controls say."""
    start: str = "state"        # "state" (the carried state) or "zeros" (h = 0)
    temperature: float = 1.0
    top_p: float = 1.0
    length: int = 300
    prime: str = ""

    @property
    def greedy(self) -> bool:
        """Temperature 0: always the most likely character; no seed plays a part."""
        return self.temperature == 0


@dataclass(frozen=True)
class Preview:
    """The next-character distribution after the prime, as the chart shows it."""
    logits: np.ndarray          # (K,) the chart's order, the same at every temperature
    full: np.ndarray            # (K,) the distribution at the temperature, before top-p
    probs: np.ndarray           # (K,) after top-p: what sampling draws from

    @property
    def mass(self) -> float:
        """How much of the temperature-scaled distribution the characters kept by top-p cover."""
        return float(self.full[self.probs > 0].sum())

    def rows(self, chars) -> list[tuple[str, float]]:
        """(character, probability) for the TOP_K most likely, ranked by logit (so also at temperature 0)."""
        order = np.argsort(-self.logits, kind="stable")[:TOP_K]
        return [(chars[i], float(self.probs[i])) for i in order]


class Sampler:
    """Sampling from one of several checkpoints, without widgets."""

    def __init__(self, entries: list[CheckpointEntry], rng: np.random.Generator | None = None):
        self.entries = list(entries)
        self.rng = rng if rng is not None else np.random.default_rng(secrets.randbits(64))

    def problem(self, index: int, s: Settings) -> str:
        """The one line that says why these settings cannot be sampled ('' when they can)."""
        model = self.entries[index].model
        if s.start == "zeros" and not s.prime:
            return NEEDS_PRIME
        if s.start == "state" and not model.has_state:
            return "This checkpoint stores no state (it is from an older charrnn): start from zeros."
        try:
            check_sampling_args(model.vocab, s.length, s.prime, s.temperature, s.top_p,
                                allow_empty_prime=s.start == "state")
        except SamplingError as exc:
            text = _one_line(exc)
            if "\\" in model.vocab.missing(s.prime) and "\\n" in s.prime:
                text += " (for a line break, press Enter in the box)"
            return text
        return ""

    def preview(self, index: int, s: Settings) -> Preview:
        """The distribution of the character after the prime; raises SamplingError when problem() is not ''."""
        why = self.problem(index, s)
        if why:
            raise SamplingError(why)
        _, logits = self.entries[index].model.logits_after(s.prime, s.start)
        logits = np.asarray(logits, dtype=np.float64)
        return Preview(logits, distribution(logits, s.temperature, 1.0), distribution(logits, s.temperature, s.top_p))

    def new_seed(self) -> int:
        return int(self.rng.integers(0, 2**31))

    def draw(self, index: int, s: Settings, seed: int | None) -> str:
        """s.length characters after the prime (seed None when greedy); raises SamplingError."""
        why = self.problem(index, s)
        if why:
            raise SamplingError(why)
        return self.entries[index].model.sample(s.length, prime=s.prime, start=s.start, temperature=s.temperature,
                                                top_p=s.top_p, seed=None if s.greedy else seed)


# --- the view ---

class SamplerUI:
    """Pick a checkpoint, set temperature / top-p / length / prime / seed, press Sample, read the text.

    The chart beside the controls shows the next-character distribution after the prime at the current
    temperature and top-p, with its entropy in bits.
    """

    def __init__(self, entries: list[CheckpointEntry], notes: list[str] | None = None, empty_message: str = ""):
        self.sampler = Sampler(entries)
        self.entries = self.sampler.entries
        self._skipped = list(notes or [])   # one line per checkpoint file that could not be read
        self._result, self._error, self._preview = "", "", None
        self._written_seed = None           # the seed the UI itself last put in the box
        self._build()
        if not self.entries:
            for c in self._controls:
                c.disabled = True
            self.info.value = note(empty_message or f"No checkpoint yet. {CREATE_HINT}")
            self.chart.value = _chart_placeholder("no model")
            return
        shown = listed(self.entries, False)
        first = default_index(self.entries, shown)
        self.prime.value = default_prime(self.entries[first].checkpoint.vocab)
        self.picker.options = [(self.entries[i].label, i) for i in shown]
        self.picker.value = first
        self._bind()
        self._describe()

    def _build(self):
        label = {"description_width": LABEL_WIDTH}
        wide = w.Layout(width="auto")
        self.picker = w.Dropdown(description="Checkpoint", style=label, layout=w.Layout(flex="1 1 0%", width="auto", min_width="0"))
        self.seeds_shown = w.ToggleButton(value=False, description="seed repeats", icon="list",
                                          layout=w.Layout(width="136px", margin="0 0 0 8px", flex="0 0 auto"),
                                          tooltip="also list each run trained again under another seed (NAME-seedK)")
        self.start = w.ToggleButtons(options=[("carried state", "state"), ("zeros", "zeros")], value="state",
                                     style={"button_width": "auto"}, layout=w.Layout(width="auto"),
                                     tooltips=["the hidden state training carried at these parameters, and the "
                                               "character that came next", "h = 0, as at the start of an epoch"])
        self.start.add_class("charrnn-start")
        self.temperature = w.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="Temperature",
                                         readout_format=".2f", style=label, layout=wide,
                                         tooltip="0 = greedy (always the most likely character); above 1 = wilder")
        self.top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="Top-p",
                                   readout_format=".2f", style=label, layout=wide,
                                   tooltip="sample only from the most likely characters covering this much probability")
        self.length = w.IntSlider(value=300, min=10, max=2000, step=1, description="Length",
                                  style=label, layout=wide, tooltip="characters to generate")
        self.prime = w.Textarea(value="", description="Prime", placeholder="opening text (Enter for a line break)",
                                rows=2, style=label, layout=wide, tooltip="text fed to the network before sampling")
        self.seed = w.BoundedIntText(value=0, min=0, max=2**32 - 1, description="Seed", style=label,
                                     continuous_update=True,       # every keystroke counts: retyping the seed shown
                                     layout=w.Layout(width="210px"), tooltip="the same seed gives the same text")
        self.random_seed = w.Checkbox(value=True, description="random", indent=False,
                                      layout=w.Layout(width="auto", margin="0 0 0 12px"),
                                      tooltip="draw a fresh seed for every sample (shown in the box)")
        self.button = w.Button(description="Sample", button_style="primary", icon="play",
                               layout=w.Layout(width="140px", margin="8px 0 0 96px"))
        self.info = w.HTML(layout=w.Layout(margin="0 0 4px 96px"))
        self.chart = w.HTML()
        self.message = w.HTML()
        self.output = w.HTML()      # no width: 100% here, it would add the widget margins and overflow the cell
        self._controls = (self.picker, self.seeds_shown, self.start, self.temperature, self.top_p, self.length,
                          self.prime, self.seed, self.random_seed, self.button)

        row = w.Layout(align_items="center")
        start_label = w.HTML('<div style="text-align: right; padding-right: 8px">Start from</div>',
                             layout=w.Layout(width=LABEL_WIDTH, flex="0 0 auto"))
        start_label.add_class("widget-label")
        start_row = w.HBox([start_label, self.start], layout=row)
        controls = w.VBox([start_row, self.temperature, self.top_p, self.length, self.prime,
                           w.HBox([self.seed, self.random_seed], layout=row), self.button],
                          layout=w.Layout(flex="1 1 320px", min_width="300px", max_width="460px"))
        chart_box = w.VBox([self.chart], layout=w.Layout(flex="1 1 240px", min_width="230px", max_width="400px",
                                                         margin="0 0 0 16px"))
        self.widget = w.VBox(
            [w.HTML(_STYLE), w.HBox([self.picker, self.seeds_shown], layout=row), self.info,
             w.HBox([controls, chart_box], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
             self.message, self.output],
            layout=w.Layout(width="100%", max_width="900px"))

    def _bind(self):
        self.picker.observe(self._describe, names="value")
        self.seeds_shown.observe(lambda _: self._list(), names="value")
        self.start.observe(self._on_start, names="value")
        for c in (self.temperature, self.top_p, self.prime):
            c.observe(lambda _: self._refresh(), names="value")
        self.seed.observe(self._on_seed, names="value")
        self.button.on_click(lambda _: self.sample())

    # --- constructors ---
    @classmethod
    def from_runs(cls, path=None) -> "SamplerUI":
        """A UI over every checkpoint under path (default runs_dir(); relative to the repo root)."""
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
    def settings(self) -> Settings:
        return Settings(self.start.value, round(float(self.temperature.value), 6), round(float(self.top_p.value), 6),
                        int(self.length.value), self.prime.value)

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
        return None if self._preview is None else self._preview.probs

    @property
    def nucleus_mass(self) -> float | None:
        """How much of the temperature-scaled distribution the characters kept by top-p cover."""
        return None if self._preview is None else self._preview.mass

    @property
    def chart_rows(self) -> list[tuple[str, float]]:
        """The chart's rows: (character, probability), most likely first."""
        return [] if self._preview is None else self._preview.rows(self.checkpoint.vocab.chars)

    # --- actions ---
    def sample(self) -> str:
        """Draw length characters with the current settings; show them (or one error line). Returns the text.

        Nothing is drawn, and no seed is used up, while the settings hold an error: the button is then off.
        A fresh seed is drawn only when "random" is ticked and the temperature is above 0."""
        if not self.entries:
            return ""
        s, index = self.settings, self.picker.value
        why = self.sampler.problem(index, s)
        if why:
            self._show_error(why)
            return ""
        if self.random_seed.value and not s.greedy:
            self._written_seed = self.sampler.new_seed()
            self.seed.value = self._written_seed
        seed = int(self.seed.value)
        self.button.disabled = True
        t0 = time.perf_counter()
        try:
            text = self.sampler.draw(index, s, seed)
        except (SamplingError, ValueError) as exc:
            self._show_error(_one_line(exc))
            return ""
        finally:
            self.button.disabled = bool(self._error)
        ms = (time.perf_counter() - t0) * 1e3
        self._result = text
        self._show_error("")
        how = "greedy (no seed needed)" if s.greedy else f"seed {seed} · temperature {s.temperature:.2f} · top-p {s.top_p:.2f}"
        where = "from the carried state" if s.start == "state" else "from h = 0"
        self.output.value = render_text(s.prime, text, f"{len(text):,} characters in {ms:.0f} ms · {how} · {where}")
        return text

    def display(self):
        """Show the UI in the notebook (it also displays itself as a cell's last expression)."""
        from IPython.display import display
        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- reactions ---
    def _list(self):
        """Offer the checkpoints (seed repeats as the box says), keeping the pick when it is still listed."""
        shown, before = listed(self.entries, self.seeds_shown.value), self.picker.value
        with self.picker.hold_trait_notifications():     # one change of the pick, not one per trait
            self.picker.options = [(self.entries[i].label, i) for i in shown]
            self.picker.value = before if before in shown else shown[0]
        if self.picker.value == before:
            self._describe()                            # else the picker's observer has described the new pick

    def _describe(self, change=None):
        """Describe the checkpoint picked and refresh the chart. The prime is kept: when the new vocabulary
        lacks one of its characters, the error line says which."""
        e = self.entries[self.picker.value]
        ck, model = e.checkpoint, e.model
        with self.start.hold_trait_notifications():
            self.start.disabled = not model.has_state
            if not model.has_state:
                self.start.value = "zeros"
        parts = [ck.cell, f"{len(ck.vocab)} characters", f"{ck.config.m} hidden units", f"{e.step:,} updates",
                 f"{ck.config.seq_length} characters per sequence"]
        if ck.config.batch_size > 1:
            parts.append(f"{ck.config.batch_size} streams")
        if not model.has_state:
            parts.append("no stored state (an older checkpoint): samples start from h = 0")
        listed_runs = {self.entries[i].run for _, i in self.picker.options}
        hidden = len({x.run for x in self.entries} - listed_runs)
        extra = (f"<br>{hidden} run{'s' if hidden > 1 else ''} repeated under another seed not listed: "
                 f"press <i>seed repeats</i>") if hidden else ""
        if self._skipped:
            extra += f"<br>Skipped {len(self._skipped)} unreadable checkpoint(s): " + html.escape("; ".join(self._skipped))
        self.info.value = note(html.escape(" · ".join(parts)) + extra)
        self._clear_text()
        self._refresh()

    def _on_start(self, change):
        self._clear_text()          # the text shown was drawn from the other start
        self._refresh()

    def _on_seed(self, change):
        if change["new"] != self._written_seed and self.random_seed.value:
            self.random_seed.value = False      # typing a seed means: use this one

    def _clear_text(self):
        self._result = ""
        self.output.value = render_text("", "", READY)

    def _refresh(self):
        """Chart, error line and seed controls for the settings now shown."""
        if not self.entries:
            return
        s = self.settings
        for c in (self.seed, self.random_seed):
            c.disabled = s.greedy
        self.seed.tooltip = ("greedy sampling draws nothing at random: no seed plays a part" if s.greedy
                             else "the same seed gives the same text")
        try:
            self._preview = self.sampler.preview(self.picker.value, s)
        except (SamplingError, ValueError) as exc:
            self._preview = None
            self.chart.value = _chart_placeholder("—")
            self._show_error(_one_line(exc))
            return
        self._show_error("")
        p = self._preview
        self.chart.value = render_chart(s.prime, s.start == "state", self.chart_rows, entropy_bits(p.probs),
                                        len(p.probs), int((p.probs > 0).sum()), p.mass, s.top_p)

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
            self.output.value = render_text("", "", "Sample is off until the error above is fixed.")
        else:
            self.message.value = ""
            self.button.disabled = not self.entries
            self.button.tooltip = ""
            if had:
                self.output.value = render_text("", "", READY)


def sampler_ui(checkpoint) -> SamplerUI:
    """A UI over one checkpoint: a Checkpoint, a checkpoint file, or a run directory (its last.npz)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(_resolve(checkpoint))
    run = Path(checkpoint.path).parent.name if checkpoint.path else "checkpoint"
    return SamplerUI([CheckpointEntry(checkpoint, run)])


# --- rendering: plain HTML with JupyterLab's theme variables, so it reads in light and dark themes ---

# the selected start button in the brand colour, so that it stands out in the dark theme too
_STYLE = ("<style>.charrnn-start .jupyter-button.mod-active, .charrnn-start .widget-toggle-button.mod-active "
          "{background: var(--jp-brand-color1, #1976d2); color: #fff; font-weight: 600;} "
          ".charrnn-start .jupyter-button:not(.mod-active) {background: var(--jp-layout-color2, #eee); "
          "color: var(--jp-ui-font-color1, #212121);}</style>")


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def note(inner: str) -> str:
    return f'<div style="color: var(--jp-ui-font-color2, #616161); font-size: 12px; line-height: 1.45">{inner}</div>'


def _chart_placeholder(text: str) -> str:
    return (f'<div class="charrnn-chart" style="color: var(--jp-ui-font-color2, #757575); font-size: 12px; '
            f'padding: 8px 0">Next-character distribution: {html.escape(text)}</div>')


def legend_html(colour, low: float, high: float, left: str, right: str, stops: int = 9) -> str:
    """A colour bar from colour(low) to colour(high) between the labels left and right."""
    cells = "".join(f'<span style="display: inline-block; width: 18px; height: 12px; background: rgb{colour(v)}">'
                    f'</span>' for v in np.linspace(low, high, stops))
    return (f'<div class="charrnn-legend" style="font-size: 12px; color: var(--jp-ui-font-color2, #616161); '
            f'margin: 2px 0 4px 0; display: flex; align-items: center; gap: 6px">{html.escape(left)}'
            f'<span style="display: inline-flex; border: 1px solid var(--jp-border-color2, #ccc)">{cells}</span>'
            f'{html.escape(right)}</div>')


def render_chart(prime, from_state, rows, entropy, K, kept, mass, top_p) -> str:
    """The next-character chart: rows (character, probability) as bars, with the entropy and what top-p kept."""
    tail = prime[-18:]
    shown = html.escape("".join(visible(c) for c in tail))
    state = '<i>the carried state</i>' + (" + " if prime else "") if from_state else "h = 0 + "
    text = (f'<span style="font-family: var(--jp-code-font-family, monospace); background: var(--jp-layout-color2, '
            f'#eee); padding: 0 3px">{"…" if len(prime) > 18 else ""}{shown}</span>') if prime else ""
    head = (f'<div style="font-size: 12px; line-height: 1.45; color: var(--jp-ui-font-color1); margin-bottom: 4px">'
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
    foot = (f'<div style="font-size: 12px; line-height: 1.45; color: var(--jp-ui-font-color2, #616161); margin-top: 6px">'
            f'<b style="color: var(--jp-ui-font-color1)">entropy {entropy:.2f} bits</b> '
            f'(uniform over {K}: {math.log2(K):.2f}){nucleus}</div>')
    return f'<div class="charrnn-chart">{head}{"".join(lines)}{foot}</div>'


def render_text(prime: str, text: str, status: str) -> str:
    """The status line, then the prime (greyed) and the sampled text, line breaks kept."""
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
    return (f'<div style="font-size: 12px; line-height: 1.45; color: var(--jp-ui-font-color2, #616161); margin: 8px 0 4px 0" '
            f'class="charrnn-status">{html.escape(status)}</div>{body}')
