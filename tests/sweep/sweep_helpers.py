"""Helpers and the reference spec shared by the sweep tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# 2 data fractions x 2 seeds (data_seed = model_seed), 200 steps, checkpoints at 0, 50, ..., 200.
TINY_SPEC = {
    "sweep": {"preset": "tiny", "n_steps": 200, "save_every": 50},
    "grid": {"frac_train": [0.5, 0.6]},
    "seeds": {"both": [0, 1]},
}
TINY_TOML = """\
[sweep]
preset = "tiny"
n_steps = 200
save_every = 50

[grid]
frac_train = [0.5, 0.6]

[seeds]
both = [0, 1]
"""
TINY_NAMES = ["frac_train=0.5,seed=0", "frac_train=0.5,seed=1", "frac_train=0.6,seed=0", "frac_train=0.6,seed=1"]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """`interp ...` in a child process, with this tree first on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "interp.cli", *args], capture_output=True, text=True,
                          env=env, **kw)


CHILDREN: list[subprocess.Popen] = []  # killed (if still running) and reaped after every test (conftest.py)


def start_cli(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "interp.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    CHILDREN.append(proc)
    return proc


def reap_children() -> None:
    """Kill every child start_cli began that still runs, and wait for each: no defunct process outlives a test."""
    while CHILDREN:
        proc = CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def sweep_statuses(out: Path) -> dict[str, str]:
    """The statuses as recorded (sweep.json with its status journal folded in); {} before there are any."""
    from interp.errors import RunFormatError
    from interp.sweep.state import read_sweep_json

    try:
        return {n: r["status"] for n, r in read_sweep_json(out)["runs"].items()}
    except RunFormatError:
        return {}


def wait_until(predicate, timeout: float | None = None, what: str = "condition", proc: subprocess.Popen | None = None):
    """Poll ``predicate`` until it is true. With ``proc`` there is no time limit (a slow machine is not a failure):
    it fails only if the process ends first. ``timeout`` bounds waits on things that must not hang."""
    t0 = time.time()
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}: {err[-2000:]}")
        assert timeout is None or time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
