"""Where the phases of grokking end, read from the loss curves of a measured run.

The rule uses only the train and test loss at the checkpoints, so it works for any run, with or without a
key-frequency set. It is stated once, in :data:`RULE` (and recorded in every :class:`Phases` as ``rule``), from
the named thresholds below. The knees use the largest gap to a chord, which is robust where the curve bends
sharply (the fall); the hinge fit uses every point, which is robust on the nearly flat, noisy top of the
memorisation peak. tests/probes/test_phases.py checks it on synthetic curves of the paper's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProbeError

SMOOTHING = 3            # checkpoints in the running median of log10 test loss
MIN_DROP = 2.0           # decades the test loss must fall below its peak to count as grokked
PLATEAU_TIME = 0.25      # a settled cleanup is followed by at least this share of the half-fall-to-knee time
PLATEAU_SPREAD = 0.15    # ... during which log10 test loss varies by at most this share of the fall
BUMP_SIGMAS = 4.0        # a rise after the hinge break point larger than this many noise sigmas moves the peak
MIN_RISE = 1.5           # memorisation: test loss rose at least this factor above its first value
TRAIN_BELOW_TEST = 10.0  # ... with train loss at least this factor below test loss there
LATER_FALL = 2.0         # ... and test loss later falls below 1/LATER_FALL of its value there (a peak)

RULE = (f"y = log10 test loss ({SMOOTHING}-checkpoint running median); grokked if the final y is >= {{min_drop}} "
        "decades below its peak; circuit_formation_end = the checkpoint furthest above the chord from the peak to "
        "the first checkpoint past half the fall; cleanup_end = the checkpoint furthest below the chord from there "
        f"to the final level, kept only if a plateau follows for >= {PLATEAU_TIME:g} of the half-fall-to-knee time, "
        f"varying <= {PLATEAU_SPREAD:.0%} of the fall; memorisation_end = the break point of a two-segment "
        "(hinge) least-squares fit of y from step 0 to the cleanup start, moved to the top of the bump after it "
        f"if that rises > {BUMP_SIGMAS:g} noise sigmas (from second differences); counted only if test loss rose "
        f">= {MIN_RISE:g}x, train loss is >= {TRAIN_BELOW_TEST:g}x below test loss there and test loss later falls "
        f"below 1/{LATER_FALL:g} of it")


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


def _running_median(y: np.ndarray) -> np.ndarray:
    """Running median over SMOOTHING (odd) neighbours, the ends padded with their own values."""
    half = SMOOTHING // 2
    if len(y) < SMOOTHING:
        return y.copy()
    padded = np.concatenate([np.repeat(y[:1], half), y, np.repeat(y[-1:], half)])
    return np.median(np.stack([padded[i:i + len(y)] for i in range(SMOOTHING)]), axis=0)


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


def phases(df, min_drop: float = MIN_DROP) -> Phases:
    """Find the ends of memorisation, circuit formation and cleanup in a measured run.

    df: a DataFrame with columns ``step``, ``train_loss`` and ``test_loss`` (e.g. from
    :func:`measure_run` or ``Run.metrics``), one row per checkpoint; rows without a test loss are
    skipped. The rule is :data:`RULE`.
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
    y = _running_median(raw)
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
        settled = (x[last] - x[i_end] >= PLATEAU_TIME * (x[i_end] - x[half]) and i_end < last
                   and tail.max() - tail.min() <= PLATEAU_SPREAD * drop)
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
    # (sigma from the second differences of the raw log loss), the peak is the top of that bump.
    sigma = float(np.median(np.abs(np.diff(raw, 2)))) / 0.6745 / math.sqrt(6) if len(raw) > 2 else 0.0
    below = np.nonzero(y[i_mem + 1:i_start + 1] < y[i_mem])[0]
    bump_end = i_mem + 1 + int(below[0]) if len(below) else i_start
    top = i_mem + int(np.argmax(y[i_mem:bump_end + 1]))
    if y[top] - y[i_mem] > BUMP_SIGMAS * sigma:
        i_mem = top
    rose = y[i_mem] >= y[0] + math.log10(MIN_RISE)
    memorised = train[i_mem] <= test[i_mem] / TRAIN_BELOW_TEST
    falls_later = i_mem < last and y[i_mem + 1:].min() <= y[i_mem] - math.log10(LATER_FALL)
    memorisation_end = int(steps[i_mem]) if rose and memorised and falls_later else None
    if memorisation_end is None:
        why = ("test loss did not rise" if not rose else "train loss is not 10x below test loss" if not memorised
               else "test loss never falls below half its value there")
        notes.append(f"no memorisation peak: {why} (step {steps[i_mem]}, test loss {test[i_mem]:.3g})")
    return Phases(memorisation_end, circuit_formation_end, cleanup_end, grokked, rule, tuple(notes))
