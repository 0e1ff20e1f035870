"""``interp emergence SWEEP_DIR`` and the sweep branch of ``interp report``: parse, call, print.

The analysis (:mod:`interp.emergence`) knows no CLI and draws nothing; this module wires it: the registered
protocol's (v2) answer in a terminal of 100 columns (``--wide`` for the full tables, ``--out DIR`` for every table
as CSV), ``--robustness`` for every alternative choice (the earliness leads among them), ``--v1`` for the verdict
table of protocol v1 (history).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..cli_types import int_at_least
from ..errors import ConfigError
from .text import COLUMNS, emit as _emit, print_table as _print_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["add_parser", "command", "report_command", "check_report_args", "is_sweep_dir", "COLUMNS"]



def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / "sweep.json").is_file()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``interp emergence`` to the CLI's subparsers."""
    e = subparsers.add_parser(
        "emergence", help="the emergence protocol's verdicts for a sweep: information, predictability, real or artefact",
        description="Reads SWEEP_DIR's results.csv, summary.csv and sweep.json and prints the answer of the registered "
                    "protocol (docs/emergence-protocol.md, v2): per progress measure and control whether it carries "
                    "information about when t90 comes beyond the config and the clocks, whether t90 is predictable "
                    "from the past and whether a measure adds to test loss and the clock, and per scale axis whether "
                    "accuracy's jump is real or an artefact of the metric, each with its 95 %% interval. Lines fit "
                    "100 columns; --wide prints the full tables, --out writes them all as CSV.")
    e.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    e.add_argument("--replication", type=Path, action="append", metavar="SWEEP_DIR2", default=[],
                   help="another sweep of the protocol (e.g. sweeps/emergence-width): its verdicts are printed "
                        "after SWEEP_DIR's (repeatable)")
    e.add_argument("--robustness", action="store_true",
                   help="also print the robustness table (earliness leads over every event x quantile x loss space, "
                        "the other look times, every budget)")
    e.add_argument("--v1", action="store_true", help="also print protocol v1's verdict table (history)")
    e.add_argument("--wide", action="store_true", help="print full tables, however wide")
    e.add_argument("--n-boot", type=int_at_least("--n-boot", 100), default=None, metavar="N",
                   help="bootstrap resamples (default: the protocol's 2000)")
    e.add_argument("--out", type=Path, metavar="DIR", help="also write every table as CSV into DIR")
    return e


def _write(out: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    from ..files import atomic_write_text, prepare_out_dir  # torch, pandas: loaded when a command runs, not to parse

    prepare_out_dir(out, "--out")
    written = []
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=False))
        written.append(out / name)
    return written


def _provenance(meta: dict) -> str:
    p = meta.get("provenance") or {}
    return ", ".join(f"{k} {v}" for k, v in p.items()) if isinstance(p, dict) and p else "not recorded"


def _f(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return "> budget" if math.isinf(v) else f"{v:.{digits}g}"


def _ci(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{_f(lo, digits)}, {_f(hi, digits)}]"


def _answer_tables(a) -> dict[str, pd.DataFrame]:
    """The compact tables of the terminal answer."""
    import pandas as pd

    out = {}
    if a.information is not None:
        t = a.information.table
        out["information"] = pd.DataFrame({
            "subject": t["measure"], "rho [95 %]": [f"{_f(r, 2)} {_ci(lo, hi, 2)}" for r, lo, hi in
                                                    zip(t["rho"], t["rho_low"], t["rho_high"])],
            "perm p": t["p_perm"].map(lambda v: _f(v, 2)), "Cox LR p": t["p_lr"].map(lambda v: _f(v, 2)),
            "verdict": t["verdict"]})
    if a.predictability is not None:
        h = a.predictability.headline
        for claim in ("a", "b"):
            g = h[h["claim"] == claim]
            out[claim] = pd.DataFrame({
                "subject": g["forecaster"], "MAE ratio [95 %]": [f"{_f(r)} {_ci(lo, hi)}" for r, lo, hi in
                                                               zip(g["ratio"], g["ratio_low"], g["ratio_high"])],
                "n": g["n_evaluated"], "verdict": g["verdict"]})
    from ..emergence.answer import v2_scale_verdict

    rows = []
    for (axis, budget), s in a.scale.items():
        if budget == a.headline_budget:
            rows.append({"axis": f"{axis} at step {budget}", "R [95 %]": f"{_f(s.ratio)} {_ci(s.ratio_low, s.ratio_high)}",
                         "verdict": v2_scale_verdict(s)})
    for (axis, budget), why in a.missing.items():
        if budget == a.headline_budget:
            rows.append({"axis": f"{axis} at step {budget}", "R [95 %]": "n/a", "verdict": f"not determined ({why})"})
    out["scale"] = pd.DataFrame(rows)
    if a.bimodality is not None and len(a.bimodality):
        b = a.bimodality[a.bimodality["near_critical"]]
        out["bimodality"] = pd.DataFrame({"cell": [f"{x}={v:g}" for x, v in zip(b["axis"], b["value"])],
                                          "n": b["n_runs"], "gap": b["gap_statistic"].map(_f),
                                          "p": b["p"].map(lambda v: _f(v, 2)), "verdict": b["verdict"]})
    return out


def _print_answer(path: Path, a, wide: bool) -> None:
    from ..emergence.information import RHO_MARGIN
    from ..emergence.predictability import EQUIV_MARGIN, HEADLINE_LOOK

    ev = a.events
    _emit(f"{path}: {len(ev)} runs in {ev['cell'].nunique()} cells, varied fields {a.tables.axes}; "
          f"provenance: {_provenance(a.tables.meta)}", wide)
    if a.exploratory:
        _emit("EXPLORATORY under protocol v2: seeds 0-5 chose the protocol (on the shipped sweeps), so a sweep with "
              "them answers nothing confirmatory; use other seeds (docs/emergence-protocol.md v2 §1)", wide)
    _emit(f"events from {ev['event_source'].iloc[0]}; t90 reached by {int(ev['t90'].notna().sum())} of {len(ev)} "
          "runs (the rest right-censored at their budget)", wide)
    km = a.km[a.km["event"] == "t90"].assign(km_median=lambda d: [
        f"> {b:.0f}" if v == float("inf") else f"{v:.0f}" for v, b in zip(d["km_median"], d["budget"])])
    _print_table("t90 per cell (Kaplan-Meier median)", km, wide, ["cell", "n_runs", "n_reached", "km_median"])
    t = _answer_tables(a)
    if "information" in t:
        _print_table("information about t90 (v2 §2): rank correlation within cells of the measure's transition "
                     f"with t90 (permutation p); Cox LR p beyond config + clocks. informative: both p < 0.05; not "
                     f"informative: LR p >= 0.05 and rho within +-{RHO_MARGIN:g}", t["information"], wide)
    if "a" in t:
        _print_table(f"(a) predictable from the past at T = {HEADLINE_LOOK} (v2 §3): MAE of config + the forecaster "
                     "/ MAE of the recalibrated config", t["a"], wide)
        _print_table(f"(b) beyond test loss + clock at T = {HEADLINE_LOOK}: MAE with the measure / MAE of config + "
                     f"test loss + clock; margin {EQUIV_MARGIN:g}", t["b"], wide)
    _print_table("real or artefact (v1 §6: R = width of log-prob / width of accuracy; every budget in "
                 "--robustness)", t["scale"], wide)
    if "bimodality" in t:
        _print_table(f"per-run bimodality at step {a.headline_budget} (v2 §4: gap test of the runs' log-probability in "
                     "the cells near the jump)", t["bimodality"], wide)
    for note in a.notes:
        _emit(f"note: {note}", wide)


def _protocol(args) -> int:
    import pandas as pd

    from ..emergence.answer import EARLINESS_CANNOT_DECIDE, answer  # scipy, statsmodels: loaded when it runs

    kw = {} if args.n_boot is None else {"n_boot": args.n_boot}
    a = answer(args.sweep_dir, **kw)
    _print_answer(args.sweep_dir, a, args.wide)
    if args.v1:
        _print_table("protocol v1's verdict table (history; earliness leads and raw-baseline forecasts)",
                     a.v1_verdict_table(), args.wide, ["subject", "number", "interval", "verdict"])
    if args.robustness:
        _emit(f"\nrobustness: the earliness leads are here, not in the answer: {EARLINESS_CANNOT_DECIDE}.", args.wide)
        _print_table("robustness (alternatives; never a headline)", a.robustness_table(), args.wide,
                     ["analysis", "choice", "subject", "number", "interval", "verdict"])
    for rep in args.replication:
        _emit(f"\n==== replication: {rep}", args.wide)
        _print_answer(rep, answer(rep, **kw), args.wide)
    if args.out is not None:
        tables = {"verdicts.csv": a.verdict_table(), "verdicts_v1.csv": a.v1_verdict_table(),
                  "robustness.csv": a.robustness_table(), "events.csv": a.events, "km.csv": a.km}
        if a.information is not None:
            tables |= {"information.csv": a.information.table, "information_runs.csv": a.information.per_run}
        if a.predictability is not None:
            tables |= {"predictability.csv": a.predictability.table, "predictability_runs.csv": a.predictability.per_run}
        if a.leads is not None:
            tables |= {"leads.csv": a.leads.summary, "lead_runs.csv": a.leads.per_run, "lead_grid.csv": a.grid}
        if a.forecasts is not None:
            tables |= {"forecast_scores.csv": a.forecasts.scores, "forecasts.csv": a.forecasts.per_run,
                       "forecast_verdicts.csv": a.forecasts.verdicts}
        if a.scale:
            tables["scale_fits.csv"] = pd.concat([s.fit_table() for s in a.scale.values()], ignore_index=True)
            tables["scale_runs.csv"] = pd.concat([s.per_run.assign(axis=s.axis, budget=s.budget)
                                                  for s in a.scale.values()], ignore_index=True)
        if a.bimodality is not None:
            tables["bimodality.csv"] = a.bimodality
        written = _write(args.out, tables)
        _emit(f"\nwrote {len(written)} tables into {args.out}: {', '.join(p.name for p in written)}", args.wide)
    return 0


def command(args) -> int:
    """Run ``interp emergence``: every input is checked before anything is computed or printed."""
    for d in (args.sweep_dir, *args.replication):
        flag = "SWEEP_DIR" if d == args.sweep_dir else "--replication"
        if not d.is_dir():
            raise ConfigError(f"{flag} {d}: not a directory")
        if not is_sweep_dir(d):
            raise ConfigError(f"{flag} {d}: not a sweep directory (no sweep.json); make one with `interp sweep`")
    if args.out is not None and args.out.suffix == ".csv":
        raise ConfigError(f"--out {args.out}: the protocol's tables go into a directory")
    return _protocol(args)


def check_report_args(args) -> None:
    """Options of ``interp report`` that only apply to a run are refused for a sweep directory."""
    if getattr(args, "measures", None) is not None or getattr(args, "recompute", False):
        raise ConfigError(f"{args.run_dir} is a sweep directory: --measures and --recompute apply to a run")


def report_command(args, out: Path) -> Path:
    """``interp report SWEEP_DIR``: the sweep report written into ``out``; returns its index.html."""
    from ..viz.sweep_report import write_sweep_report

    check_report_args(args)
    return write_sweep_report(args.run_dir, out)
