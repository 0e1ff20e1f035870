"""The protocol's answer for one sweep (``docs/emergence-protocol.md``): every number the manual states.

:func:`answer` runs the registered analysis once: events and Kaplan-Meier medians (§2), the headline leads
with their controls and the lead grid (§3-§4), the forecasts (§5) and the metric question on every scale
axis at every budget (§6). :meth:`Answer.verdict_table` is the answer (one row per claim, with the number,
its interval, the control and the verdict); :meth:`Answer.robustness_table` holds every alternative choice,
never a headline. Pure computation: nothing is drawn, nothing is parsed.

>>> a = answer("sweeps/emergence-dense")                 # doctest: +SKIP
>>> a.verdict_table()                                     # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..errors import ConfigError, InterpError
from ..sweep.tables import SweepTables, as_tables
from .bimodality import cell_bimodality
from .events import events, km_medians
from .forecast import Forecasts, forecasts
from .information import Information, information
from .leads import Leads, lead_analysis, lead_grid, transition_steps
from .metric_question import AxisAnswer, axis_groups, data_ends, metric_question
from .predictability import HEADLINE_LOOK, Predictability, predictability
from .protocol import (
    BOOT_SEED,
    CONTROLS,
    HEADLINE_BUDGET,
    N_BOOT,
    PRIMARY_EVENT,
    SCALE_BUDGETS,
)

__all__ = ["Answer", "answer", "verdicts", "same_config_events", "v2_scale_verdict", "VERDICT_COLUMNS",
           "EARLINESS_CANNOT_DECIDE",
           "SHIPPED_SEEDS"]

# protocol v2: why the earliness leads are only a robustness table
EARLINESS_CANNOT_DECIDE = ("a lead measures how early a signal moves, not whether its timing depends on the outcome; "
                           "a signal that moves at the same step in runs that grok and runs that never do wins the "
                           "race, so earliness cannot decide whether a measure anticipates grokking")
SHIPPED_SEEDS = frozenset(range(6))  # the seeds of the shipped sweeps, which chose protocol v2: exploratory under it

VERDICT_COLUMNS = ["claim", "subject", "number", "interval", "against", "verdict"]


def _fmt(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "none" if v < 0 else "> budget"
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"


def _ci(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


@dataclass
class Answer:
    """Every table of the protocol for one sweep; ``notes`` lists what could not be computed and why."""

    tables: SweepTables
    events: pd.DataFrame
    km: pd.DataFrame
    leads: Leads | None
    grid: pd.DataFrame | None
    forecasts: Forecasts | None
    scale: dict[tuple[str, int], AxisAnswer]
    notes: list[str] = field(default_factory=list)
    missing: dict[tuple[str, int], str] = field(default_factory=dict)  # (axis, budget) -> why not computed
    information: Information | None = None
    predictability: Predictability | None = None
    headline_budget: int = HEADLINE_BUDGET
    bimodality: pd.DataFrame | None = None  # v2 §4: the gap test per cell at the headline budget

    @property
    def exploratory(self) -> bool:
        """True when the sweep's seeds include those of the shipped sweeps (0-5), which chose protocol v2."""
        return bool(set(pd.to_numeric(self.events["seed"], errors="coerce").dropna().astype(int)) & SHIPPED_SEEDS)

    def verdict_table(self) -> pd.DataFrame:
        """Protocol v2's answer, one row per claim x subject: information (every measure and control), the two
        predictability claims at the headline look time, real or artefact at the headline budget; columns claim,
        subject, number, interval, against, verdict."""
        rows = []
        if self.information is not None:
            for _, r in self.information.table.iterrows():
                rows.append({"claim": "information about t90", "subject": r["measure"],
                             "number": f"rho {_fmt(r['rho'], 2)}, p {_fmt(r['p_perm'], 2)}; Cox LR p {_fmt(r['p_lr'], 2)}",
                             "interval": _ci(r["rho_low"], r["rho_high"], 2), "against": r["null_model"],
                             "verdict": r["verdict"]})
        if self.predictability is not None:
            for _, r in self.predictability.headline.iterrows():
                claim = ("(a) predictable from the past" if r["claim"] == "a" else
                         "(b) beyond test loss + clock") + f" at T = {int(r['T'])}"
                rows.append({"claim": claim, "subject": r["forecaster"],
                             "number": f"MAE ratio {_fmt(r['ratio'])} (n = {int(r['n_evaluated'])})",
                             "interval": _ci(r["ratio_low"], r["ratio_high"]), "against": r["against"],
                             "verdict": r["verdict"]})
        rows += self._scale_rows()
        return pd.DataFrame(rows, columns=VERDICT_COLUMNS)

    def _scale_rows(self, v2: bool = True) -> list[dict]:
        rows = [self._scale_row(a, v2) for (axis, budget), a in self.scale.items() if budget == self.headline_budget]
        if self.bimodality is not None and len(self.bimodality):
            for _, r in self.bimodality[self.bimodality["near_critical"]].iterrows():
                rows.append({"claim": f"per-run bimodality at step {int(r['budget'])}",
                             "subject": f"{r['axis']}={r['value']:g}",
                             "number": f"gap {_fmt(r['gap_statistic'])}, p {_fmt(r['p'], 2)} (n = {int(r['n_runs'])})",
                             "interval": "", "against": "one normal", "verdict": r["verdict"]})
        for (axis, budget), reason in self.missing.items():
            if budget == self.headline_budget:
                rows.append({"claim": "real or artefact", "subject": f"{axis} at step {budget}", "number": "n/a",
                             "interval": "", "against": "", "verdict": f"not determined ({reason})"})
        return rows

    def v1_verdict_table(self) -> pd.DataFrame:
        """Protocol v1's verdict table (history: the answer once given on the shipped sweeps): real or artefact,
        the earliness leads against the controls, the v1 forecasts against the raw config baseline."""
        rows = [r for r in self._scale_rows(v2=False) if not r["claim"].startswith("per-run bimodality")]
        if self.leads is not None:
            s = self.leads.summary.set_index("metric")
            ctl = "; ".join(f"{c} {_fmt(s.loc[c, 'median_lead'])}" for c in CONTROLS)
            for m, r in s[s["role"] == "measure"].iterrows():
                rows.append({"claim": "progress measure leads t90", "subject": m,
                             "number": f"median lead {_fmt(r['median_lead'])} steps",
                             "interval": _ci(r["ci_low"], r["ci_high"]), "against": f"controls' leads: {ctl}",
                             "verdict": r["verdict"]})
        if self.forecasts is not None:
            for _, r in self.forecasts.verdicts.iterrows():
                at = "" if pd.isna(r.get("T", math.nan)) else f" at T = {int(r['T'])}"
                rows.append({"claim": "predictable (forecast of t90)", "subject": r["measure"],
                             "number": f"MAE ratio {_fmt(r.get('ratio', math.nan))}{at}",
                             "interval": _ci(r.get("ratio_low", math.nan), r.get("ratio_high", math.nan)),
                             "against": "config baseline (KM median of the other seeds); controls "
                                        + ", ".join(CONTROLS), "verdict": r["verdict"]})
        return pd.DataFrame(rows, columns=VERDICT_COLUMNS)

    def _scale_row(self, a: AxisAnswer, v2: bool = True) -> dict:
        acc, logp = a.fits["test_acc"], a.fits["test_logp"]
        number = f"accuracy width {_fmt(acc.width)}, log-prob width {_fmt(logp.width)}, R {_fmt(a.ratio)}"
        return {"claim": "real or artefact", "subject": f"{a.axis} at step {a.budget}", "number": number,
                "interval": _ci(a.ratio_low, a.ratio_high), "against": "R = 2",
                "verdict": v2_scale_verdict(a) if v2 else a.verdict}

    def robustness_table(self) -> pd.DataFrame:
        """Every alternative choice, never a headline: the earliness leads over the grid (event x q x loss space;
        they cannot decide, :data:`EARLINESS_CANNOT_DECIDE`), the predictability claims at every other look time,
        and the metric question at every budget; the v1 headline rows are marked and come first."""
        rows = []
        if self.predictability is not None:
            for _, r in self.predictability.table.iterrows():
                if r["T"] == HEADLINE_LOOK:
                    continue
                rows.append({"analysis": f"predictability ({r['claim']})", "choice": f"T = {int(r['T'])}",
                             "headline": False, "subject": r["forecaster"],
                             "number": f"MAE ratio {_fmt(r['ratio'])} (n = {int(r['n_evaluated'])})",
                             "interval": _ci(r["ratio_low"], r["ratio_high"]), "verdict": r["verdict"]})
        if self.grid is not None:
            for _, r in self.grid[self.grid["role"] == "measure"].iterrows():
                rows.append({"analysis": "leads", "choice": f"{r['event']}, q = {r['q']:g}, losses {r['loss_space']}",
                             "headline": bool(r["headline"]), "subject": r["metric"],
                             "number": f"median lead {_fmt(r['median_lead'])} (n = {r['n_included']})",
                             "interval": _ci(r["ci_low"], r["ci_high"]), "verdict": r["verdict"]})
        for (axis, budget), a in self.scale.items():
            row = self._scale_row(a)
            rows.append({"analysis": "real or artefact", "choice": f"budget {budget}",
                         "headline": budget == self.headline_budget, "subject": axis, "number": row["number"],
                         "interval": row["interval"], "verdict": a.verdict})
        df = pd.DataFrame(rows, columns=["analysis", "choice", "headline", "subject", "number", "interval", "verdict"])
        return df.sort_values(["analysis", "headline"], ascending=[True, False], kind="stable").reset_index(drop=True)


def v2_scale_verdict(a: AxisAnswer) -> str:
    """Protocol v2 §4 on one axis: a fitted location (accuracy's, or the log-probability's) outside the observed
    range of the axis is "not reached": the verdict is then "not determined (location not reached)" instead of a
    width extrapolated beyond the data; otherwise v1's rule (:func:`metric_question`)."""
    lo, hi = float(a.per_run["x"].min()), float(a.per_run["x"].max())
    for f in (a.fits["test_acc"], a.fits["test_logp"]):
        if f.status != "no range to fit" and not lo <= f.x0 <= hi:
            return "not determined (location not reached)"
    return a.verdict


def answer(sweep, n_boot: int = N_BOOT, seed: int = BOOT_SEED, budgets=SCALE_BUDGETS) -> Answer:
    """The protocol's analysis of ``sweep`` (a directory, its loaded tables, or :class:`SweepTables`): v2's
    information test and predictability claims, v1's leads and forecasts (robustness and history), the metric
    question on every scale axis (zipped fields form one axis) at every budget within the sweep's data."""
    tables = as_tables(sweep)
    ev = events(tables)
    notes = []
    if ev["event_source"].iloc[0] == "checkpoints":
        notes.append("summary.csv has no event columns (t_mem, t50, t90, t99, budget): events derived from the "
                     "checkpoint rows of results.csv, at their coarser resolution")
    km = pd.concat([km_medians(ev, e) for e in ("t50", PRIMARY_EVENT, "t99")], ignore_index=True)
    if ev["seed"].nunique() < 2:
        notes.append("one seed: nothing to compare across seeds (no bootstrap interval, no leave-one-seed-out "
                     "forecast): every verdict that needs them is not determined")
    la = grid = info = None
    try:
        steps = transition_steps(tables, ev=ev)
        la = lead_analysis(tables, n_boot=n_boot, seed=seed, steps=steps, ev=ev)
        grid = lead_grid(tables, n_boot=n_boot, seed=seed, steps=steps, ev=ev)
        info = information(tables, n_boot=n_boot, seed=seed, ev=ev, steps=steps)
    except InterpError as e:
        notes.append(f"leads and information: {e}")
    fc = pred = None
    try:
        fc = forecasts(tables, n_boot=n_boot, seed=seed)
        notes += [f"forecasts: {v}" for v in fc.skipped.values()]
        pred = predictability(tables, n_boot=n_boot, seed=seed)
    except InterpError as e:
        notes.append(f"forecasts: {e}")
    last = float(data_ends(tables).min())
    headline = int(min(HEADLINE_BUDGET, last))
    if headline < HEADLINE_BUDGET:
        notes.append(f"the runs end at step {headline:g}: the metric question is read there (the protocol's "
                     f"{HEADLINE_BUDGET} is beyond the data)")
    use = sorted({int(b) for b in budgets if b < headline} | {headline})
    scale, missing = {}, {}
    for axis, companions in axis_groups(tables):
        if tables.results[axis].nunique() < 2:
            continue
        if companions:
            notes.append(f"{axis} and {', '.join(companions)} vary together (a zip): one scale axis, named {axis}")
        for b in use:
            try:
                scale[(axis, b)] = metric_question(tables, axis, b, n_boot=n_boot, seed=seed)
            except (ConfigError, InterpError) as e:
                missing[(axis, b)] = str(e)
                notes.append(f"{axis} at step {b}: {e}")
    bim = [cell_bimodality(a) for (axis, b), a in scale.items() if b == headline]
    return Answer(tables, ev, km, la, grid, fc, scale, notes, missing, info, pred, headline,
                  pd.concat(bim, ignore_index=True) if bim else None)


def verdicts(headline, *replications, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
             budgets=SCALE_BUDGETS, version: int = 2) -> pd.DataFrame:
    """The protocol's verdict table over its sweeps (§4: leads and forecasts are headlined on the first, the
    dense sweep; the others replicate them; the metric question is each sweep's own axis): the rows of each
    sweep's :meth:`Answer.verdict_table` with ``sweep`` (its directory name) and ``role`` ("headline" or
    "replication"; every real-or-artefact row is a headline, on its own axis). ``version`` 1: protocol v1's
    table (history)."""
    out = []
    for i, sw in enumerate((headline, *replications)):
        a = sw if isinstance(sw, Answer) else answer(sw, n_boot=n_boot, seed=seed, budgets=budgets)
        vt = a.verdict_table() if version == 2 else a.v1_verdict_table()
        name = a.tables.path.name if a.tables.path is not None else f"sweep {i + 1}"
        role = ["headline" if (i == 0 or c == "real or artefact") else "replication" for c in vt["claim"]]
        out.append(vt.assign(sweep=name, role=role))
    df = pd.concat(out, ignore_index=True)
    return df[["sweep", "role", *VERDICT_COLUMNS]]


def same_config_events(a, b, at_a: dict, at_b: dict) -> pd.DataFrame:
    """Event steps of the runs two sweeps share (§7: the width sweep's ``d_mlp = 256`` cell repeats the dense
    sweep's ``frac_train = 0.35`` runs): the runs of ``a`` where its fields equal ``at_a``, matched by seed to
    those of ``b`` where ``at_b``; one row per seed with both sweeps' t_mem, t50, t90, t99 and their differences
    (NaN = censored; two censored events agree)."""
    ea, eb = events(a), events(b)
    for ev, at, name in ((ea, at_a, "a"), (eb, at_b, "b")):
        bad = [k for k in at if k not in ev.columns]
        if bad:
            raise ConfigError(f"same_config_events: sweep {name} has no varied field {bad}")
    sa = ea[(ea[list(at_a)] == pd.Series(at_a)).all(axis=1)]
    sb = eb[(eb[list(at_b)] == pd.Series(at_b)).all(axis=1)]
    if not len(sa) or not len(sb):
        raise ConfigError(f"same_config_events: no runs where {at_a} in sweep a or {at_b} in sweep b")
    cols = ["t_mem", "t50", "t90", "t99"]
    m = sa[["seed", "run", *cols]].merge(sb[["seed", "run", *cols]], on="seed", suffixes=("_a", "_b"))
    for c in cols:
        both_censored = m[f"{c}_a"].isna() & m[f"{c}_b"].isna()
        m[f"d_{c}"] = (m[f"{c}_b"] - m[f"{c}_a"]).where(~both_censored, 0.0)
    return m
