"""Figures of the emergence analysis of a sweep (``interp.emergence``). Each function only plots the
tables it is given and returns a :class:`matplotlib.figure.Figure` (no pyplot state).

>>> tr = emergence.run_transitions(sweep)                                  # doctest: +SKIP
>>> run_curves_figure(sweep.results, tr, runs=["frac0.3-seed0"])          # doctest: +SKIP
>>> survival_figure(emergence.survival_curves(emergence.events(sweep), "t90", by="frac_train"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from ._figure import Figure

from ..emergence.metrics import EMERGENCE_METRIC, metric_info
from ..errors import ConfigError

__all__ = ["run_curves_figure", "survival_figure", "metric_scale_figure", "lead_grid_figure", "forecast_figure",
           "EMERGENCE_GID"]

EMERGENCE_GID = "emergence-step"  # gid of the vertical line at each run's emergence step
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
            "#ff7f0e"]


def _need(df, cols: Sequence[str], where: str) -> None:
    missing = [c for c in cols if c not in getattr(df, "columns", ())]
    if missing:
        raise ConfigError(f"{where}: the table lacks column(s) {missing}")


def _progress(values: np.ndarray, row) -> np.ndarray:
    """Share of the metric's transition completed: 0 at its start level, 1 at its end level."""
    log = bool(row["log"])
    f = (lambda v: np.log10(np.maximum(v, 1e-30))) if log else (lambda v: v)
    start, end = f(np.asarray(row["start_value"], float)), f(np.asarray(row["end_value"], float))
    return (f(values) - start) / (end - start)


def run_label(run: str) -> str:
    """A run's name as an axis label: every field on its own line (``frac_train=0.5\\nd_mlp=128\\nseed=0``)."""
    return "\n".join(run.split(","))


def run_curves_figure(results: pd.DataFrame, transitions: pd.DataFrame, runs: Sequence[str] | None = None) -> Figure:
    """Small multiples, one row per run: test accuracy | continuous outcome metrics | progress measures.

    The middle and right panels show each metric as the share of its own transition completed (0 at its
    start level, 1 at its end level, log10 space for losses), so curves of any unit share one axis and a
    curve crossing 0.5 is at its half-way step (dot; hollow when the curve had not settled by the end of the
    run). Metrics without a transition are named in the panel. The dashed black line marks the emergence step.
    results: the sweep's results table; transitions: ``emergence.run_transitions``.
    """
    _need(results, ("run", "step", EMERGENCE_METRIC), "run_curves_figure")
    _need(transitions, ("run", "metric", "role", "found", "step", "start_value", "end_value", "log",
                        "emergence_step"), "run_curves_figure")
    runs = list(dict.fromkeys(results["run"].astype(str))) if runs is None else list(runs)
    if not runs:
        raise ConfigError("run_curves_figure: no runs to draw")
    fig = Figure(figsize=(12, 2.1 * len(runs) + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(runs), 3, sharex="row", squeeze=False))
    colours: dict[str, str] = {}
    for i, run in enumerate(runs):
        rows = results[results["run"].astype(str) == run].sort_values("step")
        tr = transitions[transitions["run"].astype(str) == run]
        if not len(rows):
            raise ConfigError(f"run_curves_figure: run {run!r} is not in the results table")
        s = rows["step"].to_numpy(float)
        ax_acc, ax_out, ax_prog = axes[i]
        d = rows[["step", EMERGENCE_METRIC]].dropna()
        ax_acc.plot(d["step"], d[EMERGENCE_METRIC], color="black", lw=1.6)
        ax_acc.set_ylim(-0.03, 1.03)
        ax_acc.set_ylabel(run_label(run), fontsize=7.5)  # the whole name, one field a line: rows stay distinct
        for ax, role in ((ax_out, "outcome"), (ax_prog, "progress")):
            missing = []
            for _, r in tr[(tr["role"] == role) & (tr["metric"] != EMERGENCE_METRIC)].iterrows():
                m = r["metric"]
                colour = colours.setdefault(m, _COLOURS[len(colours) % len(_COLOURS)])
                label = metric_info(m).label
                if not r["found"]:
                    missing.append(label)
                    continue
                v = rows[m].to_numpy(float)
                keep = ~np.isnan(v)
                ax.plot(s[keep], _progress(v[keep], r), color=colour, lw=1.2, label=label)
                # filled dot: the half-way step; hollow: provisional (the curve had not settled by the end)
                ax.plot([r["step"]], [0.5], "o", color=colour, ms=4, mfc=colour if r.get("complete", True) else "white")
            if missing:
                ax.text(0.02, 0.97, "no transition: " + ", ".join(missing), transform=ax.transAxes, fontsize=6.5,
                        va="top", color="#555", wrap=True)
            ax.set_ylim(-0.3, 1.3)
            ax.axhline(0.5, color="gray", lw=0.6, ls=":")
        e = tr["emergence_step"].iloc[0] if len(tr) else math.nan
        for ax in axes[i]:
            if not math.isnan(e):
                ax.axvline(e, color="black", ls="--", lw=1.0).set_gid(EMERGENCE_GID)
            ax.grid(alpha=0.25)
            ax.tick_params(labelsize=7)
        ax_acc.text(0.02, 0.9, "never emerged" if math.isnan(e) else f"emergence step {e:.0f}",
                    transform=ax_acc.transAxes, fontsize=7.5, va="top")
        if i == 0:
            ax_acc.set_title("test accuracy (discontinuous)", fontsize=9)
            ax_out.set_title("continuous outcome metrics: share of own change done", fontsize=9)
            ax_prog.set_title("progress measures: share of own change done", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=7.5,
                   frameon=False)
    return fig


def survival_figure(curves: pd.DataFrame, event: str = "t90", by: str = "frac_train") -> Figure:
    """Kaplan-Meier survival curves: share of runs without ``event`` against the step, one line per value of
    ``by``. curves: ``emergence.survival_curves(events, event, by)`` (group, step, survival)."""
    _need(curves, ("group", "step", "survival"), "survival_figure")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for j, (g, d) in enumerate(curves.groupby("group", sort=True)):
        line = ax.step(d["step"], d["survival"], where="post", color=_COLOURS[j % len(_COLOURS)], lw=1.4,
                       label=f"{by} = {g:g}" if isinstance(g, (int, float)) else f"{by} = {g}")[0]
        line.set_gid(f"survival-{g}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training step", fontsize=8)
    ax.set_ylabel(f"share of runs without {event}", fontsize=8)
    # beside the axes, not on them: censored runs keep their curve at the top right, where a legend inside would sit
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.25)
    ax.set_title(f"When runs reach {event} (Kaplan-Meier; a curve ending above 0: runs censored at the budget)",
                 fontsize=9)
    return fig


_SCALE_LABELS = {"test_acc": "test accuracy", "test_brier": "Brier score (test)",
                 "test_logp": "mean log-prob of the correct answer"}


def metric_scale_figure(answers: Sequence) -> Figure:
    """Per-run values of each metric against one scale axis, one row per budget: accuracy | Brier |
    log-probability, with the fitted logistic (line) and its 10-90 width in the title.
    answers: ``emergence.metric_question`` results for one axis (any budgets)."""
    if not answers:
        raise ConfigError("metric_scale_figure: nothing to draw")
    metrics = list(_SCALE_LABELS)
    fig = Figure(figsize=(12, 2.6 * len(answers) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(answers), len(metrics), squeeze=False))
    for row, a in zip(axes, answers):
        x = a.per_run["x"].to_numpy(float)
        grid = np.linspace(x.min(), x.max(), 200)
        for ax, m in zip(row, metrics):
            ax.scatter(x, a.per_run[m], s=10, color="#1f77b4", alpha=0.7)
            f = a.fits[m]
            if f.status != "no range to fit":
                s = f.width / (2 * math.log(9))
                ax.plot(grid, f.lo + (f.hi - f.lo) / (1 + np.exp(-(grid - f.x0) / s)), color="#d62728", lw=1.2)
                title = f"width {f.width:.3g} [{f.width_low:.3g}, {f.width_high:.3g}]" + \
                        (" (unresolved)" if f.status == "unresolved" else "")
            else:
                title = f"no range to fit ({f.note})"
            ax.set_title(f"{_SCALE_LABELS[m]}, step {a.budget}\n{title}", fontsize=8)
            ax.set_xlabel(a.axis if a.scale == "linear" else f"log2 {a.axis}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25)
        row[0].text(0.02, 0.95, a.verdict, transform=row[0].transAxes, fontsize=8, va="top")
    fig.suptitle(f"Per-run metrics against {answers[0].axis} (at {answers[0].at or 'every run'})", fontsize=10)
    return fig


def lead_grid_figure(grid: pd.DataFrame) -> Figure:
    """The lead grid: per event (panel) and metric (row), the median lead with its 95 % interval for each
    quantile x loss space (markers); controls in grey, the protocol's headline cell in black.
    grid: ``emergence.lead_grid(...)``."""
    _need(grid, ("event", "q", "loss_space", "metric", "role", "median_lead", "ci_low", "ci_high", "headline"),
          "lead_grid_figure")
    events_ = list(dict.fromkeys(grid["event"]))
    metrics = list(dict.fromkeys(grid["metric"]))
    cells = list(dict.fromkeys(zip(grid["q"], grid["loss_space"])))
    fig = Figure(figsize=(4.2 * len(events_), 0.42 * len(metrics) + 1.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(events_), sharey=True, squeeze=False)).ravel()
    for ax, e in zip(axes, events_):
        d = grid[grid["event"] == e]
        for k, (q, sp) in enumerate(cells):
            c = d[(d["q"] == q) & (d["loss_space"] == sp)].set_index("metric").reindex(metrics)
            y = np.arange(len(metrics)) + (k - (len(cells) - 1) / 2) * 0.12
            med = c["median_lead"].to_numpy(float)
            lo, hi = c["ci_low"].to_numpy(float), c["ci_high"].to_numpy(float)
            ok = np.isfinite(med) & np.isfinite(lo) & np.isfinite(hi)
            head = bool(c["headline"].fillna(False).any())
            colour = "black" if head else _COLOURS[k % len(_COLOURS)]
            ax.errorbar(med[ok], y[ok], xerr=np.vstack([med[ok] - lo[ok], hi[ok] - med[ok]]).clip(min=0), fmt="o",
                        ms=3 if not head else 4.5, color=colour, lw=0.9, capsize=1.5,
                        label=f"q {q:g}, losses {sp}" + (" (headline)" if head else ""))
        ax.axvline(0, color="gray", lw=0.8)
        ax.set_title(f"lead over {e} (steps)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.25)
    roles = grid.drop_duplicates("metric").set_index("metric")["role"]
    axes[0].set_yticks(range(len(metrics)), [f"{m} (control)" if roles[m] == "control" else m for m in metrics],
                       fontsize=7.5)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)), fontsize=7, frameon=False)
    return fig


def forecast_figure(scores: pd.DataFrame) -> Figure:
    """MAE ratio to the config baseline against the look time, per forecaster, with 95 % intervals;
    controls dashed; below 1: better than knowing the config. scores: ``emergence.forecasts(...).scores``."""
    _need(scores, ("T", "measure", "role", "ratio", "ratio_low", "ratio_high"), "forecast_figure")
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for j, (m, d) in enumerate(scores.groupby("measure", sort=False)):
        d = d[np.isfinite(d["ratio"].to_numpy(float))]
        if not len(d):
            continue
        off = (j - len(scores["measure"].unique()) / 2) * 12
        ctl = d["role"].iloc[0] == "control"
        r = d["ratio"].to_numpy(float)
        err = np.vstack([r - d["ratio_low"].to_numpy(float), d["ratio_high"].to_numpy(float) - r]).clip(min=0)
        ax.errorbar(d["T"] + off, r, yerr=np.nan_to_num(err), marker="o", ms=3.5, lw=1.1, capsize=2,
                    ls="--" if ctl else "-", color=_COLOURS[j % len(_COLOURS)],
                    label=f"{m} (control)" if ctl else m)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("look time T (steps)", fontsize=8)
    ax.set_ylabel("MAE / MAE of the config baseline", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.25)
    ax.set_title("Forecasting t90 from the past (leave one seed out)", fontsize=9)
    return fig
