"""No command overwrites what it did not make; the recorded state is true (the lock, status, snapshots, hints)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from interp import probes
from interp.cli import main
from interp.config import preset
from interp.errors import ConfigError, RunFormatError, RunLockedError
from interp.runs import Run, RunLock
from interp.sweep import driver
from interp.sweep.worker import disk_state
from interp.train import train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SWEEP = ROOT / "sweeps" / "emergence-small"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs (a and b, different seeds), 60 steps, measured into measures/a and measures/b."""
    root = tmp_path_factory.mktemp("owned")
    runs = {}
    for name, seed in (("a", 0), ("b", 1)):
        runs[name] = train(preset("tiny", n_steps=60, save_every=20, data_seed=seed, model_seed=seed),
                           root / "runs" / name, progress=False)
        probes.save_measures(probes.measure_run(runs[name], key_freqs=[1, 2], progress=False), root / "m" / name)
    return root, runs


def _bytes(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()}


def test_measure_refuses_to_overwrite_another_runs_measures(two_runs, capsys):
    root, runs = two_runs
    before = _bytes(root / "m" / "a")
    assert main(["measure", str(runs["b"].path), "--out", str(root / "m" / "a"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert runs["a"].run_id in err and runs["b"].run_id in err and "nothing was written" in err
    assert _bytes(root / "m" / "a") == before


def test_measures_of_the_same_run_and_protocol_are_kept_unless_recompute(two_runs, tmp_path, capsys):
    root, runs = two_runs
    out = tmp_path / "m"
    shutil.copytree(root / "m" / "a", out)
    before = _bytes(out)
    assert main(["measure", str(runs["a"].path), "--out", str(out), "--key-freqs", "1,2", "--quiet"]) == 0
    assert "kept (pass --recompute" in capsys.readouterr().out
    assert _bytes(out) == before
    os.utime(out / "measures.csv", (0, 0))
    assert main(["measure", str(runs["a"].path), "--out", str(out), "--key-freqs", "1,2", "--recompute",
                 "--quiet"]) == 0
    assert (out / "measures.csv").stat().st_mtime > 0  # rewritten


def test_report_refuses_another_runs_report(two_runs, tmp_path, capsys):
    root, runs = two_runs
    r = tmp_path / "report"
    r.mkdir()
    (r / ".interp-report").write_text(json.dumps({"run_id": runs["a"].run_id, "path": str(runs["a"].path)}))
    (r / "index.html").write_text("a's page")
    assert main(["report", str(runs["b"].path), "--out", str(r), "--measures", str(root / "m" / "b")]) == 1
    err = capsys.readouterr().err
    assert runs["a"].run_id in err and str(runs["b"].path) in err
    assert (r / "index.html").read_text() == "a's page"


def test_resume_of_a_tables_only_sweep_is_refused_with_the_regenerate_command(tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(SHIPPED_SWEEP, copy)
    before = _bytes(copy)
    assert main(["sweep", "--resume", "--out", str(copy), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "36 of 36 runs recorded complete have no run directory" in err
    assert f"interp sweep {copy / 'sweep.json'} --out NEW_DIR" in err
    assert _bytes(copy) == before and not (copy / "runs").exists()


def test_a_sweep_run_directory_linking_outside_the_sweep_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    data = json.loads((SHIPPED_SWEEP / "sweep.json").read_text())
    for r in data["runs"].values():
        r["status"] = "pending"
    (sweep / "sweep.json").write_text(json.dumps(data))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (sweep / "runs").mkdir()
    name = next(iter(data["runs"]))
    (sweep / "runs" / name).symlink_to(outside)
    with pytest.raises(ConfigError, match="symbolic link .* outside the sweep directory"):
        driver.run(None, sweep, resume=True, progress=False)
    assert list(outside.iterdir()) == []


# -- the recorded state is true ------------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(two_runs):
    run_dir = two_runs[1]["a"].path
    held = RunLock(run_dir).acquire()
    try:
        os.unlink(run_dir / ".lock")
        with pytest.raises(RunLockedError, match="in use"):
            RunLock(run_dir).acquire()
        assert RunLock(run_dir).held_elsewhere()
    finally:
        held.release()
    RunLock(run_dir).acquire().release()  # free again once the holder lets go


def test_status_step_is_the_last_saved_step_while_training(tmp_path):
    seen = {}

    def on_step(step, row):
        if step in (75, 130):
            seen[step] = json.loads((tmp_path / "run" / "run.json").read_text())["status"]["step"]

    train(preset("tiny", n_steps=140, save_every=50), tmp_path / "run", progress=False, on_step=on_step)
    assert seen == {75: 50, 130: 100}


def test_a_snapshot_keeps_one_checkpoint_list(two_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_runs[1]["a"].path, run_dir)
    snap = Run(run_dir).snapshot()
    train(None, run_dir, resume=True, n_steps=100, progress=False)  # the run moves on under the snapshot
    assert Run(run_dir).final_step == 100
    assert snap.final_step == 60 and snap.steps == [0, 20, 40, 60] and snap.metrics["step"].max() == 60
    m = probes.measure_run(snap, key_freqs=[1], progress=False)
    assert m.steps == [0, 20, 40, 60] and m.run["last_step"] == 60


def test_measures_of_an_older_state_of_the_run_are_out_of_date_not_foreign(two_runs, tmp_path):
    root, runs = two_runs
    run_dir = tmp_path / "run"
    shutil.copytree(runs["a"].path, run_dir)
    train(None, run_dir, resume=True, n_steps=80, progress=False)
    with pytest.raises(RunFormatError, match="out of date.*--recompute") as e:
        probes.find_measures(Run(run_dir), [root / "m" / "a"])
    assert "not this run's" not in str(e.value)
    with pytest.raises(RunFormatError, match="not this run's"):
        probes.find_measures(runs["b"], [root / "m" / "a"])


def test_ctrl_c_of_a_sweep_prints_its_resume_command(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run", interrupted)
    assert main(["sweep", "spec.toml", "--out", str(tmp_path / "s"), "--workers", "2"]) == 130
    assert f"interp sweep --resume --out {tmp_path / 's'} --workers 2" in capsys.readouterr().err


def test_the_sweep_worker_reads_a_runs_state_through_interp_runs(two_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_runs[1]["a"].path, run_dir)
    assert disk_state(run_dir) == "measure"
    meta = json.loads((run_dir / "run.json").read_text())
    meta["hooked_transformer_config"]["act_fn"] = "gelu"  # complete, but its copies disagree: not usable as is
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert disk_state(run_dir) == "resume"  # handed to train(resume=True), which names the fault


# -- one command per --out; a user's files are not overwritten ---------------------------------------------


def test_a_measure_into_an_out_another_command_holds_is_refused(two_runs, tmp_path, capsys):
    from interp.files import OutputLock

    _root, runs = two_runs
    out = tmp_path / "m"
    with OutputLock(out):  # another `interp measure --out M` (or report) at work
        assert main(["measure", str(runs["a"].path), "--out", str(out), "--key-freqs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"--out {out}: in use by another interp command (pid {os.getpid()})" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["measure", str(runs["a"].path), "--out", str(out), "--key-freqs", "1", "--quiet"]) == 0  # free


def test_a_report_into_an_out_another_report_holds_leaves_its_staging_alone(two_runs, tmp_path, capsys):
    from interp.files import OutputLock

    root, runs = two_runs
    out = tmp_path / "report"
    with OutputLock(out):
        staging = tmp_path / ".report.abc123.staged"  # the holder's report being built
        staging.mkdir()
        (staging / "figure.png").write_bytes(b"half a report")
        assert main(["report", str(runs["b"].path), "--out", str(out), "--measures", str(root / "m" / "b")]) == 1
    assert "in use by another interp command" in capsys.readouterr().err
    assert (staging / "figure.png").read_bytes() == b"half a report" and not out.exists()
    assert not (tmp_path / ".report.lock").exists()  # removed when its holder let go


def test_a_users_own_measures_csv_is_not_overwritten_without_force(two_runs, tmp_path, capsys):
    _root, runs = two_runs
    out = tmp_path / "mine"
    out.mkdir()
    (out / "measures.csv").write_text("step,my_numbers\n0,42\n")
    argv = ["measure", str(runs["a"].path), "--out", str(out), "--key-freqs", "1", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "holds measures.csv, which interp did not write; choose another --out or pass --force" in err
    assert (out / "measures.csv").read_text() == "step,my_numbers\n0,42\n" and not (out / "measures.json").exists()
    assert main(argv + ["--force"]) == 0
    assert probes.load_measures(out).belongs_to(runs["a"])
    assert main(argv) == 0  # interp's own now: measured again or kept without --force
