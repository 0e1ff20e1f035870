"""The grokking progress measures of Nanda et al. (2023); definitions in docs/science.md.

Every measure that reads activations or logits runs the model's own hooked forward (``model(...)`` /
``model.run_with_cache``), so an ablation or patch attached with TransformerLens hooks is what gets measured.
Weight measures (Fourier norms and their Gini coefficients, the sum of squared weights) read the weights.

One model:

>>> freqs = probes.key_frequencies(model, task)            # doctest: +SKIP
>>> probes.restricted(model, task, freqs).loss             # doctest: +SKIP
>>> probes.measure_model(model, task, freqs)               # every scalar from one forward  # doctest: +SKIP

A whole run (one row per checkpoint, key frequencies fixed once from the final checkpoint):

>>> m = probes.measure_run(run); probes.phases(m.df)       # doctest: +SKIP
>>> probes.save_measures(m, "probes/" + run.name)          # doctest: +SKIP

The local learning coefficient (optional extra ``interp[llc]``, devinterp's SGLD sampler; slower than the rest):

>>> probes.llc(model, task).estimate                       # doctest: +SKIP
>>> probes.measure_run(run, llc=True)                      # adds an `llc` column  # doctest: +SKIP

Functions that only need logits take a model or a precomputed (n_pairs, p) logits tensor, so one
forward can serve many measures. Every Fourier measure is taken in the task's group (``task.group``: Z_p for add
and sub, Z_(p-1) by discrete log for mul and div); frequencies are k = 1..n//2 of that group; Fourier order is
cos-first. A measure with no meaning for the task raises ProbeError naming both. Group-composition tasks (C_n, D_n,
S_n) are measured in their irreps (``probes.irreps``); ``probes.clock_pizza`` tells a clock from a pizza. Neuron and W_L measures take
``layer=`` (default: the last layer). Checkpoints trained elsewhere: :func:`measure_series`.
"""

from .frequencies import (fourier_norms, key_frequencies, logit_map, neuron_clusters, neuron_frequency_shares,
                          top_frequencies)
from .losses import (
    CosCoefficients,
    Decomposition,
    Score,
    cos_coefficients,
    decompose,
    excluded,
    excluded_loss_per_frequency,
    loss_and_accuracy,
    outcome_metrics,
    restricted,
    train_test_metrics,
)
from .learning_coefficient import LLCResult, LLCSettings, LLCWarning, estimate_llc, llc, llc_sweep
from .phases import Phases, phases
from .series import (Measures, find_measures, load_measures, measure_model, measure_run, measure_series,
                     measures_dir_foreign, not_applicable, protocol, save_measures, saved_identity)
from .sparsity import fourier_gini, gini, sum_squared_weights
from . import clock_pizza, irreps  # group tasks' irrep measures; clock vs pizza (docs/groups.md)

__all__ = [
    "key_frequencies",
    "neuron_clusters",
    "neuron_frequency_shares",
    "top_frequencies",
    "fourier_norms",
    "logit_map",
    "Score",
    "loss_and_accuracy",
    "outcome_metrics",
    "train_test_metrics",
    "Decomposition",
    "decompose",
    "restricted",
    "excluded",
    "excluded_loss_per_frequency",
    "CosCoefficients",
    "cos_coefficients",
    "gini",
    "fourier_gini",
    "sum_squared_weights",
    "Measures",
    "measure_model",
    "measure_run",
    "measure_series",
    "not_applicable",
    "protocol",
    "save_measures",
    "load_measures",
    "find_measures",
    "saved_identity",
    "measures_dir_foreign",
    "Phases",
    "phases",
    "LLCSettings",
    "LLCResult",
    "LLCWarning",
    "llc",
    "estimate_llc",
    "llc_sweep",
    "irreps",
    "clock_pizza",
]
