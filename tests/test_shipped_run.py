"""The shipped reference run and its committed measures: recomputable, and telling the paper's story."""

from pathlib import Path

import pytest

from interp import Run, probes

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "checkpoints" / "nanda2023-p113-seed0"
MEASURES = ROOT / "probes" / "nanda2023-p113-seed0"


@pytest.fixture(scope="module")
def run():
    return Run(RUN)


@pytest.fixture(scope="module")
def measures():
    return probes.load_measures(MEASURES)


@pytest.fixture(scope="module")
def df(measures):
    return measures.df


def test_shipped_run_is_the_paper_setup_and_fits_the_budget(run):
    cfg = run.config
    assert (cfg.p, cfg.frac_train, cfg.d_model, cfg.d_mlp, cfg.weight_decay, cfg.lr) == (113, 0.3, 128, 512, 1.0, 1e-3)
    assert run.meta["status"] == {"state": "complete", "step": cfg.n_steps, "n_steps": cfg.n_steps}
    assert run.finished and run.state == "complete"
    assert sum(f.stat().st_size for f in RUN.iterdir()) < 64 * 2**20
    assert list(run.metrics.step) == list(range(cfg.n_steps + 1))  # the full loss curve


@pytest.mark.parametrize("pick", [0, 14, 27, -1])
def test_committed_rows_are_recomputed_from_the_checkpoints(run, measures, df, pick):
    row = df.iloc[pick]
    fresh = probes.measure_model(run.load(int(row.step)), run.task, measures.key_frequencies)
    for name in ("train_loss", "test_loss", "restricted_loss", "excluded_loss", "gini_W_E", "gini_W_L",
                 "sum_sq_weights", "test_acc"):
        assert fresh[name] == pytest.approx(row[name], rel=1e-5, abs=1e-12), name
    assert list(df.step) == run.steps
    assert measures.key_frequencies == probes.key_frequencies(run.load(run.final_step), run.task)
    assert measures.belongs_to(run) and probes.find_measures(run) is not None


def test_the_run_tells_the_papers_story(run, measures, df):
    """The paper's story (docs/science.md), checked on this run's numbers (not tuned: these are what it shows)."""
    ph = probes.phases(df)
    assert ph.grokked and ph.memorisation_end < ph.circuit_formation_end < ph.cleanup_end < run.final_step
    m = run.metrics.dropna()
    peak_step = int(m.step[m.test_loss.idxmax()])
    assert abs(peak_step - ph.memorisation_end) <= 400  # memorisation ends near the test-loss peak
    by = df.set_index("step")
    mem, circ, clean = ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end
    # memorisation: train loss tiny, test loss high
    assert by.train_loss[mem] < 1e-5 and by.test_loss[mem] > 20
    # circuit formation: excluded loss rises by orders of magnitude while train loss stays flat and tiny
    assert by.excluded_loss[circ] > 1000 * by.excluded_loss[mem]
    assert by.train_loss.loc[mem:circ].max() < 1e-5
    # restricted loss falls before test loss: at the end of circuit formation it is far lower
    assert by.restricted_loss[circ] < by.test_loss[circ] / 100
    # cleanup: Gini rises sharply, the sum of squared weights falls
    assert by.gini_W_L[clean] - by.gini_W_L[circ] > 0.3 and by.gini_W_E[clean] > 2 * by.gini_W_E[circ]
    assert by.sum_sq_weights[clean] < 0.6 * by.sum_sq_weights[circ] < by.sum_sq_weights[mem]
    # grokked: test loss on its final plateau
    assert df.test_loss.iloc[-1] < 1e-6 and df.test_acc.iloc[-1] == 1.0
    # the final model: a handful of key frequencies, most neurons explained by one of them
    assert 3 <= len(measures.key_frequencies) <= 6
    assert df.frac_neurons_clustered.iloc[-1] > 0.6
    assert df.cos_explained.iloc[-1] > 0.95


def test_the_committed_llc_curve_rises_through_memorisation_and_falls_through_grokking(run, measures, df):
    """The shipped run's LLC (calibrated defaults): healthy at every checkpoint, the same numbers as the committed
    calibration grid where the two share a checkpoint, and the shape the field reports."""
    import pandas as pd

    from interp.probes.learning_coefficient import MAX_CHAIN_SPREAD, MAX_FRAC_NEGATIVE

    assert measures.protocol["llc"]["settings"] == probes.LLCSettings().to_dict()
    assert (df.llc_frac_negative <= MAX_FRAC_NEGATIVE).all() and (df.llc_chain_spread <= MAX_CHAIN_SPREAD).all()
    assert (df.llc > 0).all()
    grid = pd.read_csv(ROOT / "probes" / "llc-calibration" / "nanda2023-p113-seed0.csv")
    at = grid[(grid.epsilon == 1e-3) & (grid.n_beta == 10.0)].set_index("step").estimate
    by = df.set_index("step")
    for step in (1200, 7000, 20000):  # computed by two different commands, same seed and settings
        assert by.llc[step] == pytest.approx(at[step], rel=1e-6)
    ph = probes.phases(df)
    peak = int(by.llc.idxmax())
    m = run.metrics.dropna()
    below_1 = int(m.step[m.test_loss < 1].iloc[0])
    assert by.llc[0] < 10 and by.llc.max() > 250
    assert ph.memorisation_end <= peak < ph.circuit_formation_end  # peaks after memorising, before grokking
    assert peak < below_1  # the fall starts long before test loss drops below 1
    assert by.llc[ph.cleanup_end] < by.llc.max() / 4  # most of the fall is over by the end of cleanup
    tail = by.llc.loc[ph.cleanup_end:]
    assert tail.max() - tail.min() < 0.1 * tail.min()  # then a plateau
