"""Pre-protocol (exploratory) analysis: not part of ``interp.emergence``'s public API (protocol v2 keeps one
generation of the analysis); kept only for the sweep report's labelled exploratory section.

Metrics against a scale axis of a sweep: how sharp the change is, and PaLM's discontinuity.

At a fixed training budget every run gives one value per metric; runs that differ only in their
seeds are averaged, and runs that differ in another varied field form separate groups (one curve
each). The scale axis is any varied field (data fraction, width, weight decay, ...) or ``"step"``
(the training budget itself: the metric at each checkpoint). Accuracy and the continuous metrics go
through the same computation, so whether a jump belongs to the metric or to the model can be read on
one table (Schaeffer et al. 2023):

- sharpness: the largest change between adjacent scale values as a share of the metric's whole range
  over the axis (1: all of the change happens in one step of the axis; 1/(n-1): evenly spread).
- discontinuity (as used for PaLM's BIG-bench tasks): the value at the largest scale minus the straight
  line through the two scale values before it, with the scale on a log axis. ``discontinuity_rel``
  divides it by the range. A metric that moves log-linearly in scale has discontinuity 0.

Values are means over seeds in each metric's analysis space (log10 for losses, so a geometric
mean), and sharpness and discontinuity are computed in that space (decades for losses).

>>> sc = scale_table(load_sweep("sweeps/data-width"), "frac_train")     # doctest: +SKIP
>>> sc.table[["group", "metric", "sharpness", "discontinuity"]]         # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..sweep.tables import as_tables, is_seed
from .metrics import metric_info
from .tables import metric_columns, run_groups

__all__ = ["Scale", "scale_table", "sharpness", "discontinuity"]

STEP_AXIS = "step"


@dataclass
class Scale:
    """axis and budget_step (None for the step axis); points: one row per group x scale value x metric
    (mean, min, max over runs in metric units, n_runs, steps used); table: one row per group x metric."""

    axis: str
    budget_step: int | None
    groups: list[str]
    points: pd.DataFrame
    table: pd.DataFrame


def sharpness(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """``(largest |adjacent change| / range, x before it, x after it)``; NaN when y has no range."""
    order = np.argsort(np.asarray(x, dtype=float))
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    if len(y) < 2:
        return math.nan, math.nan, math.nan
    rng = float(np.max(y) - np.min(y))
    jumps = np.abs(np.diff(y))
    k = int(np.argmax(jumps))
    if rng == 0:
        return math.nan, float(x[k]), float(x[k + 1])
    return float(jumps[k] / rng), float(x[k]), float(x[k + 1])


def discontinuity(x: Sequence[float], y: Sequence[float], at: float | None = None) -> float:
    """``y(at)`` minus the line through the two scale values below ``at`` (scale on log10); ``at``
    defaults to the largest x. NaN when fewer than three positive scale values are at or below ``at``.

    >>> discontinuity([1, 10, 100], [0.0, 0.1, 0.9])   # the line predicts 0.2 at 100
    0.7
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = x > 0 if at is None else (x > 0) & (x <= at)
    x, y = x[keep], y[keep]
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) < 3:
        return math.nan
    lx = np.log10(x[-3:])
    ya, yb, yc = y[-3:]
    predicted = yb + (yb - ya) * (lx[2] - lx[1]) / (lx[1] - lx[0])
    return round(float(yc - predicted), 12)


def _value_at_budget(rows: pd.DataFrame, metric: str, budget: float) -> tuple[float, float]:
    d = rows[(rows["step"] <= budget) & rows[metric].notna()]
    if not len(d):
        return math.nan, math.nan
    last = d.iloc[-1]
    return float(last[metric]), float(last["step"])


def _per_run(tables, axis: str, cols: list[str], budget: float | None) -> pd.DataFrame:
    """One row per run (or per run x checkpoint on the step axis), values in analysis space."""
    keep_axes = [a for a in tables.axes if a != axis]
    out = []
    for run, rows in run_groups(tables.results):
        base = {"run": run, **{a: rows.iloc[0][a] for a in keep_axes}}
        if axis == STEP_AXIS:
            for _, r in rows.iterrows():
                out.append({**base, STEP_AXIS: float(r["step"]),
                            **{m: r[m] for m in cols}, **{f"{m}@step": float(r["step"]) for m in cols}})
        else:
            rec = {**base, axis: rows.iloc[0][axis]}
            for m in cols:
                rec[m], rec[f"{m}@step"] = _value_at_budget(rows, m, budget)
            out.append(rec)
    return pd.DataFrame(out)


def _to_space(v: pd.Series, log: bool) -> pd.Series:
    return np.log10(v.clip(lower=1e-30)) if log else v


def scale_table(sweep, axis: str, budget_step: int | None = None, metrics: Sequence[str] | None = None,
                at: float | None = None) -> Scale:
    """Each metric at a fixed budget against ``axis``, with sharpness and discontinuity per group.

    sweep: a sweep directory, its loaded tables, or a results DataFrame. axis: a varied, non-seed
    field, or ``"step"``. budget_step: the step at which each run is read (its last checkpoint at or
    before it); default the largest step every run reached. metrics: default every known metric
    present. at: the scale value the discontinuity is measured at (default the largest).
    """
    tables = as_tables(sweep)
    results = tables.results
    cols = metric_columns(results, metrics)
    if not cols:
        raise ConfigError("scale_table: the results table holds none of the known metric columns")
    if axis != STEP_AXIS:
        if axis not in results.columns or axis not in tables.axes:
            raise ConfigError(f"scale axis {axis!r} is not a varied field of this sweep; choose one of "
                              f"{[a for a in tables.axes if not is_seed(a)] + [STEP_AXIS]}")
        if is_seed(axis):
            raise ConfigError(f"scale axis {axis!r} is a seed: seeds are repeats, not a scale")
        if not pd.api.types.is_numeric_dtype(results[axis]):
            raise ConfigError(f"scale axis {axis!r} must hold numbers (found {results[axis].dtype})")
    values = results[axis].dropna().unique()
    if len(values) < 2:
        raise ConfigError(f"scale axis {axis!r} has a single value ({values[0] if len(values) else 'none'}) in "
                          "this sweep; a scale analysis needs at least two")
    if axis == STEP_AXIS:
        budget = None
    else:
        reached = results.groupby("run")["step"].max()
        budget = int(reached.min()) if budget_step is None else int(budget_step)
        if budget < int(results["step"].min()):
            raise ConfigError(f"--budget {budget}: before every checkpoint of the sweep (first step "
                              f"{int(results['step'].min())})")
    per_run = _per_run(tables, axis, cols, budget)
    groups = [a for a in tables.axes if a != axis and not is_seed(a)]
    per_run["group"] = [", ".join(f"{g}={r[g]}" for g in groups) or "all runs"
                        for r in per_run.to_dict("records")]

    points, table = [], []
    for m in cols:
        info = metric_info(m)
        per_run[f"{m}#space"] = _to_space(per_run[m], info.log)
        for g, rows in per_run.groupby("group", sort=True):
            agg = rows.groupby(axis).agg(mean=(f"{m}#space", "mean"), min=(m, "min"), max=(m, "max"),
                                         n_runs=(m, "count"), first_step=(f"{m}@step", "min"),
                                         last_step=(f"{m}@step", "max")).reset_index()
            agg = agg[agg["n_runs"] > 0]
            for _, r in agg.iterrows():
                points.append({"group": g, axis: r[axis], "metric": m, "kind": info.kind, "space": info.space,
                               "mean": 10 ** r["mean"] if info.log else r["mean"], "min": r["min"],
                               "max": r["max"], "n_runs": int(r["n_runs"]), "steps_used": (
                                   f"{int(r['first_step'])}" if r["first_step"] == r["last_step"]
                                   else f"{int(r['first_step'])}-{int(r['last_step'])}")})
            x, y = agg[axis].to_numpy(float), agg["mean"].to_numpy(float)
            sharp, j0, j1 = sharpness(x, y)
            rng = float(np.max(y) - np.min(y)) if len(y) else math.nan
            d = discontinuity(x, y, at)
            back = (lambda v: 10 ** v) if info.log else (lambda v: v)
            table.append({"group": g, "metric": m, "label": info.label, "kind": info.kind, "space": info.space,
                          "n_scales": len(x),
                          "smallest": back(y[np.argmin(x)]) if len(x) else math.nan,
                          "largest": back(y[np.argmax(x)]) if len(x) else math.nan,
                          "range": rng, "sharpness": sharp, "jump_from": j0, "jump_to": j1,
                          "discontinuity": d, "discontinuity_rel": d / rng if rng > 0 else math.nan})
    return Scale(axis, budget, groups, pd.DataFrame(points), pd.DataFrame(table))
