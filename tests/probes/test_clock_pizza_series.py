"""Clock or pizza over a whole run: the diagnostics as measures columns (`interp measure --clock-pizza`), each
checkpoint's verdict in the CLI and the report, and "not applicable" on a task they have no meaning for. Ground
truth: the shipped runs' verdicts (clock for the standard-attention run's final checkpoint; pizza at step 200, when
it first solves the task, for the constant-attention run)."""

from pathlib import Path

import pytest

from interp import RunConfig, Task, probes
from interp.cli import main
from interp.errors import ProbeError
from interp.model import build_model
from interp.probes import clock_pizza as cp
from interp.runs import Run

SHIPPED = Path("checkpoints/nanda2023-p113-seed0")
CONSTANT = Path("checkpoints/constant-attention-p59")


@pytest.fixture(scope="module")
def constant_measured(tmp_path_factory):
    """The output directory of `interp measure --clock-pizza` on the shipped constant-attention run (7 checkpoints,
    p = 59), written by the first test that needs it."""
    return tmp_path_factory.mktemp("cp") / "measures"


def test_measure_cli_prints_each_checkpoints_verdict(constant_measured, capsys):
    assert main(["measure", str(CONSTANT), "--clock-pizza", "--out", str(constant_measured), "--quiet"]) == 0
    lines = {int(line.split()[0]): line.split() for line in capsys.readouterr().out.splitlines()
             if line.split() and line.split()[0].isdigit()}
    assert sorted(lines) == Run(CONSTANT).steps
    assert lines[200][-1] == "pizza" and lines[1200][-1] == "neither" and lines[0][-1] == "neither"
    assert float(lines[200][2]) == pytest.approx(0.172, abs=0.01)  # distance irrelevance of a pizza
    m = probes.load_measures(constant_measured)
    assert all(c in m.df.columns for c in cp.COLUMNS) and "clock_pizza" in m.protocol
    # the table's verdicts are the ones clock_or_pizza gives each checkpoint
    series = cp.clock_pizza_series(Run(CONSTANT), steps=[200, 1200])
    assert [v for s, v in zip(m.steps, cp.verdicts(m.df)) if s in (200, 1200)] == list(series["verdict"])
    # measures without the columns do not serve a request for them; with them they serve both
    assert m.same_measurement(Run(CONSTANT), clock_pizza=True) and m.same_measurement(Run(CONSTANT))


def test_report_shows_the_verdict_per_checkpoint(constant_measured, tmp_path):
    if not (constant_measured / "measures.json").exists():
        assert main(["measure", str(CONSTANT), "--clock-pizza", "--out", str(constant_measured), "--quiet"]) == 0
    assert main(["report", str(CONSTANT), "--measures", str(constant_measured), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "clock or pizza per checkpoint" in page
    assert "neither at step 0; pizza at steps 200-400; neither at steps 600-1,200" in page


def test_shipped_run_final_checkpoint_is_a_clock_in_the_measures_table():
    run = Run(SHIPPED)
    m = probes.measure_run(run, steps=[run.final_step], progress=False,
                           clock_pizza=True)
    assert cp.verdicts(m.df) == ["clock"]
    assert float(m.df["gradient_symmetricity"].iloc[0]) == pytest.approx(0.226, abs=0.01)
    assert float(m.df["distance_irrelevance"].iloc[0]) == pytest.approx(0.769, abs=0.01)


def test_not_applicable_on_other_tasks():
    """On a task that is not addition the three columns are left out and listed as not applicable with the
    diagnostics' own one-line reason; the verdicts of such a table are refused with a ProbeError."""
    cfg = RunConfig(op="mul", p=23, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    m = probes.measure_series([(0, build_model(cfg))], Task(op="mul", p=23), key_freqs=[1], clock_pizza=True)
    assert set(cp.COLUMNS) <= set(m.not_applicable) and not set(cp.COLUMNS) & set(m.df.columns)
    assert "defined for addition mod p" in m.not_applicable["gradient_symmetricity"]
    with pytest.raises(ProbeError, match="clock-pizza"):
        cp.verdicts(m.df)
    # without the request nothing changes: no columns, nothing listed
    plain = probes.measure_series([(0, build_model(cfg))], Task(op="mul", p=23), key_freqs=[1])
    assert not set(cp.COLUMNS) & (set(plain.not_applicable) | set(plain.df.columns))
