"""Transitions after memorisation (protocol §3) and leads against controls (protocol §4).

A metric's change is measured from ``t_mem`` to the end of the run: on the checkpoint rows from the first
at or after ``t_mem``, a 5-checkpoint running median, then its monotone (isotonic) envelope in the
direction of ``end - start``; the transition at q is the first step where the envelope has covered q of
the change (interpolated). A change below 0.1 decades (log space), 5 % of the largest ``|value|`` (linear),
or four times the noise is no transition: the metric then never moved, ``t_q = inf``, and it does not lead.

A lead is ``event - t_q``. :func:`lead_analysis` returns every measure's leads **with** the three controls
(train loss, test loss, the clock ``t_mem + q (B - t_mem)``), their differences and the seed-cluster
bootstrap intervals, in one :class:`Leads`; nothing here returns a lead without its controls.

>>> la = lead_analysis(load_sweep("sweeps/emergence-dense"))          # doctest: +SKIP
>>> la.summary[["metric", "median_lead", "ci_low", "ci_high", "verdict"]]   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import isotonic_regression

from ..errors import ConfigError
from ..sweep.tables import as_tables
from .bootstrap import boot_median, cluster_weights, interval, weighted_median
from .events import events
from .protocol import (
    BOOT_SEED,
    CANDIDATES,
    CONTROLS,
    EVENTS,
    HEADLINE_Q,
    LOSS_SPACES,
    MIN_LINEAR_SHARE,
    MIN_LOG_CHANGE,
    N_BOOT,
    NOISE_FACTOR,
    PRIMARY_EVENT,
    QS,
    SMOOTH_WINDOW,
)
from .transition import _crossing as first_crossing, running_median

__all__ = ["is_log_metric", "metric_space", "transition_after", "transition_steps", "Leads", "lead_analysis",
           "lead_grid"]


def is_log_metric(name: str) -> bool:
    """Protocol §3: log10 for losses and the sum of squared weights, linear for everything else."""
    return "loss" in name or name.startswith("sum_sq_weights")


def metric_space(name: str, loss_space: str = "log10") -> str:
    """The space a metric's transition is measured in; ``loss_space`` is the robustness alternative for losses."""
    if not is_log_metric(name):
        return "linear"
    return loss_space if "loss" in name else "log10"


def _to_space(v: np.ndarray, space: str) -> np.ndarray:
    return np.log10(np.maximum(v, 1e-30)) if space == "log10" else v


def _crossing(s: np.ndarray, f: np.ndarray, level: float, rising: bool) -> float:
    """The envelope's crossing of ``level`` (:func:`interp.emergence.transition._crossing`); inf if never reached."""
    step = first_crossing(s, f, level, rising)
    return math.inf if math.isnan(step) else step


def transition_after(steps, values, t_mem: float, space: str = "linear",
                     qs: Sequence[float] = QS) -> tuple[dict[float, float], str]:
    """``({q: t_q}, reason)``: the steps where the metric has covered q of its change from ``t_mem`` to the
    end (``inf`` for every q when there is no transition; ``reason`` then says why, else "")."""
    s, v = np.asarray(steps, float), np.asarray(values, float)
    keep = ~np.isnan(v) & (s >= t_mem)
    s, v = s[keep], v[keep]
    none = {q: math.inf for q in qs}
    if math.isnan(t_mem):
        return none, "never memorised"
    if len(s) < 3:
        return none, f"too few checkpoints after t_mem ({len(s)})"
    y = _to_space(v, space)
    sm = running_median(y, SMOOTH_WINDOW)
    start, end = float(sm[0]), float(sm[-1])
    change = end - start
    noise = 1.4826 * float(np.median(np.abs(y - sm)))
    floor = MIN_LOG_CHANGE if space == "log10" else MIN_LINEAR_SHARE * float(np.max(np.abs(v)))
    threshold = max(floor, NOISE_FACTOR * noise)
    if not abs(change) >= threshold:
        return none, f"flat: change {abs(change):.3g} below {threshold:.3g}"
    rising = change > 0
    f = isotonic_regression(sm, increasing=rising).x
    return {q: _crossing(s, f, start + q * change, rising) for q in qs}, ""


def transition_steps(sweep, metrics: Sequence[str] | None = None, ev: pd.DataFrame | None = None,
                     loss_spaces: Sequence[str] = LOSS_SPACES) -> pd.DataFrame:
    """One row per run x metric x space x q: ``t_q`` (inf: no transition) and ``reason``. Metrics default to
    the candidates and the loss controls present; losses in each of ``loss_spaces``, the rest in their space."""
    tables = as_tables(sweep)
    ev = events(tables) if ev is None else ev
    r = tables.results
    if metrics is None:
        metrics = [m for m in (*CANDIDATES, "train_loss", "test_loss") if m in r.columns]
    missing = [m for m in metrics if m not in r.columns]
    if missing:
        raise ConfigError(f"results table: no column(s) {missing}")
    t_mem = dict(zip(ev["run"], ev["t_mem"]))
    out = []
    for run, rows in r.groupby("run", sort=False):
        run = str(run)
        if run not in t_mem:
            continue
        rows = rows.sort_values("step")
        s = rows["step"].to_numpy(float)
        for m in metrics:
            for space in dict.fromkeys(metric_space(m, ls) for ls in loss_spaces):
                tq, why = transition_after(s, rows[m].to_numpy(float), t_mem[run], space)
                out += [{"run": run, "metric": m, "space": space, "q": q, "t_q": t, "reason": why}
                        for q, t in tq.items()]
    return pd.DataFrame(out, columns=["run", "metric", "space", "q", "t_q", "reason"])


@dataclass
class Leads:
    """Leads of the progress measures over one event, beside the controls', at one cell of the grid.

    per_run: one row per included run x metric (controls too): t_q, lead, and ``d_<control>`` = lead -
    control's lead. summary: one row per metric (controls first): n_runs, n_no_transition, median_lead with
    its cluster-bootstrap interval, for every control the median difference with its interval, and the
    verdict ("leads", or "does not lead" with ``not_beaten`` naming the controls it did not beat).
    counts: runs excluded and why (never memorised, event not reached = censored, event at or before t_mem).
    """

    event: str
    q: float
    loss_space: str
    per_run: pd.DataFrame
    summary: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    n_boot: int = N_BOOT

    def row(self, metric: str) -> dict:
        s = self.summary[self.summary["metric"] == metric]
        if not len(s):
            raise ConfigError(f"no lead of {metric!r}; metrics: {self.summary['metric'].tolist()}")
        return s.iloc[0].to_dict()


def _clock(ev: pd.DataFrame, q: float) -> np.ndarray:
    return (ev["t_mem"] + q * (ev["budget"] - ev["t_mem"])).to_numpy(float)


def lead_analysis(sweep, event: str = PRIMARY_EVENT, q: float = HEADLINE_Q, loss_space: str = "log10",
                  measures: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                  steps: pd.DataFrame | None = None, ev: pd.DataFrame | None = None) -> Leads:
    """Leads of each measure over ``event`` at transition quantile ``q`` with the controls and the bootstrap.

    steps/ev: precomputed :func:`transition_steps` / :func:`events` (for the grid); default computed here.
    """
    if event not in EVENTS:
        raise ConfigError(f"event must be one of {list(EVENTS)}, got {event!r}")
    if q not in QS:
        raise ConfigError(f"q must be one of {list(QS)}, got {q}")
    if loss_space not in LOSS_SPACES:
        raise ConfigError(f"loss_space must be one of {list(LOSS_SPACES)}, got {loss_space!r}")
    tables = as_tables(sweep)
    ev = events(tables) if ev is None else ev
    if steps is None:
        steps = transition_steps(tables, ev=ev, loss_spaces=(loss_space,))
    present = set(steps["metric"])
    for c in ("train_loss", "test_loss"):
        if c not in present:
            raise ConfigError(f"results table: no column {c!r}: the control {c} cannot be computed")
    if measures is None:
        measures = [m for m in CANDIDATES if m in present]
    counts = {"runs": len(ev), "never memorised": int(ev["t_mem"].isna().sum()),
              "censored (event not reached)": int((ev["t_mem"].notna() & ev[event].isna()).sum()),
              "event at or before t_mem": int((ev[event] <= ev["t_mem"]).sum())}
    inc = ev[ev["t_mem"].notna() & ev[event].notna() & (ev[event] > ev["t_mem"])].reset_index(drop=True)
    counts["included"] = len(inc)
    sel = steps[steps["q"] == q]
    by = {k: g.set_index("run")["t_q"] for k, g in sel.groupby(["metric", "space"], sort=False)}
    tq = {}
    for m in [*measures, "train_loss", "test_loss"]:
        rows = by.get((m, metric_space(m, loss_space)), pd.Series(dtype=float))
        tq[m] = inc["run"].map(rows).to_numpy(float)
    tq["clock"] = _clock(inc, q)
    t_e = inc[event].to_numpy(float)
    lead = {m: t_e - t for m, t in tq.items()}
    w = cluster_weights(inc["cell"].to_numpy(), n_boot, seed) if len(inc) else np.zeros((n_boot, 0), int)
    per_run, summary = [], []
    for m in [*CONTROLS, *measures]:
        rec = {"metric": m, "role": "control" if m in CONTROLS else "measure", "n_runs": len(inc),
               "n_no_transition": int(np.isinf(tq[m]).sum())}
        if len(inc):
            rec["median_lead"] = float(weighted_median(lead[m], np.ones((1, len(inc)), int))[0])
            rec["ci_low"], rec["ci_high"] = interval(weighted_median(lead[m], w))
        else:
            rec.update(median_lead=math.nan, ci_low=math.nan, ci_high=math.nan)
        frame = {"run": inc["run"], "cell": inc["cell"], "seed": inc["seed"], "metric": m, "t_q": tq[m],
                 "event_step": t_e, "lead": lead[m]}
        not_beaten = []
        for c in CONTROLS:
            with np.errstate(invalid="ignore"):
                d = lead[m] - lead[c]
            d = np.where(np.isnan(d), 0.0, d)  # neither moved: no difference
            frame[f"d_{c}"] = d
            if m in CONTROLS:
                continue
            if len(inc):
                med, lo, hi = boot_median(d, inc["cell"].to_numpy(), n_boot, seed)
            else:
                med = lo = hi = math.nan
            rec[f"median_d_{c}"], rec[f"d_{c}_low"], rec[f"d_{c}_high"] = med, lo, hi
            if not lo > 0:
                not_beaten.append(c)
        if m in CONTROLS:
            rec["verdict"], rec["not_beaten"] = "(control)", ""
        else:
            if not len(inc):
                rec["verdict"] = "not determined (no run reaches the event after memorising)"
            elif rec["ci_low"] > 0 and not not_beaten:
                rec["verdict"] = "leads"
            else:
                why = ([] if rec["ci_low"] > 0 else ["its own lead interval is not above 0"]) + \
                      ([f"does not beat control {', '.join(not_beaten)}"] if not_beaten else [])
                rec["verdict"] = "does not lead: " + "; ".join(why)
            rec["not_beaten"] = " ".join(not_beaten)
        summary.append(rec)
        per_run.append(pd.DataFrame(frame))
    return Leads(event, q, loss_space, pd.concat(per_run, ignore_index=True), pd.DataFrame(summary), counts,
                 n_boot)


def lead_grid(sweep, n_boot: int = N_BOOT, seed: int = BOOT_SEED, steps: pd.DataFrame | None = None,
              ev: pd.DataFrame | None = None) -> pd.DataFrame:
    """The robustness table of the leads: every event x q x loss space, one row per measure (and control),
    the headline cell marked (``headline`` True for t90, q = 0.25, log10)."""
    tables = as_tables(sweep)
    ev = events(tables) if ev is None else ev
    steps = transition_steps(tables, ev=ev) if steps is None else steps
    out = []
    for event in EVENTS:
        for q in QS:
            for ls in LOSS_SPACES:
                la = lead_analysis(tables, event, q, ls, n_boot=n_boot, seed=seed, steps=steps, ev=ev)
                out.append(la.summary.assign(event=event, q=q, loss_space=ls, n_included=la.counts["included"],
                                             headline=(event, q, ls) == (PRIMARY_EVENT, HEADLINE_Q, "log10")))
    df = pd.concat(out, ignore_index=True)
    front = ["event", "q", "loss_space", "headline", "metric", "role"]
    return df[front + [c for c in df.columns if c not in front]]
