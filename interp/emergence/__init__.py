"""Emergence across the runs of a sweep, answered by the registered protocol (``docs/emergence-protocol.md``).

Protocol v2 (the answer): :func:`answer` runs everything once (:meth:`Answer.verdict_table`,
:meth:`Answer.robustness_table`, :meth:`Answer.v1_verdict_table` for the history). Its parts:
:func:`events` (right-censoring, Kaplan-Meier medians), :func:`information` (does a measure's timing or value carry
information about t90 beyond the configuration and the clocks: within-cell rank correlation with a permutation
null, and a stratified Cox model with the measure as a time-varying covariate), :func:`predictability` (t90 from
the past at every look time: (a) against a recalibrated config baseline, (b) a mechanistic measure beyond test loss
and the clock, with an equivalence margin) and :func:`metric_question` (logistic fits of accuracy and the
log-probability of the correct answer along a scale axis, their width ratio). The earliness leads
(:func:`lead_analysis`, :func:`lead_grid`) and v1's forecasts (:func:`forecasts`) remain as robustness and history.
:mod:`interp.emergence.grokfast` compares optimiser arms (docs/grokfast-protocol.md).
Pure functions of DataFrames and arrays: nothing here trains or loads a model, draws, or parses arguments.

>>> from interp import emergence
>>> emergence.answer("sweeps/emergence-dense").verdict_table()          # doctest: +SKIP
>>> emergence.information("sweeps/emergence-dense").table              # doctest: +SKIP
"""

from ..sweep.tables import SweepTables, load_sweep
from .answer import Answer, answer, same_config_events, verdicts
from .events import events, km_median, km_medians, survival_curves
from .forecast import Forecasts, forecast_at, forecasts
from .information import Information, information, within_cell_spearman
from .leads import Leads, lead_analysis, lead_grid, transition_after, transition_steps
from .metric_question import AxisAnswer, LogisticFit, axis_groups, fit_logistic, metric_question
from .predictability import Predictability, predictability
from .transition import Transition, monotone_envelope, running_median, transition

__all__ = [
    "answer", "Answer", "verdicts", "same_config_events", "events", "km_median", "km_medians", "survival_curves",
    "information", "Information", "within_cell_spearman", "predictability", "Predictability",
    "lead_analysis", "lead_grid", "Leads", "transition_after", "transition_steps", "forecasts", "forecast_at",
    "Forecasts", "metric_question", "fit_logistic", "axis_groups", "AxisAnswer", "LogisticFit",
    "transition", "Transition", "running_median", "monotone_envelope", "load_sweep", "SweepTables",
]
