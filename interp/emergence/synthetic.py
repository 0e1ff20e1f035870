"""A sweep table with known transitions, for trying and testing the analysis without training anything.

Every curve is a logistic in the training step (in log10 space for losses) with a known half-way
step and 10 %->90 % width, placed relative to the run's emergence time ``t_e = base / frac_train``
(more data, earlier grokking), so the ground truth of every table is known in closed form.

>>> results, truth = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0,))
>>> sorted(results["run"].unique())
['frac0.3-seed0', 'frac0.5-seed0']
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["logistic", "synthetic_sweep", "CURVES"]

# metric -> (half-way as a multiple of t_e, 10-90 width as a multiple of t_e, start, end, log10 space)
CURVES = {
    "test_acc": (1.0, 0.1, 0.01, 1.0, False),
    "test_loss": (1.05, 0.2, math.log10(30.0), -7.0, True),
    "test_prob_correct": (0.95, 0.3, 0.01, 1.0, False),
    "test_brier": (0.95, 0.3, 0.99, 0.0, False),
    "restricted_loss": (0.7, 0.4, math.log10(4.7), -7.0, True),
    "excluded_loss": (0.5, 0.3, -3.0, 1.0, True),
    "gini_W_E": (1.2, 0.6, 0.03, 0.8, False),
    "gini_W_L": (1.0, 0.5, 0.04, 0.9, False),
    "sum_sq_weights": (0.8, 0.6, 3000.0, 900.0, False),
    "frac_neurons_clustered": (1.1, 0.3, 0.0, 0.74, False),
}


def logistic(t, mid: float, width: float, start: float, end: float) -> np.ndarray:
    """``start + (end - start) * sigmoid((t - mid) / s)`` with ``s = width / (2 ln 9)``, so it makes 10 %
    of its change at ``mid - width/2`` and 90 % at ``mid + width/2``. ``t: (n,) -> (n,)``"""
    s = width / (2 * math.log(9))
    return start + (end - start) / (1 + np.exp(-(np.asarray(t, float) - mid) / s))


def synthetic_sweep(frac_train: Sequence[float] = (0.3, 0.4, 0.5, 0.6), seeds: Sequence[int] = (0, 1, 2),
                    n_steps: int = 10_000, every: int = 100, base: float = 1500.0, noise: float = 0.0,
                    rng_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(results, truth)``: a tidy results table (run, frac_train, data_seed, step, the metrics of
    :data:`CURVES`, train_loss, train_acc) and the ground truth (one row per run x metric: mid, width,
    in steps, and the run's exact emergence step, NaN when accuracy never reaches 0.5 in the run).

    Seed s shifts a run's t_e by a factor 1 + 0.04 (s - 1); noise adds Gaussian noise of that standard
    deviation to every metric (in log10 space for losses; accuracies and probabilities clipped to [0, 1]).
    """
    rng = np.random.default_rng(rng_seed)
    steps = np.arange(0, n_steps + 1, every)
    rows, truth = [], []
    for frac in frac_train:
        for seed in seeds:
            run = f"frac{frac:g}-seed{seed}"
            t_e = base / frac * (1 + 0.04 * (seed - 1))
            cols = {"run": run, "frac_train": frac, "data_seed": seed, "step": steps}
            for m, (mid, width, start, end, log) in CURVES.items():
                y = logistic(steps, mid * t_e, width * t_e, start, end)
                if noise:
                    y = y + rng.normal(0, noise, len(y))
                if log:
                    y = 10.0 ** y
                elif m in ("test_acc", "test_prob_correct"):
                    y = np.clip(y, 0, 1)
                cols[m] = y
                truth.append({"run": run, "metric": m, "mid": mid * t_e, "width": width * t_e})
            cols["train_loss"] = np.full(len(steps), 1e-7)
            cols["train_acc"] = np.ones(len(steps))
            rows.append(pd.DataFrame(cols))
            # accuracy 0.5 is reached where sigmoid = (0.5 - 0.01) / 0.99
            mid, width, start, end, _ = CURVES["test_acc"]
            s = width * t_e / (2 * math.log(9))
            q = (0.5 - start) / (end - start)
            e = mid * t_e + s * math.log(q / (1 - q))
            for r in truth[-len(CURVES):]:
                r["emergence_step"] = e if e <= steps[-1] else math.nan
    return pd.concat(rows, ignore_index=True), pd.DataFrame(truth)
