"""The registered protocol's analysis on synthetic sweeps with a known truth: each verdict flips when the
truth flips; bad input gets one line; nothing reads the future; nothing is divided by a near-zero range."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp import emergence
from interp.emergence import (
    answer,
    events,
    forecast_at,
    forecasts,
    km_median,
    lead_analysis,
    metric_question,
    survival_curves,
    transition_after,
)
from interp.emergence.synthetic import (
    protocol_sweep,
    scale_sweep,
    synthetic_sweep,
    write_sweep,
)
from interp.errors import InterpError
from interp.sweep.tables import SweepTables

ROOT = Path(__file__).resolve().parents[2]
B = 200  # bootstrap resamples in tests (the protocol's 2000 gives the same verdicts, slower)
SLOW = (0.3, 0.31, 0.32, 0.33, 0.35)  # fractions where grokking takes 1,000-6,000 steps: forecastable


@pytest.fixture(scope="module")
def sweep():
    return protocol_sweep(frac_train=SLOW)[0]


@pytest.fixture(scope="module")
def flipped():
    """The same sweep where the 'predictive' measure moves only after the event (lead_frac 1.3)."""
    return protocol_sweep(frac_train=SLOW, lead_frac=1.3)[0]


# ---- events (§2) ----

def test_events_are_read_from_the_summary_and_censored_runs_kept(sweep):
    ev = events(sweep)
    assert len(ev) == 30 and set(ev["event_source"]) == {"summary"}
    slowest = ev[ev["frac_train"] == 0.3]
    assert slowest["t90"].isna().any() and not slowest["t90"].isna().all()  # some censored, none dropped
    assert (ev["t50"].dropna() <= ev.loc[ev["t50"].notna(), "t90"].fillna(np.inf)).all()
    km = emergence.km_medians(ev, "t90").set_index("cell")
    assert km.loc["frac_train=0.3, d_mlp=256", "n_reached"] < 6


def _product_limit(t, o):
    """Kaplan-Meier by its definition, S(t) = prod over event times s <= t of (1 - d_s / n_s): the reference."""
    times = np.unique(t)
    s, out = 1.0, []
    for u in times:
        s *= 1 - np.sum((t == u) & o) / np.sum(t >= u)
        out.append(s)
    return times, np.array(out)


def test_km_median_and_survival_curves_are_the_product_limit_estimate():
    # by hand: censored at 100 and 500; S = 1 (100), 1 - 2/5 = 0.6 (200), 0.6 * (1 - 1/3) = 0.4 (300, 500), 0 (600)
    ev = pd.DataFrame({"cell": "c", "t90": [300, np.nan, 200, 200, np.nan, 600], "budget": [900, 100, 900, 900, 500,
                                                                                           900]})
    curve = survival_curves(ev, "t90")
    assert list(curve["step"]) == [0, 100, 200, 300, 500, 600, 900]
    assert np.allclose(curve["survival"], [1, 1, 0.6, 0.4, 0.4, 0, 0])
    assert km_median([300, 100, 200, 200, 500, 600], [True, False, True, True, False, True]) == 300
    rng = np.random.default_rng(3)
    for _ in range(25):
        n = int(rng.integers(1, 9))
        t = rng.choice(np.arange(1, 10), n).astype(float) * 10  # ties included
        o = rng.random(n) < 0.6
        times, sf = _product_limit(t, o)
        if np.any(np.isclose(sf, 0.5)):
            continue
        below = np.nonzero(sf <= 0.5)[0]
        assert km_median(t, o) == (times[below[0]] if len(below) else math.inf)
    assert math.isinf(km_median([100.0, 200.0], [False, False]))  # every run censored: "> B"


def test_old_tables_derive_events_from_checkpoints_and_say_so():
    results, _ = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0, 1), n_steps=6000, every=200)
    ev = events(results)
    assert set(ev["event_source"]) == {"checkpoints"} and (ev["t_mem"] == 0).all()
    a = answer(results, n_boot=B, budgets=(6000,))
    assert any("coarser resolution" in n for n in a.notes)


def test_runs_without_a_seed_field_are_replicates_numbered_within_their_cell():
    results, _ = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0, 1, 2), n_steps=2000, every=200)
    ev = events(results.drop(columns=["data_seed"]))
    assert sorted(ev.groupby("cell")["seed"].apply(sorted).tolist()) == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize("change,match", [
    (lambda r: r.drop(columns=["train_acc"]), "no column 'train_acc'"),
])
def test_bad_event_input_is_one_line(change, match):
    results, _ = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0, 1), n_steps=2000, every=200)
    with pytest.raises(InterpError, match=match) as e:
        events(change(results))
    assert "\n" not in str(e.value)


# ---- transitions (§3) ----

def test_transition_after_t_mem_finds_the_quantiles_of_a_known_curve():
    steps = np.arange(0, 6001, 50.0)
    t_mem, mid, width = 100.0, 2000.0, 800.0
    y = 1.0 + 4.0 / (1 + np.exp(-(steps - mid) * 2 * math.log(9) / width))  # rises 1 -> 5 after t_mem
    tq, why = transition_after(steps, y, t_mem, "linear")
    assert why == ""
    for q, t in tq.items():  # inverse of the logistic, relative to its value at t_mem (about 1)
        y0 = y[steps >= t_mem][0]
        level = y0 + q * (5.0 - y0)
        exact = mid + width / (2 * math.log(9)) * math.log((level - 1) / (5 - level))
        assert abs(t - exact) < 50
    flat, why = transition_after(steps, np.full(len(steps), 0.99999), t_mem, "linear")
    assert all(math.isinf(v) for v in flat.values()) and why.startswith("flat")
    _, why = transition_after(steps, y, math.nan, "linear")
    assert why == "never memorised"


# ---- leads (§4) ----

def test_a_measure_that_moves_first_leads_and_every_lead_comes_with_its_controls(sweep, flipped):
    la = lead_analysis(sweep, n_boot=B)
    s = la.summary.set_index("metric")
    assert {"train_loss", "test_loss", "clock"} <= set(s.index)  # the controls, beside the measures
    for m in ("restricted_loss", "gini_W_E", "frac_neurons_clustered"):
        assert {"median_d_train_loss", "d_test_loss_low", "d_clock_high"} <= set(s.loc[m].dropna().index)
    assert s.loc["restricted_loss", "verdict"] == "leads"
    assert s.loc["restricted_loss", "ci_low"] > 0 and s.loc["restricted_loss", "d_test_loss_low"] > 0
    assert s.loc["frac_neurons_clustered", "verdict"].startswith("does not lead")  # moves only after the event
    assert set(la.per_run["metric"]) >= {"clock", "restricted_loss"} and "d_clock" in la.per_run
    # the truth flips: the same measure moving after the event does not lead
    s2 = lead_analysis(flipped, n_boot=B).summary.set_index("metric")
    assert s2.loc["restricted_loss", "verdict"].startswith("does not lead")
    assert s2.loc["restricted_loss", "median_lead"] < 0


def test_a_measure_that_is_a_control_does_not_beat_it():
    tables, _ = protocol_sweep(frac_train=SLOW, seeds=range(4))
    r = tables.results.copy()
    r["restricted_loss"] = r["train_loss"]  # a "measure" that is the train loss: it cannot beat it
    r["excluded_loss"] = r["test_loss"]
    la = lead_analysis(SweepTables(r, tables.summary, tables.axes), n_boot=B)
    s = la.summary.set_index("metric")
    assert s.loc["restricted_loss", "not_beaten"].split() == ["train_loss", "clock"] or \
        "train_loss" in s.loc["restricted_loss", "not_beaten"]
    assert s.loc["restricted_loss", "median_d_train_loss"] == 0
    assert "test_loss" in s.loc["excluded_loss", "not_beaten"]
    assert s.loc["excluded_loss", "verdict"].startswith("does not lead")


# ---- forecasts (§5) ----

def test_a_measure_that_truly_predicts_is_predictive_and_the_verdict_flips_with_the_truth(sweep, flipped):
    v = forecasts(sweep, n_boot=B).verdicts.set_index("measure")
    assert v.loc["restricted_loss", "verdict"].startswith("predictive at T")
    assert v.loc["restricted_loss", "ratio_high"] < 1 and v.loc["restricted_loss", "n_evaluated"] >= 8
    assert not v.loc["frac_neurons_clustered", "verdict"].startswith("predictive")  # moves after the event
    v2 = forecasts(flipped, n_boot=B).verdicts.set_index("measure")
    assert not v2.loc["restricted_loss", "verdict"].startswith("predictive")


def test_no_leakage_truncating_every_run_after_the_look_time_changes_no_forecast(sweep):
    T = 1000
    full = forecast_at(sweep, T)
    cut = SweepTables(sweep.results[sweep.results["step"] <= T], sweep.summary, sweep.axes)
    pd.testing.assert_frame_equal(full, forecast_at(cut, T))
    # the future of the held-out seed (its t90 beyond T, its rows after T) changes none of its forecasts
    r, s = sweep.results.copy(), sweep.summary.copy()
    late = (r["data_seed"] == 2) & (r["step"] > T)
    r.loc[late, ["restricted_loss_causal", "test_loss", "train_loss"]] *= 1e3
    s.loc[(s["data_seed"] == 2) & (s["t90"] > T), "t90"] += 777
    moved = forecast_at(SweepTables(r, s, sweep.axes), T)
    cols = ["run", "measure", "forecast", "p_reach", "baseline"]
    a, b = full[full["seed"] == 2][cols], moved[moved["seed"] == 2][cols]
    assert len(a) > 20
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_forecasts_refuse_when_every_run_is_censored(sweep):
    s = sweep.summary.assign(t90=np.nan)
    with pytest.raises(InterpError, match="every run is censored") as e:
        forecasts(SweepTables(sweep.results, s, sweep.axes), n_boot=B)
    assert "\n" not in str(e.value)


# ---- the metric question (§6) ----

@pytest.mark.parametrize("truth,verdict", [("mirage", "artefact of the metric"), ("real", "real"),
                                           ("none", "no jump")])
def test_the_metric_verdict_follows_the_truth(truth, verdict):
    a = metric_question(scale_sweep(truth), "frac_train", 6000, n_boot=B)
    assert a.verdict == verdict, a.reason
    if truth == "mirage":
        assert a.ratio_low > 2 and a.fits["test_acc"].width < a.fits["test_logp"].width / 2
    if truth == "real":
        assert a.ratio_high < 2 and abs(a.fits["test_acc"].x0 - 0.45) < 0.02


def test_bimodal_cells_are_reported_per_run():
    a = metric_question(scale_sweep("mirage"), "frac_train", 6000, n_boot=B)
    assert len(a.per_run) == 13 * 6  # per-run values, never seed means
    assert {"share_below_0_2", "share_above_0_9", "bimodal"} <= set(a.points.columns)


def test_no_statistic_is_divided_by_a_near_zero_range():
    t = scale_sweep("real")
    r = t.results.copy()
    r.loc[r["step"] > 0, ["test_acc", "test_brier"]] = [0.99999, 1e-5]  # saturated everywhere
    a = metric_question(SweepTables(r, None, t.axes), "frac_train", 6000, n_boot=B)
    assert a.fits["test_acc"].status == "no range to fit" and math.isnan(a.fits["test_acc"].width)
    assert a.verdict == "no jump" and "span" in a.reason and math.isnan(a.ratio)


def test_a_step_between_two_scale_points_is_unresolved_not_a_number():
    t = scale_sweep("real", values=(0.3, 0.4, 0.5, 0.6))
    r = t.results.copy()
    hi = (r["step"] > 0) & (r["frac_train"] >= 0.5)
    lo = (r["step"] > 0) & (r["frac_train"] < 0.5)
    r.loc[hi, "test_acc"], r.loc[lo, "test_acc"] = 1.0, 0.01
    a = metric_question(SweepTables(r, None, t.axes), "frac_train", 6000, n_boot=B)
    assert a.fits["test_acc"].status == "unresolved" and a.verdict == "not determined"


@pytest.mark.parametrize("kw,match", [
    ({"budget": 9000}, "budget 9000: beyond the data"),
    ({"axis": "data_seed"}, "not a varied non-seed field"),
])
def test_bad_metric_question_input_is_one_line(kw, match):
    args = {"axis": "frac_train", "budget": 6000, **kw}
    with pytest.raises(InterpError, match=match) as e:
        metric_question(scale_sweep("real"), args["axis"], args["budget"], n_boot=B)
    assert "\n" not in str(e.value)


def _stop_rule(t: SweepTables, stop_at: int, t99: float | None, rule: bool = True) -> SweepTables:
    """The runs of ``t`` at the high end of the axis end at ``stop_at`` (as the stop rule ends a run 1,000 steps
    after t99), with a summary giving each run's t99 and a spec giving n_steps 6,000 and the stop rule."""
    r = t.results.copy()
    high = r["frac_train"] >= 0.5
    r.loc[high & (r["step"] > 0), "step"] = stop_at
    runs = r.drop_duplicates("run")
    summary = pd.DataFrame({"run": runs["run"], "status": "complete",
                            "t99": np.where(runs["frac_train"] >= 0.5, t99 if t99 is not None else np.nan, np.nan)})
    spec = {"sweep": {"n_steps": 6000}, "base": {"stop_test_acc": 0.99, "stop_after_steps": 1000} if rule else {}}
    return SweepTables(r, summary, t.axes, None, {"axes": t.axes, "spec": spec})


def test_a_run_the_stop_rule_ended_enters_a_later_budget_at_its_last_checkpoint():
    """v2 §4 as amended: a run that reached 0.99 test accuracy and stopped 1,000 steps later stands at its last
    checkpoint at any later budget; the answer reads the headline budget (6,000) although those runs end at
    3,000. The same runs without a t99 (ended early for another reason) are beyond the data at 6,000."""
    t = scale_sweep("real")
    full = metric_question(t, "frac_train", 6000, n_boot=B)
    stopped = _stop_rule(t, 3000, t99=2000.0)
    a = metric_question(stopped, "frac_train", 6000, n_boot=B)
    pr = a.per_run.set_index("run")
    assert set(pr.loc[pr["frac_train"] >= 0.5, "step"]) == {3000} and set(pr.loc[pr["frac_train"] < 0.5, "step"]) == {6000}
    assert a.ratio == pytest.approx(full.ratio) and a.verdict == full.verdict == "real"   # same values, carried
    assert emergence.answer(stopped, n_boot=B).headline_budget == 6000   # not the stopped runs' 3,000
    with pytest.raises(InterpError, match="budget 6000: beyond the data .* end at step 3000"):
        metric_question(_stop_rule(t, 3000, t99=None), "frac_train", 6000, n_boot=B)
    with pytest.raises(InterpError, match="beyond the data"):   # ended before its own t99 + the stop: not the rule
        metric_question(_stop_rule(t, 3000, t99=4000.0), "frac_train", 6000, n_boot=B)
    with pytest.raises(InterpError, match="beyond the data"):   # a sweep without the stop rule: never carried
        metric_question(_stop_rule(t, 3000, t99=2000.0, rule=False), "frac_train", 6000, n_boot=B)


def test_one_scale_value_is_one_line():
    t = scale_sweep("real", values=(0.4,))
    with pytest.raises(InterpError, match="single value") as e:
        metric_question(t, "frac_train", 6000, n_boot=B)
    assert "\n" not in str(e.value)


# ---- the answer, the CLI, the architecture (§7) ----

def test_answer_gives_one_row_per_claim_and_the_cli_prints_it(tmp_path, capsys):
    from interp.cli import main

    tables, _ = protocol_sweep(frac_train=SLOW, seeds=range(4), widths=(128, 512), width_frac=0.33)
    d = tmp_path / "sweep"
    write_sweep(tables, d)
    assert main(["emergence", str(d), "--n-boot", str(B), "--robustness", "--v1", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "== information about t90" in out and "== robustness" in out and "protocol v1's verdict table" in out
    assert "earliness cannot decide" in out
    vt = pd.read_csv(tmp_path / "t" / "verdicts.csv")
    assert set(vt["claim"]) - {"per-run bimodality at step 6000"} == {
        "real or artefact", "information about t90", "(a) predictable from the past at T = 500",
        "(b) beyond test loss + clock at T = 500"}
    assert set(vt.loc[vt["claim"] == "real or artefact", "subject"]) == {"frac_train at step 6000",
                                                                        "d_mlp at step 6000"}
    info = vt[vt["claim"] == "information about t90"].set_index("subject")
    assert {"clock", "train_loss", "test_loss", "restricted_loss"} <= set(info.index)   # controls too
    assert set(info["verdict"]) <= {"informative", "not informative", "not determined"}
    v1 = pd.read_csv(tmp_path / "t" / "verdicts_v1.csv")
    lead = v1[(v1["claim"] == "progress measure leads t90") & (v1["subject"] == "restricted_loss")].iloc[0]
    assert lead["verdict"] == "leads" and "clock" in lead["against"]
    rob = pd.read_csv(tmp_path / "t" / "robustness.csv")
    assert rob["headline"].sum() >= 1 and (~rob["headline"]).sum() > rob["headline"].sum()
    assert "leads" in set(rob["analysis"])   # the earliness leads live here now
    assert {"events.csv", "lead_grid.csv", "forecast_scores.csv", "scale_fits.csv", "information.csv",
            "predictability.csv"} <= {p.name for p in (tmp_path / "t").iterdir()}


def test_the_analysis_never_draws_and_knows_no_cli():
    for f in (ROOT / "interp" / "emergence").glob("*.py"):
        tree = ast.parse(f.read_text())
        mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
               [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        bad = [m for m in mods if m.lstrip(".").startswith(("viz", "cli", "interp.viz", "interp.cli", "matplotlib",
                                                              "argparse", "commands"))]
        assert not bad, (f.name, bad)


def test_the_sweep_tables_have_one_reader():
    """interp.sweep.tables reads results.csv / summary.csv / sweep.json as tables; everything else uses it."""
    import interp.sweep

    assert emergence.load_sweep is interp.sweep.load_sweep
    readers = [f.relative_to(ROOT).as_posix() for f in (ROOT / "interp").rglob("*.py")
               if "read_csv(" in f.read_text() and any(k in f.read_text() for k in
                                                        ("results.csv", "summary.csv", "RESULTS_CSV", "SUMMARY_CSV"))]
    assert readers == ["interp/sweep/tables.py"]


def test_verdicts_over_two_sweeps_and_the_same_machine_reproducibility_check(tmp_path):
    from interp.emergence import same_config_events, verdicts

    dense, _ = protocol_sweep(frac_train=SLOW, seeds=range(4))
    width, _ = protocol_sweep(frac_train=(), widths=(64, 128, 256, 512), width_frac=0.33, seeds=range(4))
    write_sweep(dense, tmp_path / "dense")
    write_sweep(width, tmp_path / "width")
    rep = same_config_events(tmp_path / "dense", tmp_path / "width", {"frac_train": 0.33}, {"d_mlp": 256})
    assert len(rep) == 4 and (rep[["d_t_mem", "d_t90", "d_t99"]] == 0).all().all()  # the same runs, retrained
    width.summary.loc[width.summary["d_mlp"] == 256, "t90"] += 10
    write_sweep(width, tmp_path / "width")
    rep = same_config_events(tmp_path / "dense", tmp_path / "width", {"frac_train": 0.33}, {"d_mlp": 256})
    assert (rep["d_t90"].dropna() == 10).all()
    vt = verdicts(tmp_path / "dense", tmp_path / "width", n_boot=B, budgets=(6000,))
    assert set(vt["sweep"]) == {"dense", "width"}
    assert set(vt.loc[vt["sweep"] == "width", "role"]) == {"headline", "replication"}  # its axis; its leads
    assert set(vt.loc[vt["role"] == "headline", "subject"]) >= {"frac_train at step 6000", "d_mlp at step 6000",
                                                                "restricted_loss"}
    v1 = verdicts(tmp_path / "dense", n_boot=B, budgets=(6000,), version=1)
    assert "progress measure leads t90" in set(v1["claim"])
