"""The README's answer on the LLC is what the registered protocol (docs/emergence-protocol.md, §9) computes from the
committed subset tables, and the subset is the one registered."""

import re
from pathlib import Path

import pandas as pd
import pytest

from interp import emergence, probes
from interp.sweep.llc import _every
from interp.sweep.tables import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SUBSET, DENSE = ROOT / "sweeps" / "emergence-dense-llc", ROOT / "sweeps" / "emergence-dense"


@pytest.fixture(scope="module")
def answer():
    return emergence.answer(SUBSET)


def _section() -> str:
    text = (ROOT / "docs" / "emergence.md").read_text()
    start = text.index("## 5. The LLC on the subset")
    return text[start:text.index("\n## ", start)]


def test_the_subset_is_the_registered_one():
    sub, dense = load_sweep(SUBSET), load_sweep(DENSE)
    runs = sorted(sub.results.run.unique())
    want = dense.summary[dense.summary.frac_train.isin([0.40, 0.45])].run
    assert runs == sorted(want) and len(runs) == 12
    # the source's rows, unchanged, plus the llc columns
    src = dense.results[dense.results.run.isin(runs)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub.results[list(src.columns)].reset_index(drop=True), src, check_dtype=False)
    for run, rows in sub.results.groupby("run"):
        steps = sorted(rows.step)
        assert sorted(rows.step[rows.llc.notna()]) == _every(steps, 4), run
    assert int(sub.results.llc.notna().sum()) == 276
    meta = sub.meta
    assert meta["every"] == 4 and meta["llc"]["settings"] == probes.LLCSettings().to_dict()
    assert meta["source"]["sweep"] == "emergence-dense" and meta["source"]["select"] == {"frac_train": [0.4, 0.45]}


def test_every_llc_verdict_line_of_the_readme_is_what_the_tables_give(answer):
    section = _section()
    bullets = re.findall(r"^- [\w ]+: (?:median lead|MAE ratio) .*$", section, re.M)
    table = answer.v1_verdict_table()
    expected = {f"- {r['subject']}: {r['number']} {r['interval']}: {r['verdict']}" for _, r in table.iterrows()}
    assert any(b.startswith("- llc: median lead") for b in bullets)
    assert len(bullets) >= 8
    for line in bullets:
        assert line in expected, line


def test_the_llc_peak_count_and_the_disclosure_are_the_tables(answer):
    """Its peak is at step 100 in 10 of 12 runs, the first checkpoint at or after t_mem in 9 of them (one run
    memorises at step 106); and the calibration run is named as one of the 12."""
    t_mem = answer.events.set_index("run")["t_mem"]
    at_100 = first_after = 0
    for run, rows in answer.tables.results.groupby("run"):
        rows = rows[rows.llc.notna()].sort_values("step")
        peak = rows.step[rows.llc.idxmax()]
        at_100 += peak == 100
        first_after += peak == rows.step[rows.step >= t_mem[run]].iloc[0]
    section = _section().replace("\n", " ")
    assert f"at step 100 in {at_100} of 12 runs, the first checkpoint after t_mem in {first_after} of them" in section
    assert (at_100, first_after) == (10, 9)
    assert "calibration run of the LLC's defaults (`small`, 40 %, seed 0) is one of these 12 runs" in section
    info = answer.information.table.set_index("measure").loc["llc"]
    readme = (ROOT / "README.md").read_text().replace("\n", " ")
    assert f"rho {info['rho']:.2f}, Cox p {info['p_lr']:.2g}" in readme and info["verdict"] == "informative"
