"""Emergence across the runs of a sweep, answered by the registered protocol (``docs/emergence-protocol.md``).

The protocol's analysis: :func:`answer` (every number the manual states: :meth:`Answer.verdict_table`,
:meth:`Answer.robustness_table`), built from :func:`events` with right-censoring and Kaplan-Meier medians,
:func:`lead_analysis` (leads of the progress measures after memorisation, always beside the three
controls, with seed-cluster bootstrap intervals), :func:`forecasts` (forecasts of t90 from the past only,
leave one seed out, against the config baseline) and :func:`metric_question` (logistic fits of accuracy and
the log-probability of the correct answer along a scale axis, and their width ratio).

Exploratory (written before the protocol; not its answer, kept for the old shipped sweep's tables):

Per run and metric (:func:`run_transitions`): the half-way step of the metric's change over training
(log10 space for losses), its 10 %->90 % width, and the run's emergence step (test accuracy first
>= 0.5). Across runs: the leads of the progress measures over emergence (:func:`leads`,
:func:`lead_summary`), every metric against a scale axis with sharpness and PaLM's discontinuity
(:func:`scale_table`), and leave-one-run-out prediction of the emergence step (:func:`prediction_table`).
Pure functions of DataFrames and arrays: nothing here trains or loads a model, draws, or parses arguments.

>>> from interp import emergence
>>> emergence.answer("sweeps/emergence-dense").verdict_table()          # doctest: +SKIP
>>> sweep = emergence.load_sweep("sweeps/data-width")                 # doctest: +SKIP
>>> tr = emergence.run_transitions(sweep)                              # doctest: +SKIP
>>> emergence.lead_summary(emergence.leads(tr))                        # doctest: +SKIP
>>> emergence.scale_table(sweep, "frac_train").table                   # doctest: +SKIP
>>> emergence.prediction_table(tr)                                     # doctest: +SKIP
"""

from ..sweep.tables import SweepTables, load_sweep
from .analysis import Analysis, analyse
from .answer import Answer, answer, same_config_events, verdicts
from .events import events, km_median, km_medians, survival_curves
from .forecast import Forecasts, forecast_at, forecasts
from .leads import Leads, lead_analysis, lead_grid, transition_after, transition_steps
from .metric_question import AxisAnswer, LogisticFit, fit_logistic, metric_question
from .metrics import EMERGENCE_METRIC, METRICS, OUTCOME, PROGRESS, Metric, metric_info
from .predict import Prediction, predict_emergence, prediction_table
from .scale import Scale, discontinuity, scale_table, sharpness
from .tables import emergence_table, lead_summary, leads, run_transitions
from .transition import (
    Transition,
    emergence_step,
    monotone_envelope,
    rise_steps,
    running_median,
    transition,
)

__all__ = [
    "answer", "Answer", "verdicts", "same_config_events", "events", "km_median", "km_medians", "survival_curves", "lead_analysis", "lead_grid",
    "Leads", "transition_after", "transition_steps", "forecasts", "forecast_at", "Forecasts", "metric_question",
    "fit_logistic", "AxisAnswer", "LogisticFit",
    "transition", "Transition", "emergence_step", "rise_steps", "running_median", "monotone_envelope",
    "run_transitions", "emergence_table", "leads", "lead_summary",
    "scale_table", "Scale", "sharpness", "discontinuity",
    "predict_emergence", "prediction_table", "Prediction",
    "load_sweep", "SweepTables", "analyse", "Analysis",
    "METRICS", "OUTCOME", "PROGRESS", "EMERGENCE_METRIC", "Metric", "metric_info",
]
