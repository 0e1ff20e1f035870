"""Events of each run (protocol §2): ``t_mem``, ``t50``, ``t90``, ``t99``, right-censored at the budget.

The events are read from ``summary.csv`` (columns ``t_mem``, ``t50``, ``t90``, ``t99``, ``budget``: first
steps of the run's per-step ``metrics.csv``; empty = not reached within the budget). A table written
before those columns existed (e.g. ``sweeps/emergence-small``) gets its events derived from the
checkpoint rows of ``results.csv`` instead, at the checkpoints' coarser resolution (25-50 steps instead of
10); the table says which (``event_source``). A run that does not reach an event is right-censored at its
budget: never dropped, never imputed. Medians and survival curves use Kaplan-Meier (scipy's ``stats.ecdf``).
A run that the stop rule ended (1,000 steps after t99) keeps the step budget it was given (``n_steps``) as its
``budget``, not the step its outcome stopped it at (:func:`stop_rule_budget`).

>>> ev = events(load_sweep("sweeps/emergence-dense"))       # doctest: +SKIP
>>> km_medians(ev, "t90")                                   # one row per cell  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import RunFormatError
from ..sweep.tables import SweepTables, as_tables, is_seed
from .protocol import EVENTS, MEM_LEVEL

__all__ = ["events", "cell_columns", "seed_column", "km_median", "km_medians", "survival_curves",
           "EVENT_COLUMNS"]

EVENT_COLUMNS = ("t_mem", *EVENTS, "budget")


def cell_columns(tables: SweepTables) -> list[str]:
    """The varied fields that define a cell (a configuration): every non-seed axis."""
    return [a for a in tables.axes if not is_seed(a)]


def seed_column(tables: SweepTables, where: str = "sweep") -> str | None:
    """The field that names a run's seed (``seed``, ``data_seed`` or ``model_seed``): a varied one, else one the
    results table holds (every run the same seed), else None (a run without a recorded seed: seed 0)."""
    for c in ("seed", "data_seed", "model_seed"):
        if c in tables.axes and c in tables.results.columns:
            return c
    for c in ("seed", "data_seed", "model_seed"):
        if c in tables.results.columns:
            return c
    gone = [c for c in ("seed", "data_seed", "model_seed") if c in tables.axes]
    if gone:
        raise RunFormatError(f"{where}: no seed field {gone[0]!r} in the results table, though the sweep varies it")
    return None


def _first(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    hit = np.nonzero(values >= level)[0]
    return float(steps[hit[0]]) if len(hit) else math.nan


def _from_checkpoints(tables: SweepTables) -> pd.DataFrame:
    r = tables.results
    for c in ("train_acc", "test_acc"):
        if c not in r.columns:
            where = tables.path / "results.csv" if tables.path else "results table"
            what = "train accuracy" if c == "train_acc" else "test accuracy"
            raise RunFormatError(f"{where}: no column {c!r} ({what}): the events t_mem / t90 cannot be found")
    out = []
    for run, rows in r.groupby("run", sort=False):
        rows = rows.sort_values("step")
        s = rows["step"].to_numpy(float)
        rec = {"run": str(run), "t_mem": _first(s, rows["train_acc"].to_numpy(float), MEM_LEVEL)}
        acc = rows["test_acc"].to_numpy(float)
        rec.update({e: _first(s, acc, lvl) for e, lvl in EVENTS.items()})
        rec["budget"] = float(s[-1])
        out.append(rec)
    return pd.DataFrame(out)


def stop_rule_budget(tables, last: pd.Series, t99: pd.Series, status: pd.Series | None = None) -> pd.Series:
    """``last`` (per run: the step its data end at), with the sweep's step budget ``n_steps`` in place of the
    runs the stop rule ended: a finished run that first reached 0.99 test accuracy at ``t99`` and ended at least
    ``stop_after_steps`` later, before ``n_steps``. Its budget is the one it was given, not the step at which its
    outcome stopped it: an outcome-blind clock (``t_mem + q (B - t_mem)``) or a baseline that reads B must not
    learn when the run grokked. The settings come from the results' columns where the sweep varies them, else
    from sweep.json's spec; without them (or without the rule) ``last`` is returned unchanged."""
    n_steps, after = _per_run(tables, "n_steps", last.index), _per_run(tables, "stop_after_steps", last.index)
    if n_steps.isna().all() or after.isna().all():
        return last
    done = status.isin(["complete", "stopped_early"]) if status is not None else pd.Series(True, index=last.index)
    stopped = done & t99.notna() & (last >= t99 + after) & (last < n_steps)
    return last.where(~stopped, n_steps)


def _per_run(tables, key: str, runs: pd.Index) -> pd.Series:
    """A run setting per run: its results column when the sweep varies it, else the spec's value (NaN if none)."""
    r = tables.results
    if key in r.columns:
        v = r.drop_duplicates("run").assign(run=lambda d: d["run"].astype(str)).set_index("run")[key]
        return pd.to_numeric(v, errors="coerce").reindex(runs)
    spec = (tables.meta or {}).get("spec") or {}
    value = next((sec[key] for sec in (spec.get("base"), spec.get("sweep")) if isinstance(sec, dict) and key in sec),
                 None)
    return pd.Series(float(value) if isinstance(value, (int, float)) else math.nan, index=runs)


def events(sweep) -> pd.DataFrame:
    """One row per run: run, the cell fields, the seed, ``cell`` (a label), t_mem, t50, t90, t99 (NaN = not
    reached: censored at ``budget``), budget, and ``event_source`` ("summary" or "checkpoints")."""
    tables = as_tables(sweep)
    cells = cell_columns(tables)
    seed = seed_column(tables)
    s = tables.summary
    if s is not None and all(c in s.columns for c in EVENT_COLUMNS):
        ev = s[["run", *EVENT_COLUMNS]].copy()
        ev["run"] = ev["run"].astype(str)
        ev["event_source"] = "summary"
        for c in EVENT_COLUMNS:
            ev[c] = pd.to_numeric(ev[c], errors="coerce").astype(float)
        if ev["budget"].isna().any():
            bad = ev.loc[ev["budget"].isna(), "run"].iloc[0]
            raise RunFormatError(f"summary.csv: run {bad!r} has no budget")
    else:
        ev = _from_checkpoints(tables)
        ev["event_source"] = "checkpoints"
    status = (s.assign(run=s["run"].astype(str)).set_index("run")["status"].astype(str).reindex(ev["run"])
              if s is not None and {"run", "status"} <= set(s.columns) else None)
    ev["budget"] = stop_rule_budget(tables, ev.set_index("run")["budget"], ev.set_index("run")["t99"],
                                    status).to_numpy(float)
    first = tables.results.drop_duplicates("run").assign(run=lambda d: d["run"].astype(str))
    ev = ev.merge(first[["run", *cells, *([seed] if seed else [])]], on="run", how="inner")
    if not len(ev):
        raise RunFormatError("summary.csv and results.csv share no run")
    # a sweep that varies only seeds (or has one run) is one cell, "all runs"
    ev["cell"] = ([", ".join(f"{c}={v:g}" if isinstance(v, (int, float)) else f"{c}={v}" for c, v in zip(cells, vals))
                   for vals in ev[cells].itertuples(index=False)] if cells else "all runs")
    # without a recorded seed, the runs of a cell are distinct replicates: numbered 0, 1, ... within it
    ev["seed"] = ev[seed] if seed else ev.groupby("cell", sort=False).cumcount()
    return ev[["run", *cells, "seed", "cell", *EVENT_COLUMNS, "event_source"]].reset_index(drop=True)


def km_median(times, observed) -> float:
    """Kaplan-Meier median of event times (``observed`` False: censored at ``times``); inf when the estimate
    never falls to 0.5 (more than half the runs censored before the median), NaN with no runs."""
    t = np.asarray(times, float)
    o = np.asarray(observed, bool)
    if not len(t):
        return math.nan
    return _km_median(tuple(t.tolist()), tuple(o.tolist()))


@functools.lru_cache(maxsize=4096)
def _km_median(t: tuple, o: tuple) -> float:
    """The Kaplan-Meier estimate of scipy (``stats.ecdf`` on censored data, as the survival curves): the first
    time the survival function is at or below 0.5."""
    t_, o_ = np.array(t), np.array(o, bool)
    if not o_.any():
        return math.inf
    sf = stats.ecdf(stats.CensoredData(uncensored=t_[o_], right=t_[~o_])).sf
    hit = np.nonzero(sf.probabilities <= 0.5 + 1e-12)[0]
    return float(sf.quantiles[hit[0]]) if len(hit) else math.inf


def _durations(ev: pd.DataFrame, event: str) -> tuple[np.ndarray, np.ndarray]:
    t = ev[event].to_numpy(float)
    observed = ~np.isnan(t)
    return np.where(observed, t, ev["budget"].to_numpy(float)), observed


def km_medians(ev: pd.DataFrame, event: str = "t90") -> pd.DataFrame:
    """One row per cell: n_runs, n_reached, km_median (inf: not reached, shown as "> B"), budget."""
    out = []
    for cell, g in ev.groupby("cell", sort=False):
        t, o = _durations(g, event)
        out.append({"cell": cell, "event": event, "n_runs": len(g), "n_reached": int(o.sum()),
                    "km_median": km_median(t, o), "budget": float(g["budget"].max())})
    return pd.DataFrame(out)


def survival_curves(ev: pd.DataFrame, event: str = "t90", by: str | None = None) -> pd.DataFrame:
    """Kaplan-Meier survival curves (share of runs without the event) per value of ``by`` (default: per
    cell): rows group, step, survival (a step function; the last row is at the largest budget)."""
    key = by or "cell"
    out = []
    for g_val, g in ev.groupby(key, sort=True):
        t, o = _durations(g, event)
        sf = stats.ecdf(stats.CensoredData(uncensored=t[o], right=t[~o])).sf  # steps at every distinct time
        steps = np.r_[0.0, sf.quantiles, float(g["budget"].max())]
        surv = np.r_[1.0, sf.probabilities, sf.probabilities[-1]]
        out.append(pd.DataFrame({"group": g_val, "step": steps, "survival": surv}))
    return pd.concat(out, ignore_index=True)
