"""Shared fixtures. Runs are trained once per test session into a temporary directory."""

from __future__ import annotations

import os

import pytest

from interp.config import preset
from interp.train import train


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


@pytest.fixture(scope="session")
def grokked_run(tmp_path_factory):
    """The `small` preset (p=53) trained until it has grokked: 200 steps past the first test accuracy >= 0.99
    (step 1510 to 1600 on the hosts measured; grokking steps move by up to ~20 % across hosts, so the run stops on
    the event rather than at a fixed step; at most 3000 steps).

    About 30 s on 2 CPU cores; shared by every test that needs a real, grokked run.
    """
    out = tmp_path_factory.mktemp("runs") / "small-grokked"
    return train(preset("small", n_steps=3000, save_every=100, stop_test_acc=0.99, stop_after_steps=200), out,
                 progress=False)


# ---- probes (tests/test_probes.py, tests/test_phases.py) ------------------------------------------

@pytest.fixture(scope="session")
def probe_run(tmp_path_factory):
    """The `small` preset (p=53) for 400 steps, a checkpoint every 50: memorised, not yet grokked. ~10 s."""
    out = tmp_path_factory.mktemp("runs") / "small-probes"
    return train(preset("small", n_steps=400, save_every=50), out, progress=False)
