"""Honest scope in the tables: the irrep columns on a task that is not a group composition (a quadratic task) and
the Fourier columns on a non-abelian group (S3, D4) are "not applicable" in the measures table (with the reason the
measure's own ProbeError gives) and in a sweep's tables (summary ``not_applicable``, read by the emergence analysis),
never a silently empty or wrongly computed column."""

import math

import pytest

from interp import Run, probes
from interp.config import preset
from interp.emergence.tables import not_applicable_metrics
from interp.errors import ProbeError
from interp.probes.series import GROUP_COLUMNS, IRREP_COLUMNS
from interp.sweep.results import assemble, run_tables
from interp.sweep.tables import SweepTables
from interp.sweep.worker import MEASURES_DIR
from interp.train import train

OPS = ("a2+b2", "S3", "D4", "add")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four tiny runs of 4 steps each (a quadratic task, two non-abelian groups, addition), measured where they
    trained as a sweep worker does."""
    out = tmp_path_factory.mktemp("scope")
    made = {}
    for op in OPS:
        cfg = preset("tiny", op=op, n_steps=4, save_every=2, eval_every=2)  # a group op brings its own p
        run = train(cfg, out / op.replace("+", "p"), progress=False)
        probes.save_measures(probes.measure_run(run, progress=False), run.path / MEASURES_DIR)
        made[op] = run
    return made


def test_measures_tables_say_not_applicable_with_the_measures_own_reason(runs):
    quad, s3 = probes.load_measures(runs["a2+b2"].path / MEASURES_DIR), probes.load_measures(runs["S3"].path / MEASURES_DIR)
    assert set(IRREP_COLUMNS) <= set(quad.not_applicable) and not set(IRREP_COLUMNS) & set(quad.df.columns)
    with pytest.raises(ProbeError) as e:  # the reason in the table is the one the irrep measures raise
        probes.irreps.irrep_norms(runs["a2+b2"].load(4), runs["a2+b2"].task)
    reason = quad.not_applicable["gini_irrep_W_E"]
    assert "not applicable to task 'a2+b2'" in reason and reason.split(": ", 1)[1] == str(e.value).split(": ", 1)[1]
    assert set(GROUP_COLUMNS) <= set(s3.not_applicable) and "not abelian" in s3.not_applicable["gini_W_E"]
    assert set(IRREP_COLUMNS) <= set(s3.df.columns) and not set(IRREP_COLUMNS) & set(s3.not_applicable)
    add = probes.load_measures(runs["add"].path / MEASURES_DIR)  # Fourier columns, no irrep columns, none listed
    assert "gini_W_E" in add.df.columns and not set(IRREP_COLUMNS) & (set(add.not_applicable) | set(add.df.columns))


def test_sweep_tables_and_emergence_say_not_applicable(runs):
    entries = [{"name": op, "varied": {"op": op}, "status": "complete", "error": None,
                "tables": run_tables(run.path)} for op, run in runs.items()]
    results, summary = assemble(entries, ["op"])
    na = {r: set(v.split()) for r, v in zip(summary["run"], summary["not_applicable"].fillna(""))}
    assert set(IRREP_COLUMNS) <= na["a2+b2"] and "gini_W_E" in na["a2+b2"]
    assert "gini_W_E" in na["S3"] and "gini_W_E" in na["D4"] and not set(IRREP_COLUMNS) & na["S3"]
    assert not set(IRREP_COLUMNS) & na["add"] and "gini_W_E" not in na["add"]
    # every empty cell of a measure column is explained by its row's not_applicable
    for op in ("a2+b2", "S3", "D4"):
        row = results[results["run"] == op].iloc[-1]
        for col in ("gini_W_E", "gini_irrep_W_E", "restricted_loss", "irrep_restricted_loss"):
            if col in results.columns and math.isnan(row[col]):
                assert col in na[op], (op, col)
    seen = not_applicable_metrics(SweepTables(results, summary, ["op"]))
    assert "gini_irrep_W_E" in seen["a2+b2"] and "gini_W_E" in seen["S3"]
    assert Run(runs["S3"].path).task.finite_group is not None


def test_clock_pizza_is_not_applicable_to_a_group_run_from_the_cli(runs, tmp_path, capsys):
    """`interp measure --clock-pizza` on S3: the one line that says why, and the three columns listed with it."""
    from interp.cli import main
    from interp.probes import clock_pizza

    assert main(["measure", str(runs["S3"].path), "--clock-pizza", "--out", str(tmp_path / "m"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "clock or pizza: not applicable (measure_run: not applicable to " in out
    m = probes.load_measures(tmp_path / "m")
    assert set(clock_pizza.COLUMNS) <= set(m.not_applicable) and not set(clock_pizza.COLUMNS) & set(m.df.columns)
