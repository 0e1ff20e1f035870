"""Seeds per cell for the confirmatory sweeps of protocol v2, from the spread measured on the shipped sweeps.

Each statistic's 95 % interval on the shipped data gives its standard error at the shipped number of seeds
(``se = (high - low) / (2 z_0.975)``); standard errors shrink as 1 / sqrt(seeds). For a claim that must exclude a
margin when the truth sits at the null value (ratio 1, correlation 0), power 1 - beta needs
``se <= margin / (z_0.975 + z_(1-beta))``, so ``seeds = shipped seeds x (se / se_needed)^2``, rounded up.

>>> seeds_needed(se=0.2, n_now=6, margin=0.5)   # se needed 0.5 / (1.960 + 0.842) = 0.178: 6 x (0.2 / 0.178)^2 = 7.5
8
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

__all__ = ["se_from_interval", "seeds_needed", "power_table", "pilot_plan", "POWER", "Z", "PILOT_MAX_CPU_HOURS",
           "PILOT_WIDEST_ACC"]

POWER = 0.80
Z = float(norm.ppf(0.975))


def se_from_interval(low: float, high: float, log: bool = False) -> float:
    """The standard error a 95 % interval implies (on the log scale for ratios when ``log``)."""
    if log:
        low, high = math.log(low), math.log(high)
    return (high - low) / (2 * Z)


def seeds_needed(se: float, n_now: int, margin: float, power: float = POWER) -> int:
    """Seeds per cell so that a truth at the null value excludes ``margin`` with probability ``power``."""
    se_target = margin / (Z + float(norm.ppf(power)))
    return max(1, math.ceil(n_now * (se / se_target) ** 2 - 1e-9))


def power_table(dense="sweeps/emergence-dense", grokfast="sweeps/grokfast-small", n_boot: int = 2000):
    """The protocol's power calculation (v2 §6) on the shipped tables: one row per claim with the statistic's
    standard error at 6 seeds, the margin, and the seeds per cell needed for 80 % power."""
    import pandas as pd

    from .grokfast import compare
    from .information import RHO_MARGIN, information
    from .predictability import EQUIV_MARGIN, HEADLINE_LOOK, predictability

    info = information(dense, n_boot=n_boot)
    m = info.table[info.table["role"] == "measure"]
    se_rho = float(np.median([se_from_interval(lo, hi) for lo, hi in zip(m["rho_low"], m["rho_high"])]))
    pred = predictability(dense, look_times=(HEADLINE_LOOK,), n_boot=n_boot).table
    b = pred[(pred["claim"] == "b") & pred["ratio_low"].notna()]
    se_b = float(np.median([se_from_interval(lo, hi) for lo, hi in zip(b["ratio_low"], b["ratio_high"])]))
    share_eval = float(b["n_evaluated"].median() / info.table["n_runs"].iloc[0])
    sp = compare(grokfast, n_boot=n_boot).speedups
    row = sp[(sp["event"] == "t99") & (sp["arm"] == "AdamW + EMA l=2") & (sp["versus"] == "AdamW")
             & sp["setting"].str.startswith("frac_train=0.45")].iloc[0]
    se_g = se_from_interval(row["ci_low"], row["ci_high"], log=True)
    rows = [
        {"claim": "information: rank correlation excludes +-margin at rho = 0", "se_at_6_seeds": se_rho,
         "margin": RHO_MARGIN, "seeds_per_cell": seeds_needed(se_rho, 6, RHO_MARGIN)},
        {"claim": f"(b) nested forecast at T = {HEADLINE_LOOK}: ratio interval above 1 - margin at ratio 1",
         "se_at_6_seeds": se_b, "margin": EQUIV_MARGIN, "seeds_per_cell": seeds_needed(se_b, 6, EQUIV_MARGIN),
         "note": f"{share_eval:.2f} of the runs evaluated at T = {HEADLINE_LOOK}"},
        {"claim": "Grokfast at 45 %: log speed-up interval below log(margin) at speed-up 1", "se_at_6_seeds": se_g,
         "margin": 1.5, "seeds_per_cell": seeds_needed(se_g, 6, math.log(1.5))},
    ]
    return pd.DataFrame(rows)


PILOT_MAX_CPU_HOURS = 8.0  # v2 §1: above this, the dense sweep's seeds are cut to what fits
PILOT_WIDEST_ACC = 0.9     # v2 §1: below this at the widest width, the next width (x 2) joins the width axis


def pilot_plan(pilot, confirmatory: dict, max_cpu_hours: float = PILOT_MAX_CPU_HOURS,
               cut: str = "dense"):
    """Protocol v2 §1's decisions from a pilot sweep: the cost of each confirmatory sweep extrapolated from the
    pilot run(s) of the same cell (the mean CPU time of its runs; for a run that recorded no CPU time, its steps
    times the median CPU-seconds per step of the pilot's runs at the same width, else its wall time x threads), the seeds of ``cut`` that fit ``max_cpu_hours`` when the total exceeds it, and whether the widest
    width of a width axis reached test accuracy 0.9 by the budget (if not, the protocol adds twice that width).

    pilot: a sweep directory or its tables (its ``sweep.json`` holds the runs' costs). confirmatory: ``{name:
    spec}`` (a TOML path, dict or SweepSpec) for each confirmatory sweep. Returns ``(cells, decisions)``: one
    row per confirmatory sweep x cell (runs, pilot runs, CPU-seconds per run, CPU-hours), and a dict with
    ``total_cpu_hours``, ``seeds`` (per sweep, after the cut), ``cut`` (bool), ``widest`` and ``add_width``
    (per sweep with a ``d_mlp`` axis)."""
    import pandas as pd

    from ..config import RunConfig
    from ..errors import ConfigError
    from ..sweep.spec import as_spec
    from ..sweep.state import read_sweep_json
    from ..sweep.tables import as_tables

    tables = as_tables(pilot)
    if tables.path is None:
        raise ConfigError("pilot_plan: the pilot must be a sweep directory (its sweep.json holds the runs' costs)")
    record = read_sweep_json(tables.path)
    threads = float(record.get("threads_per_worker") or tables.meta.get("threads_per_worker") or 1)
    pilot_spec = as_spec(record["spec"])
    cfg_of = dict(pilot_spec.expand())
    cost, final_acc = {}, {}
    last = tables.results.sort_values("step").groupby("run").tail(1).set_index("run")
    done = {n: r for n, r in record["runs"].items() if r.get("status") == "complete"}

    def steps(rec) -> float | None:
        s = (rec.get("final") or {}).get("step")
        return float(s) if isinstance(s, (int, float)) and s > 0 else None

    # CPU-seconds per step at each width, from the runs that recorded their CPU time
    per_step: dict[int, list[float]] = {}
    for name, rec in done.items():
        if isinstance(rec.get("cpu_seconds"), (int, float)) and steps(rec):
            per_step.setdefault(cfg_of[name].d_mlp, []).append(float(rec["cpu_seconds"]) / steps(rec))
    for name, rec in done.items():
        cfg: RunConfig = cfg_of[name]
        if isinstance(rec.get("cpu_seconds"), (int, float)):
            c = float(rec["cpu_seconds"])
        elif steps(rec) and cfg.d_mlp in per_step:   # no CPU time: its steps at its width's cost per step
            c = steps(rec) * float(np.median(per_step[cfg.d_mlp]))
        elif isinstance(rec.get("seconds"), (int, float)):   # else wall time x threads (a busy machine inflates it)
            c = float(rec["seconds"]) * threads
        else:
            c = None
        key = (round(cfg.frac_train, 6), cfg.d_mlp)
        if c is not None:
            cost.setdefault(key, []).append(c)
        if name in last.index and "test_acc" in last.columns:
            final_acc.setdefault(key, []).append(float(last.loc[name, "test_acc"]))
    rows, seeds, decisions = [], {}, {"add_width": {}, "widest": {}}
    for sweep_name, spec in confirmatory.items():
        runs = as_spec(spec).expand()
        per_cell: dict = {}
        for _, cfg in runs:
            per_cell.setdefault((round(cfg.frac_train, 6), cfg.d_mlp), []).append(cfg.model_seed)
        seeds[sweep_name] = max(len(v) for v in per_cell.values())
        for key, s in per_cell.items():
            if key not in cost:
                raise ConfigError(f"pilot_plan: the pilot has no finished run at frac_train={key[0]:g}, "
                                  f"d_mlp={key[1]} (a cell of {sweep_name}); finish the pilot first")
            per_run = sum(cost[key]) / len(cost[key])
            rows.append({"sweep": sweep_name, "frac_train": key[0], "d_mlp": key[1], "runs": len(s),
                         "pilot_runs": len(cost[key]), "cpu_seconds_per_run": per_run,
                         "cpu_hours": len(s) * per_run / 3600})
        widths = sorted({k[1] for k in per_cell})
        if len(widths) > 1:
            widest = [a for k, accs in final_acc.items() if k[1] == widths[-1] and k in per_cell for a in accs]
            acc = min(widest) if widest else math.nan
            decisions["widest"][sweep_name] = (widths[-1], acc)
            decisions["add_width"][sweep_name] = 2 * widths[-1] if not acc >= PILOT_WIDEST_ACC else None
    cells = pd.DataFrame(rows)
    total = float(cells["cpu_hours"].sum())
    decisions["total_cpu_hours"] = total
    decisions["cut"] = total > max_cpu_hours
    if decisions["cut"]:
        if cut not in seeds:
            raise ConfigError(f"pilot_plan: cut={cut!r} is not one of the confirmatory sweeps {sorted(seeds)}")
        other = float(cells.loc[cells["sweep"] != cut, "cpu_hours"].sum())
        per_seed = float(cells.loc[cells["sweep"] == cut, "cpu_hours"].sum()) / seeds[cut]
        seeds[cut] = max(0, int((max_cpu_hours - other) // per_seed))
    decisions["seeds"] = seeds
    return cells, decisions
