"""The metric question on a scale axis (protocol §6): does accuracy jump where a continuous metric of the
same outputs does, or is the jump made by the metric?

At a budget (the checkpoint at that step) every run of the axis (the other fields at their most common
value: ``d_mlp`` 256 for the data axis, ``frac_train`` 0.40 for the width axis) gives test accuracy, the
Brier score and the mean log-probability of the correct answer (``-test_loss``). Per scale point: every
run's value and the share of runs with accuracy below 0.2 / above 0.9 (both: bimodal, so fits use per-run
values, never seed means). Each metric is fitted by ``y = lo + (hi - lo) / (1 + exp(-(x - x0) / s))``
(least squares on per-run values; the 10-90 width is ``2 ln 9 |s|`` in axis units, log2 for widths),
with intervals by the seed-cluster bootstrap (refit per resample). The fit is an exact profile search:
``lo`` and ``hi`` are solved in closed form for every ``(x0, s)`` of a grid (81 locations over the axis
+- 25 %, 120 widths geometric from 1/8 of the smallest spacing to 4x the axis range, 5 % apart), all
resamples at once. A width at the grid's top edge did not converge; a metric whose cell medians span
less than the protocol's minimum, or that did not converge, has **no range to fit**; a width below the
axis's smallest spacing is **unresolved**. ``R = width(log-prob) / width(accuracy)`` gives the verdict.
A run that the stop rule ended before the budget (after reaching t99) stands there at its last checkpoint
(:func:`data_ends`; protocol v2 §4, amended).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, RunFormatError
from ..sweep.tables import as_tables, is_seed
from .bootstrap import cluster_weights, interval
from .events import cell_columns, seed_column, stop_rule_budget
from .protocol import AXIS_SCALE, BOOT_SEED, MIN_RANGE, N_BOOT, WIDTH_RATIO_LIMIT

__all__ = ["LogisticFit", "AxisAnswer", "metric_question", "fit_logistic", "SCALE_METRICS", "axis_groups",
           "companions"]

SCALE_METRICS = ("test_acc", "test_brier", "test_logp")
LN81 = 2 * math.log(9)
_N_X0, _N_W, _CHUNK = 41, 40, 250


@dataclass
class LogisticFit:
    """A metric's fit on one axis: status "fit" / "no range to fit" / "unresolved"; location x0 and 10-90
    width in axis units with bootstrap intervals; ``range`` of the cell medians; ``samples`` the widths of
    the bootstrap resamples (NaN where that resample did not converge)."""

    metric: str
    status: str
    range: float
    x0: float = math.nan
    x0_low: float = math.nan
    x0_high: float = math.nan
    width: float = math.nan
    width_low: float = math.nan
    width_high: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    samples: np.ndarray | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


def _grid(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    u = np.unique(x)
    rng, spacing = float(u[-1] - u[0]), float(np.min(np.diff(u)))
    x0 = np.linspace(u[0] - 0.25 * rng, u[-1] + 0.25 * rng, _N_X0)
    widths = np.geomspace(spacing / 8, 4 * rng, _N_W)
    return x0, widths, spacing


def _solve(s0, s1, s2, sy, sxy, syy):
    """Weighted least squares of y on [1, sigmoid] from the sums: (sse, lo, hi)."""
    det = s0 * s2 - s1 ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(det > 1e-12 * s0 ** 2, (s0 * sxy - s1 * sy) / det, 0.0)
    c = (sy - b * s1) / s0
    return syy - c * sy - b * sxy, c, c + b


def _sigmoid(x, x0, width):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(x - x0) * LN81 / width))


def _profile(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares over the (x0, width) grid for every weight row: ``(x0, width, lo, hi)`` each ``(b,)``.

    Coarse grid first (every resample at once by matrix products), then a 7 x 7 grid around each
    resample's best point (one coarse step either way), so widths are resolved to about 5 %."""
    x0g, wg, _ = _grid(x)
    X0, W = (g.ravel() for g in np.meshgrid(x0g, wg, indexing="ij"))
    sig = _sigmoid(x[None, :], X0[:, None], W[:, None])  # (G, n)
    dx, dlw = x0g[1] - x0g[0], math.log(wg[1] / wg[0])
    out = [np.empty(len(w)) for _ in range(4)]
    off = np.linspace(-1, 1, 7)
    for a in range(0, len(w), _CHUNK):
        wb = w[a:a + _CHUNK].astype(float)
        s0, sy, syy = wb.sum(1)[:, None], (wb @ y)[:, None], (wb @ y ** 2)[:, None]
        sse, _, _ = _solve(s0, wb @ sig.T, wb @ (sig ** 2).T, sy, wb @ (sig * y).T, syy)
        k = np.argmin(sse, axis=1)
        # refine: (b, 81) candidates around each best coarse point, widths kept inside the grid
        cx = X0[k][:, None, None] + dx * off[None, :, None]
        cw = np.exp(np.clip(np.log(W[k])[:, None, None] + dlw * off[None, None, :], math.log(wg[0]), math.log(wg[-1])))
        cx, cw = np.broadcast_arrays(cx, cw)
        cx, cw = cx.reshape(len(wb), -1), cw.reshape(len(wb), -1)
        sg = _sigmoid(x[None, None, :], cx[:, :, None], cw[:, :, None])  # (b, 49, n)
        wsg = sg * wb[:, None, :]
        sse, lo, hi = _solve(s0, wsg.sum(2), np.einsum("bgn,bgn->bg", wsg, sg), sy, wsg @ y, syy)
        j = np.argmin(sse, axis=1)
        rows = np.arange(len(wb))
        out[0][a:a + _CHUNK], out[1][a:a + _CHUNK] = cx[rows, j], cw[rows, j]
        out[2][a:a + _CHUNK], out[3][a:a + _CHUNK] = lo[rows, j], hi[rows, j]
    return tuple(out)


def fit_logistic(x, y, cells, metric: str, min_range: float, n_boot: int = N_BOOT,
                 seed: int = BOOT_SEED) -> LogisticFit:
    """The protocol's logistic fit of per-run values ``y`` against the (transformed) axis ``x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~np.isnan(y)
    x, y, cells = x[keep], y[keep], np.asarray(cells)[keep]
    med = pd.Series(y).groupby(x).median()
    rng = float(med.max() - med.min()) if len(med) else 0.0
    if len(med) < 2 or not rng >= min_range:
        return LogisticFit(metric, "no range to fit", rng, note=f"cell medians span {rng:.3g} < {min_range:g}")
    _, widths, spacing = _grid(x)
    top = widths[-1]
    px0, pw, plo, phi = (v[0] for v in _profile(x, y, np.ones((1, len(x)), int)))
    if pw >= top * (1 - 1e-9):
        return LogisticFit(metric, "no range to fit", rng, note="the fit does not converge (no finite width)")
    bx0, bw, _, _ = _profile(x, y, cluster_weights(cells, n_boot, seed))
    bw = np.where(bw >= top * (1 - 1e-9), np.nan, bw)
    status = "unresolved" if pw < spacing else "fit"
    note = f"width below the axis spacing {spacing:.3g}" if status == "unresolved" else ""
    return LogisticFit(metric, status, rng, px0, *interval(bx0), pw, *interval(bw), plo, phi, bw, note)


@dataclass
class AxisAnswer:
    """The metric question on one axis at one budget: per-run values, per-point summary, the fits, the width
    ratio R with its interval, and the protocol's verdict with the reason."""

    axis: str
    scale: str  # "linear" or "log2"
    budget: int
    at: dict
    per_run: pd.DataFrame
    points: pd.DataFrame
    fits: dict[str, LogisticFit]
    ratio: float
    ratio_low: float
    ratio_high: float
    verdict: str
    reason: str
    axis_range: float
    spacing: float

    def fit_table(self) -> pd.DataFrame:
        return pd.DataFrame([f.to_dict() for f in self.fits.values()]).assign(axis=self.axis, budget=self.budget)


def companions(tables, axis: str) -> list[str]:
    """The other cell fields that vary together with ``axis`` (a ``[[zip]]`` group): one value of each for every
    value of the axis and back, over the runs."""
    first = tables.results.drop_duplicates("run")
    out = []
    for other in cell_columns(tables):
        if other == axis or first[other].nunique() < 2:
            continue
        pairs = first[[axis, other]].drop_duplicates()
        if len(pairs) == first[axis].nunique() == first[other].nunique():
            out.append(other)
    return out


def axis_groups(tables) -> list[tuple[str, list[str]]]:
    """The scale axes of a sweep: ``(axis, companions)``, zipped fields grouped into one axis (named by its first
    field in the sweep's order); a field already in a group is not an axis of its own."""
    seen, out = set(), []
    for a in cell_columns(tables):
        if a in seen:
            continue
        comp = companions(tables, a)
        seen |= {a, *comp}
        out.append((a, comp))
    return out


def data_ends(tables) -> pd.Series:
    """Per run, the last step its data stand for: its last checkpoint, or its step budget (``n_steps``) when the
    stop rule ended it (protocol v2 §4, amended: a run that first reached 0.99 test accuracy at t99 and stopped
    ``stop_after_steps`` later enters every later budget at its last checkpoint, carried forward; see
    :func:`~interp.emergence.events.stop_rule_budget`)."""
    last = tables.results.groupby("run")["step"].max().astype(float)
    last.index = last.index.astype(str)
    s = tables.summary
    if s is None or not {"run", "t99"} <= set(s.columns):
        return last
    s = s.assign(run=s["run"].astype(str)).set_index("run")
    status = s["status"].astype(str).reindex(last.index) if "status" in s else None
    return stop_rule_budget(tables, last, pd.to_numeric(s["t99"], errors="coerce").reindex(last.index), status)


def _subset(tables, axis: str, at: dict | None) -> tuple[pd.DataFrame, dict]:
    r = tables.results
    others = [a for a in cell_columns(tables) if a != axis and a not in companions(tables, axis)]
    first = r.drop_duplicates("run")
    if at is None:  # the other fields at their most common value (the axis's reference line)
        at = {a: first[a].mode().iloc[0] for a in others}
    mask = np.ones(len(r), bool)
    for a, v in at.items():
        mask &= (r[a] == v).to_numpy()
    return r[mask], {a: (v.item() if hasattr(v, "item") else v) for a, v in at.items()}


def metric_question(sweep, axis: str, budget: int, at: dict | None = None, n_boot: int = N_BOOT,
                    seed: int = BOOT_SEED) -> AxisAnswer:
    """The metric question of the protocol on ``axis`` at step ``budget`` (see the module docstring)."""
    tables = as_tables(sweep)
    r = tables.results
    if axis not in tables.axes or is_seed(axis):
        raise ConfigError(f"scale axis {axis!r} is not a varied non-seed field of this sweep; choose one of "
                          f"{cell_columns(tables)}")
    for c in ("test_acc", "test_loss"):
        if c not in r.columns:
            raise RunFormatError(f"results table: no column {c!r}: the metric question needs it")
    sub, at = _subset(tables, axis, at)
    sc = AXIS_SCALE.get(axis, "linear")
    values = np.sort(sub[axis].unique())
    if len(values) < 2:
        raise ConfigError(f"scale axis {axis!r} has a single value ({values[0] if len(values) else 'none'}) "
                          f"where {at}; a fit needs at least two")
    last = data_ends(tables).reindex(sub["run"].unique())
    if budget > last.min():
        raise ConfigError(f"budget {budget}: beyond the data (the runs of {axis} end at step {int(last.min())})")
    sd = seed_column(tables)
    rows = []
    for run, g in sub.groupby("run", sort=False):
        g = g[g["step"] <= budget].sort_values("step")
        if not len(g):
            raise ConfigError(f"budget {budget}: before the first checkpoint of run {run!r}")
        x = float(g[axis].iloc[0])
        last_row = g.iloc[-1]
        rows.append({"run": str(run), axis: x, "x": math.log2(x) if sc == "log2" else x, "seed": last_row[sd] if sd else 0,
                     "step": int(last_row["step"]), "test_acc": float(last_row["test_acc"]),
                     "test_brier": float(last_row["test_brier"]) if "test_brier" in g else math.nan,
                     "test_logp": -float(last_row["test_loss"])})
    per_run = pd.DataFrame(rows)
    pts = per_run.groupby(axis).agg(n_runs=("run", "size"), acc_median=("test_acc", "median"),
                                    brier_median=("test_brier", "median"), logp_median=("test_logp", "median"),
                                    share_below_0_2=("test_acc", lambda a: float(np.mean(a < 0.2))),
                                    share_above_0_9=("test_acc", lambda a: float(np.mean(a > 0.9)))).reset_index()
    pts["bimodal"] = (pts["share_below_0_2"] > 0) & (pts["share_above_0_9"] > 0)
    x = per_run["x"].to_numpy(float)
    ux = np.unique(x)
    axis_range, spacing = float(ux[-1] - ux[0]), float(np.min(np.diff(ux)))
    cells = per_run[axis].to_numpy()
    fits = {m: fit_logistic(x, per_run[m], cells, m, MIN_RANGE[m], n_boot, seed) for m in SCALE_METRICS}
    acc, logp = fits["test_acc"], fits["test_logp"]
    ratio = lo = hi = math.nan
    if acc.status != "no range to fit" and logp.status != "no range to fit":
        ratio = logp.width / acc.width
        lo, hi = interval(logp.samples / acc.samples)
    if acc.status == "no range to fit":
        verdict, reason = "no jump", f"accuracy has no range to fit ({acc.note})"
    elif acc.width > axis_range / 2:
        verdict, reason = "no jump", (f"accuracy's width {acc.width:.3g} is more than half the axis range "
                                      f"{axis_range:.3g}")
    elif logp.status == "no range to fit":
        verdict, reason = "artefact of the metric", "accuracy jumps; the log-probability has no range to fit"
    elif acc.status == "unresolved" or logp.status == "unresolved":
        verdict, reason = "not determined", f"a width below the axis spacing {spacing:.3g} (unresolved)"
    elif hi < WIDTH_RATIO_LIMIT:
        verdict, reason = "real", f"R interval [{lo:.2f}, {hi:.2f}] below {WIDTH_RATIO_LIMIT:g}"
    elif lo > WIDTH_RATIO_LIMIT:
        verdict, reason = "artefact of the metric", f"R interval [{lo:.2f}, {hi:.2f}] above {WIDTH_RATIO_LIMIT:g}"
    else:
        verdict, reason = "not determined", f"R interval [{lo:.2f}, {hi:.2f}] straddles {WIDTH_RATIO_LIMIT:g}"
    return AxisAnswer(axis, sc, int(budget), at, per_run, pts, fits, ratio, lo, hi, verdict, reason, axis_range,
                      spacing)
