"""`interp sweep-llc`: the LLC on every checkpoint of some of a sweep's runs, as tables the emergence analysis reads;
the same numbers as probes.llc on each checkpoint, resumable after a kill, and refusing what it cannot do."""

import os
import shutil
import signal
import time

import pandas as pd
import pytest

pytest.importorskip("devinterp")

from interp import Run, probes  # noqa: E402
from interp.errors import ConfigError, RunFormatError  # noqa: E402
from interp.probes.learning_coefficient import LLC_COLUMNS  # noqa: E402
from interp.sweep.llc import parse_select, sweep_llc  # noqa: E402
from interp.sweep.tables import load_sweep  # noqa: E402
from tests.sweep.sweep_helpers import cli, start_cli  # noqa: E402

FAST = probes.LLCSettings(chains=2, draws=8, batch_size=64)
FAST_FLAGS = ["--chains", "2", "--draws", "8", "--batch-size", "64"]


@pytest.fixture(scope="module")
def measured(reference_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("llc") / "half"
    return sweep_llc(reference_sweep.path, out, {"frac_train": [0.5]}, FAST, log=None)


def test_the_selected_runs_rows_come_back_with_the_llc_of_each_checkpoint(reference_sweep, measured):
    src = load_sweep(reference_sweep.path).results
    got = measured.results
    assert sorted(got.run.unique()) == ["frac_train=0.5,seed=0", "frac_train=0.5,seed=1"]
    want = src[src.run.isin(got.run.unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[list(src.columns)].reset_index(drop=True), want, check_dtype=False)
    assert got[list(LLC_COLUMNS)].notna().all().all()
    # an independent estimate of two rows with probes.llc on the checkpoint itself
    for i in (0, len(got) - 1):
        row = got.iloc[i]
        run = Run(reference_sweep.path / "runs" / row.run)
        r = probes.llc(run.load(int(row.step)), run.task, FAST, warn=False)
        assert row.llc == pytest.approx(r.estimate, rel=1e-6)
        assert row.llc_std == pytest.approx(r.std, rel=1e-5)
    assert set(measured.summary.run) == set(got.run)
    assert measured.axes == load_sweep(reference_sweep.path).axes
    rec = measured.meta
    assert rec["llc"]["settings"] == FAST.to_dict() and rec["source"]["select"] == {"frac_train": [0.5]}
    assert rec["state"] == "complete"


def test_every_nth_checkpoint_keeps_the_first_and_last_and_leaves_the_rest_empty(reference_sweep, measured, tmp_path):
    from interp.sweep.llc import _every

    assert _every([0, 50, 100, 150, 200], 2) == [0, 100, 200] and _every([0, 50, 100, 150], 2) == [0, 100, 150]
    assert _every([0, 50, 100], 1) == [0, 50, 100]
    sparse = sweep_llc(reference_sweep.path, tmp_path / "sparse", {"frac_train": [0.5]}, FAST, every=3, log=None)
    for run, rows in sparse.results.groupby("run"):
        steps = sorted(rows.step)
        have = rows.set_index("step").llc
        assert [s for s in steps if have.notna()[s]] == _every(steps, 3)
        # the rows measured are the same numbers as in the full table (same settings, same seed)
        full = measured.results[measured.results.run == run].set_index("step").llc
        kept = have.dropna()
        assert kept.to_numpy() == pytest.approx(full[kept.index].to_numpy(), rel=1e-6)
    assert sparse.meta["every"] == 3
    with pytest.raises(ConfigError, match="every 3 checkpoint"):
        sweep_llc(reference_sweep.path, tmp_path / "sparse", {"frac_train": [0.5]}, FAST, every=2, log=None)
    with pytest.raises(ConfigError, match="--every must be an integer >= 1"):
        sweep_llc(reference_sweep.path, tmp_path / "x", {"frac_train": [0.5]}, FAST, every=0, log=None)


def test_the_emergence_analysis_takes_the_llc_as_one_more_candidate(measured):
    from interp.emergence.leads import transition_steps

    steps = transition_steps(measured)
    assert "llc" in set(steps["metric"])
    assert set(steps.loc[steps.metric == "llc", "run"]) <= set(measured.results.run)


def _children(pid: int) -> list[int]:
    from pathlib import Path

    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.ci
def test_a_rerun_keeps_what_was_measured_and_a_kill_loses_nothing(reference_sweep, tmp_path):
    out = tmp_path / "killed"
    proc = start_cli("sweep-llc", str(reference_sweep.path), "--out", str(out), "--select", "frac_train=0.6",
                     "--workers", "2", *FAST_FLAGS)
    cache = out / "llc" / "frac_train=0.6,seed=0.csv"
    deadline = time.time() + 240
    while not cache.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert cache.exists(), proc.stderr.read() if proc.poll() is not None else "no cache after 240 s"
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # the workers die with the command: nothing keeps writing into its directory
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert workers and not any(_alive(w) for w in workers)
    assert not (out / "results.csv").exists()
    kept = pd.read_csv(cache)
    assert 1 <= len(kept) and kept.llc.notna().all()
    # a value kept from before the kill is used, not computed again (marked so that it shows)
    kept.loc[0, "llc"] = 12345.0
    kept.to_csv(cache, index=False)
    done = cli("sweep-llc", str(reference_sweep.path), "--out", str(out), "--select", "frac_train=0.6", *FAST_FLAGS)
    assert done.returncode == 0, done.stderr
    got = load_sweep(out).results.set_index(["run", "step"])
    assert got.loc[("frac_train=0.6,seed=0", int(kept.step[0])), "llc"] == 12345.0
    fresh = sweep_llc(reference_sweep.path, tmp_path / "whole", {"frac_train": [0.6]}, FAST, log=None)
    other = fresh.results.set_index(["run", "step"]).drop(index=("frac_train=0.6,seed=0", int(kept.step[0])))
    assert got.loc[other.index, "llc"].to_numpy() == pytest.approx(other.llc.to_numpy(), rel=1e-6)


def test_what_cannot_be_done_is_refused_in_one_line(reference_sweep, measured, tmp_path):
    src = reference_sweep.path
    with pytest.raises(ConfigError, match="not a field of this sweep; its fields: .*frac_train"):
        sweep_llc(src, tmp_path / "a", {"width": [1]}, FAST, log=None)
    with pytest.raises(ConfigError, match="no finished run of the sweep matches"):
        sweep_llc(src, tmp_path / "b", {"frac_train": [0.9]}, FAST, log=None)
    with pytest.raises(ConfigError, match="holds the LLC of .* choose another --out"):
        sweep_llc(src, measured.path, {"frac_train": [0.5]}, probes.LLCSettings(draws=9), log=None)
    tables_only = tmp_path / "tables-only"
    tables_only.mkdir()
    for name in ("results.csv", "summary.csv", "sweep.json"):
        shutil.copy(src / name, tables_only / name)
    with pytest.raises(RunFormatError, match="the run directory is not here"):
        sweep_llc(tables_only, tmp_path / "c", {"frac_train": [0.5]}, FAST, log=None)
    assert not (tmp_path / "c").exists()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an LLC sweep"):
        sweep_llc(src, tmp_path / "d", {"frac_train": [0.5]}, FAST, log=None)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="expected FIELD=V1,V2"):
        parse_select(["frac_train"])
    r = cli("sweep-llc", str(src), "--out", str(tmp_path / "e"), "--select", "nope=1")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "not a field of this sweep" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
