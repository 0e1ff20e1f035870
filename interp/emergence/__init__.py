"""Emergence, measured across the runs of a sweep: which metrics jump, which move smoothly, and how
early the progress measures announce the jump.

Per run and metric (:func:`run_transitions`): the half-way step of the metric's change over training
(log10 space for losses), its 10 %->90 % width, and the run's emergence step (test accuracy first
>= 0.5). Across runs: the leads of the progress measures over emergence (:func:`leads`,
:func:`lead_summary`), every metric against a scale axis with sharpness and PaLM's discontinuity
(:func:`scale_table`), and leave-one-run-out prediction of the emergence step (:func:`prediction_table`).
Pure functions of DataFrames and arrays: nothing here trains or loads a model.

>>> from interp import emergence
>>> sweep = emergence.load_sweep("sweeps/data-width")                 # doctest: +SKIP
>>> tr = emergence.run_transitions(sweep)                              # doctest: +SKIP
>>> emergence.lead_summary(emergence.leads(tr))                        # doctest: +SKIP
>>> emergence.scale_table(sweep, "frac_train").table                   # doctest: +SKIP
>>> emergence.prediction_table(tr)                                     # doctest: +SKIP
"""

from ._load import SweepTables, load_sweep
from .analysis import Analysis, analyse
from .metrics import EMERGENCE_METRIC, METRICS, OUTCOME, PROGRESS, Metric, metric_info
from .predict import Prediction, predict_emergence, prediction_table
from .scale import Scale, discontinuity, scale_table, sharpness
from .tables import emergence_table, lead_summary, leads, run_transitions
from .transition import Transition, emergence_step, monotone_envelope, rise_steps, running_median, transition

__all__ = [
    "transition", "Transition", "emergence_step", "rise_steps", "running_median", "monotone_envelope",
    "run_transitions", "emergence_table", "leads", "lead_summary",
    "scale_table", "Scale", "sharpness", "discontinuity",
    "predict_emergence", "prediction_table", "Prediction",
    "load_sweep", "SweepTables", "analyse", "Analysis",
    "METRICS", "OUTCOME", "PROGRESS", "EMERGENCE_METRIC", "Metric", "metric_info",
]
