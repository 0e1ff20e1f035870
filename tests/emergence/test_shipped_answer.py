"""The manual's emergence answer (docs/emergence.md) is what the registered protocol computes from the committed sweep tables."""

import re
from pathlib import Path

import pandas as pd
import pytest

from interp import emergence
from tests import manual

ROOT = Path(__file__).resolve().parents[2]
DENSE, WIDTH = ROOT / "sweeps" / "emergence-dense", ROOT / "sweeps" / "emergence-width"


@pytest.fixture(scope="module")
def verdicts():
    return emergence.verdicts(DENSE, WIDTH)


@pytest.fixture(scope="module")
def dense():
    return emergence.answer(DENSE)


def _readme_section() -> str:
    return manual.section("emergence.md", "### The answer, measured on the shipped sweeps")


def test_every_verdict_line_of_the_readme_is_what_the_tables_give(verdicts):
    section = _readme_section()
    bullets = re.findall(r"^- [\w ]+: (?:median lead|MAE ratio|accuracy width) .*$", section, re.M)
    headline = verdicts[verdicts["role"] == "headline"]
    expected = {f"- {r['subject']}: {r['number']} {r['interval']}: {r['verdict']}" for _, r in headline.iterrows()}
    assert len(bullets) >= 14  # two scale axes, seven leads, five forecasts
    for line in bullets:
        assert line in expected, line


def test_the_readme_prose_numbers(dense, verdicts):
    section = _readme_section().replace("\n", " ")
    km = dense.km[dense.km["event"] == "t90"].set_index("cell")
    assert list(km["n_reached"]) == [0, 1, 2, 4, 5, 6, 6, 6]
    m = [f"{v:.0f}" for v in km["km_median"]]
    assert m[:3] == ["inf"] * 3
    assert (f"> 6000 (0 of 6 runs reached it), > 6000 (1 of 6), > 6000 (2 of 6), {m[3]} (4 of 6), {m[4]} (5 of 6), "
            f"{m[5]}, {m[6]} and {m[7]} steps") in section
    assert "18 of the 48 runs are right-censored" in section and int((km["n_runs"] - km["n_reached"]).sum()) == 18
    controls = dense.leads.summary.set_index("metric")["median_lead"]
    assert f"train loss {controls['train_loss']:.0f} steps, test loss {controls['test_loss']:.1f}" in section
    for budget in (1000, 2000, 4000):  # the robustness table's other budgets
        a = dense.scale[("frac_train", budget)]
        assert a.verdict == "not determined" and f"{a.ratio:.3g} [{a.ratio_low:.3g}, {a.ratio_high:.3g}]" in section
    fit = dense.scale[("frac_train", 6000)].fits["test_acc"]
    assert f"location {fit.x0:.3g} [{fit.x0_low:.3g}, {fit.x0_high:.3g}]" in section
    s = dense.forecasts.scores.set_index(["T", "measure"])
    tl = s.loc[(500, "test_loss")]
    assert f"MAE ratio {tl['ratio']:.3g} [{tl['ratio_low']:.3g}, {tl['ratio_high']:.3g}], AUC {tl['auc']:.3g}" in section
    assert f"AUC {s.loc[(500, 'restricted_loss'), 'auc']:.3g}" in section
    assert f"{s.loc[(500, 'restricted_loss'), 'auc_share']:.3g})" in section
    assert int(s.loc[(500, "restricted_loss"), "n_evaluated"]) == 26
    # no progress measure leads or is predictive on the headline sweep: the README says so
    head = verdicts[(verdicts["role"] == "headline") & (verdicts["sweep"] == "emergence-dense")]
    assert not head["verdict"].str.fullmatch("leads").any()
    assert not head["verdict"].str.startswith("predictive").any()


def test_the_repeated_cell_is_identical_on_one_machine():
    """The width sweep's d_mlp 256 cell repeats the dense sweep's 35 % cell: every row agrees exactly."""
    rd, rw = pd.read_csv(DENSE / "results.csv"), pd.read_csv(WIDTH / "results.csv")
    a = rd[rd["frac_train"] == 0.35].drop(columns=["run", "frac_train"]).reset_index(drop=True)
    b = rw[rw["d_mlp"] == 256].drop(columns=["run", "d_mlp"]).reset_index(drop=True)
    common = [c for c in a.columns if c in b.columns]
    assert len(a) == len(b) == 522 and len(common) > 20
    pd.testing.assert_frame_equal(a[common], b[common])
    assert "all 522 rows of both tables are identical" in _readme_section().replace("\n", " ")
