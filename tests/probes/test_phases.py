"""interp.probes.phases: the paper's boundaries on curves of the paper's shape, None where there is no grokking."""

import numpy as np
import pandas as pd
import pytest

from interp import probes
from interp.errors import ProbeError

PAPER = {"memorisation_end": 1400, "circuit_formation_end": 9400, "cleanup_end": 14000}


def _smoothstep(t):
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def _linear(t):
    return np.clip(t, 0, 1)


def _between(x, x0, x1, y0, y1, ease=_smoothstep):
    """log-space interpolation from y0 at x0 to y1 at x1 (values are decades)."""
    return y0 + (y1 - y0) * ease((x - x0) / (x1 - x0))


def paper_curves(seed=0, end=20000, every=100, noise=0.03, grok=True):
    """Synthetic progress measures with the shape docs/science.md (section 5) describes for the paper's main run.

    memorisation 0 -> 1.4k: train loss 4.7 -> 1e-6, test loss rises to ~27; circuit formation 1.4k -> 9.4k:
    train/test loss flat-ish (test drifts 27 -> 18), excluded loss rises by orders of magnitude, restricted loss
    slowly falls, weight norm falls; cleanup 9.4k -> 14k: test loss drops to 1e-7, restricted loss falls before
    it, Gini rises sharply, weight norm drops; stable after. Noise: `noise` decades, seeded.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(0, end + 1, every, dtype=float)
    train = np.where(x <= 1400, _between(x, 0, 1400, np.log10(4.7), -6, _linear),
                     _between(x, 9400, 14000, -6, -7.2))
    test = np.where(x <= 1400, _between(x, 0, 1400, np.log10(4.7), np.log10(27), _linear),
                    _between(x, 1400, 9400, np.log10(27), np.log10(18), _linear))
    if grok:
        test = np.where(x <= 9400, test, _between(x, 9400, 14000, np.log10(18), -7))
    restricted = np.where(x <= 1400, np.log10(4.6), _between(x, 1400, 13000, np.log10(4.6), -6.5))
    excluded = np.where(x <= 1400, _between(x, 0, 1400, np.log10(4.7), -6, _linear),
                        _between(x, 1400, 9400, -6, 1.3))
    gini = 0.1 + (0.7 * _smoothstep((x - 9400) / 4600) if grok else 0 * x)
    weights = 1500 - 400 * _smoothstep((x - 1400) / 8000) - (500 * _smoothstep((x - 9400) / 4600) if grok else 0)

    def noisy(decades):
        return 10 ** (decades + rng.normal(0, noise, x.shape))

    return pd.DataFrame({"step": x.astype(int), "train_loss": noisy(train), "test_loss": noisy(test),
                         "restricted_loss": noisy(restricted), "excluded_loss": noisy(excluded),
                         "gini_W_E": gini, "gini_W_L": gini, "sum_sq_weights": weights})


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("end,every", [(20000, 100), (40000, 200), (16000, 50)])
def test_paper_shaped_curves_give_the_paper_boundaries(seed, end, every):
    ph = probes.phases(paper_curves(seed, end=end, every=every))
    assert ph.grokked
    for name, want in PAPER.items():
        got = getattr(ph, name)
        assert got is not None and abs(got - want) <= 0.15 * want, (name, got, want, ph.notes)


def test_a_smooth_peak_after_the_steep_rise_is_found():
    """Like our nanda2023 run's metrics.csv: test loss reaches 27 at 1k, creeps up to 29.3 at 1.38k, then eases
    down to 18 by 6k before the drop to 1.4e-7 (6.5k -> 10k). Smooth (full-batch), every 10 steps."""
    x = np.arange(0, 20001, 10, dtype=float)
    lg = np.log10
    y = np.select(
        [x <= 1000, x <= 1380, x <= 6500],
        [_between(x, 0, 1000, lg(4.7), lg(27), lambda t: np.clip(t, 0, 1)),
         lg(27) + (lg(29.3) - lg(27)) * (1 - (1 - (x - 1000) / 380) ** 2),
         _between(x, 1380, 6500, lg(29.3), lg(18))],
        _between(x, 6500, 10000, lg(18), lg(1.4e-7)))
    train = np.where(x <= 1000, 10 ** _between(x, 0, 1000, lg(4.7), -5.3, lambda t: np.clip(t, 0, 1)), 1e-7)
    ph = probes.phases(pd.DataFrame({"step": x.astype(int), "train_loss": train, "test_loss": 10 ** y}))
    want = {"memorisation_end": 1380, "circuit_formation_end": 6500, "cleanup_end": 10000}
    for name, w in want.items():
        assert abs(getattr(ph, name) - w) <= 0.1 * w, (name, getattr(ph, name), ph.notes)


def test_row_order_and_missing_test_values_do_not_matter():
    df = paper_curves(1)
    ref = probes.phases(df)
    shuffled = df.sample(frac=1.0, random_state=0)
    assert probes.phases(shuffled).boundaries() == ref.boundaries()
    holes = df.copy()
    holes.loc[holes.index % 7 == 3, "test_loss"] = np.nan  # metrics.csv style: test loss only some rows
    got = probes.phases(holes).boundaries()
    for name, want in PAPER.items():
        assert abs(got[name] - want) <= 0.15 * want


def test_a_run_that_never_groks_has_no_boundaries():
    ph = probes.phases(paper_curves(2, grok=False))
    assert not ph.grokked
    assert ph.circuit_formation_end is None and ph.cleanup_end is None
    # test loss that only rises then plateaus: not even a memorisation peak
    x = np.arange(0, 5001, 100)
    rising = pd.DataFrame({"step": x, "train_loss": 4.7 * np.exp(-x / 200) + 1e-6,
                           "test_loss": 4.7 + 20 * (1 - np.exp(-x / 300))})
    ph = probes.phases(rising)
    assert ph.boundaries() == {"memorisation_end": None, "circuit_formation_end": None, "cleanup_end": None}
    assert any("did not grok" in n for n in ph.notes)


def test_a_run_that_ends_mid_fall_has_no_cleanup_end():
    df = paper_curves(3)
    ph = probes.phases(df[df.step <= 12500])
    assert ph.grokked and ph.cleanup_end is None
    assert abs(ph.circuit_formation_end - 9400) <= 0.15 * 9400


def test_real_run_that_has_not_grokked(probe_run):
    ph = probes.phases(probe_run.metrics)  # metrics.csv works as well as measures
    assert not ph.grokked and ph.cleanup_end is None and ph.circuit_formation_end is None


def test_phases_needs_the_loss_columns():
    with pytest.raises(ProbeError, match="'test_loss' column"):
        probes.phases(pd.DataFrame({"step": [0, 1], "train_loss": [1.0, 0.5]}))
