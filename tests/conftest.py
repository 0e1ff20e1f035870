"""Shared fixtures. Runs are trained once per test session into a temporary directory."""

from __future__ import annotations

import pytest

from interp.config import preset
from interp.train import train


@pytest.fixture(scope="session")
def grokked_run(tmp_path_factory):
    """The `small` preset (p=53) trained until it has grokked: test accuracy >= 0.99 by step ~1600.

    About 30 s on 2 CPU cores; shared by every test that needs a real, grokked run.
    """
    out = tmp_path_factory.mktemp("runs") / "small-grokked"
    return train(preset("small", n_steps=1800, save_every=100), out, progress=False)


# ---- probes (tests/test_probes.py, tests/test_phases.py) ------------------------------------------

@pytest.fixture(scope="session")
def probe_run(tmp_path_factory):
    """The `small` preset (p=53) for 400 steps, a checkpoint every 50: memorised, not yet grokked. ~10 s."""
    out = tmp_path_factory.mktemp("runs") / "small-probes"
    return train(preset("small", n_steps=400, save_every=50), out, progress=False)
