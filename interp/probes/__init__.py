"""The grokking progress measures (Nanda et al. 2023; definitions in REFERENCE.md section 3).

One model:

>>> freqs = probes.key_frequencies(model, task)            # doctest: +SKIP
>>> probes.restricted_loss(model, task, freqs)             # doctest: +SKIP
>>> probes.measure_model(model, task, freqs)               # every scalar from one forward  # doctest: +SKIP

A whole run (one row per checkpoint, key frequencies fixed once from the final checkpoint):

>>> df = probes.measure_run(run); probes.phases(df)        # doctest: +SKIP
>>> probes.save_measures(df, "probes/" + run.name, run=run)  # doctest: +SKIP

Functions that only need logits take a model or a precomputed (p*p, p) logits tensor, so one
forward can serve many measures. Frequencies are k = 1..(p-1)/2; Fourier order is cos-first.
"""

from .frequencies import fourier_norms, key_frequencies, neuron_clusters, neuron_frequency_shares
from .losses import (
    CosCoefficients,
    cos_coefficients,
    excluded_accuracy,
    excluded_loss,
    excluded_loss_per_frequency,
    loss_and_accuracy,
    restricted_accuracy,
    restricted_loss,
    train_test_metrics,
)
from .phases import Phases, phases
from .series import load_measures, measure_model, measure_run, protocol, save_measures
from .sparsity import fourier_gini, gini, sum_squared_weights

__all__ = [
    "key_frequencies",
    "neuron_clusters",
    "neuron_frequency_shares",
    "fourier_norms",
    "loss_and_accuracy",
    "train_test_metrics",
    "restricted_loss",
    "restricted_accuracy",
    "excluded_loss",
    "excluded_accuracy",
    "excluded_loss_per_frequency",
    "CosCoefficients",
    "cos_coefficients",
    "gini",
    "fourier_gini",
    "sum_squared_weights",
    "measure_model",
    "measure_run",
    "protocol",
    "save_measures",
    "load_measures",
    "Phases",
    "phases",
]
