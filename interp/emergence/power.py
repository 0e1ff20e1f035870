"""Seeds per cell for the confirmatory sweeps of protocol v2, from the spread measured on the shipped sweeps.

Each statistic's 95 % interval on the shipped data gives its standard error at the shipped number of seeds
(``se = (high - low) / (2 z_0.975)``); standard errors shrink as 1 / sqrt(seeds). For a claim that must exclude a
margin when the truth sits at the null value (ratio 1, correlation 0), power 1 - beta needs
``se <= margin / (z_0.975 + z_(1-beta))``, so ``seeds = shipped seeds x (se / se_needed)^2``, rounded up.

>>> seeds_needed(se=0.2, n_now=6, margin=0.5)
6
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

__all__ = ["se_from_interval", "seeds_needed", "power_table", "POWER", "Z"]

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
