"""Matplotlib figures of the notebooks and the report; each is saved to figures/ as PNG.

Every function returns a Figure; `save(fig, name)` writes it (env CHARRNN_FIGURES
overrides figures/, so tests never overwrite the real figures). The notebooks show
figures with charrnn.report.display.Section.show, which saves, numbers and captions them.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ..fileio import write_atomic
from ..paths import figures_dir

DPI = 200
WIDTH = 7.0    # inches: the text width of the report at 0.9 linewidth


def save(fig, name: str) -> Path:
    """Write fig to figures/NAME.png at DPI dots per inch, atomically; returns the path."""
    d = figures_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.png"
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))
    return path


def _figure(height: float = 3.4, ncols: int = 1):
    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH, height), layout="constrained")
    return fig, axes


def _style(ax, xlabel, ylabel, title=None):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))


def _thousands(x, _pos=None):
    return f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"


def smooth_loss(history, title: str | None = None, spread=()):
    """Smooth loss against update step, with epoch boundaries as dashed lines; with spread (Histories of
    the same run under other seeds, history among them), the band between their lowest and highest."""
    fig, ax = _figure()
    if len(spread) > 1:
        n = min(len(h.smooth_loss) for h in spread)
        band = np.array([h.smooth_loss[:n] for h in spread])
        ax.fill_between(history.steps[:n], band.min(0), band.max(0), color="tab:blue", alpha=0.18, lw=0,
                        label=f"range over {len(spread)} seeds")
    ax.plot(history.steps, history.smooth_loss, color="tab:blue", lw=1.2,
            label="smooth loss" + (f" (seed {history.config.get('seed', 0)})" if len(spread) > 1 else ""))
    for i, s in enumerate(history.epoch_steps):
        ax.axvline(s, color="0.4", ls="--", lw=0.8)
        ax.annotate(f"epoch {i + 2}", (s, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")
    if history.best_step is not None:
        ax.plot([history.best_step], [history.best_smooth_loss], "o", color="tab:red", ms=4,
                label=f"best: {history.best_smooth_loss:.2f} at {history.best_step:,}")
    _style(ax, "update step", "smooth loss (nats per sequence)", title)
    ax.legend(fontsize=8)
    return fig


def train_vs_val(history, title: str | None = None):
    """Training smooth loss and held-out loss, both in nats per character; the spike guard's events as
    red ticks at the top. The smooth loss (0.999 s + 0.001 loss) forgets its start by a factor e every
    1,000 updates, so in a run of fewer than 10,000 it still lies well above the losses of the moment: such a
    run also shows the mean of its logged losses over windows of about a thirtieth of the run."""
    L = history.config["seq_length"]
    fig, ax = _figure()
    short = bool(history.steps) and history.steps[-1] < 10_000
    ax.plot(history.steps, np.asarray(history.smooth_loss) / L, color="tab:blue", lw=1.2,
            label="training (smooth loss / seq_length" + (", which still carries its start)" if short else ")"))
    if short and len(history.loss) >= 30:
        k = len(history.loss) // 30
        mean = np.convolve(np.asarray(history.loss) / L, np.ones(k) / k, "valid")
        ax.plot(history.steps[k - 1:], mean, color="tab:green", lw=1.2,
                label=f"training (loss / seq_length: mean of {k} logged updates, one in {history.config['log_every']})")
    ax.plot(history.val_steps, history.val_loss, "o-", color="tab:orange", ms=3, lw=1.2,
            label="validation (last 10% of the text)")
    _spike_ticks(ax, [e["step"] for e in history.spikes or ()])
    _style(ax, "update step", "loss (nats per character)", title)
    ax.legend(fontsize=8)
    return fig


def _spike_ticks(ax, xs, label="spike guard: update refused"):
    """Red ticks along the top of ax at xs (nothing when empty)."""
    if len(xs):
        ax.plot(xs, np.ones(len(xs)), "v", color="tab:red", ms=6, transform=ax.get_xaxis_transform(), clip_on=False,
                label=f"{label} ({len(xs)})")


def compare_runs(histories: dict, title: str | None = None):
    """Runs side by side: training smooth loss (left) and validation loss (right), nats per character."""
    fig, (a, b) = _figure(3.2, 2)
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        L = h.config["seq_length"]
        a.plot(h.steps, np.asarray(h.smooth_loss) / L, color=color, lw=1.1, label=label)
        b.plot(h.val_steps, h.val_loss, "o-", color=color, ms=2.5, lw=1.1, label=label)
    _style(a, "update step", "nats per character", "training (smooth)")
    _style(b, "update step", "nats per character", "validation")
    lo = min(min(min(h.val_loss), min(h.smooth_loss) / h.config["seq_length"]) for h in histories.values())
    hi = max(np.percentile(np.asarray(h.smooth_loss) / h.config["seq_length"], 90) for h in histories.values())
    for ax in (a, b):
        ax.set_ylim(lo - 0.1, max(hi, lo + 0.5))
    b.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def speed(result: dict):
    """Horizontal bars: updates per second of the classic loop and of charrnn."""
    labels = ["classic per-timestep", "charrnn float64", "charrnn float32"]
    values = [result["classic"], result["float64"], result["float32"]]
    fig, ax = _figure(1.9)
    colors = ["0.55", "tab:blue", "tab:green"]
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    for bar, v in zip(bars, values[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:,.0f}", va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_xlabel("updates per second (higher is better)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def start_curves(losses: dict, K: int, window: int = 5):
    """Loss per position of random stretches read from h = 0 and from the stored state, one panel per
    model ({label: startstate.stretch_losses(...)}): the mean over all stretches from each start, moving
    averages over window positions, and, thin, each stretch that stays stuck from h = 0."""
    from .startstate import stuck
    fig, axes = _figure(3.0, len(losses))
    axes = np.atleast_1d(axes)
    kernel = np.ones(window) / window

    def smooth(y):
        return np.arange(len(y) - window + 1) + window // 2 + 1, np.convolve(y, kernel, mode="valid")

    for ax, (label, L) in zip(axes, losses.items()):
        bad = stuck(L["zeros"], K)
        for row in L["zeros"][bad][:12]:
            ax.plot(*smooth(row), color="tab:red", lw=0.5, alpha=0.35)
        for start, color, name in (("zeros", "tab:red", "from h = 0 (mean)"),
                                   ("state", "tab:blue", "from the stored state (mean)")):
            if start in L:
                ax.plot(*smooth(L[start].mean(0)), color=color, lw=1.4, label=name)
        ax.axhline(np.log(K), color="0.4", ls=":", lw=0.8)
        ax.annotate("uniform guess", (1, np.log(K)), xycoords=("axes fraction", "data"), xytext=(-3, 3),
                    textcoords="offset points", ha="right", fontsize=7, color="0.3")
        _style(ax, "position in the stretch (characters)", "loss (nats per character)",
               f"{label}\n{bad.sum()} of {len(bad)} stuck from h = 0")     # two lines: side by side, one would collide
        top = max([np.log(K) * 1.6] + [smooth(row)[1].max() * 1.05 for row in L["zeros"][bad][:12]])
        ax.set_ylim(0, min(top, 4 * np.log(K)))
        ax.legend(fontsize=7, loc="upper right", framealpha=0.85)
    return fig


def seconds_at(main, steps) -> np.ndarray:
    """The seconds of training the timed run `main` had reached at these update counts (linear between its
    held-out measurements): the time axis of runs that did the same updates elsewhere."""
    return np.interp(steps, [0, *main.val_steps], [0.0, *main.val_seconds])


def val_bands(groups: dict, title: str | None = None, references=()):
    """Held-out loss against seconds of training, one line and band per group ({label: [History, ...]}).

    The first History of a group is its timed run, drawn as a line; the others are the same settings under
    other seeds, trained for the same updates, placed on the timed run's clock (seconds_at). The band spans
    the lowest and highest of them at each measurement; spike guard events are red triangles on their run's
    curve. references: (label, seconds, loss) points drawn as grey stars (seconds None: a dotted level), e.g.
    another program's figures."""
    fig, ax = _figure(3.6)
    lo, spikes = np.inf, []
    for i, (label, runs) in enumerate(groups.items()):
        main, color = runs[0], f"C{i}"
        n = min(len(h.val_loss) for h in runs)
        x = seconds_at(main, main.val_steps[:n])
        band = np.array([h.val_loss[:n] for h in runs])
        if len(runs) > 1:
            ax.fill_between(x, band.min(0), band.max(0), color=color, alpha=0.2, lw=0)
        finals = band[:, -1]
        span = f"{finals.min():.3f}-{finals.max():.3f}, {len(runs)} seeds" if len(runs) > 1 else f"{finals[0]:.3f}"
        ax.plot(x, main.val_loss[:n], "-", color=color, lw=1.3, label=f"{label} ({span})")
        for h in runs:
            for e in h.spikes or ():
                spikes.append((seconds_at(main, e["step"]), np.interp(e["step"], h.val_steps, h.val_loss)))
        lo = min(lo, band.min())
    for j, (label, sec, loss) in enumerate(references):
        if sec is None:                              # a figure without a time: a dotted level
            ax.axhline(loss, color="0.45", ls=":", lw=1)
            ax.annotate(label, (0, loss), xycoords=("axes fraction", "data"), xytext=(4, 3),
                        textcoords="offset points", fontsize=7, color="0.25")
            continue
        ax.plot([sec], [loss], "*", color="0.35", ms=9, zorder=5)
        ax.annotate(label, (sec, loss), xytext=(-4, 5), textcoords="offset points", ha="right",
                    fontsize=7, color="0.25")
    top = lo + 0.9
    if spikes:                                       # a refusal above the scale is marked on its top edge
        xs, ys = zip(*spikes)
        ax.plot(xs, [min(y, top - 0.02) for y in ys], "v", color="tab:red", ms=6, clip_on=False, zorder=6,
                label=f"spike guard: update refused ({len(spikes)})"
                      + (", on the top edge: off the scale" if max(ys) > top - 0.02 else ""))
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("held-out loss (nats per character)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(lo - 0.05, top)
    ax.legend(fontsize=7.5)
    return fig


def val_vs_seconds(histories: dict, title: str | None = None):
    """Held-out loss against seconds of training, one line per run ({label: History})."""
    fig, ax = _figure()
    for i, (label, h) in enumerate(histories.items()):
        ax.plot(h.val_seconds, h.val_loss, "-", color=f"C{i}", lw=1.3, label=f"{label} ({h.val_loss[-1]:.3f})")
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("held-out loss (nats per character)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    lo = min(min(h.val_loss) for h in histories.values())
    ax.set_ylim(lo - 0.05, lo + 1.2)
    ax.legend(fontsize=8)
    return fig
