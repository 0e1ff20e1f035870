"""Transitions of single curves with known answers: logistic accuracy, log-linear losses, overshoot,
noise, dips, flat and never-emerging curves, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp.emergence.transition import emergence_step, monotone_envelope, rise_steps, running_median, transition
from interp.emergence.synthetic import logistic
from interp.errors import ConfigError, InterpError

STEPS = np.arange(0, 10_001, 50)


def close(a, b, rel=0.05):
    return abs(a - b) <= rel * abs(b)


@pytest.mark.parametrize("mid,width", [(5000, 1000), (2500, 400), (7000, 2500)])
def test_logistic_accuracy_half_way_and_width(mid, width):
    acc = logistic(STEPS, mid, width, 0.01, 1.0)
    t = transition(STEPS, acc)
    assert t.found and t.direction == 1 and t.complete
    assert close(t.step, mid, 0.01) and close(t.width_steps, width)
    assert close(t.step_10, mid - width / 2) and close(t.step_90, mid + width / 2)
    assert close(t.width_frac, width / 10_000)
    assert close(t.start_value, 0.01, 0.2) and close(t.end_value, 1.0, 0.01)


def test_log_linear_loss_in_log_space():
    # log10(loss) falls linearly from 0.5 to -6.5 between steps 2000 and 6000, flat before and after
    log_loss = np.interp(STEPS, [0, 2000, 6000, 10_000], [0.5, 0.5, -6.5, -6.5])
    t = transition(STEPS, 10 ** log_loss, log=True)
    assert t.found and t.direction == -1 and t.log
    assert close(t.step, 4000) and close(t.step_10, 2400) and close(t.step_90, 5600)
    assert close(t.width_steps, 3200) and close(t.change, -7.0, 0.001)
    # in linear space the same curve has made half its fall almost at once: the log rule matters
    lin = transition(STEPS, 10 ** log_loss, log=False)
    assert lin.step < 2300


def test_overshoot_is_measured_from_the_peak():
    """Test loss first rises (memorisation), then falls: the transition is the fall from the peak."""
    up = np.interp(STEPS, [0, 1500], [0.67, 1.4])
    down = logistic(STEPS, 6000, 1500, 1.4, -7.0)
    log_loss = np.where(STEPS <= 1500, up, np.minimum(down, 1.4))
    t = transition(STEPS, 10 ** log_loss, log=True)
    assert t.found and t.direction == -1
    assert 1000 <= t.start_step <= 2000
    assert close(t.step, 6000) and close(t.width_steps, 1500, 0.1)


def test_rising_log_metric_after_a_fall():
    """Excluded loss: falls while the model memorises, then rises as the circuit forms."""
    log_ex = np.where(STEPS < 1000, np.interp(STEPS, [0, 1000], [0.67, -3.0]), logistic(STEPS, 4000, 2000, -3.0, 1.0))
    t = transition(STEPS, 10 ** log_ex, log=True)
    assert t.found and t.direction == 1 and close(t.step, 4000) and close(t.width_steps, 2000, 0.1)


def test_noisy_curve_recovers_step_and_width():
    rng = np.random.default_rng(0)
    acc = np.clip(logistic(STEPS, 5000, 1200, 0.01, 1.0) + rng.normal(0, 0.03, len(STEPS)), 0, 1)
    t = transition(STEPS, acc)
    assert t.found and close(t.step, 5000) and close(t.width_steps, 1200, 0.15)
    # the raw curve crosses its half-way level several times; the envelope crosses once
    assert np.all(np.diff(monotone_envelope(acc)) >= 0)


def test_non_monotone_dip_does_not_move_the_transition():
    acc = logistic(STEPS, 4000, 800, 0.01, 1.0)
    acc[(STEPS >= 7000) & (STEPS < 7300)] = 0.6  # a brief relapse after grokking
    t = transition(STEPS, acc)
    assert t.found and t.direction == 1 and close(t.step, 4000) and close(t.width_steps, 800, 0.1)


@pytest.mark.parametrize("values,log", [
    (np.full(len(STEPS), 0.01), False),  # constant
    (0.01 + np.random.default_rng(1).normal(0, 0.004, len(STEPS)).clip(-0.01), False),  # noise around chance
    (np.full(len(STEPS), 4.7) * (1 + 1e-3 * np.sin(STEPS / 300)), True),  # a loss that barely moves
])
def test_flat_curves_have_no_transition(values, log):
    t = transition(STEPS, values, log=log)
    assert not t.found and t.reason.startswith("flat") and math.isnan(t.step)


def test_pure_noise_is_not_a_transition():
    rng = np.random.default_rng(2)
    y = 0.5 + rng.normal(0, 0.1, len(STEPS))
    t = transition(STEPS, y, min_change=0.0)
    assert not t.found and "noise" in t.reason


def test_unfinished_curve_is_flagged():
    acc = logistic(STEPS, 9800, 1000, 0.01, 1.0)  # still rising at the last step
    t = transition(STEPS, acc)
    assert t.found and not t.complete


def test_never_grokking_run():
    acc = 0.01 + 0.02 * STEPS / STEPS[-1]
    assert emergence_step(STEPS, acc) is None
    assert rise_steps(STEPS, acc) is None
    assert not transition(STEPS, acc, min_change=0.05).found


def test_emergence_and_rise_are_interpolated():
    s = np.array([0, 100, 200, 300, 400])
    acc = np.array([0.0, 0.05, 0.3, 0.7, 0.95])
    assert emergence_step(s, acc) == pytest.approx(250)
    assert emergence_step(s, acc, level=0.95) == pytest.approx(400)
    start, end = rise_steps(s, acc)
    assert start == pytest.approx(100 + 100 * (0.1 - 0.05) / 0.25) and end == pytest.approx(380)


def test_nan_rows_are_dropped_and_too_few_points_reported():
    acc = logistic(STEPS, 5000, 1000, 0.0, 1.0)
    acc[::2] = np.nan  # test metrics only every other checkpoint
    t = transition(STEPS, acc)
    assert t.found and close(t.step, 5000, 0.01)
    short = transition([0, 100], [0.0, 1.0])
    assert not short.found and "too few points" in short.reason


def test_envelope_and_running_median_properties():
    rng = np.random.default_rng(3)
    y = rng.normal(size=60).cumsum()
    up, down = monotone_envelope(y, True), monotone_envelope(y, False)
    assert np.all(np.diff(up) >= -1e-12) and np.all(np.diff(down) <= 1e-12)
    assert up.mean() == pytest.approx(y.mean()) and down.mean() == pytest.approx(y.mean())  # pooling keeps sums
    assert np.array_equal(monotone_envelope(np.sort(y)), np.sort(y))  # monotone input is its own envelope
    spike = np.zeros(20)
    spike[7] = 100.0
    assert np.all(running_median(spike, 5) == 0)  # one-checkpoint spikes vanish


@pytest.mark.parametrize("steps,values,log,match", [
    ([0, 1, 2], [0.1, 0.2], False, "3 steps but 2 values"),
    ([0, 2, 1], [0.1, 0.2, 0.3], False, "strictly increasing"),
    ([0, 1, 1], [0.1, 0.2, 0.3], False, "strictly increasing"),
    ([0, 1, 2], [1.0, -0.5, 0.1], True, "cannot be negative"),
    ([0, 1, 2], [0.1, np.inf, 0.3], False, "finite"),
    ([[0, 1], [2, 3]], [[0.1, 0.2], [0.3, 0.4]], False, "1-D"),
    ([0, 1, 2], ["a", "b", "c"], False, "numbers"),
])
def test_bad_input_is_rejected_clearly(steps, values, log, match):
    with pytest.raises(InterpError, match=match):
        transition(steps, values, log=log)


def test_bad_levels():
    with pytest.raises(ConfigError, match="level"):
        emergence_step([0, 1], [0, 1], level=0)
    with pytest.raises(ConfigError, match="low"):
        rise_steps([0, 1], [0, 1], low=0.9, high=0.1)


def test_docstring_examples_hold():
    import doctest
    import importlib

    for name in ("transition", "power", "synthetic"):
        module = importlib.import_module(f"interp.emergence.{name}")  # the package exports a function `transition`
        result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, name


def test_loss_space_moves_the_half_way_point_of_a_loss():
    """A loss falling 6 decades log-linearly from step 0 to 1000: half-way at step 500 in log10, but half of the
    absolute fall is done almost at once in linear space."""
    import pandas as pd

    from interp.emergence.tables import run_transitions

    steps = np.arange(0, 2001, 50)
    loss = 10 ** (-6 * np.clip(steps / 1000, 0, 1))
    acc = np.clip((steps - 1200) / 200, 0, 1) * 0.99 + 0.01
    table = pd.DataFrame({"run": "r", "step": steps, "test_acc": acc, "restricted_loss": loss})
    log = run_transitions(table, ["restricted_loss"]).iloc[0]
    linear = run_transitions(table, ["restricted_loss"], loss_space="linear").iloc[0]
    assert log["space"] == "log10" and linear["space"] == "linear"
    assert log["step"] == pytest.approx(500, rel=0.05)
    assert linear["step"] < 100  # 1 -> 0.5 happens within the first 50 steps (10**-6t = 0.5 at t ~ 0.05)
    with pytest.raises(ConfigError, match="loss_space must be one of"):
        run_transitions(table, ["restricted_loss"], loss_space="decibel")
