"""Pre-protocol (exploratory) analysis: not part of ``interp.emergence``'s public API (protocol v2 keeps one
generation of the analysis); kept only for the sweep report's labelled exploratory section.

Every table of the emergence analysis of one sweep, computed once (for the CLI and the sweep report).

>>> a = analyse("sweeps/data-width", axis="frac_train")      # doctest: +SKIP
>>> print("\\n".join(a.headline()))                           # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..sweep.tables import SweepTables, as_tables
from .metrics import EMERGENCE_METRIC, PROGRESS
from .predict import Prediction, predict_emergence
from .scale import Scale, scale_table
from .tables import emergence_table, lead_summary, leads, run_transitions

__all__ = ["Analysis", "analyse", "default_axis"]


@dataclass
class Analysis:
    tables: SweepTables
    runs: pd.DataFrame  # emergence_table
    transitions: pd.DataFrame  # run_transitions
    leads: pd.DataFrame
    lead_summary: pd.DataFrame
    scale: Scale | None
    scale_note: str
    predictions: list[Prediction] = field(default_factory=list)

    @property
    def prediction_table(self) -> pd.DataFrame:
        return pd.DataFrame([p.summary() for p in self.predictions])

    def headline(self) -> list[str]:
        """The answer in a few sentences, with numbers."""
        runs, out = self.runs, []
        n, emerged = len(runs), runs[runs["emerged"]]
        out.append(f"{len(emerged)} of {n} runs emerged (test accuracy reached 0.5)"
                   + (f", median emergence step {emerged['emergence_step'].median():.0f}" if len(emerged) else ""))
        rise = runs["rise_frac"].dropna()
        if len(rise):
            out.append(f"test accuracy rose from below 10 % to at least 90 % within {100 * rise.max():.1f} % of the "
                       f"run in {len(rise)} of {n} runs (median {100 * rise.median():.1f} %)")
        prog = self.lead_summary[self.lead_summary["role"] == "progress"] if len(self.lead_summary) else None
        if prog is not None and len(prog):
            for _, r in prog.iterrows():
                if r["n_measured"]:
                    word = "before" if r["median_lead"] > 0 else "after"
                    out.append(f"{r['label']} made half its change a median {abs(r['median_lead']):.0f} steps {word} "
                               f"emergence (lead IQR {r['q25_lead']:.0f} to {r['q75_lead']:.0f} steps); ahead in "
                               f"{r['n_leading']} of {r['n_measured']} runs")
        if self.scale is not None:
            t = self.scale.table
            for m in (EMERGENCE_METRIC, "test_prob_correct", "test_loss"):
                rows = t[t["metric"] == m]
                for _, r in rows.iterrows():
                    if not math.isnan(r["discontinuity"]):
                        unit = " decades" if r["space"] == "log10" else ""
                        at = "" if self.scale.budget_step is None else f" at step {self.scale.budget_step}"
                        out.append(f"across {self.scale.axis}{at} ({r['group']}): {r['label']} has discontinuity "
                                   f"{r['discontinuity']:+.3g}{unit} ({r['discontinuity_rel']:+.2f} of its range), "
                                   f"sharpness {r['sharpness']:.2f}")
        elif self.scale_note:
            out.append(self.scale_note)
        pt = self.prediction_table
        if len(pt) and pt["mae"].notna().any():
            best = pt.loc[pt["mae"].idxmin()]
            out.append(f"best predictor of the emergence step: {best['measure']} (leave-one-run-out MAE "
                       f"{best['mae']:.0f} steps vs {best['mae_baseline']:.0f} for the mean of the other runs, "
                       f"{best['n_scored']} runs scored, {best['n_never_emerged']} never emerged)")
        return out


def default_axis(tables: SweepTables) -> str | None:
    """The first varied field that is not a seed, else None."""
    axes = tables.scale_axes
    return axes[0] if axes else None


def analyse(sweep, axis: str | None = None, budget_step: int | None = None, level: float = 0.5,
            loss_space: str = "log10") -> Analysis:
    """Every table for ``sweep`` (a directory, loaded tables, or a results DataFrame); ``axis`` defaults
    to the first varied non-seed field (``"step"`` for the training budget); with none, the scale
    analysis is skipped and ``scale_note`` says why. ``loss_space``: where the transitions of losses are
    measured, ``"log10"`` (default) or ``"linear"`` (see :func:`run_transitions`)."""
    tables = as_tables(sweep, needed=(EMERGENCE_METRIC,))
    runs = emergence_table(tables, level)
    tr = run_transitions(tables, level=level, loss_space=loss_space)
    lt = leads(tr)
    scale, note = None, ""
    if axis is None and default_axis(tables) is None:
        note = "no scale analysis: the sweep varies only seeds (pass --axis step for the training budget)"
    elif axis is None and tables.results[default_axis(tables)].nunique() < 2:
        note = f"no scale analysis: {default_axis(tables)} has a single value in this sweep"
    else:  # an axis the user named is checked by scale_table, with an error that lists the choices
        scale = scale_table(tables, axis or default_axis(tables), budget_step)
    measures = [m for m in PROGRESS if m in set(tr["metric"])]
    preds = [predict_emergence(tr, m) for m in measures]
    return Analysis(tables, runs, tr, lt, lead_summary(lt), scale, note, preds)

