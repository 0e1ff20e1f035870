"""Per-run tables, leads and their summary on a synthetic sweep with known transitions; bad tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp.emergence import load_sweep
from interp.emergence.tables import emergence_table, lead_summary, leads, run_transitions
from interp.emergence.synthetic import CURVES, synthetic_sweep
from interp.errors import InterpError

FRACS = (0.1, 0.2, 0.3, 0.4, 0.5)  # frac 0.1 emerges at ~15000 steps: after the 10000-step runs end


@pytest.fixture(scope="module")
def sweep():
    return synthetic_sweep(frac_train=FRACS, seeds=(0, 1, 2), n_steps=10_000, every=50)


@pytest.fixture(scope="module")
def transitions(sweep):
    return run_transitions(sweep[0])


def test_half_way_steps_and_widths_recovered(sweep, transitions):
    _, truth = sweep
    m = transitions.merge(truth, on=["run", "metric"])
    settled = m["mid"] + 1.5 * m["width"] <= 10_000  # the true curve made > 99.9 % of its change in the run
    done = m[settled]
    assert len(done) >= 0.6 * len(m) and done["found"].all() and done["complete"].all()
    assert np.all(np.abs(done["step"] - done["mid"]) <= 0.05 * done["mid"])
    assert np.all(np.abs(done["width_steps"] - done["width"]) <= 0.05 * done["width"])
    # a curve cut off well before its plateau (under 90 % of its change made) is flagged as provisional
    cut = m[m["mid"] + 0.5 * m["width"] > 10_000]
    assert len(cut) and not cut["complete"].any()
    assert set(transitions.columns) >= {"run", "frac_train", "data_seed", "metric", "kind", "role", "space"}
    assert set(transitions.loc[transitions["metric"] == "test_loss", "space"]) == {"log10"}
    assert set(transitions.loc[transitions["metric"] == "test_acc", "kind"]) == {"discontinuous"}
    assert set(transitions.loc[transitions["metric"] != "test_acc", "kind"]) == {"continuous"}


def test_emergence_table(sweep):
    results, truth = sweep
    et = emergence_table(results).set_index("run")
    exact = truth.groupby("run")["emergence_step"].first()
    emerged = exact.dropna().index
    assert set(et.index[et["emerged"]]) == set(emerged)
    assert np.allclose(et.loc[emerged, "emergence_step"], exact[emerged], rtol=0.01)
    never = et[~et["emerged"]]
    assert len(never) == 3 and set(never["frac_train"]) == {0.1}  # reported, not dropped
    assert never["emergence_step"].isna().all() and (never["final_test_acc"] < 0.1).all()
    # rise 10 % -> 90 % of a logistic of 10-90 width w, from 0.01 to 1: about w (levels are absolute)
    r = et.loc[et["frac_train"] == 0.3]
    width = 0.1 * 1500 / 0.3 * (1 + 0.04 * (r["data_seed"] - 1))
    assert np.all(np.abs(r["rise_steps"] - width) < 0.06 * width)


def test_leads_recovered(sweep, transitions):
    _, truth = sweep
    lt = leads(transitions)
    assert "test_acc" not in set(lt["metric"])
    m = lt.merge(truth, on=["run", "metric"])
    ok = m[m["status"].isin(["leads", "lags"])]
    expected = ok["emergence_step_x"] - ok["mid"]
    # leads of curves that settled inside the run are within 5 % of the time to emergence
    settled = ok.merge(transitions[["run", "metric", "complete"]], on=["run", "metric"])["complete"].to_numpy()
    err = np.abs(ok["lead"] - expected)[settled]
    assert len(err) > 40 and np.all(err <= 0.05 * ok["emergence_step_x"][settled])
    s = lead_summary(lt).set_index("metric")
    # restricted loss is half-way at 0.7 t_e: it leads in every run that emerged, by about 0.3 of t_e
    assert s.loc["restricted_loss", "n_leading"] == s.loc["restricted_loss", "n_measured"] == 12
    assert s.loc["restricted_loss", "median_lead_frac"] == pytest.approx(0.3, abs=0.015)
    assert s.loc["excluded_loss", "median_lead_frac"] == pytest.approx(0.5, abs=0.025)
    # Gini of W_E is half-way at 1.2 t_e: it lags
    assert s.loc["gini_W_E", "median_lead"] < 0
    rl = s.loc["restricted_loss"]
    assert rl["q25_lead"] <= rl["median_lead"] <= rl["q75_lead"]
    # the three never-emerging runs are counted
    assert s.loc["restricted_loss", "n_never_emerged"] == 3


def test_loader_reads_a_sweep_directory(tmp_path, sweep):
    results, _ = sweep
    results.to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame({"run": results["run"].unique(), "status": "done"}).to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "sweep.json").write_text(json.dumps({"axes": ["frac_train", "data_seed"]}))
    tables = load_sweep(tmp_path)
    assert tables.axes == ["frac_train", "data_seed"] and tables.scale_axes == ["frac_train"]
    assert set(emergence_table(tables)["status"]) == {"done"}
    (tmp_path / "sweep.json").unlink()  # axes then come from the column order: run, fields, step
    assert load_sweep(tmp_path).axes == ["frac_train", "data_seed"]


def _table(**cols):
    return pd.DataFrame({"run": ["a"] * 4, "frac_train": 0.3, "step": [0, 1, 2, 3], "test_acc": [0, 0, 1, 1],
                         **cols})


@pytest.mark.parametrize("make,match", [
    (lambda: _table().drop(columns=["test_acc"]), r"missing column\(s\) \['test_acc'\]"),
    (lambda: _table().drop(columns=["step"]), r"missing column\(s\) \['step'"),
    (lambda: _table().iloc[:0], "empty"),
    (lambda: _table(step=[0, 1, 1, 2]), "run 'a' has step 1 more than once"),
    (lambda: _table(step=["x", "y", "z", "w"]), "'step' must hold numbers"),
])
def test_bad_tables_are_rejected(make, match):
    with pytest.raises(InterpError, match=match):
        run_transitions(make())


def test_unknown_metric_and_bad_directories(tmp_path):
    with pytest.raises(InterpError, match=r"no column\(s\) \['test_prob_correct'\]"):
        run_transitions(_table(), metrics=["test_prob_correct"])
    with pytest.raises(InterpError, match="not a directory"):
        load_sweep(tmp_path / "nowhere")
    with pytest.raises(InterpError, match="results.csv: not found"):
        load_sweep(tmp_path)
    (tmp_path / "results.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InterpError, match="results.csv"):
        load_sweep(tmp_path)
    _table().to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(InterpError, match="sweep.json: malformed JSON"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"axes": ["d_mlp"]}))
    with pytest.raises(InterpError, match=r"missing column\(s\) \['d_mlp'\]"):
        load_sweep(tmp_path)


def test_curves_table_is_consistent():
    assert set(CURVES) >= {"test_acc", "restricted_loss", "excluded_loss"}
