"""Every metric's transition in every run of a sweep: what the sweep report's per-run figures draw (half-way
dots, "not applicable" for a measure with no meaning for a run). Not part of ``interp.emergence``'s public API:
the protocol's own transition steps are :func:`interp.emergence.transition_steps`.

Input is the sweep's tidy table (``results.csv``: one row per run x checkpoint, columns ``run``,
the varied config fields, ``step``, then the measures), or the object :func:`load_sweep` returns.

>>> sweep = load_sweep("sweeps/data-width")                  # doctest: +SKIP
>>> tr = run_transitions(sweep)                               # one row per run x metric  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import ConfigError
from ..sweep.tables import SweepTables, as_tables
from .metrics import EMERGENCE_METRIC, METRICS, metric_info
from .transition import Transition, emergence_step, transition

__all__ = ["run_transitions", "metric_columns", "run_groups"]


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
