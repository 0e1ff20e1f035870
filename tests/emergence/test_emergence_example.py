"""examples/emergence_synthetic.py runs as written and finds the answer built into its sweep."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_emergence_example_recovers_the_built_in_lead(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "emergence_synthetic.py"), str(tmp_path / "sweep")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    measured = float(re.search(r"restricted loss lead: measured ([0-9.]+) of t_e", r.stdout).group(1))
    assert abs(measured - 0.3) < 0.015  # built in: half-way at 0.7 t_e
    assert "12 of 15 runs emerged" in r.stdout  # frac 0.15 emerges at 10000 steps, after the 8000-step runs
    mae = re.search(r"^\s+restricted_loss\s+12\s+(\d+)\s+(\d+)\s+3\s+3\s*$", r.stdout, re.M)  # prediction row
    assert mae and int(mae.group(1)) < 0.05 * int(mae.group(2))  # the measure predicts, the baseline does not
    assert (tmp_path / "sweep" / "report" / "index.html").exists()
