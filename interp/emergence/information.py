"""The information test of protocol v2 (``docs/emergence-protocol.md``, v2 §2): does a measure carry information
about *when* a run reaches t90, beyond its configuration and the outcome-blind clocks?

Being early is not anticipating: a signal that moves at step 300 in every run, whether it later groks or not, is
early and useless. Two statistics, the same for every measure and every control:

- **timing**: the within-cell Spearman rank correlation ``rho`` of the measure's transition step (``t_q`` at the
  headline q, :func:`interp.emergence.leads.transition_steps`) with the run's t90. Ranks are taken within each
  cell (a configuration) and pooled: ``sum_c sum_i (r_i - mean_c r)(s_i - mean_c s) / sqrt(...)``, so the config
  explains nothing. A run censored at its budget has t90 = inf (tied above every observed t90); a measure with no
  transition has ``t_q = inf``. Interval: seed-cluster bootstrap (runs resampled within cells); p-value: a
  within-cell permutation null (t90 shuffled among the runs of each cell), two-sided.
- **value**: a Cox model of reaching t90 after ``t_mem``, stratified by cell (statsmodels ``PHReg``, counting-process
  rows between checkpoints: entry, stop, the covariates at the last checkpoint at or before the row's start, so
  a covariate is never read from the future), with the measure's value (in its protocol space, causal column for
  restricted/excluded loss) as a time-varying covariate, against the same model without it: the likelihood-ratio
  test (1 df). The time axis is the training step, so the baseline hazard (one per cell) is the clock; the model
  without the measure holds it and log10 train loss (for train loss under test: the baseline alone; for the clock
  under test: time since ``t_mem`` as a covariate, against train loss).

Verdicts (exactly these words): **informative** (permutation p < 0.05 and likelihood-ratio p < 0.05),
**not informative** (likelihood-ratio p >= 0.05 and the interval of ``rho`` inside (-0.5, 0.5)), **not
determined** (anything else, or fewer than 10 runs reaching t90 after memorising).

>>> info = information(load_sweep("sweeps/emergence-dense"))        # doctest: +SKIP
>>> info.table[["measure", "role", "rho", "rho_low", "rho_high", "p_perm", "p_lr", "verdict"]]   # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError
from ..sweep.tables import as_tables
from .events import events
from .leads import metric_space, transition_steps
from .protocol import BOOT_SEED, CANDIDATES, CAUSAL, CI, HEADLINE_Q, N_BOOT, PRIMARY_EVENT

__all__ = ["Information", "information", "within_cell_spearman", "counting_process", "cox_lr",
           "INFO_ALPHA", "RHO_MARGIN", "MIN_EVENTS", "INFO_VERDICTS", "OUTCOME_BLIND"]

INFO_ALPHA = 0.05  # both tests, per measure
RHO_MARGIN = 0.5  # "not informative" needs the rank correlation's interval inside (-margin, margin)
MIN_EVENTS = 10  # runs reaching t90 after memorising, for any verdict
N_PERM = 2000
BETA_BOUND = 20.0  # Cox coefficients per standard deviation
_ENTRY_EPS = 1e-3  # a row starting at step s is at risk only after s (counting-process rows (start, stop])
OUTCOME_BLIND = ("train_loss",)  # the covariate clock every null model holds (the step is the time axis)
INFO_VERDICTS = ("informative", "not informative", "not determined")


def _cell_ranks(x: np.ndarray, cells: np.ndarray) -> list[np.ndarray]:
    return [np.nonzero(cells == c)[0] for c in dict.fromkeys(cells.tolist())]


def _pooled(rx: list[np.ndarray], ry: list[np.ndarray]) -> np.ndarray:
    """Pooled within-cell correlation of rank blocks ``(b, n_c)`` per cell -> ``(b,)`` (NaN without variance)."""
    sxy = sxx = syy = 0.0
    for a, b in zip(rx, ry):
        a = a - a.mean(axis=-1, keepdims=True)
        b = b - b.mean(axis=-1, keepdims=True)
        sxy = sxy + (a * b).sum(-1)
        sxx = sxx + (a * a).sum(-1)
        syy = syy + (b * b).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((sxx > 0) & (syy > 0), sxy / np.sqrt(sxx * syy), np.nan)


def within_cell_spearman(x, y, cells) -> float:
    """Spearman correlation of ``x`` with ``y`` within cells, pooled (ranks within each cell, average ranks for
    ties, inf allowed); NaN when no cell has variance in both."""
    x, y, cells = np.asarray(x, float), np.asarray(y, float), np.asarray(cells)
    blocks = _cell_ranks(x, cells)
    rx = [stats.rankdata(x[i])[None] for i in blocks]
    ry = [stats.rankdata(y[i])[None] for i in blocks]
    return float(_pooled(rx, ry)[0])


def _rho_resamples(x, y, cells, n_boot: int, n_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(bootstrap rhos, permutation rhos): runs resampled with replacement within cells; y shuffled within cells."""
    rng = np.random.default_rng(seed)
    boot_x, boot_y, perm_x, perm_y = [], [], [], []
    for i in _cell_ranks(x, cells):
        n = len(i)
        idx = rng.integers(0, n, size=(n_boot, n))
        boot_x.append(stats.rankdata(x[i][idx], axis=1))
        boot_y.append(stats.rankdata(y[i][idx], axis=1))
        shuffled = rng.permuted(np.tile(y[i], (n_perm, 1)), axis=1)
        perm_x.append(np.tile(stats.rankdata(x[i]), (n_perm, 1)))
        perm_y.append(stats.rankdata(shuffled, axis=1))
    return _pooled(boot_x, boot_y), _pooled(perm_x, perm_y)


def counting_process(tables, ev: pd.DataFrame, columns: dict[str, str], event: str = PRIMARY_EVENT) -> pd.DataFrame:
    """Counting-process rows for the Cox model: one row per run x interval between its checkpoints from ``t_mem``
    to its event (or budget): run, cell, start, stop, status (1 on the interval that ends at the event), and one
    column per ``columns`` entry (name -> results column) holding the value at the last checkpoint at or before
    ``start`` (forward-filled over rows where the column is missing), in the name's protocol space, and ``clock``
    (start - t_mem). Runs that never memorised or reached the event at or before t_mem have no rows."""
    r = tables.results
    inc = ev[ev["t_mem"].notna() & ~(ev[event] <= ev["t_mem"])]
    out = []
    by_run = {str(k): g for k, g in r.groupby("run", sort=False)}
    for _, e in inc.iterrows():
        g = by_run.get(str(e["run"]))
        if g is None:
            continue
        g = g.sort_values("step")
        steps = g["step"].to_numpy(float)
        t_mem, end = float(e["t_mem"]), float(e["budget"])
        hit = float(e[event]) if not math.isnan(e[event]) else math.inf
        stop_at = min(hit, end)
        bounds = np.unique(np.r_[t_mem, steps[(steps > t_mem) & (steps < stop_at)], stop_at])
        if len(bounds) < 2:
            continue
        start, stop = bounds[:-1], bounds[1:]
        row = {"run": str(e["run"]), "cell": e["cell"], "start": start, "stop": stop,
               "status": np.r_[np.zeros(len(stop) - 1), float(hit <= end)], "clock": start - t_mem}
        at = np.searchsorted(steps, start, side="right") - 1  # the last checkpoint at or before each start
        for name, col in columns.items():
            v = pd.Series(g[col].to_numpy(float)).ffill().to_numpy()
            if metric_space(name) == "log10":
                v = np.log10(np.maximum(v, 1e-30))
            row[name] = np.where(at >= 0, v[np.maximum(at, 0)], np.nan)
        out.append(pd.DataFrame(row))
    cols = ["run", "cell", "start", "stop", "status", "clock", *columns]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def cox_lr(cp: pd.DataFrame, covariate: str, null: Sequence[str]) -> tuple[float, float, float]:
    """``(lr, p, coef)``: likelihood-ratio test of adding ``covariate`` to a Cox model of ``null`` covariates
    (possibly none: the stratified baseline hazard alone), stratified by cell, on counting-process rows
    (standardised covariates; coef per standard deviation)."""
    from statsmodels.duration.hazard_regression import PHReg

    cols = [*null, covariate]
    d = cp.dropna(subset=cols)
    if not len(d) or d["status"].sum() < 2 or d[covariate].std() == 0:
        return math.nan, math.nan, math.nan
    z = (d[cols] - d[cols].mean()) / d[cols].std().replace(0, 1)
    strata = pd.factorize(d["cell"])[0]
    model = PHReg(d["stop"].to_numpy(float), z[cols].to_numpy(float), status=d["status"].to_numpy(int),
                  entry=d["start"].to_numpy(float) + _ENTRY_EPS, strata=strata)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        # the null model is the full model with the covariate's coefficient held at 0
        llf0, b0 = _maximise(model, len(cols), fixed_last=True)
        llf1, params = _maximise(model, len(cols), start=b0)  # from the null's optimum: the nested model can only gain
    if not (math.isfinite(llf1) and math.isfinite(llf0)):
        return math.nan, math.nan, math.nan
    lr = max(0.0, 2.0 * (llf1 - llf0))
    return float(lr), float(stats.chi2.sf(lr, 1)), float(params[-1])


def _maximise(model, k: int, start=None, fixed_last: bool = False, iters: int = 100,
              bound: float = BETA_BOUND) -> tuple[float, np.ndarray]:
    """Maximum partial likelihood of a statsmodels ``PHReg``: Newton steps on its log-likelihood, score and Hessian,
    halved until the likelihood rises and stays finite, coefficients bounded at ``bound`` per standard deviation
    (a covariate that separates the event ends at the bound instead of diverging). ``-> (llf, params)``"""
    b = np.zeros(k) if start is None else np.asarray(start, float)
    ll = model.loglike(b)
    for _ in range(iters):
        g, h = model.score(b), model.hessian(b)
        # projected Newton: coordinates held at a bound by the gradient stay there
        free = ~(((b >= bound) & (g > 0)) | ((b <= -bound) & (g < 0)))
        if fixed_last:
            free[-1] = False
        directions = []
        if free.any():
            step = np.zeros(k)
            try:
                step[free] = np.linalg.solve(h[np.ix_(free, free)] - 1e-9 * np.eye(int(free.sum())), -g[free])
                directions.append(step)
            except np.linalg.LinAlgError:
                pass
            ascent = np.where(free, g, 0.0)
            if np.any(ascent):
                directions.append(ascent / np.max(np.abs(ascent)))  # steepest ascent, when Newton stalls
        moved = False
        for step in directions:
            if not np.all(np.isfinite(step)):
                continue
            t = 1.0
            while t > 1e-6 and not moved:
                nb = np.clip(b + t * step, -bound, bound)
                nll = model.loglike(nb)
                if math.isfinite(nll) and nll > ll + 1e-10:
                    b, ll, moved = nb, nll, True
                t /= 2
            if moved:
                break
        if not moved:
            break
    return float(ll), b


@dataclass
class Information:
    """table: one row per measure and control (controls first): role, n_runs, n_events, rho with its interval
    and permutation p, the Cox likelihood ratio with its p and coefficient (per SD), the null model's covariates,
    the verdict and its reason. per_run: run, cell, seed, t90 (inf: censored), measure, t_q."""

    table: pd.DataFrame
    per_run: pd.DataFrame
    event: str = PRIMARY_EVENT
    q: float = HEADLINE_Q
    notes: list[str] = field(default_factory=list)

    def verdict(self, measure: str) -> str:
        row = self.table[self.table["measure"] == measure]
        if not len(row):
            raise ConfigError(f"no information test of {measure!r}; measures: {self.table['measure'].tolist()}")
        return str(row["verdict"].iloc[0])


def _verdict(n_events: int, rho_low: float, rho_high: float, p_perm: float, p_lr: float) -> tuple[str, str]:
    if n_events < MIN_EVENTS:
        return "not determined", f"{n_events} runs reach t90 after memorising (fewer than {MIN_EVENTS})"
    if any(math.isnan(v) for v in (rho_low, rho_high, p_perm, p_lr)):
        return "not determined", "a statistic could not be computed"
    if p_perm < INFO_ALPHA and p_lr < INFO_ALPHA:
        return "informative", f"timing p {p_perm:.2g} and value p {p_lr:.2g} both below {INFO_ALPHA:g}"
    if p_lr >= INFO_ALPHA and -RHO_MARGIN < rho_low and rho_high < RHO_MARGIN:
        return "not informative", (f"value p {p_lr:.2g}; rank correlation within +-{RHO_MARGIN:g} "
                                   f"[{rho_low:.2f}, {rho_high:.2f}]")
    return "not determined", (f"timing p {p_perm:.2g}, value p {p_lr:.2g}, rank correlation "
                              f"[{rho_low:.2f}, {rho_high:.2f}]")


def information(sweep, measures: Sequence[str] | None = None, q: float = HEADLINE_Q, event: str = PRIMARY_EVENT,
                n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = BOOT_SEED,
                ev: pd.DataFrame | None = None, steps: pd.DataFrame | None = None) -> Information:
    """The information test of every measure (default: the candidates present) and of the controls (the clock,
    train loss, test loss) on ``sweep``; see the module docstring."""
    tables = as_tables(sweep)
    ev = events(tables) if ev is None else ev
    r = tables.results
    for c in ("train_loss", "test_loss"):
        if c not in r.columns:
            raise ConfigError(f"results table: no column {c!r}: the control {c} cannot be computed")
    if measures is None:
        measures = [m for m in CANDIDATES if m in r.columns]
    if steps is None:
        steps = transition_steps(tables, metrics=[*measures, "train_loss", "test_loss"], ev=ev,
                                 loss_spaces=("log10",))
    inc = ev[ev["t_mem"].notna() & ~(ev[event] <= ev["t_mem"])].reset_index(drop=True)
    t_e = inc[event].fillna(math.inf).to_numpy(float)
    cells = inc["cell"].to_numpy()
    n_events = int(np.isfinite(t_e).sum())
    sel = steps[steps["q"] == q]
    by = {k: g.set_index("run")["t_q"] for k, g in sel.groupby(["metric", "space"], sort=False)}
    columns = {m: CAUSAL.get(m, m) if CAUSAL.get(m, m) in r.columns else m for m in measures}
    columns |= {"train_loss": "train_loss", "test_loss": "test_loss"}
    cp = counting_process(tables, ev, columns, event)
    rows, per_run = [], []
    for m in ["clock", "train_loss", "test_loss", *measures]:
        if m == "clock":
            tq = (inc["t_mem"] + q * (inc["budget"] - inc["t_mem"])).to_numpy(float)
        else:
            tq = inc["run"].map(by.get((m, metric_space(m)), pd.Series(dtype=float))).to_numpy(float)
        tq = np.where(np.isnan(tq), math.inf, tq)
        per_run.append(pd.DataFrame({"run": inc["run"], "cell": cells, "seed": inc["seed"], "t90": t_e,
                                     "measure": m, "t_q": tq}))
        rho = within_cell_spearman(tq, t_e, cells) if len(inc) else math.nan
        if len(inc) and not math.isnan(rho):
            boot, perm = _rho_resamples(tq, t_e, cells, n_boot, n_perm, seed)
            a = (1 - CI) / 2
            ok = boot[~np.isnan(boot)]
            lo, hi = (np.quantile(ok, [a, 1 - a], method="inverted_cdf") if len(ok) else (math.nan, math.nan))
            pm = perm[~np.isnan(perm)]
            p_perm = float((1 + np.sum(np.abs(pm) >= abs(rho) - 1e-12)) / (1 + len(pm)))
        else:
            lo = hi = p_perm = math.nan
        null = [c for c in OUTCOME_BLIND if c != m]  # the clock's own test: time since t_mem against train loss
        lr, p_lr, coef = cox_lr(cp, m, null) if len(cp) else (math.nan, math.nan, math.nan)
        verdict, why = _verdict(n_events, float(lo), float(hi), p_perm, p_lr)
        rows.append({"measure": m, "role": "control" if m in ("clock", "train_loss", "test_loss") else "measure",
                     "n_runs": len(inc), "n_events": n_events, "rho": rho, "rho_low": float(lo), "rho_high": float(hi),
                     "p_perm": p_perm, "lr": lr, "p_lr": p_lr, "coef_per_sd": coef, "null_model": " + ".join(["config", "step", *null]), "verdict": verdict, "reason": why})
    return Information(pd.DataFrame(rows), pd.concat(per_run, ignore_index=True), event, q)
