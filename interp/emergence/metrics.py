"""The metrics the emergence analysis reads, and how each one is looked at.

Every metric is a column of a sweep's ``results.csv`` (one row per run x checkpoint). Each has:

- ``kind``: ``"discontinuous"`` for a thresholded score (test accuracy: a pair counts only once its
  correct logit wins) or ``"continuous"`` for everything that moves with every small change of the
  logits (losses, the probability of the correct answer, the Brier score, the progress measures).
- ``role``: ``"outcome"`` (how well the model answers the test pairs) or ``"progress"`` (a progress
  measure of the circuit, Nanda et al. 2023).
- ``log``: losses are analysed as ``log10(value)``, the space in which they change steadily (a loss
  going from 1e-1 to 1e-7 has made half its change at 1e-4, not at 0.05).
- ``min_change``: the smallest change that counts as a transition: 0.05 for the scores bounded in
  [0, 1] (accuracy, probability, Brier score, Gini, fraction clustered), 0.1 decades for losses, 5 % of
  the largest value for the sum of squared weights.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "OUTCOME", "PROGRESS", "EMERGENCE_METRIC", "metric_info"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str  # "discontinuous" | "continuous"
    role: str  # "outcome" | "progress"
    log: bool = False
    min_change: float | None = None  # smallest change that counts as a transition (None: transition's default)

    @property
    def space(self) -> str:
        return "log10" if self.log else "linear"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("test_acc", "test accuracy", "discontinuous", "outcome", min_change=0.05),
    Metric("test_loss", "test loss", "continuous", "outcome", log=True),
    Metric("test_prob_correct", "probability of the correct answer (test)", "continuous", "outcome", min_change=0.05),
    Metric("test_brier", "Brier score (test)", "continuous", "outcome", min_change=0.05),
    Metric("restricted_loss", "restricted loss", "continuous", "progress", log=True),
    Metric("excluded_loss", "excluded loss", "continuous", "progress", log=True),
    Metric("gini_W_E", "Gini of W_E Fourier norms", "continuous", "progress", min_change=0.05),
    Metric("gini_W_L", "Gini of W_L Fourier norms", "continuous", "progress", min_change=0.05),
    Metric("sum_sq_weights", "sum of squared weights", "continuous", "progress"),
    Metric("frac_neurons_clustered", "fraction of neurons clustered", "continuous", "progress", min_change=0.05),
)}

EMERGENCE_METRIC = "test_acc"
OUTCOME = [m for m, info in METRICS.items() if info.role == "outcome"]
PROGRESS = [m for m, info in METRICS.items() if info.role == "progress"]


def metric_info(name: str) -> Metric:
    """The registered :class:`Metric`, or a continuous linear one for any other column (e.g. train_loss
    is treated as a log metric because its name ends in ``_loss``)."""
    if name in METRICS:
        return METRICS[name]
    acc = name.endswith("_acc")
    return Metric(name, name.replace("_", " "), "discontinuous" if acc else "continuous", "other",
                  log=name.endswith("_loss"), min_change=0.05 if acc else None)
