"""Forecasts from the past only (protocol §5): predictable means predicted from checkpoints <= the look time.

At each look time T a run is *eligible* when ``t_mem <= T`` and it has not reached t90 by T. Features of a
measure at T come from its checkpoints at or before T only (``restricted_loss`` / ``excluded_loss`` through
their causal columns, whose key frequencies are chosen at each checkpoint alone): the value at the last
checkpoint <= T and the least-squares slope over ``[T - 500, T]``, in the measure's space. Leave one seed
out: the runs of one seed (every cell) are held out, the models are fitted on the other seeds' eligible
runs, each seed in turn.

- baseline (knows the config): the Kaplan-Meier median t90 of the other seeds of the same cell still
  without the event at T (the held-out seed never enters a training run's baseline); B when not reached.
- forecast of t90: OLS of ``log10(t90 - T)`` on ``[1, log10(baseline - T), value, slope]`` over the training
  runs that reach t90; forecast ``T + 10^fit`` (the exponent capped at 10 budgets, so one wild
  extrapolation of a short training set cannot swamp an MAE). The controls (train loss, test loss, the clock ``T - t_mem``)
  are forecasters in the same model.
- reaches t90 within the budget: logistic regression on ``[share of the other seeds of the cell that reached
  t90, value, slope]`` (maximum likelihood by Newton's method; a ridge of 1e-3 on the standardised
  coefficients keeps a separable training set finite); ROC AUC over held-out runs (Mann-Whitney U, scipy) beside the share alone.
- evaluated: held-out runs that reach t90 with ``t90 - T >= 0.25 (t90 - t_mem)``; MAE ratio to the baseline
  over the same runs with a seed-cluster bootstrap interval, and the paired differences to each control.

>>> fc = forecasts(load_sweep("sweeps/emergence-dense"))      # doctest: +SKIP
>>> fc.scores[["T", "measure", "n_evaluated", "ratio", "ratio_low", "ratio_high"]]   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from ..errors import ConfigError, RunFormatError
from ..sweep.tables import as_tables
from .bootstrap import boot_ratio_of_means, cluster_weights, interval
from .events import events, km_median
from .leads import metric_space
from .protocol import (
    BOOT_SEED,
    CANDIDATES,
    CAUSAL,
    CONTROLS,
    LOOK_TIMES,
    MIN_EVALUATED,
    N_BOOT,
    REMAINING_SHARE,
    SLOPE_WINDOW,
)

__all__ = ["Forecasts", "forecasts", "forecast_at", "features_at", "auc"]


def auc(scores, labels) -> float:
    """ROC AUC of ``scores`` for boolean ``labels`` (Mann-Whitney U / (n1 n0)); NaN without both classes."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    if y.all() or not y.any():
        return math.nan
    return float(mannwhitneyu(s[y], s[~y]).statistic / (y.sum() * (~y).sum()))


def features_at(results: pd.DataFrame, column: str, space: str, T: float) -> pd.DataFrame:
    """Per run: ``value`` (last checkpoint <= T) and ``slope`` (per 1000 steps, over [T - 500, T]) of a column,
    in ``space``, from rows with step <= T only."""
    past = results[(results["step"] <= T) & results[column].notna()]
    out = {}
    for run, g in past.groupby("run", sort=False):
        s, v = g["step"].to_numpy(float), g[column].to_numpy(float)
        v = np.log10(np.maximum(v, 1e-30)) if space == "log10" else v
        w = s >= T - SLOPE_WINDOW
        slope = np.polyfit(s[w] / 1000.0, v[w], 1)[0] if w.sum() >= 2 else 0.0
        out[str(run)] = (float(v[-1]), float(slope))
    return pd.DataFrame.from_dict(out, orient="index", columns=["value", "slope"])


def _fit_logistic(X: np.ndarray, y: np.ndarray, ridge: float = 1e-3, iters: int = 50):
    """Penalised maximum likelihood by Newton's method (IRLS) on standardised features; returns a scorer."""
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = np.c_[np.ones(len(X)), (X - mu) / sd]
    pen = np.full(Z.shape[1], 2 * ridge)
    pen[0] = 0.0
    b = np.zeros(Z.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(Z @ b, -30, 30)))
        g = Z.T @ (p - y) + pen * b
        H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(pen + 1e-9)
        step = np.linalg.solve(H, g)
        b -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return lambda Xn: 1 / (1 + np.exp(-np.clip(np.c_[np.ones(len(Xn)), (Xn - mu) / sd] @ b, -30, 30)))


def _cell_stats(ev: pd.DataFrame, T: float, exclude_seeds) -> tuple[dict, dict]:
    """Per run: the KM median t90 and the share reached among the other seeds of its cell, excluding
    ``exclude_seeds`` (the run's own seed always)."""
    base, share = {}, {}
    budget = ev["budget"].to_numpy(float)
    for cell, g in ev.groupby("cell", sort=False):
        t90, seeds, b = g["t90"].to_numpy(float), g["seed"].to_numpy(), budget[g.index.to_numpy()]
        for i, run in enumerate(g["run"]):
            other = (seeds != seeds[i]) & ~np.isin(seeds, list(exclude_seeds))
            share[run] = float(np.mean(~np.isnan(t90[other]))) if other.any() else 0.5
            late = other & (np.isnan(t90) | (t90 > T))
            med = km_median(np.where(np.isnan(t90[late]), b[late], t90[late]), ~np.isnan(t90[late])) \
                if late.any() else math.inf
            base[run] = float(b[i]) if not math.isfinite(med) else med
    return base, share


def _design(m: str, rows: pd.DataFrame, base: dict, share: dict, feats: dict, T: float):
    """The forecaster's design matrices: OLS ``[log10(baseline - T), features]`` and logistic ``[share,
    features]``; features are (value, slope), the clock's ``T - t_mem``, none for the baseline."""
    lb = np.log10(np.maximum(np.array([base[r] for r in rows["run"]]) - T, 1.0))
    if m == "clock":
        f = (T - rows["t_mem"].to_numpy(float))[:, None]
    elif m == "baseline":
        f = np.zeros((len(rows), 0))
    else:
        f = feats[m].reindex(rows["run"]).to_numpy(float)
    return np.c_[lb, f], np.c_[[share[r] for r in rows["run"]], f]


def forecast_at(sweep, T: float, measures: Sequence[str] | None = None, ev: pd.DataFrame | None = None) -> pd.DataFrame:
    """Leave-one-seed-out forecasts at look time ``T``: one row per eligible run x forecaster (the measures,
    the controls and "baseline"): run, cell, seed, measure, baseline, forecast, p_reach, p_share (the share
    alone), and the outcome columns t90 / reached / evaluated (used only to score, never to forecast).
    Only results rows with step <= T are read."""
    tables = as_tables(sweep)
    ev = (events(tables) if ev is None else ev).reset_index(drop=True)
    past = tables.results[tables.results["step"] <= T]
    cols = _forecasters(tables.results, measures)
    elig = ev[(ev["t_mem"] <= T) & (ev["t90"].isna() | (ev["t90"] > T))]
    feats = {m: features_at(past, c, metric_space(m), T) for m, c in cols.items()}
    out = []
    base_te, share_te = _cell_stats(ev, T, set())
    for s in sorted(elig["seed"].unique()):
        test, train = elig[elig["seed"] == s], elig[elig["seed"] != s]
        base, share = _cell_stats(ev, T, {s})
        base_tr = {r: base[r] for r in train["run"]}
        for m in [*cols, "clock", "baseline"]:
            Xo_tr, Xl_tr = _design(m, train, base_tr, share, feats, T)
            Xo_te, Xl_te = _design(m, test, base_te, share_te, feats, T)
            ok = ~np.isnan(Xo_tr).any(1)
            reach_tr = train["t90"].notna().to_numpy()
            fit_rows = ok & reach_tr
            pred = np.full(len(test), math.nan)
            if m == "baseline":
                pred = np.array([base_te[r] for r in test["run"]])
            elif fit_rows.sum() > Xo_tr.shape[1] + 1:
                A = np.c_[np.ones(fit_rows.sum()), Xo_tr[fit_rows]]
                y = np.log10(train["t90"].to_numpy(float)[fit_rows] - T)
                coef = np.linalg.lstsq(A, y, rcond=None)[0]
                cap = math.log10(10 * float(ev["budget"].max()))  # one wild extrapolation cannot swamp an MAE
                pred = T + 10 ** np.minimum(np.c_[np.ones(len(test)), Xo_te] @ coef, cap)
            p = np.full(len(test), math.nan)
            if ok.sum() >= 4 and 0 < reach_tr[ok].sum() < ok.sum():
                p = _fit_logistic(Xl_tr[ok], reach_tr[ok].astype(float))(np.nan_to_num(Xl_te))
            out.append(pd.DataFrame({"T": T, "run": test["run"].to_numpy(), "cell": test["cell"].to_numpy(),
                                     "seed": s, "measure": m, "baseline": [base_te[r] for r in test["run"]],
                                     "forecast": pred, "p_reach": p, "p_share": [share_te[r] for r in test["run"]],
                                     "t_mem": test["t_mem"].to_numpy(float), "t90": test["t90"].to_numpy(float)}))
    cols_out = ["T", "run", "cell", "seed", "measure", "baseline", "forecast", "p_reach", "p_share", "t_mem", "t90"]
    df = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols_out)
    df["reached"] = df["t90"].notna()
    df["evaluated"] = df["reached"] & (df["t90"] - T >= REMAINING_SHARE * (df["t90"] - df["t_mem"]))
    return df


def _forecasters(results: pd.DataFrame, measures) -> dict[str, str]:
    """measure -> the column its features come from (causal columns for restricted/excluded loss)."""
    for c in ("train_loss", "test_loss"):
        if c not in results.columns:
            raise RunFormatError(f"results table: no column {c!r}: the control {c} cannot be computed")
    if measures is None:
        measures = [m for m in CANDIDATES if (CAUSAL.get(m, m) in results.columns)]
    cols = {}
    for m in measures:
        c = CAUSAL.get(m, m)
        if c not in results.columns:
            raise RunFormatError(f"results table: no column {c!r}: {m} cannot be forecast from the past "
                                 "(its key frequencies must be chosen at each checkpoint)")
        cols[m] = c
    return {**cols, "train_loss": "train_loss", "test_loss": "test_loss"}


@dataclass
class Forecasts:
    """per_run: :func:`forecast_at` rows of every look time; scores: one row per look time x forecaster
    (n_eligible, n_evaluated, mae, mae_baseline, ratio with interval, for measures the paired interval of
    ratio - control's ratio per control, auc, auc_share); verdicts: one row per measure."""

    per_run: pd.DataFrame
    scores: pd.DataFrame
    verdicts: pd.DataFrame
    skipped: dict[int, str] = field(default_factory=dict)


def forecasts(sweep, look_times: Sequence[int] = LOOK_TIMES, measures: Sequence[str] | None = None,
              n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> Forecasts:
    """Every look time's forecasts, scores and the protocol's verdict per measure."""
    tables = as_tables(sweep)
    ev = events(tables)
    if ev["t90"].isna().all():
        raise ConfigError("every run is censored (none reaches t90 within its budget): nothing to forecast")
    budget = float(ev["budget"].min())
    per_run, scores, skipped = [], [], {}
    names = list(_forecasters(tables.results, measures))
    for T in look_times:
        if T >= budget:
            skipped[int(T)] = f"look time {T} is not before the budget {budget:g}"
            continue
        df = forecast_at(tables, T, measures, ev)
        if len(df):
            per_run.append(df)
        ev_rows = df[df["evaluated"]]
        base = ev_rows[ev_rows["measure"] == "baseline"].set_index("run")
        runs = base.index.to_numpy()
        w = cluster_weights(base["cell"].to_numpy(), n_boot, seed) if len(runs) else np.zeros((n_boot, 0), int)
        err_b = np.abs(base["baseline"] - base["t90"]).to_numpy(float)
        ratios = {}
        for m in [*names, "clock"]:
            rows = ev_rows[ev_rows["measure"] == m].set_index("run").reindex(runs)
            err = np.abs(rows["forecast"] - rows["t90"]).to_numpy(float)
            ok = ~np.isnan(err)
            rec = {"T": int(T), "measure": m, "role": "control" if m in CONTROLS else "measure",
                   "n_eligible": int((df["measure"] == m).sum()), "n_evaluated": int(ok.sum()),
                   "mae": float(err[ok].mean()) if ok.any() else math.nan,
                   "mae_baseline": float(err_b[ok].mean()) if ok.any() else math.nan}
            samples = boot_ratio_of_means(np.where(ok, err, 0), np.where(ok, err_b, 0), w * ok) if ok.any() \
                else np.full(n_boot, math.nan)
            ratios[m] = samples
            rec["ratio"] = rec["mae"] / rec["mae_baseline"] if rec["mae_baseline"] > 0 else math.nan
            rec["ratio_low"], rec["ratio_high"] = interval(samples)
            all_rows = df[df["measure"] == m]
            rec["auc"] = auc(all_rows["p_reach"], all_rows["reached"]) if all_rows["p_reach"].notna().all() \
                else math.nan
            rec["auc_share"] = auc(all_rows["p_share"], all_rows["reached"])
            scores.append(rec)
        for rec in scores[-len(ratios):]:
            if rec["role"] == "measure":
                for c in CONTROLS:
                    rec[f"d_{c}_low"], rec[f"d_{c}_high"] = interval(ratios[rec["measure"]] - ratios[c])
    sc = pd.DataFrame(scores)
    return Forecasts(pd.concat(per_run, ignore_index=True) if per_run else pd.DataFrame(), sc,
                     _verdicts(sc, [n for n in names if n not in CONTROLS]), skipped)


def _verdicts(sc: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    out = []
    for m in measures:
        rows = sc[sc["measure"] == m].sort_values("T") if len(sc) else sc
        enough = rows[rows["n_evaluated"] >= MIN_EVALUATED] if len(rows) else rows
        passed = [r for _, r in enough.iterrows() if r["ratio_high"] < 1
                  and all(r[f"d_{c}_high"] < 0 for c in CONTROLS)]
        if passed:
            r = passed[0]
            verdict = f"predictive at T = {r['T']}"
        elif not len(enough):
            r = None
            verdict = f"not determined (fewer than {MIN_EVALUATED} runs evaluable at every look time)"
        else:
            r = enough.loc[enough["ratio"].idxmin()] if enough["ratio"].notna().any() else enough.iloc[0]
            if r["ratio_high"] < 1:
                beaten = [c for c in CONTROLS if not r[f"d_{c}_high"] < 0]
                verdict = f"not better than control {', '.join(beaten)}"
            else:
                verdict = "not better than the config baseline"
        out.append({"measure": m, "verdict": verdict, "T": r["T"] if r is not None else math.nan,
                    **({k: r[k] for k in ("n_evaluated", "ratio", "ratio_low", "ratio_high", "auc", "auc_share")}
                       if r is not None else {})})
    return pd.DataFrame(out)
