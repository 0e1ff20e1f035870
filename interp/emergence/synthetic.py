"""A sweep table with known transitions, for trying and testing the analysis without training anything.

Every curve is a logistic in the training step (in log10 space for losses) with a known half-way
step and 10 %->90 % width, placed relative to the run's emergence time ``t_e = base / frac_train``
(more data, earlier grokking), so the ground truth of every table is known in closed form.

>>> results, truth = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0,))
>>> sorted(results["run"].unique())
['frac0.3-seed0', 'frac0.5-seed0']
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["logistic", "synthetic_sweep", "CURVES", "protocol_sweep", "scale_sweep", "write_sweep", "checkpoint_steps",
           "information_sweep"]

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


# ---- sweeps with the protocol's tables (summary.csv events, causal columns), with a known truth ----

def _sig(t, mid, width):
    return 1.0 / (1.0 + np.exp(-(np.asarray(t, float) - mid) * 2 * math.log(9) / width))


def _accuracy(t, mid, width):
    return 0.02 + 0.98 * _sig(t, mid, width)


def checkpoint_steps(budget: int, every: int = 50) -> np.ndarray:
    """The protocol's checkpoint schedule: every 25 steps to 300, then every ``every`` to the budget."""
    return np.unique(np.r_[np.arange(0, 301, 25), np.arange(300, budget + 1, every)])


def protocol_sweep(frac_train: Sequence[float] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6), seeds: Sequence[int] = range(6),
                   budget: int = 6000, every: int = 50, lead_frac: float = 0.5, late_frac: float = 0.3,
                   spread: float = 0.35, noise: float = 0.01, widths: Sequence[int] = (), width_frac: float = 0.4,
                   rng_seed: int = 0):
    """``(SweepTables, truth)``: a sweep shaped like ``sweeps/emergence-dense`` with a known truth.

    Per run: memorisation ends at ``t_mem`` ~ 100-110; the time to the event is ``dt = 12 / (f - 0.285)^1.5``
    times a seed factor ``exp(spread z)`` (z standard normal: what the config does not know), so the
    slowest fractions are censored at ``budget``; test accuracy crosses 0.9 at ``t90 = t_mem + dt``.
    Measures, relative to each run's own dt:

    - ``restricted_loss`` (and its causal column): falls (log10 0.7 -> -5) centred at ``t_mem + lead_frac dt``,
      10-90 width 0.6 dt: it **truly predicts** for ``lead_frac`` < 1 (moves first, and where it stands tells
      how far the run is from t90); with ``lead_frac`` > 1 it moves after the event.
    - ``frac_neurons_clustered``: rises centred at ``t90 + late_frac dt``: it moves **only after** the event.
    - ``gini_W_E``: rises centred at t90. ``excluded_loss`` (and causal): rises with the predictive measure.
    - controls: ``train_loss`` falls steadily after t_mem (like the clock); ``test_loss`` falls with accuracy.

    ``widths``: d_mlp values added at ``frac_train = width_frac`` (dt scaled by (256 / d_mlp)^0.3); the data
    part has d_mlp 256. Each run's noise is seeded by its config and seed alone, so the same run in two
    sweeps is the same run. truth: one row per run with t_mem, dt, t90_exact, seed factor.
    """
    from ..sweep.tables import SweepTables

    steps = checkpoint_steps(budget, every)
    fine = np.arange(0, budget + 1, 10)  # test accuracy every 10 steps: the events' resolution
    configs = [(f, 256) for f in frac_train]
    configs += [(width_frac, w) for w in widths if (width_frac, w) not in configs]
    rows, summary, truth = [], [], []
    for f, w in configs:
        for s in seeds:
            rng = np.random.default_rng([rng_seed, s, round(f * 1000), w])  # a run is its config and seed
            z = rng.standard_normal()
            t_mem = 100.0 + 10 * rng.random()
            dt = 12.0 / max(f - 0.285, 1e-3) ** 1.5 * math.exp(spread * z) * (256 / w) ** 0.3
            t90 = t_mem + dt
            wa = 0.3 * dt + 30
            mid = t90 - wa / (2 * math.log(9)) * math.log((0.9 - 0.02) / (0.98 - 0.9 + 0.02))

            acc = functools.partial(_accuracy, mid=mid, width=wa)

            run = f"frac_train={f:g},d_mlp={w},seed={s}"
            ev = {}
            for name, lvl in (("t50", 0.5), ("t90", 0.9), ("t99", 0.99)):
                hit = fine[acc(fine) >= lvl]
                ev[name] = float(hit[0]) if len(hit) else math.nan
            ev["t_mem"] = float(fine[fine >= t_mem][0])
            summary.append({"run": run, "frac_train": f, "d_mlp": w, "data_seed": s, "model_seed": s,
                            "status": "complete", **ev, "budget": budget})
            truth.append({"run": run, "frac_train": f, "d_mlp": w, "seed": s, "t_mem": t_mem, "dt": dt,
                          "t90_exact": t90, "seed_factor": math.exp(spread * z)})
            t = steps.astype(float)

            def jitter(y, scale=noise, rng=rng):
                return y + rng.normal(0, scale, len(y))

            mem = np.clip(t / t_mem, 0, 1)
            tr_loss = np.where(t < t_mem, 0.6 - 2.6 * mem, -2 - 4 * (t - t_mem) / (budget - t_mem))
            te_loss = np.where(t < t_mem, 0.6 + 0.7 * mem, 1.3 - 6.3 * _sig(t, t90 - 0.2 * wa, 1.5 * wa))
            restricted = 0.7 - 5.7 * _sig(t, t_mem + lead_frac * dt, 0.6 * dt)
            excluded = -1.0 + 1.5 * _sig(t, t_mem + lead_frac * dt, 0.6 * dt)
            a = np.clip(jitter(acc(t)), 0, 1)
            cols = {
                "run": run, "frac_train": f, "d_mlp": w, "data_seed": s, "model_seed": s, "step": steps,
                "train_loss": 10 ** jitter(tr_loss, 2 * noise), "train_acc": np.clip(mem ** 3 + 0.01, 0, 1),
                "test_loss": 10 ** jitter(te_loss, 2 * noise), "test_acc": a,
                "test_brier": np.clip(0.98 * (1 - a) + jitter(np.zeros(len(t))), 0, 2),
                "restricted_loss": 10 ** jitter(restricted, 2 * noise),
                "excluded_loss": 10 ** jitter(excluded, 2 * noise),
                "gini_W_E": jitter(0.05 + 0.7 * _sig(t, t90, 0.5 * dt)),
                "sum_sq_weights": 10 ** jitter(3.5 - 0.6 * _sig(t, t90, dt), 2 * noise),
                "frac_neurons_clustered": np.clip(jitter(0.7 * _sig(t, t90 + late_frac * dt, 0.3 * dt)), 0, 1),
            }
            cols["restricted_loss_causal"] = cols["restricted_loss"] * 10 ** jitter(np.zeros(len(t)), noise)
            cols["excluded_loss_causal"] = cols["excluded_loss"] * 10 ** jitter(np.zeros(len(t)), noise)
            rows.append(pd.DataFrame(cols))
    results = pd.concat(rows, ignore_index=True)
    axes = ["frac_train", "d_mlp", "data_seed", "model_seed"]
    return SweepTables(results, pd.DataFrame(summary), axes, None, {"axes": axes}), pd.DataFrame(truth)


def information_sweep(cells: Sequence[float] = (2000.0, 2500.0, 3000.0, 3500.0), seeds: Sequence[int] = range(10),
                      budget: int = 6000, lead: float = 500.0, clock_step: float = 1500.0, jitter: float = 50.0,
                      spread: float = 0.3, test_loss_informative: bool = True, noise: float = 0.01, rng_seed: int = 0):
    """``(SweepTables, truth)`` with known answers for the information test and the nested forecast.

    Cell c (``frac_train`` = its index / 10 + 0.3, a label only) has a typical time to the event; a run's t90 is
    ``cells[c] * exp(spread z)`` (z standard normal: what the config does not know), censored beyond ``budget``.
    t_mem ~ 100. Columns besides the events' (train/test accuracy, train/test loss):

    - ``anticipating``: rises (0 -> 1, 10-90 width 400) centred at ``t90 - lead + N(0, jitter)``: its timing and its
      value carry information about t90 (**informative**).
    - ``clock_like``: the same curve centred at ``clock_step + N(0, jitter)`` in every run, whatever its t90: early,
      and **not informative**.
    - ``test_loss_copy``: log10 test loss plus noise: it **adds nothing** to test loss.
    - train loss falls steadily in decades after t_mem (a clock); test loss falls with accuracy over a wide window
      (so it forecasts t90 from early look times), or, with ``test_loss_informative`` False, only at the event.
    """
    from ..sweep.tables import SweepTables

    steps = checkpoint_steps(budget, 50)
    fine = np.arange(0, budget + 1, 10)
    rows, summary, truth = [], [], []
    for c, typical in enumerate(cells):
        f = round(0.3 + c / 10, 3)
        for s in seeds:
            rng = np.random.default_rng([rng_seed, c, s])
            t_mem = 100.0 + 10 * rng.random()
            t90 = float(typical * math.exp(spread * rng.standard_normal()))
            wa = 200.0
            acc = lambda t, t90=t90: 0.02 + 0.98 * _sig(t, t90 - 0.45 * wa, wa)  # noqa: E731 (0.9 at ~t90)
            run = f"frac_train={f:g},seed={s}"
            ev = {"t_mem": float(fine[fine >= t_mem][0])}
            for name, lvl in (("t50", 0.5), ("t90", 0.9), ("t99", 0.99)):
                hit = fine[acc(fine) >= lvl]
                ev[name] = float(hit[0]) if len(hit) else math.nan
            summary.append({"run": run, "frac_train": f, "data_seed": s, "model_seed": s, "status": "complete",
                            **ev, "budget": budget})
            t = steps.astype(float)
            mem = np.clip(t / t_mem, 0, 1)
            mid_a = t90 - lead + rng.normal(0, jitter)
            mid_c = clock_step + rng.normal(0, jitter)
            truth.append({"run": run, "t90": t90, "anticipating_mid": mid_a, "clock_like_mid": mid_c})
            tr_loss = np.where(t < t_mem, 0.6 - 2.6 * mem, -2 - 4 * (t - t_mem) / (budget - t_mem))
            if test_loss_informative:
                te_loss = np.where(t < t_mem, 0.6 + 0.7 * mem, 1.3 - 6.3 * _sig(t, t90, 1.6 * (t90 - t_mem)))
            else:
                te_loss = np.where(t < t_mem, 0.6 + 0.7 * mem, 1.3 - 6.3 * _sig(t, t90, 100.0))
            te_loss = te_loss + rng.normal(0, noise, len(t))
            cols = {"run": run, "frac_train": f, "data_seed": s, "model_seed": s, "step": steps,
                    "train_loss": 10 ** (tr_loss + rng.normal(0, noise, len(t))),
                    "train_acc": np.clip(mem ** 3 + 0.01, 0, 1), "test_loss": 10 ** te_loss,
                    "test_acc": np.clip(acc(t) + rng.normal(0, noise, len(t)), 0, 1),
                    "anticipating": _sig(t, mid_a, 400.0) + rng.normal(0, noise, len(t)),
                    "clock_like": _sig(t, mid_c, 400.0) + rng.normal(0, noise, len(t)),
                    "test_loss_copy": 10 ** (te_loss + rng.normal(0, noise, len(t)))}
            rows.append(pd.DataFrame(cols))
    axes = ["frac_train", "data_seed", "model_seed"]
    return (SweepTables(pd.concat(rows, ignore_index=True), pd.DataFrame(summary), axes, None, {"axes": axes}),
            pd.DataFrame(truth))


def scale_sweep(truth: str = "mirage", values: Sequence[float] = tuple(np.round(np.linspace(0.3, 0.6, 13), 3)),
                seeds: Sequence[int] = range(6), budget: int = 6000, noise: float = 0.01, rng_seed: int = 0):
    """``SweepTables`` whose runs at ``budget`` answer the metric question with a known truth, on frac_train.

    - ``"mirage"``: the log-probability of the correct answer moves smoothly along the axis (a wide logistic,
      10-90 width 0.25, from -4 to -0.02 nats) and accuracy is a threshold of it (``sigmoid((logp + 1.2) /
      0.12)``): accuracy jumps where nothing in the model does.
    - ``"real"``: the log-probability jumps (width 0.06 at 0.45) and accuracy follows it at the same place.
    - ``"none"``: accuracy rises linearly over the whole axis (no jump).
    Two checkpoints per run: step 0 and ``budget``.
    """
    from ..sweep.tables import SweepTables

    if truth not in ("mirage", "real", "none"):
        raise ValueError(f"truth must be 'mirage', 'real' or 'none', got {truth!r}")
    rng = np.random.default_rng(rng_seed)
    rows = []
    lo_x, hi_x = min(values), max(values)
    for x in values:
        for s in seeds:
            if truth == "mirage":
                logp = -4 + 3.98 * _sig(x, 0.45, 0.25) + rng.normal(0, 0.05)
                acc = 1 / (1 + math.exp(-(logp + 1.2) / 0.12))
            elif truth == "real":
                logp = -4 + 3.98 * _sig(x, 0.45, 0.06) + rng.normal(0, 0.05)
                acc = 0.02 + 0.97 * float(_sig(x, 0.45, 0.06))
            else:
                acc = 0.05 + 0.9 * (x - lo_x) / (hi_x - lo_x)
                logp = math.log(acc)
            acc = float(np.clip(acc + rng.normal(0, noise), 0, 1))
            for step, (a, lp) in ((0, (0.02, -4.0)), (budget, (acc, float(logp)))):
                rows.append({"run": f"frac_train={x:g},seed={s}", "frac_train": x, "data_seed": s, "step": step,
                             "train_acc": 1.0, "train_loss": 1e-6, "test_acc": a, "test_loss": -lp,
                             "test_brier": 1 - a})
    axes = ["frac_train", "data_seed"]
    return SweepTables(pd.DataFrame(rows), None, axes, None, {"axes": axes})


def write_sweep(tables, out_dir) -> None:
    """Write synthetic tables as a sweep directory (results.csv, summary.csv, sweep.json) for the CLI."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables.results.to_csv(out / "results.csv", index=False)
    if tables.summary is not None:
        tables.summary.to_csv(out / "summary.csv", index=False)
    from ..sweep.state import FORMAT, FORMAT_VERSION

    names = tables.summary["run"] if tables.summary is not None else tables.results["run"].drop_duplicates()
    status = dict(zip(tables.summary["run"], tables.summary["status"])) if (
        tables.summary is not None and "status" in tables.summary.columns) else {}
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "axes": list(tables.axes),
              "spec": (tables.meta or {}).get("spec") or {},   # the spec names a comparison's baseline
              "runs": {str(n): {"status": str(status.get(n, "complete"))} for n in names},
              "journal_generation": 1, "provenance": {"synthetic": True}}
    (out / "sweep.json").write_text(json.dumps(record))
