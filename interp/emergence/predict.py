"""Pre-protocol (exploratory) analysis: not part of ``interp.emergence``'s public API (protocol v2 keeps one
generation of the analysis); kept only for the sweep report's labelled exploratory section.

Can a progress measure tell, from its own transition, when test accuracy will emerge?

Leave one run out: fit ``emergence_step = a + b * measure_step`` (least squares) on the other runs
that emerged and whose measure had a transition, and predict the held-out run. The naive baseline
predicts the mean emergence step of the same other runs. Mean absolute errors are reported side by
side over the runs where both exist.

Runs whose accuracy never emerged are reported, not dropped: their prediction (from a fit on all runs
that emerged) is compared with their last step; a prediction beyond the end of the run agrees with
what happened ("beyond_end"). Runs whose measure had no transition get no prediction.

>>> tr = run_transitions(sweep)                               # doctest: +SKIP
>>> prediction_table(tr)                                      # one row per progress measure  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .metrics import EMERGENCE_METRIC, PROGRESS

__all__ = ["Prediction", "predict_emergence", "prediction_table"]

_NEEDED = ("run", "metric", "found", "step", "emergence_step", "final_step")


@dataclass
class Prediction:
    """measure; table: one row per run (measure_step, emergence_step, predicted, baseline, errors,
    status); mae and mae_baseline over the n_scored runs that have both; the never-emerged runs counted."""

    measure: str
    table: pd.DataFrame
    mae: float
    mae_baseline: float
    n_scored: int
    n_never_emerged: int
    n_beyond_end: int  # never-emerged runs predicted to emerge after their last step
    n_no_transition: int

    def summary(self) -> dict:
        return {"measure": self.measure, "n_runs": len(self.table), "n_scored": self.n_scored,
                "mae": self.mae, "mae_baseline": self.mae_baseline,
                "mae_ratio": self.mae / self.mae_baseline if self.mae_baseline > 0 else math.nan,
                "n_never_emerged": self.n_never_emerged, "n_beyond_end": self.n_beyond_end,
                "n_no_transition": self.n_no_transition}


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(intercept, slope) of the least-squares line, None with < 2 distinct x."""
    if len(np.unique(x)) < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def predict_emergence(transitions: pd.DataFrame, measure: str) -> Prediction:
    """Leave-one-run-out prediction of the emergence step from ``measure``'s half-way step.

    transitions: :func:`run_transitions` (one row per run x metric).
    """
    if not isinstance(transitions, pd.DataFrame):
        raise ConfigError("predict_emergence: expected the run_transitions DataFrame, got "
                          f"{type(transitions).__name__}")
    missing = [c for c in _NEEDED if c not in transitions.columns]
    if missing:
        raise ConfigError(f"predict_emergence: the transitions table lacks column(s) {missing}")
    if measure == EMERGENCE_METRIC:
        raise ConfigError(f"predict_emergence: {measure!r} defines the emergence step; choose another measure")
    rows = transitions[transitions["metric"] == measure]
    if not len(rows):
        raise ConfigError(f"predict_emergence: no transitions of {measure!r}; measured metrics: "
                          f"{sorted(set(transitions['metric']))}")
    runs = rows["run"].astype(str).to_numpy()
    x = np.where(rows["found"].astype(bool), rows["step"].astype(float), np.nan)
    y = rows["emergence_step"].astype(float).to_numpy()
    final = rows["final_step"].astype(float).to_numpy()
    usable = ~np.isnan(x) & ~np.isnan(y)
    out = []
    for i, run in enumerate(runs):
        others = usable.copy()
        others[i] = False
        emerged_others = ~np.isnan(y) & (np.arange(len(y)) != i)
        baseline = float(np.mean(y[emerged_others])) if emerged_others.any() else math.nan
        fit = _fit(x[others], y[others])
        predicted = fit[0] + fit[1] * x[i] if fit is not None and not np.isnan(x[i]) else math.nan
        if np.isnan(x[i]):
            status = "no transition"
        elif np.isnan(y[i]):
            status = "never emerged"
        elif fit is None:
            status = "too few other runs"
        else:
            status = "predicted"
        out.append({"run": run, "measure_step": x[i], "emergence_step": y[i], "final_step": final[i],
                    "predicted": predicted, "baseline": baseline,
                    "abs_error": abs(predicted - y[i]), "abs_error_baseline": abs(baseline - y[i]),
                    "beyond_end": bool(np.isnan(y[i]) and predicted > final[i]), "status": status})
    table = pd.DataFrame(out)
    scored = table[(table["status"] == "predicted") & table["abs_error_baseline"].notna()]
    never = table["status"] == "never emerged"
    return Prediction(measure, table,
                      mae=float(scored["abs_error"].mean()) if len(scored) else math.nan,
                      mae_baseline=float(scored["abs_error_baseline"].mean()) if len(scored) else math.nan,
                      n_scored=len(scored), n_never_emerged=int(np.isnan(y).sum()),
                      n_beyond_end=int(table.loc[never, "beyond_end"].sum()),
                      n_no_transition=int((table["status"] == "no transition").sum()))


def prediction_table(transitions: pd.DataFrame, measures: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per measure (default: every progress measure present): :meth:`Prediction.summary`."""
    if measures is None:
        present = set(transitions["metric"]) if "metric" in getattr(transitions, "columns", ()) else set()
        measures = [m for m in PROGRESS if m in present]
    return pd.DataFrame([predict_emergence(transitions, m).summary() for m in measures])
