"""Shared fixtures. Runs are trained once per test session into a temporary directory."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from interp.config import preset
from interp.runs import Run
from interp.train import train
from tests.cli_helpers import run_script

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """A pytest-xdist worker (and every process it starts) gets its share of the cores: cores // workers torch
    threads, at least one. torch's own default is every core in every worker: with 2 workers on 2 cores, 4 OpenMP
    threads wait for 2 cores, and an LLC estimate of the tests' ``small`` model took 28 s instead of 3 s. Training,
    ``measure_run`` and ``write_report`` still choose their count by interp's policy (``interp.threads``)."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not workers or workers < 2:
        return
    import torch

    from interp.threads import physical_cores

    n = max(1, physical_cores() // workers)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)  # children start with it
    torch.set_num_threads(n)


def once_per_session(tmp_path_factory, name: str, make) -> Path:
    """``make(path)`` once per test session, also across pytest-xdist workers (they share the parent of their base
    temporary directories): the first worker to ask makes it, the others wait for it and reuse it. Returns path.
    For read-only fixtures only: every worker gets the same directory."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, also if make raised
        if not (root / f"{name}.done").exists():
            make(root / name)
            (root / f"{name}.done").touch()
    return root / name


@dataclass(frozen=True)
class ExampleResult:
    """One execution of an example script: its output directory, return code, stdout and stderr."""

    out: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def train_small_example(tmp_path_factory) -> ExampleResult:
    """``examples/train_small.py OUT`` executed once per session: the `small` preset (p=53) trained until it has
    grokked, 200 steps past the first test accuracy >= 0.99 (step 1510 to 1600 on the hosts measured; grokking
    steps move by up to ~20 % across hosts, so the run stops on the event rather than at a fixed step; at most 3000
    steps), then measured. Its run is :func:`grokked_run`; tests/test_examples.py checks what the example prints."""

    def make(out: Path) -> None:
        out.mkdir()
        r = run_script(ROOT / "examples" / "train_small.py", out / "run", cwd=ROOT)
        (out / "result.json").write_text(json.dumps({"returncode": r.returncode, "stdout": r.stdout,
                                                     "stderr": r.stderr}))

    out = once_per_session(tmp_path_factory, "train-small-example", make)
    return ExampleResult(out=out, **json.loads((out / "result.json").read_text()))


@pytest.fixture(scope="session")
def grokked_run(train_small_example):
    """The `small` preset (p=53) trained until it has grokked (the run of examples/train_small.py: its
    configuration is ``preset("small", n_steps=3000, save_every=100, stop_test_acc=0.99, stop_after_steps=200)``).

    About 30 s on 2 CPU cores, once per session; shared by every test that needs a real, grokked run.
    """
    assert train_small_example.returncode == 0, train_small_example.stderr[-2000:]
    return Run(train_small_example.out / "run")


# ---- probes (tests/test_probes.py, tests/test_phases.py) ------------------------------------------

@pytest.fixture(scope="session")
def probe_run(tmp_path_factory):
    """The `small` preset (p=53) for 400 steps, a checkpoint every 50: memorised, not yet grokked. ~10 s, once per
    session (read-only: every worker reads the same directory)."""
    out = once_per_session(tmp_path_factory, "small-probes",
                           lambda out: train(preset("small", n_steps=400, save_every=50), out, progress=False))
    return Run(out)
