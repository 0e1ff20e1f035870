"""Matplotlib figures of measured things. Each function only plots what it is given and returns a Figure.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), so they can be
made in a loop without leaking, saved with the Agg renderer, and shown inline in a notebook when
returned from a cell.

>>> df = probes.measure_run(run)                                  # doctest: +SKIP
>>> fig = progress_figure(df, probes.phases(df))                 # doctest: +SKIP
>>> save_figure(fig, "progress.png")                              # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ._figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..errors import FigureError
from ..files import atomic_write_bytes
from ..fourier import basis_labels, row_frequencies

__all__ = [
    "PHASE_NAMES",
    "progress_figure",
    "loss_curves_figure",
    "measures_figure",
    "llc_figure",
    "fourier_norms_figure",
    "neuron_clusters_figure",
    "save_figure",
]

# (attribute of the phases object, label of the phase that ends there, colour of that phase)
PHASE_NAMES = (
    ("memorisation_end", "memorisation", "#4c72b0"),
    ("circuit_formation_end", "circuit formation", "#dd8452"),
    ("cleanup_end", "cleanup", "#55a868"),
)
PHASE_GID = "phase-boundary"  # gid of every phase-boundary line (tests and tools find them by it)

_SERIES_STYLE = {
    "train": dict(color="#1f77b4", label="train"),
    "test": dict(color="#d62728", label="test"),
    "restricted": dict(color="#2ca02c", label="restricted"),
    "excluded": dict(color="#9467bd", label="excluded"),
}


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _boundaries(phases: Any) -> list[tuple[str, str, str, int]]:
    """``(attr, phase name, colour, step)`` for each boundary that was found (dataclass or mapping)."""
    if phases is None:
        return []
    out = []
    for attr, name, colour in PHASE_NAMES:
        step = phases.get(attr) if isinstance(phases, Mapping) else getattr(phases, attr, None)
        if step is not None and not (isinstance(step, float) and math.isnan(step)):
            out.append((attr, name, colour, int(step)))
    return out


def _draw_phases(ax, bounds, x_start: float, label: bool = False) -> list:
    """Shade each phase and draw a dashed vertical line at each boundary; returns the lines.

    label: write each phase's name just above the panel, over its shaded span (outside the data, so no curve
    runs through it; a span too narrow for its name is named by the figure's legend only).
    """
    if ax.get_xscale() == "linear":
        _step_ticks(ax)
    left, lines = x_start, []
    for _, name, colour, step in bounds:
        ax.axvspan(left, step, color=colour, alpha=0.08, lw=0, zorder=0)
        line = ax.axvline(step, color=colour, ls="--", lw=1.2, zorder=1)
        line.set_gid(PHASE_GID)
        line.set_label(f"_{name} ends")  # underscore: kept out of the panels' own legends
        lines.append(line)
        if label:
            _phase_label(ax, left, step, name, colour)
        left = step
    if label and bounds:  # room between the names and the panel's title
        ax.set_title(ax.get_title(), fontsize=ax.title.get_fontsize(), pad=13)
    return lines


def _step_ticks(ax) -> None:
    """At most ~6 step ticks, thousands written as 5k: readable on a narrow panel."""

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1000:g}k" if abs(v) >= 1000 and ax.get_xlim()[1] >= 5000 else f"{v:g}"))


def _phase_label(ax, left: float, right: float, name: str, colour: str) -> None:
    lo, hi = ax.get_xlim()
    to_axes = (lambda v: math.log10(max(v, 1e-12))) if ax.get_xscale() == "log" else (lambda v: v)
    span = (to_axes(right) - to_axes(max(left, lo))) / (to_axes(hi) - to_axes(lo))
    if span <= 0:
        return
    if span < 0.07 * max(len(name), 6) / 6:  # about 0.07 of a panel per 6 characters at fontsize 7
        return
    mid = (to_axes(max(left, lo)) + to_axes(right)) / 2
    centre = 10 ** mid if ax.get_xscale() == "log" else mid
    text = ax.text(centre, 1.005, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7,
                   color=colour, fontweight="bold", zorder=3, clip_on=False)
    text.set_gid("phase-label")


def _phase_legend(fig, lines, bounds) -> None:
    """One figure-level legend naming each boundary, e.g. "memorisation ends: step 1400"."""
    if lines:
        fig.legend(lines, [f"{name} ends: step {step}" for _, name, _, step in bounds], loc="outside lower center",
                   ncols=len(lines), fontsize=8.5, frameon=False)


def _plot_columns(ax, df, columns: Mapping[str, dict], logy: bool,
                  not_applicable: Mapping[str, str] | None = None) -> int:
    """Draw each column of ``df`` that exists; a panel with nothing to draw says "no data", or "not applicable"
    with the reason when its columns are listed in ``not_applicable`` (column -> why)."""
    n = 0
    for col, style in columns.items():
        if col not in df.columns:
            continue
        d = df[["step", col]].dropna()
        if logy:
            d = d[d[col] > 0]
        if len(d):
            kw = dict(lw=1.5, marker="." if len(df) <= 80 else None, ms=3) | style
            (line,) = ax.plot(d["step"], d[col], **kw)
            line.set_gid(col)  # which measure this line draws (tests and tools find it by it)
            n += 1
    if logy:
        ax.set_yscale("log")
    if n:
        ax.legend(fontsize=8, loc="best")
    else:
        why = next((not_applicable[c] for c in columns if not_applicable and c in not_applicable), None)
        if why is not None:
            import textwrap

            text = ax.text(0.5, 0.5, "not applicable:\n" + textwrap.fill(why, 44), transform=ax.transAxes,
                           ha="center", va="center", color="gray", fontsize=8)
            text.set_gid("not-applicable")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
    return n


def _check_df(df, needed: tuple[str, ...], where: str) -> None:
    missing = [c for c in needed if c not in getattr(df, "columns", ())]
    if missing:
        raise FigureError(f"{where}: the DataFrame lacks column(s) {missing}"
                          + ("" if hasattr(df, "columns") else f" (got {type(df).__name__}, not a DataFrame)"))


def progress_figure(df, phases: Any = None, *, not_applicable: Mapping[str, str] | None = None) -> Figure:
    """The progress measures over training, with phase boundaries.

    df: one row per checkpoint (``probes.measure_run``): step, train/test/restricted/excluded loss,
    accuracies, gini_W_E, gini_W_L, sum_sq_weights; missing columns are skipped.
    phases: ``probes.phases(df)`` (or a mapping with memorisation_end, circuit_formation_end,
    cleanup_end), or None. Panels: losses (log y), accuracies, Gini of the Fourier norms of W_E and
    W_L, sum of squared weights; each boundary found is a dashed vertical line on every panel.
    not_applicable: column -> reason (``Measures.not_applicable``): a panel with only such columns says so.
    """
    na = dict(not_applicable or {})
    _check_df(df, ("step",), "progress_figure")
    fig = Figure(figsize=(9, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    bounds = _boundaries(phases)
    x0 = float(df["step"].min()) if len(df) else 0.0

    ax = axes[0, 0]
    _plot_columns(ax, df, {f"{k}_loss": v for k, v in _SERIES_STYLE.items()}, logy=True, not_applicable=na)
    ax.set_title("Loss (restricted and excluded loss: not applicable)" if "restricted_loss" in na else
                 "Loss (restricted: key frequencies only; excluded: key frequencies removed)", fontsize=9)
    ax.set_ylabel("cross-entropy loss")

    ax = axes[0, 1]
    _plot_columns(ax, df, {f"{k}_acc": v for k, v in _SERIES_STYLE.items()}, logy=False, not_applicable=na)
    ax.set_title("Accuracy", fontsize=9)
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.03, 1.03)

    ax = axes[1, 0]
    _plot_columns(ax, df, {"gini_W_E": dict(color="#8c564b", label="W_E (embedding)"),
                           "gini_W_L": dict(color="#e377c2", label="W_L = W_out W_U (neuron-logit map)"),
                           "gini_W_E_freq": dict(color="#8c564b", ls=":", label="W_E, per frequency"),
                           "gini_W_L_freq": dict(color="#e377c2", ls=":", label="W_L, per frequency")},
                  logy=False, not_applicable=na)
    ax.set_title("Gini of the Fourier-component norms (dotted: per frequency)", fontsize=9)
    ax.set_ylabel("Gini")

    ax = axes[1, 1]
    _plot_columns(ax, df, {"sum_sq_weights": dict(color="#7f7f7f", label="all parameters")}, logy=False)
    ax.set_title("Sum of squared weights", fontsize=9)
    ax.set_ylabel("sum of squares")

    for i, ax in enumerate(axes.flat):
        lines = _draw_phases(ax, bounds, x0, label=i == 0)
        ax.grid(alpha=0.25)
    _phase_legend(fig, lines, bounds)
    for ax in axes[1]:
        ax.set_xlabel("step")
    title = "Progress measures" + ("" if bounds or phases is None else " (no phase boundary found)")
    fig.suptitle(title, fontsize=11)
    return fig


def loss_curves_figure(metrics_df, phases: Any = None, *, log_steps: bool = True) -> Figure:
    """Train and test loss (log y) and accuracy per step, from a run's ``metrics.csv``.

    Test values are only present every ``eval_every`` steps. log_steps: add a second row with a
    logarithmic step axis (from step 1), where memorisation, a few percent of a long run, is readable.
    """
    _check_df(metrics_df, ("step", "train_loss"), "loss_curves_figure")
    rows = 2 if log_steps else 1
    fig = Figure(figsize=(9, 3.6 * rows + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 2))
    styles = {k: v for k, v in _SERIES_STYLE.items() if k in ("train", "test")}
    x0 = float(metrics_df["step"].min()) if len(metrics_df) else 0.0
    bounds = _boundaries(phases)
    for r in range(rows):
        logx = r == 1
        data = metrics_df[metrics_df["step"] >= 1] if logx else metrics_df
        ax_loss, ax_acc = axes[r]
        _plot_columns(ax_loss, data, {f"{k}_loss": v for k, v in styles.items()}, logy=True)
        _plot_columns(ax_acc, data, {f"{k}_acc": v for k, v in styles.items()}, logy=False)
        ax_acc.set_ylim(-0.03, 1.03)
        for ax, what in ((ax_loss, "Loss"), (ax_acc, "Accuracy")):
            if logx:
                ax.set_xscale("log")
            ax.set_title(what + (" (log step axis: memorisation readable)" if logx else ""), fontsize=9)
            lines = _draw_phases(ax, bounds, max(x0, 1.0) if logx else x0, label=ax is ax_loss)
            ax.set_xlabel("step (log scale)" if logx else "step")
            ax.grid(alpha=0.25)
        ax_loss.set_ylabel("cross-entropy loss")
        ax_acc.set_ylabel("accuracy")
    _phase_legend(fig, lines, bounds)
    fig.suptitle("Training curves at every step (metrics.csv; train: training pairs, test: held-out pairs)",
                 fontsize=11)
    return fig


def measures_figure(df, phases: Any = None, *, not_applicable: Mapping[str, str] | None = None) -> Figure:
    """The measures :func:`progress_figure` leaves out, over training, with phase boundaries.

    Panels: excluded loss with each key frequency removed alone (columns ``excluded_loss_k{K}``, train
    pairs) next to the whole excluded loss; the fraction of neurons clustered (``frac_neurons_clustered``,
    ``frac_neurons_key``); the share of the logits explained by the key cos(w(a+b-c)) terms
    (``cos_explained``); test loss over restricted loss (``test_over_restricted``); and, when present,
    the probability of the correct class and the Brier score on train and test pairs (``train_prob_correct``,
    ``test_prob_correct``, ``train_brier``, ``test_brier``).
    Every line's gid is its column name. not_applicable: column -> reason; a panel of such columns says so.
    """
    _check_df(df, ("step",), "measures_figure")
    na = dict(not_applicable or {})
    extra = [c for c in ("train_prob_correct", "test_prob_correct", "train_brier", "test_brier") if c in df.columns]
    rows = 3 if extra else 2
    fig = Figure(figsize=(9, 3.3 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 2, sharex=True)
    bounds = _boundaries(phases)
    x0 = float(df["step"].min()) if len(df) else 0.0
    per_k = sorted((c for c in df.columns if c.startswith("excluded_loss_k") and c[15:].isdigit()),
                   key=lambda c: int(c[15:]))
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    columns = {"excluded_loss": dict(color="black", lw=2.0, label="all key frequencies removed")}
    columns.update({c: dict(color=palette[i % len(palette)], label=f"k = {c[15:]} removed")
                    for i, c in enumerate(per_k)})
    if "excluded_loss" not in na:  # the reference line only beside an excluded loss
        columns["train_loss"] = dict(color="#1f77b4", ls=":", label="train loss (nothing removed)")
    panels = [
        ("Excluded loss, one key frequency at a time (training pairs)", "cross-entropy loss", True, columns),
        ("Neurons explained >= 0.85 by one frequency", "fraction of MLP neurons", False,
         {"frac_neurons_clustered": dict(color="#1f77b4", lw=4.5, alpha=0.45, label="any frequency"),
          "frac_neurons_key": dict(color="#d62728", lw=1.3, ls="--", label="a key frequency")}),  # both seen
                                                                                                # when equal
        ("Logits explained by the key cos(w(a+b-c)) terms", "explained fraction", False,
         {"cos_explained": dict(color="#2ca02c", label="cos(w_k(a+b-c)), k key")}),
        ("Test loss / restricted loss", "ratio", True,
         {"test_over_restricted": dict(color="#9467bd", label="test / restricted")}),
    ]
    if extra:
        panels += [("Probability of the correct class (continuous)", "mean p(correct)", False,
                    {"train_prob_correct": dict(color="#1f77b4", label="train"),
                     "test_prob_correct": dict(color="#d62728", label="test")}),
                   ("Brier score: mean sum over classes of (p - one-hot)^2", "Brier score", True,
                    {"train_brier": dict(color="#1f77b4", label="train"),
                     "test_brier": dict(color="#d62728", label="test")})]
    for i, (ax, (title, ylabel, logy, cols)) in enumerate(zip(axes.flat, panels)):
        _plot_columns(ax, df, cols, logy=logy, not_applicable=na)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        if "test_over_restricted" in cols:
            ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        if not logy:
            ax.set_ylim(-0.03, 1.03)
        lines = _draw_phases(ax, bounds, x0, label=i == 0)
        ax.grid(alpha=0.25)
    _phase_legend(fig, lines, bounds)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle("More progress measures", fontsize=11)
    return fig


def llc_figure(df, phases: Any = None) -> Figure:
    """The local learning coefficient over training (column ``llc``, band: +-``llc_std`` across chains when
    present) beside test accuracy and restricted loss, with phase boundaries. Lines' gids are their column names."""
    _check_df(df, ("step", "llc"), "llc_figure")
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, sharex=True)
    bounds = _boundaries(phases)
    x0 = float(df["step"].min()) if len(df) else 0.0
    steps, est = _np(df["step"]), _np(df["llc"])
    ax.plot(steps, est, color="#8c564b", marker=".", gid="llc", label="LLC (mean over chains)")
    if "llc_std" in df.columns:
        sd = _np(df["llc_std"])
        ax.fill_between(steps, est - sd, est + sd, color="#8c564b", alpha=0.25, lw=0, label="+- std across chains")
    if {"llc_frac_negative", "llc_chain_spread"} <= set(df.columns):
        from ..probes.learning_coefficient import MAX_CHAIN_SPREAD, MAX_FRAC_NEGATIVE

        bad = (_np(df["llc_frac_negative"]) > MAX_FRAC_NEGATIVE) | (_np(df["llc_chain_spread"]) > MAX_CHAIN_SPREAD) \
            | ~(est > 0)
        ax.plot(steps[bad], est[bad], ls="none", marker="x", color="#d62728", gid="llc_unhealthy",
                label=f"failed a health check ({int(bad.sum())} of {len(bad)})")
    ax.set_title("Local learning coefficient (SGLD, devinterp)", fontsize=9)
    ax.set_ylabel("LLC")
    ax.legend(fontsize=8, loc="best")
    _plot_columns(ax2, df, {"test_acc": dict(color="#d62728", label="test accuracy"),
                            "restricted_acc": dict(color="#2ca02c", label="restricted accuracy")}, logy=False)
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_title("Accuracy, for comparison", fontsize=9)
    for i, a in enumerate((ax, ax2)):
        lines = _draw_phases(a, bounds, x0, label=i == 0)
        a.grid(alpha=0.25)
        a.set_xlabel("step")
    _phase_legend(fig, lines, bounds)
    return fig


def _fourier_labels(p: int) -> list[str]:
    return basis_labels(p)


def fourier_norms_figure(norms: Mapping[str, Any], p: int, *, annotate: int = 10,
                         key_frequencies: Sequence[int] = ()) -> Figure:
    """Bar plots of the norms of the Fourier components of W_E and W_L (``probes.fourier_norms``).

    norms: name -> ``(n,)`` norms in the cos-first basis order (const, cos 1, sin 1, cos 2, ...; for an even
    group order n the Nyquist cos n/2 last), or ``(n//2,)`` per-frequency norms; ``p``: the group order n. Cos and sin bars have their own colours and legend
    entries; the ``annotate`` largest bars of each panel that stand out (at least a quarter of
    the tallest and twice the median) are labelled once per frequency, with their basis function (e.g. "cos 14",
    or "cos/sin 14" when both stand out), and
    with "not key" when ``key_frequencies`` is given and their frequency is not in it. Key frequencies
    are shaded (legend entry "key frequency").
    """
    if not norms:
        raise FigureError("fourier_norms_figure: norms is empty (expected e.g. {'W_E': ..., 'W_L': ...})")
    n_freq = p // 2
    labels = _fourier_labels(p)
    fig = Figure(figsize=(9, 2.8 * len(norms) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(norms), 1))
    for ax, (name, values) in zip(axes, norms.items()):
        v = _np(values)
        keys = sorted({int(k) for k in key_frequencies})
        if v.shape == (p,):
            x = np.arange(p)
            freq_of = np.asarray(row_frequencies(p))
            for j, k in enumerate(keys):
                ax.axvspan(2 * k - 1.6, 2 * k + 0.6, color="#ffd92f", alpha=0.45, lw=0, zorder=0,
                           label="key frequency" if j == 0 else None)
            ax.bar(x[:1], v[:1], color="#7f7f7f", width=0.8, label="const")
            ax.bar(x[1::2], v[1::2], color="#1f77b4", width=0.8, label="cos k (index 2k-1)")  # for even n the last (odd-indexed) row, the Nyquist cos(pi i), is a cos bar
            ax.bar(x[2::2], v[2::2], color="#ff7f0e", width=0.8, label="sin k (index 2k)")
            bar_labels = labels
            if p <= 31:
                ax.set_xticks(x, labels, rotation=90, fontsize=7)
            else:  # every label would overlap: tick the cos bar of every few frequencies
                every = max(1, math.ceil(n_freq / 14))
                ks = [k for k in range(1, (p - 1) // 2 + 1) if k % every == 0 or k == 1]
                ax.set_xticks([2 * k - 1 for k in ks], [labels[2 * k - 1] for k in ks], rotation=45, fontsize=7)
            ax.set_xlabel("Fourier component (cos-first order)")
        elif v.shape == (n_freq,):
            x = np.arange(1, n_freq + 1)
            freq_of = x
            for j, k in enumerate(keys):
                ax.axvspan(k - 0.6, k + 0.6, color="#ffd92f", alpha=0.45, lw=0, zorder=0,
                           label="key frequency" if j == 0 else None)
            ax.bar(x, v, color="#2ca02c", width=0.8, label="sqrt(cos k² + sin k²)")
            bar_labels = [f"k={k}" for k in x]
            ax.set_xlabel("frequency k")
        else:
            raise FigureError(f"fourier_norms_figure: norms[{name!r}] has shape {v.shape}; expected ({p},) "
                              f"(one norm per basis row) or ({n_freq},) (one per frequency) for p = {p}")
        # Only bars that stand out: a quarter of the tallest and twice the median (no labels on noise).
        top = [i for i in np.argsort(-v, kind="stable")[:max(0, annotate)]
               if v[i] >= 0.25 * v.max() and v[i] >= 2 * np.median(v)]
        by_freq: dict[int, list[int]] = {}
        for i in sorted(top):
            by_freq.setdefault(int(freq_of[i]), []).append(i)
        for k, idx in by_freq.items():  # one label per frequency: cos k and sin k stand side by side
            not_key = keys and k not in keys and k != 0
            text = bar_labels[idx[0]] if len(idx) == 1 else f"cos/sin {k}"
            ax.annotate(text + (" (not key)" if not_key else ""), (float(np.mean(x[idx])), float(v[idx].max())),
                        xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, rotation=90)  # upright: neighbours never overlap
        ax.set_xlim(x[0] - 1, x[-1] + 1)
        ax.margins(y=0.35)  # room above the tallest bar for its upright label
        ax.set_ylabel("norm")
        ax.set_title(f"Fourier-component norms of {name}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
        ax.grid(axis="y", alpha=0.25)
    return fig


def neuron_clusters_figure(clusters_df, threshold: float | None = None) -> Figure:
    """Neuron clusters (``probes.neuron_clusters``): cluster size per frequency, and how well one
    frequency explains each neuron.

    clusters_df: columns neuron, frequency, frac_explained, clustered. threshold: the clustering
    threshold to draw (default ``clusters_df.attrs["threshold"]``, else 0.85).
    """
    _check_df(clusters_df, ("frequency", "frac_explained", "clustered"), "neuron_clusters_figure")
    if threshold is None:
        threshold = float(clusters_df.attrs.get("threshold", 0.85))
    clustered = clusters_df[clusters_df["clustered"].astype(bool)]
    sizes = clustered.groupby("frequency").size().sort_index()
    n_unclustered = int(len(clusters_df) - len(clustered))

    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax_sizes, ax_hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    names = [str(int(k)) for k in sizes.index] + ["unclustered"]
    counts = list(sizes.values) + [n_unclustered]
    colours = ["#1f77b4"] * len(sizes) + ["#7f7f7f"]
    bars = ax_sizes.bar(range(len(names)), counts, color=colours)
    ax_sizes.bar_label(bars, fontsize=8)
    ax_sizes.set_xticks(range(len(names)), names, fontsize=8)
    ax_sizes.set_xlabel("frequency k")
    ax_sizes.set_ylabel("neurons")
    ax_sizes.margins(y=0.12)
    ax_sizes.set_title(f"Neurons per frequency cluster ({len(clustered)} of {len(clusters_df)} clustered)", fontsize=9)

    frac = _np(clusters_df["frac_explained"])
    ax_hist.hist(frac, bins=np.linspace(0, 1, 41), color="#1f77b4", alpha=0.85)
    ax_hist.axvline(threshold, color="#d62728", ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax_hist.set_xlabel("fraction of a neuron's variance explained by its best frequency")
    ax_hist.set_ylabel("neurons")
    ax_hist.set_xlim(0, 1)
    ax_hist.legend(fontsize=8, loc="upper left")
    ax_hist.set_title("How well one frequency explains each neuron", fontsize=9)
    for ax in (ax_sizes, ax_hist):
        ax.grid(axis="y", alpha=0.25)
    return fig


def save_figure(fig: Figure, path: Path | str, dpi: int = 110) -> Path:
    """Render ``fig`` as PNG (Agg) and write it atomically; returns the path."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path
