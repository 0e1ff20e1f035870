"""examples/emergence_synthetic.py runs as written and finds the answer built into its sweeps."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_emergence_example_recovers_the_built_in_answer():
    # without OUT_DIR: the sweep report it can also write is tested in test_sweep_report.py
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "emergence_synthetic.py")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"^\s*restricted_loss\s+measure\s+\d+\s+\d+\s+\d+\s+leads\s*$", out, re.M)  # built in: leads
    assert re.search(r"^\s*frac_neurons_clustered\s+measure\s+-\d+.*does not lead", out, re.M)  # built in: lags
    assert re.search(r"^\s*restricted_loss\s+predictive at T = \d+", out, re.M)
    assert not re.search(r"^\s*frac_neurons_clustered\s+predictive", out, re.M)
    assert re.search(r"^\s*anticipating\s.*\sinformative\s*$", out, re.M)
    assert re.search(r"^\s*clock_like\s.*\snot informative\s*$", out, re.M)
    assert re.search(r"^\s*500\s+test_loss_copy\s.*adds nothing within the margin\s*$", out, re.M)
    assert "built-in mirage: verdict 'artefact of the metric'" in out
    assert "built-in real: verdict 'real'" in out
