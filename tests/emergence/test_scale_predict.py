"""Metrics against a scale axis (sharpness, PaLM discontinuity, the "mirage" table) and leave-one-run-out
prediction of the emergence step, on constructed tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from interp.emergence.predict import predict_emergence, prediction_table
from interp.emergence.scale import discontinuity, scale_table, sharpness
from interp.emergence.tables import run_transitions
from interp.emergence.synthetic import logistic
from interp.errors import InterpError

WIDTHS = [16, 32, 64, 128, 256]
PROB = {16: 0.1, 32: 0.3, 64: 0.5, 128: 0.7, 256: 0.9}  # log-linear in width: +0.2 per doubling
ACC = {16: 0.0, 32: 0.0, 64: 0.01, 128: 0.02, 256: 0.95}  # flat, then a jump at the largest width


def mirage_table(seeds=(0, 1), budget=1000) -> pd.DataFrame:
    """Accuracy jumps at the largest width while the correct-answer probability is log-linear in width."""
    rows = []
    for w in WIDTHS:
        for seed in seeds:
            jitter = 0.002 * (seed - 0.5)  # seeds differ a little; their mean is the value above
            for step, p, acc in ((0, 0.01, 0.0), (budget // 2, PROB[w] / 2, ACC[w] / 2), (budget, PROB[w], ACC[w])):
                rows.append({"run": f"w{w}-s{seed}", "d_mlp": w, "model_seed": seed, "step": step,
                             "test_acc": acc + (jitter if step == budget else 0), "test_prob_correct": p + jitter,
                             "test_loss": 10 ** (-np.log10(w)) * (1 + jitter) if step else 4.7})
    return pd.DataFrame(rows)


def test_discontinuity_and_sharpness_by_hand():
    assert discontinuity([1, 10, 100], [0.0, 0.1, 0.9]) == pytest.approx(0.7)
    assert discontinuity([1, 2, 4, 8], [1, 2, 3, 4]) == pytest.approx(0.0)  # log-linear: no discontinuity
    assert discontinuity([2, 1, 4], [0.5, 0.2, 0.4]) == pytest.approx(0.4 - 0.8)  # order of the input is irrelevant
    assert math.isnan(discontinuity([1, 2], [0, 1]))
    assert math.isnan(discontinuity([0, 1, 2], [0, 0.5, 1]))  # only two positive scale values
    assert discontinuity([1, 10, 100, 1000], [0, 0.1, 0.2, 0.9], at=100) == pytest.approx(0.0)
    s, a, b = sharpness([1, 2, 3, 4], [0, 0.1, 0.9, 1.0])
    assert s == pytest.approx(0.8) and (a, b) == (2, 3)
    assert sharpness([1, 2, 3], [0, 0.5, 1.0])[0] == pytest.approx(0.5)
    assert math.isnan(sharpness([1, 2], [3, 3])[0])


def test_mirage_table_says_accuracy_jumps_and_probability_does_not():
    sc = scale_table(mirage_table(), "d_mlp", metrics=["test_acc", "test_prob_correct", "test_loss"])
    assert sc.budget_step == 1000 and sc.groups == []
    t = sc.table.set_index("metric")
    # accuracy: PaLM's projection from widths 64 and 128 is 0.03; the actual 0.95: discontinuity 0.92
    assert t.loc["test_acc", "discontinuity"] == pytest.approx(0.92, rel=0.05)
    assert t.loc["test_acc", "discontinuity_rel"] == pytest.approx(0.92 / 0.95, rel=0.05)
    assert t.loc["test_acc", "sharpness"] == pytest.approx(0.93 / 0.95, rel=0.05)
    assert (t.loc["test_acc", "jump_from"], t.loc["test_acc", "jump_to"]) == (128, 256)
    # the probability of the correct answer on the same runs moves log-linearly: no discontinuity
    assert abs(t.loc["test_prob_correct", "discontinuity"]) < 1e-9
    assert t.loc["test_prob_correct", "sharpness"] == pytest.approx(0.25)  # evenly spread over 4 doublings
    # test loss = 1/width is linear on log-log axes (log10 space): no discontinuity either
    assert t.loc["test_loss", "space"] == "log10" and abs(t.loc["test_loss", "discontinuity"]) < 1e-6
    assert t.loc["test_acc", "kind"] == "discontinuous" and t.loc["test_prob_correct", "kind"] == "continuous"
    # points: one per width and metric, the mean over the two seeds
    p = sc.points[sc.points["metric"] == "test_prob_correct"].set_index("d_mlp")
    assert np.allclose(p["mean"], [PROB[w] for w in WIDTHS]) and set(p["n_runs"]) == {2}


def test_budget_and_groups():
    df = mirage_table()
    df["frac_train"] = np.where(df["model_seed"] == 0, 0.3, 0.5)  # two groups of one seed each
    df = df[["run", "d_mlp", "frac_train", "model_seed", "step", "test_acc", "test_prob_correct", "test_loss"]]
    sc = scale_table(df, "d_mlp", budget_step=500, metrics=["test_acc"])
    assert sc.groups == ["frac_train"] and set(sc.table["group"]) == {"frac_train=0.3", "frac_train=0.5"}
    assert set(sc.points["steps_used"]) == {"500"}
    assert sc.table["discontinuity"].to_numpy() == pytest.approx([0.46, 0.46], abs=0.01)  # half of 0.92


def test_step_axis_is_the_training_budget():
    df = mirage_table()
    sc = scale_table(df, "step", metrics=["test_prob_correct"])
    assert sc.budget_step is None and len(sc.table) == 5  # one curve per width
    assert set(sc.points["step"]) == {0, 500, 1000}


@pytest.mark.parametrize("axis,kw,match", [
    ("n_layers", {}, r"scale axis 'n_layers' is not a varied field.*\['d_mlp', 'step'\]"),
    ("model_seed", {}, "is a seed"),
    ("d_mlp", {"metrics": ["brier"]}, r"no column\(s\) \['brier'\]"),
    ("d_mlp", {"budget_step": -5}, "before every checkpoint"),
])
def test_scale_bad_input(axis, kw, match):
    with pytest.raises(InterpError, match=match):
        scale_table(mirage_table(), axis, **kw)


def test_single_scale_value_is_an_error():
    df = mirage_table()
    df = df[df["d_mlp"] == 64]
    with pytest.raises(InterpError, match=r"single value \(64\)"):
        scale_table(df, "d_mlp")


# ---- prediction ---------------------------------------------------------------------------------

STEPS = np.arange(0, 20_001, 50)


def prediction_sweep(exact: bool) -> pd.DataFrame:
    """Restricted loss half-way at h; accuracy emerges at 2 h + 500 (exactly, or with scatter)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, h in enumerate([1500, 2000, 2600, 3100, 3800, 4500, 11_000]):
        e = 2 * h + 500 + (0 if exact else rng.normal(0, 400))
        acc = logistic(STEPS, e, 400, 0.0, 1.0) if h < 11_000 else np.full(len(STEPS), 0.02)  # the last never groks
        acc = np.where(acc >= 0.5, acc, acc * 0.999)  # keep 0.5 exactly at e
        log_rl = logistic(STEPS, h, 1000, 0.67, -6.0)
        rows.append(pd.DataFrame({"run": f"r{i}", "frac_train": 0.1 * (i + 1), "step": STEPS, "test_acc": acc,
                                  "restricted_loss": 10 ** log_rl}))
    return pd.concat(rows, ignore_index=True)


def test_prediction_exact_measure_beats_baseline():
    tr = run_transitions(prediction_sweep(exact=True))
    p = predict_emergence(tr, "restricted_loss")
    assert p.n_scored == 6 and p.n_never_emerged == 1
    assert p.mae < 0.005 * p.mae_baseline and p.mae < 20  # a perfect linear law is recovered
    assert p.mae_baseline > 500
    never = p.table[p.table["status"] == "never emerged"].iloc[0]
    # reported, not dropped: its restricted loss says "emerges at 2 x 11000 + 500", after its last step 20000,
    # which agrees with what happened
    assert never["predicted"] == pytest.approx(2 * 11_000 + 500, rel=0.02)
    assert never["beyond_end"] and p.n_beyond_end == 1
    row = prediction_table(tr).iloc[0]
    assert row["measure"] == "restricted_loss" and row["mae_ratio"] < 0.005


def test_prediction_with_scatter_and_unusable_runs():
    tr = run_transitions(prediction_sweep(exact=False))
    p = predict_emergence(tr, "restricted_loss")
    assert 0 < p.mae < p.mae_baseline  # a real but imperfect predictor
    # a run whose measure had no transition gets no prediction, and says so
    tr.loc[(tr["run"] == "r0") & (tr["metric"] == "restricted_loss"), "found"] = False
    p2 = predict_emergence(tr, "restricted_loss")
    assert p2.n_no_transition == 1 and p2.n_scored == 5
    assert p2.table.set_index("run").loc["r0", "status"] == "no transition"


def test_prediction_bad_input():
    tr = run_transitions(prediction_sweep(exact=True))
    with pytest.raises(InterpError, match="defines the emergence step"):
        predict_emergence(tr, "test_acc")
    with pytest.raises(InterpError, match="no transitions of 'gini_W_E'"):
        predict_emergence(tr, "gini_W_E")
    with pytest.raises(InterpError, match="lacks column"):
        predict_emergence(tr.drop(columns=["emergence_step"]), "restricted_loss")
    few = predict_emergence(tr[tr["run"].isin(["r0", "r1"])], "restricted_loss")
    assert set(few.table["status"]) == {"too few other runs"} and math.isnan(few.mae)
