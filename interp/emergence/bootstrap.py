"""The seed-cluster bootstrap of the protocol: seeds resampled with replacement within each cell.

A resample is a matrix of counts ``(n_boot, n_runs)``: how often each run enters that resample. Within a
cell the counts are multinomial over the cell's runs (one run = one seed of that cell), so every cell
keeps its size. Statistics are computed on all resamples at once (weighted medians and means), seeded.

>>> w = cluster_weights(["a", "a", "b"], n_boot=4, seed=0)
>>> w.shape, w[:, :2].sum(axis=1).tolist(), w[:, 2].tolist()
((4, 3), [2, 2, 2, 2], [1, 1, 1, 1])
"""

from __future__ import annotations

import functools

import numpy as np

from .protocol import BOOT_SEED, CI, N_BOOT

__all__ = ["cluster_weights", "weighted_median", "interval", "boot_median", "boot_ratio_of_means"]


def cluster_weights(cells, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """``(n_boot, n_runs)`` integer counts: each cell's runs resampled with replacement, the cell's size kept
    (the same cells and seed give the same resamples: paired statistics share them). Read-only."""
    return _weights(tuple(np.asarray(cells).tolist()), int(n_boot), int(seed))


@functools.lru_cache(maxsize=64)
def _weights(cells: tuple, n_boot: int, seed: int) -> np.ndarray:
    cells = np.asarray(cells)
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, len(cells)), dtype=np.int64)
    for c in dict.fromkeys(cells.tolist()):
        idx = np.nonzero(cells == c)[0]
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    w.flags.writeable = False
    return w


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of ``values (n,)`` under each row of integer ``weights (b, n)`` (the lower median for even
    totals, as ``np.quantile(..., method="inverted_cdf")``); infinite values allowed. ``-> (b,)``"""
    v = np.asarray(values, float)
    order = np.argsort(v, kind="stable")
    v, w = v[order], np.asarray(weights)[:, order]
    cum = np.cumsum(w, axis=1)
    half = cum[:, -1:] / 2.0
    k = np.argmax(cum >= half, axis=1)
    return v[k]


def interval(samples: np.ndarray, ci: float = CI) -> tuple[float, float]:
    """Percentile interval of bootstrap samples (NaN samples left out; infinities kept in order)."""
    s = np.asarray(samples, float)
    s = s[~np.isnan(s)]
    if not len(s):
        return float("nan"), float("nan")
    a = (1 - ci) / 2
    lo, hi = np.quantile(s, [a, 1 - a], method="inverted_cdf")
    return float(lo), float(hi)


def boot_median(values, cells, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float, float, float]:
    """``(median, ci_low, ci_high)`` of per-run values under the cluster bootstrap."""
    v = np.asarray(values, float)
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    est = float(weighted_median(v, np.ones((1, len(v)), dtype=np.int64))[0])
    return (est, *interval(weighted_median(v, cluster_weights(cells, n_boot, seed))))


def boot_ratio_of_means(num, den, weights: np.ndarray) -> np.ndarray:
    """``sum(w num) / sum(w den)`` per resample (a ratio of MAEs over the same runs). ``-> (b,)``"""
    n = weights @ np.asarray(num, float)
    d = weights @ np.asarray(den, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, n / d, np.nan)
