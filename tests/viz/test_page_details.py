"""What a reader sees on the pages: every label whole and distinct, no label on a curve, one test-loss peak,
captions that name every drawn measure, no absolute path of this machine."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from interp.probes import Phases
from interp.viz.emergence_figures import run_curves_figure
from interp.viz.figures import fourier_norms_figure, loss_curves_figure, measures_figure
from interp.viz.report import _measures_caption, _phase_notes, _shown_path
from interp.viz.story import curve_landmarks

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "sweeps" / "emergence-small"


def test_sweep_run_labels_are_whole_and_distinct():
    from interp.emergence import load_sweep
    from interp.emergence.tables import run_transitions

    tables = load_sweep(SWEEP)
    names = sorted(tables.results["run"].unique())[:6]  # the first figure: rows that differ only in their seed
    fig = run_curves_figure(tables.results, run_transitions(tables), names)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert [lab.replace("\n", ",") for lab in labels] == names  # nothing cut off ...
    assert len(set(labels)) == len(names) and not any("…" in lab for lab in labels)  # ... so no two look alike


def _metrics(n=3000):
    step = np.arange(n)
    test = np.where(step < 500, 4 + 25 * step / 500, 29 * np.exp(-(step - 500) / 200.0) + 1e-7)
    return pd.DataFrame({"step": step, "train_loss": np.exp(-step / 50.0) + 1e-7,
                         "train_acc": np.minimum(1, step / 100), "test_loss": test,
                         "test_acc": np.clip((step - 600) / 800, 0, 1)})


def test_phase_labels_sit_above_the_panels_not_on_the_curves():
    phases = Phases(memorisation_end=400, circuit_formation_end=900, cleanup_end=1500, grokked=True, rule="t")
    fig = loss_curves_figure(_metrics(), phases)
    fig.canvas.draw()
    labelled = 0
    for ax in fig.axes:
        box = ax.get_window_extent()
        for t in ax.texts:
            if t.get_gid() == "phase-label":
                labelled += 1
                assert t.get_window_extent().y0 >= box.y1 - 0.5, t.get_text()  # outside the plotted data
                assert t.get_window_extent().y1 <= ax.title.get_window_extent().y0 + 0.5  # and under the title
    assert labelled >= 2  # (a span too narrow for its name is named by the legend)


def test_coinciding_neuron_lines_both_show():
    df = pd.DataFrame({"step": [0, 100, 200], "frac_neurons_clustered": [0, 0.5, 0.7],
                       "frac_neurons_key": [0, 0.5, 0.7]})
    fig = measures_figure(df)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    any_, key = lines["frac_neurons_clustered"], lines["frac_neurons_key"]
    assert any_.get_linewidth() > 2 * key.get_linewidth() and key.get_linestyle() != "-"  # a band, a dash on it


def test_a_non_key_frequency_is_labelled_once():
    p = 113
    v = np.full(p, 0.05)
    v[[1, 2]] = 5.0                   # cos 1, sin 1 (key)
    v[[2 * 42 - 1, 2 * 42]] = 2.3     # cos 42, sin 42 (not key): two bars side by side
    fig = fourier_norms_figure({"W_E": v}, p, key_frequencies=[1])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sorted(texts) == ["cos/sin 1", "cos/sin 42 (not key)"]


def test_the_measures_caption_names_every_drawn_measure():
    cols = {"step": [0], "excluded_loss": [1.0], "test_prob_correct": [0.5], "train_brier": [0.1]}
    caption = _measures_caption(pd.DataFrame(cols), "read from probes/x/measures.csv")
    assert "p(correct)" in caption and "Brier score" in caption
    assert "Brier" not in _measures_caption(pd.DataFrame({"step": [0]}), "x")


def test_one_test_loss_peak_is_quoted():
    metrics = _metrics()
    land = curve_landmarks(metrics)  # the per-step peak, which the story and the key numbers quote
    checkpoint_note = "grokked: test loss fell 8.3 decades, from 28.7 at step 400 to 1.44e-07"  # the rule's
    (note,) = _phase_notes([checkpoint_note], land, metrics)
    assert f"at step {land['test_loss_peak_step']}" in note and "28.7" not in note
    assert land["test_loss_peak"] == pytest.approx(29.0, rel=1e-3) and "from its peak 29" in note


def test_no_absolute_path_of_this_machine(tmp_path):
    run = tmp_path / "checkpoints" / "r"
    assert _shown_path(tmp_path / "probes" / "r" / "measures.csv", run) == "probes/r/measures.csv"
    assert _shown_path(run / "measures" / "measures.csv", run) == "r/measures/measures.csv"
