"""Where one curve makes its change: the half-way step, the 10 %->90 % width, and the emergence step.

>>> steps = np.arange(0, 10_001, 100)
>>> acc = 0.01 + 0.99 / (1 + np.exp(-(steps - 6000) / 300))
>>> t = transition(steps, acc)
>>> round(t.step), round(t.width_steps), t.direction
(6000, 1325, 1)
>>> round(emergence_step(steps, acc))   # accuracy 0.5 is reached just before the midpoint 0.505
5994

The rule, in full (it is the same for every metric, so accuracy and the continuous metrics are
measured alike):

1. Rows whose value is NaN are dropped; a log metric is taken as ``log10(max(value, 1e-30))``.
2. A running median over ``window`` checkpoints (shrinking at the ends) smooths single-checkpoint
   noise. The curve's *end* is the smoothed last value; its *start* is the checkpoint whose smoothed
   value lies farthest from the end. The transition is the move from that start to the end, so a
   curve that first overshoots (test loss rising while the model memorises, weight norm growing
   before weight decay shrinks it) is measured on its final move, from its extreme to where it settles.
3. On that segment the raw values are replaced by their monotone envelope: the least-squares
   monotone fit (isotonic regression, pool-adjacent-violators) in the direction of the move. A noisy
   or briefly reversing curve then crosses every level exactly once.
4. ``change`` = last minus first value of the envelope. There is no transition ("flat") when
   ``|change|`` is below ``min_change`` (default: 0.1 decades for a log metric, else 5 % of the
   largest ``|value|``) or below four times the noise (1.4826 x the median absolute deviation of the
   values from their running median).
5. The 10 %, 50 % and 90 % steps are where the envelope first reaches ``first + q * change``,
   linearly interpolated between checkpoints. ``width_steps`` = step(90 %) - step(10 %);
   ``width_frac`` divides it by the span of the run (last step - first step, or ``span``).
6. ``complete`` is False when the envelope still moved by more than 5 % of the change over the last
   10 % of the run: the curve had not settled, so its end level, and with it every step, is provisional.

The *emergence step* is a different, absolute rule (the one of the question asked): the first
checkpoint where test accuracy is at least ``level``, interpolated linearly from the checkpoint before.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["Transition", "transition", "emergence_step", "rise_steps", "running_median", "monotone_envelope",
           "LOG_FLOOR"]

LOG_FLOOR = 1e-30  # a loss of exactly 0 is read as 1e-30 in log space
NOISE_FACTOR = 4.0  # a change must exceed this many noise standard deviations
SETTLED_SPAN = 0.1  # "complete": over the last 10 % of the run ...
SETTLED_MOVE = 0.05  # ... the envelope moved by at most 5 % of the change


@dataclass(frozen=True)
class Transition:
    """One curve's transition. Steps are floats (interpolated); values are in the metric's own units
    (``start_value``, ``end_value``) and ``change`` in the analysis space (log10 when ``log``)."""

    found: bool
    reason: str = ""  # why there is no transition ("" when found)
    step: float = math.nan  # half-way step
    step_10: float = math.nan
    step_90: float = math.nan
    width_steps: float = math.nan
    width_frac: float = math.nan
    direction: int = 0  # +1 rises, -1 falls, 0 none
    start_value: float = math.nan
    end_value: float = math.nan
    change: float = math.nan
    start_step: float = math.nan  # the checkpoint the move starts from (step 2 of the rule)
    complete: bool = False
    log: bool = False
    n_points: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arrays(steps, values, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        s = np.asarray(steps, dtype=float).reshape(-1) if np.ndim(steps) <= 1 else None
        v = np.asarray(values, dtype=float).reshape(-1) if np.ndim(values) <= 1 else None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: steps and values must be numbers") from None
    if s is None or v is None:
        raise ConfigError(f"{where}: steps and values must be 1-D")
    if len(s) != len(v):
        raise ConfigError(f"{where}: {len(s)} steps but {len(v)} values")
    if not np.all(np.isfinite(s)):
        raise ConfigError(f"{where}: steps must be finite numbers")
    if len(s) > 1 and not np.all(np.diff(s) > 0):
        raise ConfigError(f"{where}: steps must be strictly increasing")
    return s, v


def running_median(y: np.ndarray, window: int = 5) -> np.ndarray:
    """Median over a centred window of ``window`` points (odd; shrinks symmetrically at the ends)."""
    y = np.asarray(y, dtype=float)
    half = max(0, int(window) // 2)
    n = len(y)
    out = np.empty_like(y)
    if n > 2 * half:  # the interior at once; the shrinking windows at the ends one by one
        out[half:n - half] = np.median(np.lib.stride_tricks.sliding_window_view(y, 2 * half + 1), axis=1)
    for i in [*range(min(half, n)), *range(max(n - half, min(half, n)), n)]:
        h = min(half, i, n - 1 - i)
        out[i] = np.median(y[i - h:i + h + 1])
    return out


def monotone_envelope(y: np.ndarray, increasing: bool = True) -> np.ndarray:
    """Least-squares monotone fit of ``y`` (isotonic regression by pool-adjacent-violators). ``(n,) -> (n,)``"""
    y = np.asarray(y, dtype=float)
    sign = 1.0 if increasing else -1.0
    means: list[float] = []
    sizes: list[int] = []
    for v in sign * y:
        means.append(float(v))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, n2 = means.pop(), sizes.pop()
            m1, n1 = means.pop(), sizes.pop()
            means.append((m1 * n1 + m2 * n2) / (n1 + n2))
            sizes.append(n1 + n2)
    return sign * np.repeat(means, sizes)


def _crossing(s: np.ndarray, f: np.ndarray, level: float, rising: bool) -> float:
    """First step where the monotone ``f`` reaches ``level``, interpolated linearly."""
    hit = f >= level if rising else f <= level
    j = int(np.argmax(hit))
    if not hit[j]:
        return math.nan
    if j == 0 or f[j] == f[j - 1]:
        return float(s[j])
    return float(s[j - 1] + (level - f[j - 1]) / (f[j] - f[j - 1]) * (s[j] - s[j - 1]))


def _to_space(v: np.ndarray, log: bool, where: str) -> np.ndarray:
    if not log:
        return v
    if np.any(v < 0):
        raise ConfigError(f"{where}: a log-space metric cannot be negative (min {np.min(v):.3g})")
    return np.log10(np.maximum(v, LOG_FLOOR))


def transition(steps, values, log: bool = False, *, min_change: float | None = None, window: int = 5,
               span: float | None = None, where: str = "transition") -> Transition:
    """The transition of one curve (rule in the module docstring).

    steps: ``(n,)`` strictly increasing training steps; values: ``(n,)`` the metric (NaN rows dropped).
    log: analyse ``log10(values)`` (losses). min_change: the smallest change that counts, in the analysis
    space. span: the run's length in steps for ``width_frac`` (default: last - first step given).
    """
    s, v = _arrays(steps, values, where)
    keep = ~np.isnan(v)
    s, v = s[keep], v[keep]
    if np.any(np.isinf(v)):
        raise ConfigError(f"{where}: values must be finite (found inf)")
    n = len(s)
    if n < 3:
        return Transition(False, f"too few points ({n}; need 3)", log=log, n_points=n)
    y = _to_space(v, log, where)
    span = float(span) if span is not None else float(s[-1] - s[0])
    sm = running_median(y, window)
    noise = 1.4826 * float(np.median(np.abs(y - sm)))
    if min_change is None:
        min_change = 0.1 if log else 0.05 * float(np.max(np.abs(v)))
    threshold = max(float(min_change), NOISE_FACTOR * noise)
    dist = np.abs(sm - sm[-1])
    i0 = int(np.argmax(dist))
    rising = bool(sm[-1] > sm[i0])
    f = monotone_envelope(y[i0:], increasing=rising)
    seg = s[i0:]
    change = float(f[-1] - f[0])
    unit = "decades" if log else "units"
    back = (lambda x: 10.0 ** x) if log else (lambda x: x)
    base = dict(log=log, n_points=n, start_value=float(back(f[0])), end_value=float(back(f[-1])), change=change,
                start_step=float(s[i0]))
    if abs(change) < threshold or dist[i0] == 0:
        why = "noise" if NOISE_FACTOR * noise > float(min_change) else "min_change"
        return Transition(False, f"flat: change {abs(change):.3g} {unit} is below the threshold {threshold:.3g} "
                                 f"({why})", **base)
    at = {q: _crossing(seg, f, f[0] + q * change, rising) for q in (0.1, 0.5, 0.9)}
    tail = seg >= s[-1] - SETTLED_SPAN * span
    j = int(np.argmax(tail))
    moved = abs(float(f[-1] - (f[j - 1] if j > 0 else f[0])))
    width = at[0.9] - at[0.1]
    return Transition(True, "", step=at[0.5], step_10=at[0.1], step_90=at[0.9], width_steps=width,
                      width_frac=width / span if span > 0 else math.nan, direction=1 if rising else -1,
                      complete=moved <= SETTLED_MOVE * abs(change), **base)


def _first_at_least(s: np.ndarray, v: np.ndarray, level: float) -> tuple[float, int]:
    hit = v >= level
    j = int(np.argmax(hit)) if len(v) else 0
    if not len(v) or not hit[j]:
        return math.nan, -1
    if j == 0:
        return float(s[0]), 0
    return float(s[j - 1] + (level - v[j - 1]) / (v[j] - v[j - 1]) * (s[j] - s[j - 1])), j


def emergence_step(steps, test_acc, level: float = 0.5) -> float | None:
    """The first step where test accuracy is at least ``level``, interpolated linearly between the last
    checkpoint below it and the first at or above it; None when it never gets there (NaN rows dropped)."""
    if not 0.0 < level <= 1.0:
        raise ConfigError(f"emergence_step: level must be in (0, 1], got {level}")
    s, v = _arrays(steps, test_acc, "emergence_step")
    keep = ~np.isnan(v)
    step, _ = _first_at_least(s[keep], v[keep], level)
    return None if math.isnan(step) else step


def rise_steps(steps, test_acc, low: float = 0.1, high: float = 0.9) -> tuple[float, float] | None:
    """``(start, end)`` of accuracy's rise from below ``low`` to at least ``high``: ``end`` is the first
    step at or above ``high`` and ``start`` the last step below ``low`` before it (both interpolated).
    None when accuracy never reaches ``high`` or was never below ``low`` before it."""
    if not 0.0 <= low < high <= 1.0:
        raise ConfigError(f"rise_steps: need 0 <= low < high <= 1, got low={low}, high={high}")
    s, v = _arrays(steps, test_acc, "rise_steps")
    keep = ~np.isnan(v)
    s, v = s[keep], v[keep]
    end, j = _first_at_least(s, v, high)
    if math.isnan(end):
        return None
    below = np.nonzero(v[:j] < low)[0]
    if not len(below):
        return None
    i = int(below[-1])
    start = float(s[i] + (low - v[i]) / (v[i + 1] - v[i]) * (s[i + 1] - s[i]))
    return start, end
