"""The shipped sweep's committed tables say what the README says they say."""

import re
from pathlib import Path

import pandas as pd
import pytest

from interp import emergence

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "sweeps" / "emergence-small"


@pytest.fixture(scope="module")
def analysis():
    return emergence.analyse(SWEEP, axis="frac_train")


def test_every_headline_line_is_in_the_readme(analysis):
    readme = (ROOT / "README.md").read_text()
    lines = analysis.headline()
    assert len(lines) >= 10
    for line in lines:
        assert f"- {line}\n" in readme, line


def test_the_linear_space_lead_lines_are_in_the_readme():
    """The README's second reading of the leads (losses in linear space) is what the tables give."""
    linear = emergence.analyse(SWEEP, axis="frac_train", loss_space="linear")
    readme = (ROOT / "README.md").read_text()
    lines = [line for line in linear.headline() if "made half its change" in line]
    assert len(lines) == 6
    for line in lines:
        assert f"  - {line}\n" in readme, line
    summary = linear.lead_summary.set_index("metric")
    assert summary.loc["restricted_loss", "n_leading"] == 21 and summary.loc["test_loss", "n_leading"] == 2
    late = linear.runs[linear.runs["emergence_step"] > 1000]["run"]
    leads = linear.leads[linear.leads["run"].isin(late) & (linear.leads["metric"] == "restricted_loss")]["lead"]
    assert len(leads) == 4 and 900 < leads.min() and leads.max() < 2300
    assert linear.prediction_table.set_index("measure").loc["restricted_loss", "mae"] == pytest.approx(281, abs=1)


def test_the_readme_reading_of_the_tables(analysis):
    results = pd.read_csv(SWEEP / "results.csv")
    assert results["run"].nunique() == 36 and len(results) == 36 * 57
    final = results[results["step"] == 2500]
    assert final[final["frac_train"] == 0.3]["test_acc"].max() < 0.2  # still memorising at the budget
    assert final[final["frac_train"] >= 0.5]["test_acc"].min() >= 0.99  # generalised
    emerged = analysis.runs[analysis.runs["frac_train"] == 0.4].groupby("d_mlp")["emerged"].sum().to_dict()
    assert emerged == {128: 1, 256: 1, 512: 2}
    scale = analysis.scale.table.set_index(["group", "metric"])
    for group in ("d_mlp=128", "d_mlp=256", "d_mlp=512"):  # the continuous metric is as sharp as accuracy
        acc, prob = scale.loc[(group, "test_acc"), "sharpness"], scale.loc[(group, "test_prob_correct"), "sharpness"]
        assert acc > 0.5 and abs(acc - prob) < 0.02
        assert scale.loc[(group, "test_acc"), "discontinuity"] < 0  # the jump comes before the largest fraction
    late = analysis.runs[analysis.runs["emergence_step"] > 1000]["run"]
    leads = analysis.leads[analysis.leads["run"].isin(late) & (analysis.leads["metric"] == "excluded_loss")]
    assert len(late) == 4 and (leads["lead"] > 0).sum() == 3
    pred = analysis.prediction_table.set_index("measure")
    assert pred.loc["frac_neurons_clustered", "mae"] < 0.6 * pred.loc["frac_neurons_clustered", "mae_baseline"]
    assert pred.loc["gini_W_E", "mae"] > pred.loc["gini_W_E", "mae_baseline"]
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"MAE\s+229 steps vs 407", readme.replace("\n", " ")) or "229 steps, against 407" in readme


def test_the_committed_emergence_tables_are_the_analysis_of_the_committed_results(analysis):
    runs = pd.read_csv(SWEEP / "emergence" / "runs.csv")
    pd.testing.assert_series_equal(runs["emergence_step"], analysis.runs["emergence_step"].reset_index(drop=True),
                                   check_names=False)
    pred = pd.read_csv(SWEEP / "emergence" / "prediction.csv")
    assert pred["mae"].tolist() == pytest.approx(analysis.prediction_table["mae"].tolist())
