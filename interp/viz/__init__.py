"""Show what happened: matplotlib figures, offline circuitsvis attention views, the HTML report.

>>> from interp import viz
>>> fig = viz.progress_figure(df, probes.phases(df))            # doctest: +SKIP
>>> viz.attention(model, [(12, 40)])                             # inline in a notebook  # doctest: +SKIP
>>> viz.write_report(run, "report")                              # report/index.html  # doctest: +SKIP
"""

from .attention import AttentionView, attention, attention_html, attention_patterns, write_attention_page
from .figures import (fourier_norms_figure, loss_curves_figure, neuron_clusters_figure, progress_figure,
                      save_figure)
from .report import write_report

__all__ = [
    "progress_figure",
    "loss_curves_figure",
    "fourier_norms_figure",
    "neuron_clusters_figure",
    "save_figure",
    "attention",
    "attention_patterns",
    "attention_html",
    "write_attention_page",
    "AttentionView",
    "write_report",
]
