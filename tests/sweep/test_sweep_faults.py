"""Fault tolerance: SIGKILL the sweep and resume it; one run diverging and one worker dying while others finish."""

import json
import os
import signal

import pandas as pd
import psutil
import pytest

from interp import sweep
from interp.errors import RunLockedError
from tests.sweep.sweep_helpers import TINY_NAMES, TINY_TOML, cli, start_cli, sweep_statuses, wait_until


def _metric_rows(run_dir) -> int:
    try:
        return len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def _lock_pid(run_dir) -> int | None:
    try:
        text = (run_dir / ".lock").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


@pytest.mark.ci
def test_sigkill_the_sweep_then_resume(tmp_path, reference_sweep):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_TOML)
    out = tmp_path / "killed"
    proc = start_cli("sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet")

    def mid_sweep():
        st = sweep_statuses(out)
        done = [n for n, s in st.items() if s == "complete"]
        # past its step-50 save and short of its last step (steps 0-200 make 201 rows)
        midway = [n for n, s in st.items() if s == "running" and 50 < _metric_rows(out / "runs" / n) < 201]
        return (done, midway) if done and midway else None

    def frozen_mid_sweep():
        # The sweep and its workers are stopped (SIGSTOP) before the state is read, so a run seen midway cannot
        # finish between that reading and the kill; if the moment has passed, they go on and we look again.
        if not mid_sweep():
            return None
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for p in tree:
            p.suspend()
        state = mid_sweep()
        if state is None:
            for p in tree:
                p.resume()
        return state

    wait_until(lambda: "running" in sweep_statuses(out).values(), what="the sweep to start", proc=proc)
    # while it runs, a second sweep on the directory is refused
    with pytest.raises(RunLockedError, match="a sweep is already running in this directory"):
        sweep.run(None, out, resume=True, progress=False)
    done, midway = wait_until(frozen_mid_sweep, what="one run complete and another past its step-50 save", proc=proc)
    proc.send_signal(signal.SIGKILL)  # a stopped process is killed all the same; the workers die with it
    workers = {p for n in TINY_NAMES if (p := _lock_pid(out / "runs" / n)) is not None}
    proc.wait()
    # its worker processes die with it (they would otherwise keep writing into the runs)
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                               for p in workers), timeout=300, what="the workers to exit")
    # a killed sweep reads as far as it got
    partial = sweep.load(out)
    assert set(done) <= {n for n, s in partial.statuses.items() if s == "complete"}
    assert all(partial.statuses[n] == "pending" for n in midway)  # was running: --resume continues it
    assert sum(s == "complete" for s in partial.statuses.values()) < 4
    assert set(partial.results["run"]) == {n for n, s in partial.statuses.items() if s == "complete"}

    finished = {n: {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "runs" / n).rglob("*") if p.is_file()}
                for n, s in partial.statuses.items() if s == "complete"}
    r = cli("sweep", "--resume", "--out", str(out), "--quiet", "--workers", "1")  # the recorded spec
    assert r.returncode == 0, r.stderr
    assert "4 runs: 4 complete" in r.stdout
    for n, files in finished.items():  # nothing that had finished was retrained or rewritten
        assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == files, n
    # and the result is the uninterrupted sweep's, bit for bit
    ref = reference_sweep.path
    for n in TINY_NAMES:
        for f in sorted((ref / "runs" / n).glob("step_*.safetensors")) + [ref / "runs" / n / "metrics.csv"]:
            assert (out / "runs" / n / f.name).read_bytes() == f.read_bytes(), (n, f.name)
    assert (out / "results.csv").read_bytes() == (ref / "results.csv").read_bytes()
    pd.testing.assert_frame_equal(sweep.load(out).summary, reference_sweep.summary)


FAULTY_TOML = """\
[sweep]
preset = "tiny"
save_every = 50
measures = "none"             # training metrics at each checkpoint only

[[zip]]
lr = [0.003, 0.003, 10.0]     # lr 10 diverges within a few steps
n_steps = [100, 5000, 100]    # the long one is killed as soon as it trains
"""
OK, KILLED, DIVERGED = "lr=0.003,n_steps=100", "lr=0.003,n_steps=5000", "lr=10,n_steps=100"


def test_failing_runs_are_recorded_while_the_others_finish(tmp_path):
    spec = tmp_path / "faulty.toml"
    spec.write_text(FAULTY_TOML)
    out = tmp_path / "faulty"
    proc = start_cli("sweep", str(spec), "--out", str(out), "--workers", "2")
    pid = wait_until(lambda: sweep_statuses(out).get(KILLED) == "running" and _metric_rows(out / "runs" / KILLED) > 0
                     and _lock_pid(out / "runs" / KILLED), what="the long run to train", proc=proc)
    os.kill(pid, signal.SIGKILL)  # its worker process dies mid-run
    stdout, stderr = proc.communicate()
    assert proc.returncode == 1, stderr
    assert "3 runs: 1 complete, 2 failed" in stdout
    assert f"run {KILLED} failed: worker process died (SIGKILL)" in stderr
    assert f"run {DIVERGED} failed: training diverged at step" in stderr

    s = sweep.load(out)
    assert s.statuses == {OK: "complete", KILLED: "failed", DIVERGED: "failed"}
    summ = s.summary.set_index("run")
    assert "worker process died" in summ.loc[KILLED, "error"] and "train loss is nan" in summ.loc[DIVERGED, "error"]
    assert pd.isna(summ.loc[OK, "error"])
    assert set(s.results["run"]) == {OK} and list(s.results["step"]) == [0, 50, 100]
    # measures = "none": the run's own training metrics at its checkpoints, nothing else
    assert list(s.results.columns) == ["run", "lr", "n_steps", "step", "train_loss", "train_acc", "test_loss",
                                       "test_acc"]
    metrics = s.run(OK).metrics.set_index("step").loc[[0, 50, 100]]
    assert s.results["test_loss"].tolist() == metrics["test_loss"].tolist()
    recorded = json.loads((out / "sweep.json").read_text())["runs"]
    assert recorded[KILLED]["status"] == "failed" and "SIGKILL" in recorded[KILLED]["error"]
    on_disk = pd.read_csv(out / "summary.csv").set_index("run")
    assert list(on_disk["status"]) == ["complete", "failed", "failed"]
    assert "diverged" in on_disk.loc[DIVERGED, "error"]


def test_sweep_dir_that_is_not_a_sweep_gives_one_clear_error(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(Exception, match="sweep.json: malformed JSON"):
        sweep.load(tmp_path)
    from interp.cli import main

    assert main(["sweep", "--resume", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.json: malformed JSON" in err
