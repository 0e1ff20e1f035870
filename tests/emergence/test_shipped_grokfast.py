"""The README's Grokfast answer is what docs/grokfast-protocol.md computes from the committed sweep tables."""

import math
from pathlib import Path

import pytest

from interp.emergence.grokfast import compare

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sweeps" / "grokfast-small"


@pytest.fixture(scope="module")
def comparison():
    return compare(SHIPPED)


def _section() -> str:
    return (ROOT / "docs" / "grokfast.md").read_text()


def test_the_shipped_sweep_is_complete_and_as_registered(comparison):
    runs = comparison.runs
    assert len(runs) == 108 and runs["setting"].nunique() == 2 and runs["arm"].nunique() == 9
    assert (runs.groupby(["setting", "arm"]).size() == 6).all()   # 6 seeds in every cell
    # every AdamW filter arm has its lr control; only the Adam arm (the published comparison) has none
    missing = [n for n in comparison.notes if "has no learning-rate control" in n]
    assert len(missing) == 2 and all("Adam wd 0 + EMA" in n for n in missing)
    # the protocol's stop rule: a run that reached t99 stopped 1,000 steps later (or at its budget)
    reached = runs[runs["t99"].notna()]
    assert ((reached["budget"] == reached["t99"] + 1000) | (reached["budget"] == reached["n_steps"])).all()


def test_the_readme_table_and_answer_lines_are_the_tables(comparison):
    section = _section()
    assert comparison.markdown_table() in section
    lines = comparison.answer_lines()
    assert len(lines) == 8   # 4 filter arms x 2 settings
    for line in lines:
        assert f"- {line}" in section, line


def test_the_readme_states_the_cpu_time(comparison):
    hours = comparison.cpu_seconds / 3600
    assert f"{hours:.1f} CPU-hours" in _section()
    assert math.isfinite(hours) and hours > 0.5


NANDA = ROOT / "sweeps" / "grokfast-nanda2023"


@pytest.fixture(scope="module")
def nanda():
    return compare(NANDA)


def test_the_nanda2023_cell_is_complete_as_registered_and_in_the_readme(nanda):
    runs = nanda.runs
    assert len(runs) == 9 and runs["setting"].nunique() == 1 and runs["arm"].nunique() == 3
    assert (runs.groupby("arm").size() == 3).all()
    reached = runs[runs["t99"].notna()]
    assert ((reached["budget"] == reached["t99"] + 1000) | (reached["budget"] == 15000)).all()
    section = _section()
    assert nanda.markdown_table() in section
    lines = nanda.answer_lines()
    assert len(lines) == 1  # one filter arm, EMA lambda 2, against AdamW and its lr x3 control
    assert f"- {lines[0]}" in section
    assert f"{nanda.cpu_seconds / 3600:.1f} CPU-hours" in section


def test_the_bound_the_data_support_is_what_the_readme_says(comparison, nanda):
    """No "no speed-up": the 95 % upper ends of EMA lambda 2's speed-up over AdamW, recomputed."""
    at45 = comparison.bound("AdamW + EMA l=2", "frac_train=0.45, n_steps=6000")
    paper = nanda.bound("AdamW + EMA l=2")
    readme = (ROOT / "README.md").read_text().replace("\n", " ")
    assert f"at most {at45:.2f}x (95 %) at 45 % and at most {paper:.2f}x in the paper's setting" in readme
    assert (f"{at45:.2f}", f"{paper:.2f}") == ("1.08", "1.32")
    for text in (readme, _section()):
        assert "No speed-up" not in text and "**No speed-up" not in text


V2_45 = ROOT / "sweeps" / "grokfast-v2-45"


@pytest.fixture(scope="module")
def confirmatory():
    return compare(V2_45)


def test_the_confirmatory_45_cell_is_complete_fresh_and_in_the_manual(confirmatory):
    """Protocol v2's 45 % cell: 8 arms x 18 seeds never trained before it (none of the shipped sweeps' 0-5), the
    manual's table and every answer line recomputed, and the README's headline the tuned comparison's words."""
    runs = confirmatory.runs
    assert len(runs) == 144 and runs["arm"].nunique() == 8 and (runs.groupby("arm").size() == 18).all()
    assert set(runs["seed"].astype(int)) == set(range(2000, 2018))
    section = _section()
    assert confirmatory.markdown_table() in section
    for line in confirmatory.answer_lines():
        assert f"- {line}" in section, line
    sp = confirmatory.speedups
    t = sp[(sp["arm"] == "AdamW + EMA l=2, tuned lr") & (sp["event"] == "t99")].iloc[0]
    assert t["versus"] == "AdamW, tuned lr"
    words = f"{t['ratio']:.2f}x [{t['ci_low']:.2f}, {t['ci_high']:.2f}], {t['answer']}"
    assert words in (ROOT / "README.md").read_text().replace("\n", " ")
    assert f"{confirmatory.cpu_seconds / 3600:.1f} CPU-hours" in section
