"""Interrupted training loses nothing: SIGKILL at any moment, resume, and get the uninterrupted run bit for bit."""

import os
import signal
import subprocess
import sys
import time

import pytest

from interp.files import read_safetensors
from interp.runs import Run, parse_metrics_csv
from interp.config import preset
from interp.errors import RunLockedError
from interp.train import train

STEPS = 1500
ARGS = ["train", "--preset", "tiny", "--steps", str(STEPS), "--save-every", "100", "--quiet"]

# Run the real CLI in a child, but make every fsync (the moment a temp file is complete and not yet
# renamed into place) announce itself and linger when FSYNC_PAUSE is set, so the parent can kill it
# in the middle of a checkpoint write.
CHILD = """
import os, stat, sys, time
pause = float(os.environ.get("FSYNC_PAUSE", "0"))
marker = os.environ.get("FSYNC_MARKER")
real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    regular_file = stat.S_ISREG(os.fstat(fd).st_mode)  # not the directory fsync after a rename
    if pause and marker and regular_file and os.path.exists(os.environ["RUN_DIR"] + "/run.json"):
        open(marker, "a").close()
        time.sleep(pause)
os.fsync = slow_fsync
from interp.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def start():
    """Start the CLI in a child process; every child is killed (if still running) and reaped after the test."""
    children = []

    def _start(out, *extra, env_extra=None, args=ARGS):
        env = dict(os.environ, RUN_DIR=str(out), **(env_extra or {}))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, *args, "--out", str(out), *extra],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        children.append(proc)
        return proc

    yield _start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait()  # reaps it: no defunct children, however the test ended
        proc.stderr.close()


def _assert_nothing_partial(out):
    """Every file a reader can see is complete; only hidden temporaries may be left by a kill."""
    for f in out.iterdir():
        if f.name.startswith("."):
            assert f.name == ".lock" or f.name.endswith(".tmp"), f.name
        elif f.suffix == ".safetensors":
            read_safetensors(f)  # raises on a truncated file
        elif f.name == "metrics.csv":
            parse_metrics_csv(f)
    run = Run(out)  # run.json parses
    if (out / "metrics.csv").exists():  # absent only if killed before step 0 was saved
        run.metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train(preset("tiny", n_steps=STEPS, save_every=100), tmp_path_factory.mktemp("ref") / "run",
                 progress=False)


def _wait_for(path, proc):
    """Wait, however long a slow machine takes, until ``path`` exists; fail only if the child ended first."""
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"{path} never appeared: the child exited with {proc.returncode}: "
                                 f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.02)


@pytest.mark.ci
def test_sigkill_at_several_points_then_resume_is_bit_identical(tmp_path, reference, start):
    out = tmp_path / "run"
    marker = tmp_path / "in_fsync"
    # 1) killed while a file is complete on disk under its temporary name, not yet renamed
    proc = start(out, env_extra={"FSYNC_PAUSE": "3600", "FSYNC_MARKER": str(marker)})
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(f.name.endswith(".tmp") for f in out.iterdir()), "the kill should have hit a write"
    _assert_nothing_partial(out)
    # 2) and 3) killed at arbitrary moments of training, after different amounts of progress
    for delay in (0.5, 2.0):
        proc = start(out, "--resume")
        _wait_for(out / "run.json", proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_nothing_partial(out)
        assert Run(out).state == "interrupted" and not Run(out).finished  # killed: no process holds its lock
    # finally, resume to the end (no time limit: a slow machine is not a failure)
    proc = start(out, "--resume")
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert Run(out).state == "complete"
    _assert_nothing_partial(out)
    assert not any(f.name.endswith(".tmp") for f in out.iterdir())
    for step in reference.steps:
        name = f"step_{step:06d}.safetensors"
        assert (out / name).read_bytes() == (reference.path / name).read_bytes(), name
    assert (out / "metrics.csv").read_bytes() == (reference.path / "metrics.csv").read_bytes()


KNOBS = {"optimiser": "adam", "weight_decay": 0.0, "lr_schedule": "cosine", "batch_size": 64, "layer_norm": True,
         "grad_filter": "ema"}
KNOB_STEPS = 150


@pytest.mark.ci
def test_sigkill_with_the_training_knobs_then_resume_is_bit_identical(tmp_path, start):
    """Minibatches, a decaying schedule, Adam, LayerNorm and the Grokfast filter: their state survives a SIGKILL."""
    args = ["train", "--preset", "tiny", "--steps", str(KNOB_STEPS), "--save-every", "50", "--quiet",
            *(a for k, v in KNOBS.items() for a in ("--set", f"{k}={str(v).lower()}"))]
    ref = train(preset("tiny", n_steps=KNOB_STEPS, save_every=50, **KNOBS), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    proc = start(out, args=args)
    _wait_for(out / "step_000050.safetensors", proc)  # a resume state past step 0 exists
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_nothing_partial(out)
    assert not Run(out).finished
    proc = start(out, "--resume", args=args)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert Run(out).config == ref.config
    for step in ref.steps:
        name = f"step_{step:06d}.safetensors"
        assert (out / name).read_bytes() == (ref.path / name).read_bytes(), name
    assert (out / "metrics.csv").read_bytes() == (ref.path / "metrics.csv").read_bytes()


@pytest.mark.ci
def test_one_writer_per_run_directory(tmp_path, start):
    out = tmp_path / "run"
    marker = tmp_path / "in_fsync"
    proc = start(out, env_extra={"FSYNC_PAUSE": "3600", "FSYNC_MARKER": str(marker)})  # holds its lock until killed
    _wait_for(marker, proc)
    assert Run(out).state == "running"  # its writer is alive
    second = subprocess.run([sys.executable, "-m", "interp.cli", "train", "--out", str(out), "--resume"],
                            capture_output=True, text=True)
    assert second.returncode == 1
    assert "in use by pid" in second.stderr and "Traceback" not in second.stderr
    with pytest.raises(RunLockedError, match="in use"):
        train(None, out, resume=True, progress=False)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The kernel dropped the dead writer's lock: the run can be resumed straight away.
    assert (out / ".lock").exists()
    run = train(None, out, resume=True, n_steps=120, progress=False)
    assert run.final_step == 120
