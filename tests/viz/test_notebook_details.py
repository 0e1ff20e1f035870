"""Notebook details: figures show inline in a fresh kernel, and the mechanism objects print as one line."""

import numpy as np

from interp import probes
from interp.config import preset
from interp.model import build_model
from interp.tasks import Task
from interp.viz import mechanism
from interp.viz.figures import fourier_norms_figure


def test_figures_render_png_for_ipython_without_matplotlib_inline():
    cfg = preset("tiny")
    model = build_model(cfg)
    fig = fourier_norms_figure(probes.fourier_norms(model), cfg.p)
    png = fig._repr_png_()  # what IPython's display formatter calls for an object with no registered printer
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_neuron_frequencies_and_spectra_reprs_are_one_short_line():
    cfg = preset("tiny", op="mul")
    model, task = build_model(cfg), Task.from_config(cfg)
    nf = mechanism.neuron_frequencies(model, task=task)
    sp = mechanism.spectra_over_time([(0, model), (10, model)], task=task)
    for r in (repr(nf), repr(sp)):
        assert "\n" not in r and len(r) < 200, r
    assert "Z_22 (discrete log, generator 5)" in repr(nf) and "layer 0" in repr(nf)
    assert repr(sp).startswith("Spectra(2 checkpoints, steps 0..10, 11 frequencies of Z_22")
    assert nf.shares.shape == (cfg.d_mlp, 11) and np.all(nf.shares >= 0)
