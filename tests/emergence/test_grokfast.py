"""The Grokfast comparison (docs/grokfast-protocol.md) on sweeps whose answer is known by construction."""

import math

import numpy as np
import pandas as pd
import pytest

from interp.emergence.events import km_median
from interp.emergence.grokfast import arm_label, compare, km_median_weighted
from interp.errors import RunFormatError
from interp.sweep.tables import SweepTables
from interp.config import preset

ARMS = [  # optimiser, weight_decay, lr, grad_filter, grad_filter_lambda
    ("adamw", 1.0, 0.003, "none", 2.0),   # baseline
    ("adamw", 1.0, 0.003, "ema", 2.0),
    ("adamw", 1.0, 0.009, "none", 2.0),   # its lr control
    ("adam", 0.0, 0.003, "none", 2.0),
]
FIELDS = ["optimiser", "weight_decay", "lr", "grad_filter", "grad_filter_lambda"]


def _sweep(t99_of, seeds=6, budget=6000, fail=()):
    """A sweep table whose events are ``t99_of(arm_index, seed)`` (None: never reached); t_mem 100, t90 = t99 - 50."""
    spec = {"sweep": {"preset": "small", "n_steps": budget},
            "zip": [{f: [a[i] for a in ARMS] for i, f in enumerate(FIELDS)}], "seeds": {"both": seeds}}
    res, summ = [], []
    for i, arm in enumerate(ARMS):
        for s in range(seeds):
            name = f"arm{i},seed={s}"
            t99 = t99_of(i, s)
            fields = dict(zip(FIELDS, arm), data_seed=s, model_seed=s)
            last = budget if t99 is None else min(budget, t99 + 1000)
            failed = (i, s) in fail
            if failed:
                last, t99 = 300, None
            for step in (0, last):
                res.append({"run": name, **fields, "step": step, "train_loss": 0.1, "train_acc": 1.0 if step else 0.0,
                            "test_loss": 1.0, "test_acc": 1.0 if (t99 is not None and step >= t99) else 0.0,
                            "frac_neurons_clustered": 0.5 + 0.01 * i, "restricted_loss": 1e-3})
            summ.append({"run": name, **fields, "status": "failed" if failed else "complete", "budget": last,
                         "t_mem": 100, "t50": None if t99 is None else t99 - 100,
                         "t90": None if t99 is None else t99 - 50, "t99": t99,
                         "memorisation_end": 120, "circuit_formation_end": None if t99 is None else t99 - 200,
                         "cleanup_end": None if t99 is None else t99 + 300,
                         "key_frequencies": "4 11 17" if i == 0 else "4 11 20"})
    axes = [*FIELDS, "data_seed", "model_seed"]
    return SweepTables(pd.DataFrame(res), pd.DataFrame(summ), axes, None, {"spec": spec})


def test_weighted_km_median_is_scipys_on_repeated_runs():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        t = rng.choice([100.0, 200.0, 300.0, 400.0, 500.0], size=n)  # ties on purpose
        o = rng.random(n) < 0.6
        w = rng.integers(0, 4, size=(5, n))
        got = km_median_weighted(t, o, w)
        for row, g in zip(w, got):
            if row.sum() == 0:
                assert math.isnan(g)
            else:
                assert g == km_median(np.repeat(t, row), np.repeat(o, row))


def test_twice_as_fast_arm_and_its_equal_lr_control():
    """EMA and its lr control both reach t99 at half the baseline's step on every seed: speed-up 2.00 [2, 2] over
    the baseline ("faster"), 1.00 over the control: a bound, "the speed-up is at most 1.00x (95 %)"."""
    c = compare(_sweep(lambda i, s: {0: 2000 + 100 * s, 1: 1000 + 50 * s, 2: 1000 + 50 * s, 3: None}[i]), n_boot=300)
    assert c.baseline == "AdamW"
    sp = c.speedups.set_index(["arm", "versus", "event"])
    ema_vs_base = sp.loc[("AdamW + EMA l=2", "AdamW", "t99")]
    assert ema_vs_base.ratio == pytest.approx(2.0) and ema_vs_base.ci_low == pytest.approx(2.0)
    assert ema_vs_base.verdict == "faster"
    beyond = sp.loc[("AdamW + EMA l=2", "AdamW lr x3", "t99")]
    assert beyond.ratio == pytest.approx(1.0) and beyond.verdict == "not determined"
    adam = sp.loc[("Adam wd 0", "AdamW", "t99")]   # never reaches t99: ratio 0, slower
    assert adam.ratio == 0.0 and adam.verdict == "slower"
    line = next(x for x in c.answer_lines() if "EMA" in x)
    assert "2.00x [2.00, 2.00] over AdamW (faster)" in line
    assert line.endswith("1.00x [1.00, 1.00] over AdamW lr x3 (the speed-up is at most 1.00x (95 %), within the 1.5x "
                         "margin)")
    assert "no speed-up" not in " ".join(c.answer_lines())   # never stronger than the rule
    km = c.medians.set_index(["arm", "event"])
    assert km.loc[("AdamW", "t99")]["median"] == km_median([2000 + 100 * s for s in range(6)], [True] * 6)
    assert math.isinf(km.loc[("Adam wd 0", "t99")]["median"]) and km.loc[("Adam wd 0", "t99")].n_reached == 0
    ph = c.phases.set_index(["arm", "phase"])
    # circuit formation = circuit_formation_end - memorisation_end: (t99 - 200) - 120
    assert ph.loc[("AdamW", "circuit formation")]["median"] == pytest.approx(np.quantile(
        [2000 + 100 * s - 320 for s in range(6)], 0.5, method="inverted_cdf"))
    circ = c.circuit.set_index(["arm", "measure"])
    assert circ.loc[("AdamW + EMA l=2", "key frequencies shared with the same seed's baseline (Jaccard)")][
        "median"] == pytest.approx(0.5)   # {4, 11, 17} vs {4, 11, 20}


def test_seed_dependent_speedups_give_an_interval_that_straddles_one():
    faster = {0: 2000, 1: 2000, 2: 2000, 3: 500, 4: 500, 5: 500}   # the filter helps half the seeds ...
    slower = {0: 1000, 1: 1000, 2: 1000, 3: 4000, 4: 4000, 5: 4000}  # ... and hurts the other half
    c = compare(_sweep(lambda i, s: {0: faster[s], 1: slower[s], 2: slower[s], 3: 1000}[i]), n_boot=500)
    r = c.speedups.set_index(["arm", "versus", "event"]).loc[("AdamW + EMA l=2", "AdamW", "t99")]
    assert r.ci_low < 1 < r.ci_high and r.verdict == "not determined"


def test_a_diverged_run_is_censored_at_the_budget_not_at_its_last_step():
    c = compare(_sweep(lambda i, s: 1000, fail={(2, s) for s in range(4)}), n_boot=100)
    runs = c.runs[c.runs["arm"] == "AdamW lr x3"]
    assert (runs["budget"].iloc[:4] == 6000).all() and runs["t99"].iloc[:4].isna().all()
    km = c.medians.set_index(["arm", "event"]).loc[("AdamW lr x3", "t99")]
    assert math.isinf(km["median"]) and km.n_reached == 2


def test_a_sweep_without_arms_or_baseline_is_refused():
    t = _sweep(lambda i, s: 1000)
    no_arms = SweepTables(t.results, t.summary, ["data_seed", "model_seed"], None, t.meta)
    with pytest.raises(RunFormatError, match="no arms to compare"):
        compare(no_arms)
    other = dict(t.meta, spec={**t.meta["spec"], "base": {"lr": 0.001}})
    with pytest.raises(RunFormatError, match="no baseline arm"):
        compare(SweepTables(t.results, t.summary, t.axes, None, other))


def test_arm_labels_name_only_what_differs_from_the_base():
    base = preset("small")
    assert arm_label({}, base) == "AdamW"
    assert arm_label({"lr": 0.0045}, base) == "AdamW lr x1.5"
    assert arm_label({"optimiser": "adam", "weight_decay": 0.0, "grad_filter": "ema", "grad_filter_lambda": 2},
                     base) == "Adam wd 0 + EMA l=2"
    assert arm_label({"grad_filter": "ma", "grad_filter_window": 50}, base) == "AdamW + MA l=2 w=50"


def test_a_filter_that_does_nothing_gets_a_bound_not_a_no():
    """The filter arm reaches t99 at the baseline's step, seed by seed (noisy across seeds): the interval contains
    1 and the answer is the bound the data support, its upper end; a 2x filter on the same seeds is "faster"."""
    t99 = [900, 1500, 2600, 1100, 3000, 1800]
    same = compare(_sweep(lambda i, s: {0: t99[s], 1: t99[s], 2: t99[s] // 2, 3: None}[i]), n_boot=500)
    r = same.speedups.set_index(["arm", "versus", "event"]).loc[("AdamW + EMA l=2", "AdamW", "t99")]
    assert r.ratio == pytest.approx(1.0) and r.verdict == "not determined"
    assert r.answer == f"the speed-up is at most {r.ci_high:.2f}x (95 %), within the 1.5x margin" and r.ci_high < 1.5
    assert same.bound("AdamW + EMA l=2") == r.ci_high
    twice = compare(_sweep(lambda i, s: {0: t99[s], 1: t99[s] // 2, 2: t99[s] // 2, 3: None}[i]), n_boot=500)
    r2 = twice.speedups.set_index(["arm", "versus", "event"]).loc[("AdamW + EMA l=2", "AdamW", "t99")]
    assert r2.ratio == pytest.approx(2.0, rel=0.01) and r2.answer == "faster"


def test_the_weight_decay_matched_control_is_compared():
    """An arm with lr x (1 + lambda) and wd / (1 + lambda) (the same lr x wd per step) is the filter's second
    control (protocol v2)."""
    global ARMS
    saved = list(ARMS)
    try:
        ARMS[3] = ("adamw", 1.0 / 3.0, 0.009, "none", 2.0)
        c = compare(_sweep(lambda i, s: {0: 2000, 1: 2000, 2: 1000, 3: 800}[i]), n_boot=200)
    finally:
        ARMS[:] = saved
    versus = set(c.speedups[c.speedups["arm"] == "AdamW + EMA l=2"]["versus"])
    assert versus == {"AdamW", "AdamW lr x3", "AdamW wd 0.333333 lr x3"}
    r = c.speedups.set_index(["arm", "versus", "event"]).loc[("AdamW + EMA l=2", "AdamW wd 0.333333 lr x3", "t99")]
    assert r.ratio == pytest.approx(0.4) and r.answer == "slower"


def _grid_sweep(t99_of, seeds=8):
    """Protocol v2's 45 % design: baseline and filter at lr 1.5e-3 / 3e-3 / 6e-3, t99 = ``t99_of(arm, seed)``."""
    global ARMS
    saved = list(ARMS)
    try:
        ARMS[:] = [("adamw", 1.0, lr, f, 2.0) for f in ("none", "ema") for lr in (0.0015, 0.003, 0.006)]
        return _sweep(t99_of, seeds=seeds)
    finally:
        ARMS[:] = saved


def test_best_tuned_filter_against_best_tuned_baseline_is_chosen_in_every_resample():
    """The baseline is fastest at lr 6e-3 (1,000 steps), the filter at lr 1.5e-3 (800): the tuned comparison
    pits those two (1.25x), not the filter against the spec's lr 3e-3 baseline (3,000 / 800 = 3.75x). When the
    two best baseline arms alternate seed by seed, the resamples choose each (shares between 0 and 1)."""
    t = {0: 3000, 1: 3000, 2: 1000, 3: 800, 4: 2000, 5: 2500}
    c = compare(_grid_sweep(lambda i, s: t[i]), n_boot=300)
    sp = c.speedups.set_index(["arm", "versus", "event"])
    tuned = sp.loc[("AdamW + EMA l=2, tuned lr", "AdamW, tuned lr", "t99")]
    assert tuned.ratio == pytest.approx(1.25) and tuned.answer == "faster"
    assert sp.loc[("AdamW lr x0.5 + EMA l=2", "AdamW", "t99")].ratio == pytest.approx(3.75)
    chosen = c.tuned[c.tuned["chosen"]].set_index("family")["arm"]
    assert chosen["AdamW, tuned lr"] == "AdamW lr x2" and chosen["AdamW + EMA l=2, tuned lr"] == "AdamW lr x0.5 + EMA l=2"
    assert c.answer_lines()[0].startswith("all runs: AdamW + EMA l=2, tuned lr: t99 1.25x")
    assert "1.25 [1.25, 1.25] over AdamW, tuned lr" in c.markdown_table()

    # the baseline's lr 3e-3 and 6e-3 arms trade places seed by seed: both get chosen in some resamples
    alt = {s: (1000 if s % 2 else 4000, 4000 if s % 2 else 1000) for s in range(8)}
    c2 = compare(_grid_sweep(lambda i, s: {1: alt[s][0], 2: alt[s][1]}.get(i, 3000 if i == 0 else 1600)), n_boot=400)
    share = c2.tuned[c2.tuned["family"] == "AdamW, tuned lr"].set_index("arm")["share_of_resamples"]
    assert 0.05 < share["AdamW"] < 0.95 and share["AdamW"] + share["AdamW lr x2"] == pytest.approx(1)
    # each fixed arm's median swings between 1,000 and 4,000 across resamples; the tuned one, chosen again in every
    # resample, is always the faster of the two (a choice fixed on the data would swing like its arm)
    km = c2.medians[c2.medians["event"] == "t99"].set_index("arm")
    assert (km.loc["AdamW", "ci_low"], km.loc["AdamW", "ci_high"]) == (1000, 4000)
    assert (km.loc["AdamW, tuned lr", "ci_low"], km.loc["AdamW, tuned lr", "ci_high"]) == (1000, 1000)


def test_no_tuned_comparison_without_an_lr_grid():
    c = compare(_sweep(lambda i, s: 1000), n_boot=100)
    assert c.tuned.empty and not c.speedups["arm"].str.endswith(", tuned lr").any()


def test_the_command_leads_with_the_tuned_answer_in_the_protocols_words_within_100_columns(tmp_path, capsys):
    from interp.cli import main
    from interp.emergence.synthetic import write_sweep

    t = {0: 3000, 1: 3000, 2: 1000, 3: 800, 4: 2000, 5: 2500}
    write_sweep(_grid_sweep(lambda i, s: t[i]), tmp_path / "sw")
    assert main(["grokfast", str(tmp_path / "sw"), "--n-boot", "200", "--out", str(tmp_path / "tables")]) == 0
    out = capsys.readouterr().out
    assert [x for x in out.splitlines() if len(x) > 100] == []
    answer = out[out.index("== answer"):]
    assert answer.splitlines()[2].startswith("- all runs: AdamW + EMA l=2, tuned lr: t99 1.25x")
    assert "no speed-up" not in out
    tuned = pd.read_csv(tmp_path / "tables" / "tuned.csv")
    assert set(tuned.loc[tuned["chosen"], "arm"]) == {"AdamW lr x2", "AdamW lr x0.5 + EMA l=2"}
