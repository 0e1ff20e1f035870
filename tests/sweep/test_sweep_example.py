"""examples/sweep_small.py runs as written."""

import subprocess
import sys

from interp import sweep
from tests.sweep.sweep_helpers import ROOT


def test_sweep_example_runs(tmp_path):
    out = tmp_path / "example"
    cmd = [sys.executable, str(ROOT / "examples" / "sweep_small.py"), str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    s = sweep.load(out)
    assert s.statuses == {f"frac_train={f},seed={k}": "complete" for f in (0.5, 0.7) for k in (0, 1)}
    assert "results.csv: 12 rows" in r.stdout  # 4 runs x checkpoints 0, 50, 100
    final = s.results[s.results["step"] == 100]
    for frac, group in final.groupby("frac_train"):  # the printed means are the table's
        assert f"frac_train {frac}: final test loss {group['test_loss'].mean():.3f}" in r.stdout
