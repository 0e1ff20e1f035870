"""A local sweep end to end on `tiny`: run directories, the tidy tables, bit-identity with `interp train`."""

import json

import pandas as pd
import pytest
import torch

from interp import Run, probes, sweep
from interp.errors import ConfigError
from tests.sweep.sweep_helpers import TINY_NAMES, TINY_SPEC

SUMMARY = ["run", "frac_train", "data_seed", "model_seed", "status", "error", "grokked", "step_test_loss_below_1",
           "step_test_acc_0_99", "memorisation_end", "circuit_formation_end", "cleanup_end", "key_frequencies",
           "budget", "t_mem", "t50", "t90", "t99", "not_applicable", "layer"]


def test_every_run_is_an_ordinary_complete_run(reference_sweep):
    s = reference_sweep
    assert s.statuses == {n: "complete" for n in TINY_NAMES}
    assert s.axes == ["frac_train", "data_seed", "model_seed"]
    expanded = dict(sweep.SweepSpec.from_dict(TINY_SPEC).expand())
    for name in TINY_NAMES:
        run = Run(s.path / "runs" / name)
        assert run.config == expanded[name]
        assert run.steps == [0, 50, 100, 150, 200]
        assert run.meta["status"]["state"] == "complete"
        # the measures beside it are measure_run's on its checkpoints
        m = pd.read_csv(run.path / "measures" / "measures.csv")
        assert list(m["step"]) == run.steps
    # each run's cost is recorded as wall time and as its process's CPU time (1 thread: at most the wall time,
    # give or take the clock's resolution), so a sweep on a busy machine still says what it cost
    from interp.sweep.state import read_sweep_json

    for name, rec in read_sweep_json(s.path)["runs"].items():
        assert 0 < rec["cpu_seconds"] <= rec["seconds"] * 1.1 + 0.05, (name, rec)


def test_results_table_is_tidy(reference_sweep):
    s = reference_sweep
    r = s.results
    assert len(r) == 4 * 5  # run x checkpoint
    assert list(r.columns[:5]) == ["run", "frac_train", "data_seed", "model_seed", "step"]
    measured = probes.measure_run(Run(s.path / "runs" / TINY_NAMES[3]), progress=False)
    measured = getattr(measured, "df", measured)
    # every measure column of measure_run (plus the probabilities of the correct class) is there
    assert set(measured.columns) - {"step"} <= set(r.columns)
    assert {"test_prob_correct", "test_brier"} <= set(r.columns)
    for name, cfg in sweep.SweepSpec.from_dict(TINY_SPEC).expand():
        rows = r[r["run"] == name]
        assert list(rows["step"]) == [0, 50, 100, 150, 200]
        assert (rows["frac_train"] == cfg.frac_train).all() and (rows["data_seed"] == cfg.data_seed).all()
        metrics = Run(s.path / "runs" / name).metrics.set_index("step")
        # the table's losses are the checkpoints' own: they match the per-step training log
        assert rows["test_loss"].to_numpy() == pytest.approx(metrics.loc[rows["step"], "test_loss"].to_numpy(),
                                                              rel=1e-5)
    # the rows of one run equal measure_run on that run (key-frequency columns of other runs empty)
    mine = r[r["run"] == TINY_NAMES[3]].reset_index(drop=True)
    for col in measured.columns:
        assert mine[col].to_numpy() == pytest.approx(measured[col].to_numpy(), nan_ok=True), col
    # probabilities: a mean probability of the right class, and a Brier score in [0, 2]
    assert r["test_prob_correct"].between(0, 1).all() and r["test_brier"].between(0, 2).all()
    assert (r["test_prob_correct"] >= 1 - r["test_brier"] / 1 - 1).all()
    # what is on disk is what load() gives
    on_disk = pd.read_csv(s.path / "results.csv")
    pd.testing.assert_frame_equal(on_disk, r, check_dtype=False)


def test_summary_table_one_row_per_run(reference_sweep):
    s = reference_sweep
    summ = s.summary
    assert list(summ.columns) == SUMMARY
    assert list(summ["run"]) == TINY_NAMES and (summ["status"] == "complete").all()
    for _, row in summ.iterrows():
        run = Run(s.path / "runs" / row["run"])
        m = run.metrics
        below = m[m["test_loss"] < 1]["step"]
        assert (pd.isna(row["step_test_loss_below_1"]) if below.empty
                else row["step_test_loss_below_1"] == below.iloc[0])
        freqs = json.loads((run.path / "measures" / "measures.json").read_text())["key_frequencies"]
        assert (row["key_frequencies"] or "") == " ".join(map(str, freqs))
        assert row["grokked"] == probes.phases(pd.read_csv(run.path / "measures" / "measures.csv")).grokked
        assert row["budget"] == m["step"].iloc[-1] == 200
        for event, col, level in (("t_mem", "train_acc", 0.99), ("t50", "test_acc", 0.5), ("t90", "test_acc", 0.9),
                                  ("t99", "test_acc", 0.99)):
            hit = m[m[col] >= level]["step"]  # right-censored (empty) when never reached
            assert pd.isna(row[event]) if hit.empty else row[event] == hit.iloc[0]
    assert summ["t_mem"].notna().all()  # tiny memorises within 200 steps
    on_disk = pd.read_csv(s.path / "summary.csv")
    assert list(on_disk.columns) == SUMMARY and len(on_disk) == 4
    sj = json.loads((s.path / "sweep.json").read_text())
    assert sj["axes"] == s.axes and sj["spec"] == sweep.SweepSpec.from_dict(TINY_SPEC).to_dict()
    assert {n: r["status"] for n, r in sj["runs"].items()} == s.statuses
    prov = sj["provenance"]
    assert prov["versions"]["torch"] in (torch.__version__, torch.__version__.split("+")[0])
    assert prov["cpu"] and prov["platform"] and prov["threads_per_worker"] == 1


def test_top_k_gives_every_run_key_frequencies_and_causal_columns(tmp_path):
    from interp.config import preset
    from interp.sweep.worker import run_job

    job = {"name": "t", "config": preset("tiny", n_steps=40, save_every=20).to_dict(), "measures": "all", "top_k": 3}
    result = run_job(job, tmp_path / "t", threads=1)
    assert result["status"] == "complete", result["error"]
    m = probes.load_measures(tmp_path / "t" / "measures")
    assert len(m.key_frequencies) == 3 and m.rule == "top3"  # tiny forms no circuit: the fallback holds
    assert m.df[["restricted_loss", "restricted_loss_causal", "excluded_loss_causal"]].notna().all().all()
    with pytest.raises(ConfigError, match="top_k must be a positive integer"):
        sweep.SweepSpec.from_dict({"sweep": {"preset": "tiny", "top_k": 0}}).expand()


def test_a_sweep_run_equals_interp_train_at_the_same_thread_count(reference_sweep, tmp_path):
    from interp.cli import main

    name = "frac_train=0.6,seed=1"  # tiny's own frac_train: `interp train --preset tiny --seed 1`
    # the sweep's workers train with one thread each
    assert main(["train", "--preset", "tiny", "--steps", "200", "--seed", "1", "--quiet", "--threads", "1",
                 "--out", str(tmp_path / "alone")]) == 0
    mine, alone = reference_sweep.path / "runs" / name, tmp_path / "alone"
    assert (mine / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    assert (mine / "split.json").read_bytes() == (alone / "split.json").read_bytes()
    ckpts = sorted(p.name for p in alone.glob("step_*.safetensors"))
    assert ckpts == sorted(p.name for p in mine.glob("step_*.safetensors")) and len(ckpts) == 5
    for c in ckpts:
        assert (mine / c).read_bytes() == (alone / c).read_bytes(), c


def test_a_finished_sweep_is_not_restarted_and_resume_trains_nothing(reference_sweep):
    s = reference_sweep
    with pytest.raises(ConfigError, match="already holds a sweep"):
        sweep.run(TINY_SPEC, s.path, progress=False)
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (s.path / "runs").rglob("*") if p.is_file()}
    again = sweep.run(None, s.path, resume=True, progress=False)  # the recorded spec
    assert again.statuses == s.statuses
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == files
    pd.testing.assert_frame_equal(again.results, s.results)
    changed = dict(TINY_SPEC, sweep={**TINY_SPEC["sweep"], "n_steps": 300})
    with pytest.raises(ConfigError, match=r"different spec \(tables \['sweep'\]"):
        sweep.run(changed, s.path, resume=True, progress=False)
    with pytest.raises(ConfigError, match="--threads 2: this sweep was started with 1"):
        sweep.run(None, s.path, resume=True, threads=2, progress=False)


def test_out_must_be_new_or_a_sweep(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty"):
        sweep.run(TINY_SPEC, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="no sweep to resume"):
        sweep.run(TINY_SPEC, tmp_path / "new", resume=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing created, not even a lock
