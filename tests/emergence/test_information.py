"""Protocol v2's information test and the two predictability claims, on sweeps whose truth is known by construction
(interp.emergence.synthetic.information_sweep): each verdict flips when the truth flips."""

import math

import numpy as np
import pytest

from interp.emergence.information import counting_process, information, within_cell_spearman
from interp.emergence.events import events
from interp.emergence.predictability import predictability
from interp.emergence.synthetic import information_sweep

MEASURES = ["anticipating", "clock_like", "test_loss_copy"]


@pytest.fixture(scope="module")
def sweep():
    return information_sweep(seeds=range(15))[0]


@pytest.fixture(scope="module")
def info(sweep):
    return information(sweep, measures=MEASURES, n_boot=500, n_perm=500)


@pytest.fixture(scope="module")
def pred(sweep):
    return predictability(sweep, look_times=(500, 1000), measures=MEASURES, n_boot=500)


def test_a_clock_like_measure_is_not_informative_and_one_tracking_t90_is(info):
    """clock_like moves at step ~1500 in every run whatever its t90 (early, useless); anticipating moves at
    t90 - 500 + noise. The same test, the opposite verdicts."""
    t = info.table.set_index("measure")
    assert t.loc["anticipating", "verdict"] == "informative"
    assert t.loc["anticipating", "rho"] > 0.9 and t.loc["anticipating", "p_lr"] < 1e-6
    assert t.loc["clock_like", "verdict"] == "not informative"
    assert -0.5 < t.loc["clock_like", "rho_low"] and t.loc["clock_like", "rho_high"] < 0.5
    assert t.loc["clock_like", "p_lr"] > 0.05
    # every control goes through the same test and gets one of the three words
    assert {"clock", "train_loss", "test_loss"} <= set(t.index)
    assert set(t["verdict"]) <= {"informative", "not informative", "not determined"}
    assert t.loc["test_loss", "verdict"] == "informative"   # test loss falls with the event itself
    assert t.loc["train_loss", "verdict"] == "not informative"   # a steady fall in decades: a clock


def test_too_few_events_is_not_determined(sweep):
    small = information_sweep(cells=(2000.0,), seeds=range(6))[0]
    t = information(small, measures=["anticipating"], n_boot=100, n_perm=100).table.set_index("measure")
    assert (t["verdict"] == "not determined").all()
    assert "fewer than 10" in t.loc["anticipating", "reason"]


def test_within_cell_spearman_ignores_the_config():
    """Across cells the two variables move together (the config), within cells they are unrelated: 0."""
    cells = np.repeat(["a", "b"], 4)
    x = np.r_[1, 2, 3, 4, 101, 102, 103, 104]
    y = np.r_[10, 10, 10, 10, 50, 50, 50, 50] + np.r_[1, 0, 1, 0, 0, 1, 0, 1] * 0.1
    assert abs(within_cell_spearman(x, y, cells)) < 0.5
    assert within_cell_spearman(x, x ** 2, cells) == pytest.approx(1.0)
    assert within_cell_spearman(x, -x, cells) == pytest.approx(-1.0)
    # censored (inf) ties sit above every observed value
    assert within_cell_spearman([1, 2, 3, 4], [5, 6, math.inf, math.inf], ["c"] * 4) > 0.8


def test_the_survival_rows_never_read_the_future(sweep):
    """Covariates of an interval are the value at the last checkpoint at or before its start: truncating the
    results after any step leaves every earlier row unchanged."""
    ev = events(sweep)
    cp = counting_process(sweep, ev, {"anticipating": "anticipating", "train_loss": "train_loss"})
    cut = 1200
    short = type(sweep)(sweep.results[sweep.results["step"] <= cut], sweep.summary, sweep.axes, None, sweep.meta)
    cp2 = counting_process(short, ev, {"anticipating": "anticipating", "train_loss": "train_loss"})
    a = cp[cp["start"] < cut].set_index(["run", "start"])["anticipating"]
    b = cp2.set_index(["run", "start"])["anticipating"].reindex(a.index)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    one = cp[cp["run"] == cp["run"].iloc[0]]
    assert one["status"].sum() <= 1 and (one["stop"] > one["start"]).all()


def test_a_copy_of_test_loss_adds_nothing_and_an_anticipating_measure_adds(pred):
    t = pred.table.set_index(["T", "claim", "forecaster"])
    copy = t.loc[(500, "b", "test_loss_copy")]
    assert copy["verdict"] == "adds nothing within the margin" and copy["ratio_low"] > 1 - pred.margin
    assert t.loc[(1000, "b", "anticipating"), "verdict"] == "adds to test loss + clock"
    # claim (a): test loss predicts t90 from the past; the clock-like measure does no better than the config
    assert t.loc[(500, "a", "test_loss"), "verdict"] == "predictable from the past"
    assert t.loc[(500, "a", "clock_like"), "verdict"] == "no better than the config within the margin"
    # every look time and every measure is in the table
    assert {500, 1000} == set(pred.table["T"])
    assert set(pred.table[pred.table["claim"] == "b"]["forecaster"]) == set(MEASURES)


def test_forecasts_read_only_the_past(sweep):
    """Truncating every run after the look time leaves every forecast unchanged."""
    T = 1000
    short = type(sweep)(sweep.results[sweep.results["step"] <= T], sweep.summary, sweep.axes, None, sweep.meta)
    a = predictability(sweep, look_times=(T,), measures=["anticipating"], n_boot=100).per_run
    b = predictability(short, look_times=(T,), measures=["anticipating"], n_boot=100).per_run
    np.testing.assert_array_equal(a["forecast"].to_numpy(), b["forecast"].to_numpy())


def test_seeds_needed_follows_the_standard_error_and_the_protocol_states_it():
    import math
    from pathlib import Path

    from interp.emergence.power import se_from_interval, seeds_needed

    assert seeds_needed(0.2, 6, 0.5) < seeds_needed(0.2, 6, 0.25) < seeds_needed(0.4, 6, 0.25)
    assert se_from_interval(1.0, 3.0) == pytest.approx(2.0 / (2 * 1.959964), rel=1e-5)
    assert se_from_interval(0.5, 2.0, log=True) == pytest.approx(math.log(4) / (2 * 1.959964), rel=1e-5)
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "emergence-protocol.md").read_text()
    # the table of v2 §6: standard error at 6 seeds -> seeds per cell, as stated
    assert "| 0.134 (median over measures, dense) | 0.5 | 4 |" in protocol and seeds_needed(0.134175, 6, 0.5) == 4
    assert "| 0.15 | 27 at the shipped 8 cells (216 runs) |" in protocol and seeds_needed(0.113256, 6, 0.15) == 27
    assert "| 1.5x | 18 |" in protocol and seeds_needed(0.246486, 6, math.log(1.5)) == 18


def test_the_gap_test_tells_two_groups_of_runs_from_one():
    from interp.emergence.bimodality import gap_test

    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(-20, 1, 12), rng.normal(-0.1, 0.05, 12)]   # each run jumped, or did not
    one = rng.normal(-10, 3, 30)                                          # every run shifted a little
    assert gap_test(two)[2] == "each run jumps"
    assert gap_test(one)[2] == "no second mode"
    assert gap_test(one[:10])[2] == "not determined"   # too few runs to call a single mode
    assert gap_test([1.0, 2.0])[2] == "not determined"


def _stopped(tables):
    """The sweep as the stop rule would have left it: each run that reached t99 ends 1,000 steps later (at the
    next checkpoint; its last checkpoint and summary budget too), with the rule and n_steps in the spec, as in a
    v2 sweep.json."""
    from interp.sweep.tables import SweepTables

    s = tables.summary.copy()
    end = (np.ceil((s["t99"] + 1000) / 50) * 50).clip(upper=6000).fillna(6000.0).set_axis(s["run"])  # a checkpoint
    r = tables.results[tables.results["step"] <= tables.results["run"].map(end)]
    s["budget"] = s["run"].map(r.groupby("run")["step"].max()).astype(float)
    spec = {"sweep": {"n_steps": 6000}, "base": {"stop_test_acc": 0.99, "stop_after_steps": 1000}}
    return SweepTables(r.reset_index(drop=True), s, tables.axes, None, {"axes": tables.axes, "spec": spec})


def test_the_clock_stays_outcome_blind_when_the_stop_rule_ends_runs(sweep, info):
    """A run the stop rule ended at t99 + 1,000 keeps its budget of 6,000: the clock's transition
    (t_mem + q (B - t_mem)) would otherwise be read off the step the outcome stopped it at, and the clock would
    carry information about t90 by construction (within-cell rho near 1)."""
    stopped = _stopped(sweep)
    assert (stopped.summary["budget"] < 6000).sum() > 30      # most runs were ended by the rule
    assert (events(stopped)["budget"] == 6000).all()            # ... and keep the budget they were given
    t = information(stopped, measures=["anticipating", "clock_like"], n_boot=200, n_perm=200)
    clock = t.per_run[t.per_run["measure"] == "clock"].set_index("run")["t_q"]
    full = info.per_run[info.per_run["measure"] == "clock"].set_index("run")["t_q"]
    assert np.allclose(clock.sort_index(), full.reindex(clock.index).sort_index())
    v = t.table.set_index("measure")
    assert v.loc["clock", "verdict"] == info.table.set_index("measure").loc["clock", "verdict"] != "informative"
    assert v.loc["anticipating", "verdict"] == "informative"
    # what the stop step would have given the clock: its outcome, read back
    ev = events(stopped).set_index("run")
    leak = ev["t_mem"] + 0.25 * (stopped.summary.set_index("run")["budget"] - ev["t_mem"])
    ok = ev["t90"].notna()
    assert np.corrcoef(leak[ok], ev.loc[ok, "t90"])[0, 1] > 0.9
