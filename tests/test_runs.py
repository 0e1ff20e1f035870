"""The run format (interp.runs): a run knows whether it is finished, and measures know which run they belong to."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from interp import probes
from interp.config import preset
from interp.runs import Run, run_identity
from interp.train import train
from tests.cli_helpers import interp_cli

CLI = [sys.executable, "-m", "interp.cli"]


_cli = interp_cli  # what a command prints and leaves behind; Ctrl-C and kills below start a process of their own


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A finished `tiny` run in <tmp>/proj/runs/tiny and its measures in <tmp>/proj/probes/tiny."""
    root = tmp_path_factory.mktemp("proj")
    run = train(preset("tiny", n_steps=100), root / "runs" / "tiny", progress=False)
    probes.save_measures(probes.measure_run(run, key_freqs=[1, 2], progress=False), root / "probes" / "tiny")
    return run


def test_a_run_records_its_identity_and_state(tiny):
    meta = json.loads((tiny.path / "run.json").read_text())
    assert meta["status"] == {"state": "complete", "step": 100, "n_steps": 100}
    assert tiny.finished and tiny.state == "complete"
    assert meta["run_id"] == run_identity(meta["config"], tiny.task.train_idx.tolist(), meta["created"])
    # the same config trained again is another run: another identity
    other = train(preset("tiny", n_steps=2), tiny.path.parent / "again", progress=False)
    assert other.run_id != tiny.run_id and other.config.replace(n_steps=100) == tiny.config


def test_an_error_during_training_is_recorded_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"

    def boom(step, row):
        if step == 130:
            raise RuntimeError("the user's callback failed")

    with pytest.raises(RuntimeError):
        train(preset("tiny"), out, progress=False, on_step=boom)
    run = Run(out)
    assert run.state == "failed" and not run.finished
    assert run.meta["status"]["step"] == 100  # the last saved step (checkpoint and resume state)
    assert "the user's callback failed" in run.meta["status"]["error"]
    assert "continue it with `interp train --out" in run.describe_state()
    m = probes.measure_run(run, key_freqs=[1], progress=False)
    assert not m.run_finished and m.run["state"] == "failed" and m.run["last_step"] == 100
    resumed = train(None, out, resume=True, progress=False)
    assert resumed.state == "complete" and resumed.final_step == 200


def test_ctrl_c_marks_the_run_interrupted_and_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    # SIGINT at its default in the child: a suite started as a shell's background job (`pytest &`, nohup) inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt; this test is about Ctrl-C, not about that
    proc = subprocess.Popen([*CLI, "train", "--preset", "tiny", "--steps", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while not (out / "step_000150.safetensors").exists():  # so step 100 was fully saved
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)  # a Ctrl-C that is not honoured fails here, not after 100,000 steps
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    run = Run(out)
    assert run.state == "interrupted" and run.meta["status"]["step"] >= 100
    last = stderr.strip().splitlines()[-1]
    saved = run.meta["status"]["step"]
    assert last == (f"interp train: interrupted at step {saved} (last saved); continue with "
                    f"`interp train --out {out} --resume`")
    assert "Traceback" not in stderr
    assert "\r" not in stderr  # stderr is not a terminal: occasional progress lines, no carriage returns
    # the measures and the CLI say it is unfinished
    r = _cli("measure", str(out), "--out", str(tmp_path / "m"), "--key-freqs", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"warning: {out} is unfinished: interrupted at step {saved} of 100000" in r.stderr
    assert json.loads((tmp_path / "m" / "measures.json").read_text())["run"]["finished"] is False
    # resuming says where it resumes from (stop it again quickly: --steps just past the last checkpoint file; the
    # interrupt can land after a checkpoint is written and before the saved state moves to it)
    target = max(run.steps) + 5
    r = _cli("train", "--out", str(out), "--resume", "--steps", str(target))
    assert r.returncode == 0, r.stderr
    assert f"resuming {out} from step {saved} of {target}" in r.stderr
    assert Run(out).state == "complete"


def test_a_killed_run_is_seen_as_interrupted(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, "train", "--preset", "tiny", "--steps", "100000", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (out / "step_000000.safetensors").exists():
            assert proc.poll() is None
            time.sleep(0.05)
        assert Run(out).state == "running"
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    assert json.loads((out / "run.json").read_text())["status"]["state"] == "running"  # as the killed writer left it
    assert Run(out).state == "interrupted"


def test_resume_of_a_missing_run_leaves_nothing_and_its_hint_works(tmp_path):
    out = tmp_path / "nothing" / "here"
    r = _cli("train", "--out", str(out), "--resume")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "nothing").exists()
    hint = r.stderr.split("`")[1]
    assert hint.startswith("interp train --preset ") and hint.endswith(f"--out {out}")
    argv = hint.split()[2:]  # after "interp train"
    argv[1] = "tiny" if argv[1] == "PRESET" else argv[1]
    r = _cli("train", *argv, "--steps", "3", "--quiet")
    assert r.returncode == 0, r.stderr


def test_report_finds_the_runs_measures_from_any_directory(tiny, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _cli("report", str(tiny.path.resolve()), "--out", str(tmp_path / "rep"), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "computing them now" not in r.stderr  # found beside the run, not recomputed
    assert "Key numbers" in (tmp_path / "rep" / "index.html").read_text()
    assert "1, 2" in (tmp_path / "rep" / "index.html").read_text()  # the saved key frequencies, not recomputed ones


def test_measures_of_another_run_with_the_same_name_are_refused(tiny, tmp_path):
    impostor = train(preset("tiny", n_steps=100), tmp_path / "runs" / "tiny", progress=False)  # same name
    shutil.copytree(tiny.path.parent.parent / "probes", tmp_path / "probes")  # the other run's measures
    with pytest.raises(Exception, match="not this run's"):
        probes.find_measures(impostor)
    r = _cli("report", str(impostor.path), "--out", str(tmp_path / "rep"))
    assert r.returncode == 1 and "these measures are not this run's" in r.stderr and "Traceback" not in r.stderr
    assert impostor.run_id in r.stderr and tiny.run_id in r.stderr
    r = _cli("report", str(impostor.path), "--out", str(tmp_path / "rep"), "--recompute")
    assert r.returncode == 0, r.stderr
    shutil.rmtree(tmp_path / "probes")
    r = _cli("report", str(impostor.path), "--out", str(tmp_path / "rep"))
    assert r.returncode == 0 and "no saved measures of" in r.stderr and "computing them now" in r.stderr


def test_report_output_directory_is_per_run_and_never_clobbers_other_files(tiny, tmp_path):
    r = _cli("report", str(tiny.path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report" / "tiny" / "index.html").is_file()  # report/<run-name>/, not report/
    again = _cli("report", str(tiny.path), cwd=tmp_path)  # an earlier report may be replaced
    assert again.returncode == 0, again.stderr
    busy = tmp_path / "notes"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    r = _cli("report", str(tiny.path), "--out", str(busy))
    assert r.returncode == 1 and "holds files that are not an interp report" in r.stderr
    assert sorted(os.listdir(busy)) == ["thesis.tex"]
