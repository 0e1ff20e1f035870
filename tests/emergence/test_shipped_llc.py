"""The manual's answer on the LLC (docs/llc.md) is what the registered protocol (docs/emergence-protocol.md, §9)
computes from the committed subset tables, and the subset is the one registered."""

import re
from pathlib import Path

import pandas as pd
import pytest

from interp import emergence, probes
from interp.sweep.llc import _every
from interp.sweep.tables import load_sweep
from tests import manual

ROOT = Path(__file__).resolve().parents[2]
SUBSET, DENSE = ROOT / "sweeps" / "emergence-dense-llc", ROOT / "sweeps" / "emergence-dense"


@pytest.fixture(scope="module")
def answer():
    return emergence.answer(SUBSET)


def _section() -> str:
    return manual.section("llc.md", "### Does the LLC see the transition first?")


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
    table = answer.verdict_table()
    expected = {f"- {r['subject']}: {r['number']} {r['interval']}: {r['verdict']}" for _, r in table.iterrows()}
    assert any(b.startswith("- llc: median lead") for b in bullets)
    assert len(bullets) >= 8
    for line in bullets:
        assert line in expected, line
