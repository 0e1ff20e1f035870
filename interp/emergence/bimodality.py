"""Protocol v2 §4: does each run jump, or do the runs of a cell shift together? The per-run gap test.

At a fixed budget, the per-run mean log-probability of the correct answer (``-test_loss``) of the runs of one cell
is sorted; for every split that leaves at least two runs on each side, the gap between the two runs it separates is
divided by the pooled standard deviation of the two sides; the **gap statistic** is the largest such ratio. Its
p-value is the share of samples of the same size from one normal (the cell's mean and standard deviation, 5,000
samples, seed 0) whose statistic is at least as large. A small p means two groups of runs far apart relative to
their spread: each run jumps, and the cell's mean is a mixture.

Verdicts: **each run jumps** (p < 0.05), **no second mode** (p >= 0.05 with at least 24 runs), else **not
determined** (fewer than 4 runs, or p >= 0.05 with fewer than 24).

>>> rng = np.random.default_rng(0)
>>> gap_test(np.r_[rng.normal(-30, 1, 8), rng.normal(0, 1, 8)])[2]
'each run jumps'
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["gap_statistic", "gap_test", "cell_bimodality", "GAP_ALPHA", "MIN_RUNS_UNIMODAL", "N_SIM"]

GAP_ALPHA = 0.05
MIN_RUNS_UNIMODAL = 24
N_SIM = 5000


def gap_statistic(values) -> np.ndarray:
    """The largest gap / pooled within-side standard deviation over splits with >= 2 values on each side, for
    each row of ``values`` ``(n,)`` or ``(b, n)``; inf when both sides are constant and the gap is not 0."""
    v = np.sort(np.atleast_2d(np.asarray(values, float)), axis=1)
    b, n = v.shape
    best = np.full(b, -np.inf)
    for k in range(2, n - 1):
        lo, hi = v[:, :k], v[:, k:]
        ss = lo.var(axis=1, ddof=1) * (k - 1) + hi.var(axis=1, ddof=1) * (n - k - 1)
        pooled = np.sqrt(ss / (n - 2))
        gap = v[:, k] - v[:, k - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(pooled > 0, gap / pooled, np.where(gap > 0, np.inf, 0.0))
        best = np.maximum(best, ratio)
    return best


def gap_test(values, n_sim: int = N_SIM, seed: int = 0) -> tuple[float, float, str]:
    """``(statistic, p, verdict)`` of the gap test for one cell's per-run values (NaN dropped)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n < 4:
        return math.nan, math.nan, "not determined"
    stat = float(gap_statistic(v)[0])
    sd = float(v.std(ddof=1))
    if sd == 0:
        return stat, math.nan, "not determined"
    sims = np.random.default_rng(seed).normal(float(v.mean()), sd, size=(n_sim, n))
    p = float((1 + np.sum(gap_statistic(sims) >= stat - 1e-12)) / (1 + n_sim))
    if p < GAP_ALPHA:
        return stat, p, "each run jumps"
    return stat, p, "no second mode" if n >= MIN_RUNS_UNIMODAL else "not determined"


def cell_bimodality(axis_answer, n_sim: int = N_SIM, seed: int = 0) -> pd.DataFrame:
    """The gap test in every cell of a :class:`~interp.emergence.metric_question.AxisAnswer` (one axis, one
    budget): one row per cell with n_runs, the accuracy shares below 0.2 / above 0.9, ``near_critical`` (the
    cell holds runs below 0.2 and above 0.9, or is nearest the accuracy fit's location: the cells the verdict is
    read in), the statistic, p and the verdict."""
    a = axis_answer
    x0 = a.fits["test_acc"].x0
    pts = a.points.set_index(a.axis)
    xs = np.array(sorted(pts.index), float)
    to_x = (lambda v: math.log2(v)) if a.scale == "log2" else (lambda v: v)
    nearest = xs[np.argmin([abs(to_x(x) - x0) for x in xs])] if not math.isnan(x0) else math.nan
    rows = []
    for x, g in a.per_run.groupby(a.axis, sort=True):
        stat, p, verdict = gap_test(g["test_logp"], n_sim, seed)
        rows.append({"axis": a.axis, "budget": a.budget, "value": x, "n_runs": len(g),
                     "share_below_0_2": float(pts.loc[x, "share_below_0_2"]),
                     "share_above_0_9": float(pts.loc[x, "share_above_0_9"]),
                     "near_critical": bool(pts.loc[x, "bimodal"]) or x == nearest,
                     "gap_statistic": stat, "p": p, "verdict": verdict})
    return pd.DataFrame(rows)
