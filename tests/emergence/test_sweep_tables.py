"""Per-run transitions on a synthetic sweep with known transitions; loading sweep tables; bad tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp.emergence import load_sweep
from interp.emergence.tables import run_transitions
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


def test_loader_reads_a_sweep_directory(tmp_path, sweep):
    results, _ = sweep
    results.to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame({"run": results["run"].unique(), "status": "done"}).to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "sweep.json").write_text(json.dumps({"axes": ["frac_train", "data_seed"]}))
    tables = load_sweep(tmp_path)
    assert tables.axes == ["frac_train", "data_seed"] and tables.scale_axes == ["frac_train"]
    assert set(tables.status().values()) == {"done"}
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
