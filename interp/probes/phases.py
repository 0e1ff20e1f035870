"""Where the phases of grokking end, read from the loss curves of a measured run.

The rule (also in ``Phases.rule``) uses only the train and test loss at the checkpoints, so it works
for any run, with or without a key-frequency set. With y = log10(test loss), smoothed by a running
median over 3 checkpoints, and "final" the median of y over the last 3 checkpoints:

1. **Grokked** when final is at least ``min_drop`` decades (default 2, i.e. 100x) below the peak of y.
   Otherwise circuit formation and cleanup have no end (None).
2. **Circuit formation end** (= cleanup start): the knee where the test loss starts its fall. Between the
   peak and the first checkpoint past half the fall (in decades), the checkpoint furthest *above* the
   straight line (step vs. y) joining them.
3. **Cleanup end**: the knee where the fall stops. Between that half-way checkpoint and the last one, the
   checkpoint furthest *below* the straight line from it to the final level. None (the run ended mid-fall)
   unless a plateau follows: checkpoints for at least a quarter of the time from half-fall to the knee,
   with y varying by at most 15 % of the fall.
4. **Memorisation end**: the test-loss peak. A two-segment (hinge) least-squares fit of y from step 0
   to the cleanup start (to the last checkpoint if not grokked) finds where the steep rise ends; if y
   still climbs after that break point by more than 4x its noise (estimated from second differences),
   the peak is the top of that bump (before y first drops back below its break-point value). It counts
   only if test loss rose there (>= 1.5x its first value), train loss is >= 10x below test loss
   there, and test loss later falls below half that value (a peak, not a plateau); else None.

The knees use the largest gap to a chord, which is robust where the curve bends sharply (the fall); the
hinge fit uses every point, which is robust on the nearly flat, noisy top of the memorisation peak.
On synthetic curves of the paper's shape (seeded noise of 0.03 decades) this places 1.4k / 9.4k / 14k
within 15 % (circuit formation and cleanup within ~7 %); see tests/test_phases.py. On our `nanda2023`
run's metrics.csv it gives 1.38k / 6.5k / 9.9k (that run groks earlier than the paper's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProbeError

RULE = ("y = log10 test loss (3-checkpoint running median); grokked if final y >= {min_drop} decades below its "
        "peak; circuit_formation_end = checkpoint furthest above the chord from the peak to half the fall; "
        "cleanup_end = furthest below the chord from half the fall to the final level (None unless a plateau "
        "follows for >= 1/4 of the half-fall-to-knee time, varying <= 15% of the fall); memorisation_end = "
        "break point of a hinge fit of y from step 0 to the cleanup start, moved to the top of the bump after it "
        "if that rises > 4 noise sigmas; counted if test loss rose >= 1.5x, train loss is >= 10x below test "
        "there and test loss later halves")


@dataclass(frozen=True)
class Phases:
    """Ends of the three phases of grokking, as checkpoint steps (None: not found in this run)."""

    memorisation_end: int | None
    circuit_formation_end: int | None
    cleanup_end: int | None
    grokked: bool = False
    rule: str = field(default="", repr=False)
    notes: tuple[str, ...] = ()

    def boundaries(self) -> dict[str, int | None]:
        return {"memorisation_end": self.memorisation_end, "circuit_formation_end": self.circuit_formation_end,
                "cleanup_end": self.cleanup_end}


def _running_median3(y: np.ndarray) -> np.ndarray:
    if len(y) < 3:
        return y.copy()
    padded = np.concatenate([y[:1], y, y[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def _knee(x: np.ndarray, y: np.ndarray, i: int, j: int, y_end: float, above: bool) -> int:
    """Index in [i, j] furthest above (or below) the line from (x[i], y[i]) to (x[j], y_end)."""
    if j <= i:
        return i
    xs, ys = x[i:j + 1], y[i:j + 1]
    line = ys[0] + (y_end - ys[0]) * (xs - xs[0]) / (xs[-1] - xs[0])
    gap = ys - line if above else line - ys
    return i + int(np.argmax(gap))


def _hinge(x: np.ndarray, y: np.ndarray, i: int, j: int) -> int:
    """Index in (i, j) of the break point b of the least-squares fit y ~ c0 + c1 x + c2 max(x - b, 0) on [i, j]."""
    if j - i < 2:
        return i
    xs = x[i:j + 1] - x[i]
    xs = xs / xs[-1]  # conditioning
    ys = y[i:j + 1]
    n = len(xs)

    # suffix sums over x > b, for every candidate b = xs[m], m = 1..n-2, in O(n)
    def suffix(v):
        return np.concatenate([np.cumsum(v[::-1])[::-1][1:], [0.0]])

    b = xs[1:-1]
    cnt, sx, sxx = suffix(np.ones(n))[1:-1], suffix(xs)[1:-1], suffix(xs * xs)[1:-1]
    sy, sxy = suffix(ys)[1:-1], suffix(xs * ys)[1:-1]
    s_h, s_xh = sx - b * cnt, sxx - b * sx
    s_hh, s_hy = sxx - 2 * b * sx + b * b * cnt, sxy - b * sy
    S1, Sx, Sxx, Sy, Sxy = float(n), xs.sum(), (xs * xs).sum(), ys.sum(), (xs * ys).sum()
    A = np.empty((len(b), 3, 3))
    A[:, 0] = np.stack([np.full_like(b, S1), np.full_like(b, Sx), s_h], 1)
    A[:, 1] = np.stack([np.full_like(b, Sx), np.full_like(b, Sxx), s_xh], 1)
    A[:, 2] = np.stack([s_h, s_xh, s_hh], 1)
    rhs = np.stack([np.full_like(b, Sy), np.full_like(b, Sxy), s_hy], 1)
    coef = np.linalg.solve(A + 1e-12 * np.eye(3), rhs[..., None])[..., 0]
    sse = (ys * ys).sum() - (coef * rhs).sum(1)  # residual sum of squares of each fit
    return i + 1 + int(np.argmin(sse))


def phases(df, min_drop: float = 2.0) -> Phases:
    """Find the ends of memorisation, circuit formation and cleanup in a measured run.

    df: a DataFrame with columns ``step``, ``train_loss`` and ``test_loss`` (e.g. from
    :func:`measure_run` or ``Run.metrics``), one row per checkpoint; rows without a test loss are
    skipped. See the module docstring for the rule.
    """
    for col in ("step", "train_loss", "test_loss"):
        if col not in getattr(df, "columns", ()):
            raise ProbeError(f"phases: the DataFrame needs a {col!r} column (e.g. the output of measure_run)")
    d = df[["step", "train_loss", "test_loss"]].dropna().sort_values("step")
    rule = RULE.format(min_drop=min_drop)
    if len(d) < 3:
        return Phases(None, None, None, False, rule, (f"only {len(d)} checkpoints with a test loss: too few",))
    x = d["step"].to_numpy(dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    raw = np.log10(np.maximum(d["test_loss"].to_numpy(dtype=np.float64), tiny))
    y = _running_median3(raw)
    train = d["train_loss"].to_numpy(dtype=np.float64)
    test = 10 ** y
    steps = d["step"].to_numpy()
    last = len(y) - 1
    notes: list[str] = []

    i_peak = int(np.argmax(y))
    final = float(np.median(y[-3:]))
    drop = y[i_peak] - final
    grokked = bool(i_peak < last and drop >= min_drop)
    circuit_formation_end = cleanup_end = None
    i_start = last
    if grokked:
        notes.append(f"grokked: test loss fell {drop:.1f} decades, from {test[i_peak]:.3g} at step {steps[i_peak]} "
                     f"to {10 ** final:.3g}")
        half = i_peak + int(np.argmax(y[i_peak:] <= final + drop / 2))
        i_start = _knee(x, y, i_peak, half, y[half], above=True)
        i_end = _knee(x, y, half, last, final, above=False)
        circuit_formation_end = int(steps[i_start])
        tail = y[i_end:]
        settled = (x[last] - x[i_end] >= 0.25 * (x[i_end] - x[half]) and i_end < last
                   and tail.max() - tail.min() <= 0.15 * drop)
        if not settled:
            notes.append(f"cleanup not finished: after the knee at step {steps[i_end]} (test loss {test[i_end]:.3g}) "
                         f"test loss still moves {tail.max() - tail.min():.1f} decades, or too few checkpoints follow")
        else:
            cleanup_end = int(steps[i_end])
    else:
        notes.append(f"did not grok: final test loss {10 ** final:.3g} is {drop:.2f} decades below the peak "
                     f"{test[i_peak]:.3g} (needs {min_drop})")

    i_mem = _hinge(x, y, 0, i_start)
    # The fit finds where the steep rise ends. If the curve still climbs after it by more than its noise
    # (4 sigma, sigma from the second differences of the raw log loss), the peak is the top of that bump.
    sigma = float(np.median(np.abs(np.diff(raw, 2)))) / 0.6745 / math.sqrt(6) if len(raw) > 2 else 0.0
    below = np.nonzero(y[i_mem + 1:i_start + 1] < y[i_mem])[0]
    bump_end = i_mem + 1 + int(below[0]) if len(below) else i_start
    top = i_mem + int(np.argmax(y[i_mem:bump_end + 1]))
    if y[top] - y[i_mem] > 4 * sigma:
        i_mem = top
    rose = y[i_mem] >= y[0] + math.log10(1.5)
    memorised = train[i_mem] <= test[i_mem] / 10
    falls_later = i_mem < last and y[i_mem + 1:].min() <= y[i_mem] - math.log10(2)
    memorisation_end = int(steps[i_mem]) if rose and memorised and falls_later else None
    if memorisation_end is None:
        why = ("test loss did not rise" if not rose else "train loss is not 10x below test loss" if not memorised
               else "test loss never falls below half its value there")
        notes.append(f"no memorisation peak: {why} (step {steps[i_mem]}, test loss {test[i_mem]:.3g})")
    return Phases(memorisation_end, circuit_formation_end, cleanup_end, grokked, rule, tuple(notes))
