"""Show what happened: figures of the measures and of the mechanism, one offline attention view, the HTML report.

Computing and drawing are separate: :mod:`interp.viz.mechanism` computes arrays from a model's own
hooked forward, the ``*_figure`` functions draw arrays or DataFrames and return matplotlib Figures.

>>> from interp import viz
>>> fig = viz.progress_figure(df, probes.phases(df))                          # doctest: +SKIP
>>> viz.attention_grid_figure({"final": viz.attention_grid(model)})          # doctest: +SKIP
>>> view = viz.attention(model, [(12, 40)]); view.save("/tmp/attention.html")  # doctest: +SKIP
>>> viz.write_report(run, "/tmp/report")                                     # doctest: +SKIP
"""

from .attention import AttentionView, attention, attention_patterns
from .figures import (
                      fourier_norms_figure,
                      loss_curves_figure,
                      measures_figure,
                      neuron_clusters_figure,
                      progress_figure,
                      save_figure,
)
from .mechanism import (
                      NeuronFrequencies,
                      Spectra,
                      attention_grid,
                      attention_grids,
                      neuron_frequencies,
                      neuron_grids,
                      representative_neurons,
                      spectra_over_time,
)
from .mechanism_figures import (
                      attention_grid_figure,
                      neuron_frequency_figure,
                      neuron_grids_figure,
                      spectra_over_time_figure,
)
from .report import write_report

__all__ = [
    # figures of measured curves
    "progress_figure",
    "loss_curves_figure",
    "measures_figure",
    "fourier_norms_figure",
    "neuron_clusters_figure",
    "save_figure",
    # the mechanism: arrays, then figures
    "attention_grid",
    "attention_grids",
    "neuron_grids",
    "neuron_frequencies",
    "NeuronFrequencies",
    "representative_neurons",
    "spectra_over_time",
    "Spectra",
    "attention_grid_figure",
    "neuron_grids_figure",
    "neuron_frequency_figure",
    "spectra_over_time_figure",
    # token-level attention
    "attention",
    "attention_patterns",
    "AttentionView",
    # the report
    "write_report",
]
