"""The emergence answer in docs/emergence.md and the README's summary are what the registered protocol computes from
the committed sweep tables (v2's verdicts, exploratory on these seeds; v1's, kept as history)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp import emergence

ROOT = Path(__file__).resolve().parents[2]
DENSE, WIDTH = ROOT / "sweeps" / "emergence-dense", ROOT / "sweeps" / "emergence-width"
LLC = ROOT / "sweeps" / "emergence-dense-llc"
BULLET = r"^- [\w ]+: (?:rho|median lead|MAE ratio|accuracy width) .*$"


@pytest.fixture(scope="module")
def dense():
    return emergence.answer(DENSE)


@pytest.fixture(scope="module")
def width():
    return emergence.answer(WIDTH)


@pytest.fixture(scope="module")
def llc():
    return emergence.answer(LLC)


def _doc() -> str:
    return (ROOT / "docs" / "emergence.md").read_text()


def _part(start: str, end: str) -> str:
    text = _doc()
    a = text.index(start)
    return text[a:text.index(end, a)]


def _lines(table: pd.DataFrame) -> set[str]:
    return {f"- {r['subject']}: {r['number']} {r['interval']}: {r['verdict']}" for _, r in table.iterrows()}


def test_every_v2_line_is_what_the_tables_give(dense, llc):
    part = _part("## 2. v2 answer", "## 3.")
    bullets = re.findall(BULLET, part, re.M)
    expected = _lines(dense.verdict_table()) | _lines(llc.verdict_table())
    assert len(bullets) >= 12 + 12 + 9 + 13   # information, (a), (b) on the dense sweep; information on the subset
    for line in bullets:
        assert line in expected, line
    # every measure and every control has its information verdict, in the protocol's words
    info = dense.information.table
    assert {"clock", "train_loss", "test_loss"} <= set(info["measure"])
    assert set(info["verdict"]) <= {"informative", "not informative", "not determined"}
    assert dense.exploratory and llc.exploratory   # seeds 0-5 chose protocol v2


def test_every_v1_line_is_what_v1_gives(dense, width):
    part = _part("## 3. Real vs artefact", "## 5.")
    bullets = re.findall(BULLET, part, re.M)
    expected = _lines(dense.v1_verdict_table()) | _lines(width.v1_verdict_table())
    assert len(bullets) >= 1 + 7 + 5
    for line in bullets:
        assert line in expected, line
    assert "earliness cannot decide" in _doc().replace("\n", " ")


def test_the_prose_numbers(dense):
    doc = _doc().replace("\n", " ")
    km = dense.km[dense.km["event"] == "t90"].set_index("cell")
    assert list(km["n_reached"]) == [0, 1, 2, 4, 5, 6, 6, 6]
    m = [f"{v:.0f}" for v in km["km_median"]]
    assert (f"> 6000 (0 of 6 runs reached it), > 6000 (1 of 6), > 6000 (2 of 6), {m[3]} (4 of 6), {m[4]} (5 of 6), "
            f"{m[5]}, {m[6]} and {m[7]} steps") in doc
    assert "18 of the 48 runs are right-censored" in doc and int((km["n_runs"] - km["n_reached"]).sum()) == 18
    controls = dense.leads.summary.set_index("metric")["median_lead"]
    assert f"train loss {controls['train_loss']:.0f} steps, test loss {controls['test_loss']:.1f}" in doc
    for budget in (1000, 2000, 4000):  # the robustness table's other budgets
        a = dense.scale[("frac_train", budget)]
        assert a.verdict == "not determined" and f"{a.ratio:.3g} [{a.ratio_low:.3g}, {a.ratio_high:.3g}]" in doc
    fit = dense.scale[("frac_train", 6000)].fits["test_acc"]
    assert f"location {fit.x0:.3g} [{fit.x0_low:.3g}, {fit.x0_high:.3g}]" in doc
    s = dense.forecasts.scores.set_index(["T", "measure"])
    tl = s.loc[(500, "test_loss")]
    assert f"MAE ratio {tl['ratio']:.3g} [{tl['ratio_low']:.3g}, {tl['ratio_high']:.3g}], AUC {tl['auc']:.3g}" in doc
    assert f"AUC {s.loc[(500, 'restricted_loss'), 'auc']:.3g}" in doc


def test_the_readme_summary_is_the_tables(dense):
    text = (ROOT / "README.md").read_text()
    start = text.index("**The answer on the shipped sweeps**")
    readme = text[start:text.index("\n## ", start)].replace("\n", " ")
    p = dense.predictability.headline
    a = p[(p["claim"] == "a") & (p["verdict"] == "predictable from the past")]
    assert f"MAE {a['ratio'].min():.3g}-{a['ratio'].max():.3g}" in readme
    tl = p[(p["claim"] == "a") & (p["forecaster"] == "test_loss")].iloc[0]
    assert f"test loss {tl['ratio']:.3g} [{tl['ratio_low']:.3g}, {tl['ratio_high']:.3g}]" in readme
    s = dense.forecasts.scores.set_index(["T", "measure"]).loc[(500, "restricted_loss")]
    assert f"AUC {s['auc']:.3g}" in readme and f"{s['auc_share']:.3g} for the cell's share" in readme
    b = p[p["claim"] == "b"]["verdict"]
    assert f"{(b == 'adds nothing within the margin').sum()} of {len(b)} measures" in readme
    assert f"{(b == 'not determined').sum()} not determined" in readme and not (b == "adds to test loss + clock").any()
    info = dense.information.table.set_index("measure")["verdict"]
    for m in ("restricted_loss", "gini_W_L", "sum_sq_weights", "cos_explained"):
        assert info[m] == "informative"
    r = dense.scale[("frac_train", 6000)]
    assert r.verdict == "not determined" and f"R {r.ratio:.3g} [{r.ratio_low:.3g}, {r.ratio_high:.3g}]" in readme
    assert "docs/emergence.md" in readme


def test_the_per_run_bimodality_lines(dense):
    b = dense.bimodality[dense.bimodality["near_critical"]].set_index("value")
    assert list(b.index) == [0.325, 0.35, 0.375]
    doc = _doc().replace("\n", " ")
    j = b.loc[0.375]
    assert j["verdict"] == "each run jumps"
    assert f"at 37.5 % **each run jumps** (gap statistic {j['gap_statistic']:.3g}, p {j['p']:.2g}, 6 runs)" in doc
    assert (b.loc[[0.325, 0.35], "verdict"] == "not determined").all()
    assert f"(p {b.loc[0.325, 'p']:.2g} and {b.loc[0.35, 'p']:.2g};" in doc


def test_the_repeated_cell_is_identical_on_one_machine():
    """The width sweep's d_mlp 256 cell repeats the dense sweep's 35 % cell: every row agrees exactly."""
    rd, rw = pd.read_csv(DENSE / "results.csv"), pd.read_csv(WIDTH / "results.csv")
    a = rd[rd["frac_train"] == 0.35].drop(columns=["run", "frac_train"]).reset_index(drop=True)
    b = rw[rw["d_mlp"] == 256].drop(columns=["run", "d_mlp"]).reset_index(drop=True)
    common = [c for c in a.columns if c in b.columns]
    assert len(a) == len(b) == 522 and len(common) > 20
    pd.testing.assert_frame_equal(a[common], b[common])
    assert "all 522 rows of both tables are identical" in _doc().replace("\n", " ")


def test_the_width_axis_does_not_reach_its_transition(width):
    """v2 §4: accuracy's fitted location lies beyond the largest width: "not reached", not "no jump"."""
    a = width.scale[("d_mlp", 6000)]
    assert a.verdict == "no jump"   # v1's word, kept in the history table
    row = width.verdict_table().set_index("subject").loc["d_mlp at step 6000"]
    assert row["verdict"] == "not determined (location not reached)"
    x0 = 2 ** a.fits["test_acc"].x0
    assert x0 > 512 and f"location at d_mlp {x0:.0f}, beyond the largest width, 512" in _doc().replace("\n", " ")


V2_WIDTH = ROOT / "sweeps" / "emergence-v2-width"


@pytest.fixture(scope="module")
def v2_width():
    return emergence.answer(V2_WIDTH)


def test_the_confirmatory_width_sweep_is_fresh_complete_and_every_line_in_the_manual(v2_width):
    """Protocol v2's width sweep: d_mlp 128-2048 x 12 seeds never trained before (1000-1011), every run complete,
    the real-or-artefact question read at the headline budget (the stop rule's runs carried forward), and every
    bullet of its section one of the protocol's verdict lines; the Kaplan-Meier medians and the CPU time."""
    import json

    ev = v2_width.events
    assert len(ev) == 60 and (ev.groupby("d_mlp").size() == 12).all()
    assert sorted(ev["d_mlp"].unique()) == [128, 256, 512, 1024, 2048]
    assert set(ev["seed"].astype(int)) == set(range(1000, 1012)) and not v2_width.exploratory
    assert (ev["budget"] == 12000).all()      # the budget each run was given, also where the stop rule ended it
    assert v2_width.headline_budget == 6000 and ("d_mlp", 6000) in v2_width.scale
    section = _part("### The confirmatory width sweep", "\n### ")
    bullets = re.findall(r"^- .+$", section, re.M)
    lines = _lines(v2_width.verdict_table())
    assert len(bullets) >= 12 + 12 + 9 + 1
    for line in bullets:
        assert line in lines, line
    km = v2_width.km[v2_width.km["event"] == "t90"]
    flat = section.replace("\n", " ")
    for _, r in km.iterrows():
        med = f"{r['km_median']:.0f}" if np.isfinite(r["km_median"]) else "> 12000"
        assert f"| {r['cell'].split('=')[1]} | {int(r['n_reached'])} of {int(r['n_runs'])} | {med} |" in flat
    record = json.loads((V2_WIDTH / "sweep.json").read_text())
    assert {r["status"] for r in record["runs"].values()} == {"complete"}
    cpu = sum(r["cpu_seconds"] for r in record["runs"].values())
    assert f"{cpu / 3600:.1f} CPU-hours" in flat
