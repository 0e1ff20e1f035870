"""Shared sweep fixtures: one reference sweep of four `tiny` runs, trained once per test session."""

import pytest

from tests.sweep.sweep_helpers import TINY_SPEC, reap_children


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory):
    """TINY_SPEC swept with the local backend (2 workers, 1 thread each), uninterrupted."""
    from interp import sweep

    out = tmp_path_factory.mktemp("sweep") / "reference"
    return sweep.run(TINY_SPEC, out, workers=2, progress=False)


@pytest.fixture(autouse=True)
def _reap_children():
    """Every process a test started with start_cli is killed and reaped, however the test ended."""
    yield
    reap_children()
