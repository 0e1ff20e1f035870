"""The examples a newcomer follows are executed as written."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHIPPED = ROOT / "checkpoints" / "nanda2023-p113-seed0"


def test_quickstart_prints_the_shipped_runs_numbers():
    r = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "key frequencies: [" in r.stdout and "restricted loss" in r.stdout
    assert "test loss" in r.stdout and "explain" in r.stdout


def test_training_example_groks(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "train_small.py"), str(tmp_path / "run"), "--steps", "1800"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("test accuracy ")[1].split(",")[0])
    assert acc >= 0.99
    assert "Phases(" in r.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.ipynb")))
def test_notebook_runs_and_is_stripped(name):
    path = EXAMPLES / name
    nb = nbformat.read(path, as_version=4)
    # outputs stay out of git: the committed notebook is small and has none
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert path.stat().st_size < 20_000
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "TqdmWarning" not in streams and "IProgress" not in streams
    assert any("image/png" in o.get("data", {}) or "text/html" in o.get("data", {}) for o in outputs)
