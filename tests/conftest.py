"""Shared fixtures. Runs are trained once per test session into a temporary directory."""

from __future__ import annotations

import pytest

from interp.config import preset
from interp.train import train


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
