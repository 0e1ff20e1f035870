"""Predictability as two claims (protocol v2 §3), every look time, every measure, from the past only.

At look time T a run is eligible when ``t_mem <= T`` and it has not reached t90 by T; leave one seed out (the
models are fitted on the other seeds' eligible runs that reach t90). Every forecaster is an ordinary least-squares
fit of ``log10(t90 - T)``; the forecast is ``T + 10^fit`` (exponent capped at 10 budgets). Feature blocks, all
read from checkpoints at or before T (:func:`interp.emergence.forecast.features_at`; causal columns for
restricted and excluded loss):

- ``config``: ``log10(baseline - T)``, the baseline being the Kaplan-Meier median t90 of the other seeds of the
  same cell still without the event (v1's baseline), **recalibrated**: its coefficient and intercept are fitted
  on the other seeds, so a forecaster must beat the best use of the config, not a raw median.
- ``clock``: ``T - t_mem``; ``test_loss``: value and slope of log10 test loss; a measure: its value and slope.

Claim (a), *predictable from the past*: per forecaster f (each measure alone, and the controls),
``MAE(config + f) / MAE(config)`` over the evaluated runs. Claim (b), *a mechanistic measure adds to test loss and
the clock*: ``MAE(config + test_loss + clock + m) / MAE(config + test_loss + clock)``. Both with a 95 %
seed-cluster bootstrap interval over the same evaluated runs (held-out runs that reach t90 with
``t90 - T >= 0.25 (t90 - t_mem)``). Verdicts with the registered equivalence margin ``EQUIV_MARGIN`` = 0.15:

- (a) **predictable from the past** (interval below 1), **no better than the config within the margin**
  (interval above 1 - margin), else **not determined**;
- (b) **adds to test loss + clock** (interval below 1), **adds nothing within the margin** (interval above
  1 - margin: it cannot cut the error by 15 % or more), else **not determined**;
- a forecaster is fitted only with at least 3 training runs per coefficient (else no forecast);
- fewer than 8 evaluated runs at a look time: **not determined**. The headline look time is the first, T = 500
  (registered: where anticipation matters most and most runs are evaluable); every other look time is in the table.

>>> p = predictability(load_sweep("sweeps/emergence-dense"))     # doctest: +SKIP
>>> p.table[["T", "claim", "forecaster", "ratio", "ratio_low", "ratio_high", "verdict"]]   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..sweep.tables import as_tables
from .bootstrap import boot_ratio_of_means, cluster_weights, interval
from .events import events
from .forecast import _cell_stats, _forecasters, features_at
from .leads import metric_space
from .protocol import BOOT_SEED, LOOK_TIMES, MIN_EVALUATED, N_BOOT, REMAINING_SHARE

__all__ = ["Predictability", "predictability", "EQUIV_MARGIN", "HEADLINE_LOOK", "PRED_VERDICTS"]

EQUIV_MARGIN = 0.15  # an MAE ratio whose interval lies above 1 - margin: "adds nothing within the margin"
HEADLINE_LOOK = 500
RUNS_PER_COEF = 3  # a forecaster is fitted only on at least this many training runs per coefficient
PRED_VERDICTS = {"a": ("predictable from the past", "no better than the config within the margin"),
                 "b": ("adds to test loss + clock", "adds nothing within the margin")}
REFERENCE = ("test_loss", "clock")  # claim (b)'s reference forecaster beside the config


def _block(name: str, rows: pd.DataFrame, feats: dict, T: float) -> np.ndarray:
    if name == "clock":
        return (T - rows["t_mem"].to_numpy(float))[:, None]
    return feats[name].reindex(rows["run"]).to_numpy(float)


def _ols_forecast(Xtr, ytr, Xte, T: float, cap: float) -> np.ndarray:
    ok = ~np.isnan(Xtr).any(1) & ~np.isnan(ytr)
    if ok.sum() < RUNS_PER_COEF * (Xtr.shape[1] + 1):  # too few training runs for this many coefficients
        return np.full(len(Xte), math.nan)
    A = np.c_[np.ones(ok.sum()), Xtr[ok]]
    coef = np.linalg.lstsq(A, ytr[ok], rcond=None)[0]
    return T + 10 ** np.minimum(np.c_[np.ones(len(Xte)), Xte] @ coef, cap)


def _verdict(claim: str, n: int, lo: float, hi: float, margin: float) -> str:
    yes, no = PRED_VERDICTS[claim]
    if n < MIN_EVALUATED or math.isnan(lo) or math.isnan(hi):
        return "not determined"
    if hi < 1:
        return yes
    if lo > 1 - margin:
        return no
    return "not determined"


@dataclass
class Predictability:
    """table: one row per look time x claim x forecaster: n_eligible, n_evaluated, mae, mae_reference, ratio with
    its interval, verdict. per_run: the forecasts (run, T, model, forecast, t90, evaluated). headline: the rows at
    the headline look time."""

    table: pd.DataFrame
    per_run: pd.DataFrame
    margin: float = EQUIV_MARGIN

    @property
    def headline(self) -> pd.DataFrame:
        return self.table[self.table["T"] == HEADLINE_LOOK].reset_index(drop=True)


def predictability(sweep, look_times: Sequence[int] = LOOK_TIMES, measures: Sequence[str] | None = None,
                   n_boot: int = N_BOOT, seed: int = BOOT_SEED, margin: float = EQUIV_MARGIN) -> Predictability:
    """Claims (a) and (b) at every look time before the sweep's budget (see the module docstring)."""
    tables = as_tables(sweep)
    ev = events(tables).reset_index(drop=True)
    cols = _forecasters(tables.results, measures)
    mech = [m for m in cols if m not in ("train_loss", "test_loss")]
    singles = [*mech, "train_loss", "test_loss", "clock"]
    ref = ("config", *REFERENCE)
    models = {"config": ("config",), **{f: ("config", f) for f in singles}, "reference": ref,
              **{f"reference + {m}": (*ref, m) for m in mech}}
    budget = float(ev["budget"].min())
    cap = math.log10(10 * float(ev["budget"].max()))
    rows, per_run = [], []
    for T in look_times:
        if T >= budget:
            continue
        past = tables.results[tables.results["step"] <= T]
        feats = {m: features_at(past, c, metric_space(m), T) for m, c in cols.items()}
        elig = ev[(ev["t_mem"] <= T) & (ev["t90"].isna() | (ev["t90"] > T))]
        base_te, _ = _cell_stats(ev, T, set())
        out = []
        for s in sorted(elig["seed"].unique()):
            test, train = elig[elig["seed"] == s], elig[elig["seed"] != s]
            base, _ = _cell_stats(ev, T, {s})
            ytr = np.log10(train["t90"].to_numpy(float) - T)  # NaN for censored runs: not fitted on
            for name, blocks in models.items():
                def design(rows_, b):
                    parts = [np.log10(np.maximum(np.array([b[r] for r in rows_["run"]]) - T, 1.0))[:, None]]
                    parts += [_block(k, rows_, feats, T) for k in blocks if k != "config"]
                    return np.concatenate(parts, axis=1)
                pred = _ols_forecast(design(train, base), ytr, design(test, base_te), T, cap)
                out.append(pd.DataFrame({"T": T, "run": test["run"].to_numpy(), "cell": test["cell"].to_numpy(),
                                         "seed": s, "model": name, "forecast": pred, "t_mem": test["t_mem"].to_numpy(float),
                                         "t90": test["t90"].to_numpy(float)}))
        if not out:
            continue
        df = pd.concat(out, ignore_index=True)
        df["evaluated"] = df["t90"].notna() & (df["t90"] - T >= REMAINING_SHARE * (df["t90"] - df["t_mem"]))
        per_run.append(df)
        ev_rows = df[df["evaluated"]]
        runs = ev_rows.loc[ev_rows["model"] == "config", ["run", "cell"]].drop_duplicates("run")
        w = cluster_weights(runs["cell"].to_numpy(), n_boot, seed) if len(runs) else np.zeros((n_boot, 0), int)
        err = {m: np.abs(g.set_index("run").reindex(runs["run"])["forecast"] - g.set_index("run").reindex(runs["run"])["t90"]
                         ).to_numpy(float) for m, g in ev_rows.groupby("model")}
        n_elig = int((df["model"] == "config").sum())
        for claim, pairs in (("a", [(models[f], f, "config") for f in singles]),
                             ("b", [(models[f"reference + {m}"], f"reference + {m}", "reference") for m in mech])):
            for _, name, against in pairs:
                e, e0 = err.get(name, np.array([])), err.get(against, np.array([]))
                ok = ~np.isnan(e) & ~np.isnan(e0) if len(e) else np.zeros(0, bool)
                n = int(ok.sum())
                if n:
                    ratio = float(e[ok].mean() / e0[ok].mean()) if e0[ok].mean() > 0 else math.nan
                    lo, hi = interval(boot_ratio_of_means(np.where(ok, e, 0), np.where(ok, e0, 0), w * ok))
                else:
                    ratio = lo = hi = math.nan
                forecaster = name.replace("reference + ", "")
                rows.append({"T": int(T), "claim": claim, "forecaster": forecaster,
                             "role": "control" if forecaster in ("train_loss", "test_loss", "clock") else "measure",
                             "against": "config (recalibrated)" if claim == "a" else "config + test_loss + clock",
                             "n_eligible": n_elig, "n_evaluated": n,
                             "mae": float(e[ok].mean()) if n else math.nan,
                             "mae_reference": float(e0[ok].mean()) if n else math.nan,
                             "ratio": ratio, "ratio_low": lo, "ratio_high": hi,
                             "verdict": _verdict(claim, n, lo, hi, margin)})
    table = pd.DataFrame(rows, columns=["T", "claim", "forecaster", "role", "against", "n_eligible", "n_evaluated",
                                        "mae", "mae_reference", "ratio", "ratio_low", "ratio_high", "verdict"])
    return Predictability(table, pd.concat(per_run, ignore_index=True) if per_run else pd.DataFrame(), margin)
