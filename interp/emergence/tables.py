"""Pre-protocol (exploratory) analysis: not part of ``interp.emergence``'s public API (protocol v2 keeps one
generation of the analysis); kept only for the sweep report's labelled exploratory section.

Per-run tables of a sweep: emergence of each run, every metric's transition, and the leads.

Input is the sweep's tidy table (``results.csv``: one row per run x checkpoint, columns ``run``,
the varied config fields, ``step``, then the measures), or the object :func:`load_sweep` returns.

>>> sweep = load_sweep("sweeps/data-width")                  # doctest: +SKIP
>>> tr = run_transitions(sweep)                               # one row per run x metric
>>> lead_summary(leads(tr))                                   # one row per metric  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..sweep.tables import SweepTables, as_tables
from .metrics import EMERGENCE_METRIC, METRICS, metric_info
from .transition import Transition, emergence_step, rise_steps, transition

__all__ = ["emergence_table", "run_transitions", "leads", "lead_summary", "metric_columns", "run_groups"]


# ---- not applicable: a measure with no meaning for a run's task or model (kept apart from "no transition")
NOT_APPLICABLE = "not applicable"


def not_applicable_metrics(tables: SweepTables) -> dict[str, set[str]]:
    """Run -> the metrics that have no meaning for it (summary.csv ``not_applicable``, space-separated)."""
    s = tables.summary
    if s is None or "not_applicable" not in s or "run" not in s:
        return {}
    return {str(r): set(str(v).split()) for r, v in zip(s["run"], s["not_applicable"]) if isinstance(v, str) and v}


def metric_columns(results: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """The metrics to analyse: those asked for (each must be a column), else every registered metric present."""
    if metrics is None:
        return [m for m in METRICS if m in results.columns]
    missing = [m for m in metrics if m not in results.columns]
    if missing:
        raise ConfigError(f"results table: no column(s) {missing} (columns: {list(results.columns)})")
    return list(metrics)


def run_groups(results: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    """``(run name, its rows sorted by step)``; a step that appears twice in one run is an error."""
    for run, rows in results.groupby("run", sort=False):
        rows = rows.sort_values("step", kind="stable")
        dup = rows["step"][rows["step"].duplicated()]
        if len(dup):
            raise ConfigError(f"results table: run {run!r} has step {int(dup.iloc[0])} more than once")
        yield str(run), rows


def _axis_values(tables: SweepTables, rows: pd.DataFrame) -> dict[str, Any]:
    first = rows.iloc[0]
    return {a: first[a] for a in tables.axes}


def emergence_table(sweep, level: float = 0.5) -> pd.DataFrame:
    """One row per run: when test accuracy emerged, and how fast it rose.

    Columns: run, the varied fields, status (from summary.csv when present), n_checkpoints,
    final_step, final_test_acc, max_test_acc, emergence_step (first step with accuracy >= level,
    NaN when never), emerged, rise_start / rise_end (last step below 10 % before the first step at
    or above 90 %), rise_steps, rise_frac (rise_steps over the run's span), emergence_frac
    (emergence step over the final step).
    """
    tables = as_tables(sweep, needed=(EMERGENCE_METRIC,))
    status = tables.status()
    out = []
    for run, rows in run_groups(tables.results):
        s, acc = rows["step"].to_numpy(float), rows[EMERGENCE_METRIC].to_numpy(float)
        valid = ~np.isnan(acc)
        span = float(s[-1] - s[0])
        e = emergence_step(s, acc, level)
        rise = rise_steps(s, acc)
        out.append({
            "run": run, **_axis_values(tables, rows), "status": status.get(run, ""),
            "n_checkpoints": len(rows), "final_step": int(s[-1]),
            "final_test_acc": float(acc[valid][-1]) if valid.any() else math.nan,
            "max_test_acc": float(np.nanmax(acc)) if valid.any() else math.nan,
            "emergence_step": math.nan if e is None else e, "emerged": e is not None,
            "rise_start": rise[0] if rise else math.nan, "rise_end": rise[1] if rise else math.nan,
            "rise_steps": rise[1] - rise[0] if rise else math.nan,
            "rise_frac": (rise[1] - rise[0]) / span if rise and span > 0 else math.nan,
            "emergence_frac": e / s[-1] if e is not None and s[-1] > 0 else math.nan,
        })
    return pd.DataFrame(out)


LOSS_SPACES = ("log10", "linear")


def run_transitions(sweep, metrics: Sequence[str] | None = None, *, level: float = 0.5,
                    window: int = 5, loss_space: str = "log10") -> pd.DataFrame:
    """One row per run x metric: the metric's transition over training (:func:`transition`).

    ``loss_space``: losses are analysed as log10 (the default: the space in which they change steadily) or,
    with ``"linear"``, as values (their half-way point is then where half of the absolute fall is done, which
    for a loss falling over decades comes much earlier). Every other metric is linear either way.

    Columns: run, the varied fields, metric, label, kind (discontinuous/continuous), role
    (outcome/progress), space (log10/linear), every :class:`Transition` field (found, reason, step,
    step_10, step_90, width_steps, width_frac, direction, start_value, end_value, change, start_step,
    complete, n_points), and the run's emergence_step, emerged and final_step.
    """
    if loss_space not in LOSS_SPACES:
        raise ConfigError(f"run_transitions: loss_space must be one of {list(LOSS_SPACES)}, got {loss_space!r}")
    tables = as_tables(sweep, needed=(EMERGENCE_METRIC,))
    cols = metric_columns(tables.results, metrics)
    na = not_applicable_metrics(tables)
    out = []
    for run, rows in run_groups(tables.results):
        s = rows["step"].to_numpy(float)
        span = float(s[-1] - s[0])
        e = emergence_step(s, rows[EMERGENCE_METRIC].to_numpy(float), level)
        common = {"run": run, **_axis_values(tables, rows)}
        for m in cols:
            info = metric_info(m)
            log = info.log and loss_space == "log10"
            if m in na.get(run, ()):
                t = Transition(False, f"{NOT_APPLICABLE}: the measure has no meaning for this run's task or model",
                               log=log)
            else:
                t = transition(s, rows[m].to_numpy(float), log=log, min_change=info.min_change if log == info.log
                               else None, window=window, span=span, where=f"run {run!r}, metric {m!r}")
            out.append({**common, "metric": m, "label": info.label, "kind": info.kind, "role": info.role,
                        "space": "log10" if log else "linear", **t.to_dict(), "emergence_step": math.nan if e is None else e,
                        "emerged": e is not None, "final_step": int(s[-1])})
    return pd.DataFrame(out)


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ConfigError(f"{what}: the table lacks column(s) {missing}")


def leads(transitions: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """How many steps each metric's half-way point precedes the run's emergence step.

    transitions: :func:`run_transitions`. One row per run x metric (test accuracy itself excluded):
    lead = emergence_step - step (positive: the metric made half its change before accuracy reached
    the emergence level), lead_frac = lead / emergence_step (the share of the time to emergence by
    which it is ahead), and status: "leads", "lags", "same step", "never emerged" (the run's accuracy
    never reached the level), "no transition" (the metric had none; ``reason`` says why) or "not applicable"
    (the measure has no meaning for the run's task or model, e.g. a circuit measure of a task without a group).
    """
    _need(transitions, ("run", "metric", "step", "found", "emergence_step", "reason"), "leads")
    df = transitions[transitions["metric"] != EMERGENCE_METRIC]
    if metrics is not None:
        unknown = sorted(set(metrics) - set(df["metric"]))
        if unknown:
            raise ConfigError(f"leads: no transitions for metric(s) {unknown}")
        df = df[df["metric"].isin(metrics)]
    df = df.copy()
    df["lead"] = df["emergence_step"] - df["step"]
    df["lead_frac"] = df["lead"] / df["emergence_step"].where(df["emergence_step"] > 0)

    def status(r) -> str:
        if not r["found"]:
            return NOT_APPLICABLE if str(r["reason"]).startswith(NOT_APPLICABLE) else "no transition"
        if math.isnan(r["emergence_step"]):
            return "never emerged"
        return "leads" if r["lead"] > 0 else "lags" if r["lead"] < 0 else "same step"

    df["status"] = df.apply(status, axis=1) if len(df) else pd.Series(dtype=str)
    keep = [c for c in ("run", "metric", "label", "role", "kind", "step", "emergence_step", "lead", "lead_frac",
                        "status", "reason") if c in df.columns]
    axes = [c for c in transitions.columns if c not in _TRANSITION_COLUMNS]
    return df[["run", *axes, *keep[1:]]].reset_index(drop=True)


_TRANSITION_COLUMNS = {"run", "metric", "label", "kind", "role", "space", "found", "reason", "step", "step_10",
                       "step_90", "width_steps", "width_frac", "direction", "start_value", "end_value", "change",
                       "start_step", "complete", "log", "n_points", "emergence_step", "emerged", "final_step"}


def lead_summary(lead_table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric over runs: n_runs, n_measured (runs with both an emergence step and a
    transition), n_leading (lead > 0), median_lead with q25/q75 (the interquartile range), min/max
    lead, median_lead_frac, n_never_emerged, n_no_transition, n_not_applicable. Leads in steps; NaN when no run measured."""
    _need(lead_table, ("metric", "lead", "status"), "lead_summary")
    out = []
    for metric, g in lead_table.groupby("metric", sort=False):
        measured = g[g["status"].isin(["leads", "lags", "same step"])]
        lead = measured["lead"].to_numpy(float)
        q = np.percentile(lead, [25, 50, 75]) if len(lead) else [math.nan] * 3
        out.append({
            "metric": metric, "label": g["label"].iloc[0] if "label" in g else metric,
            "role": g["role"].iloc[0] if "role" in g else "",
            "n_runs": len(g), "n_measured": len(measured), "n_leading": int((lead > 0).sum()),
            "median_lead": q[1], "q25_lead": q[0], "q75_lead": q[2],
            "min_lead": float(lead.min()) if len(lead) else math.nan,
            "max_lead": float(lead.max()) if len(lead) else math.nan,
            "median_lead_frac": float(np.median(measured["lead_frac"])) if len(lead) else math.nan,
            "n_never_emerged": int((g["status"] == "never emerged").sum()),
            "n_no_transition": int((g["status"] == "no transition").sum()),
            "n_not_applicable": int((g["status"] == NOT_APPLICABLE).sum()),
        })
    return pd.DataFrame(out)
