"""``interp emergence SWEEP_DIR`` and the sweep branch of ``interp report``: parse, call, print.

The analysis (:mod:`interp.emergence`) knows no CLI and draws nothing; this module wires it: by default the
registered protocol's verdict table (``docs/emergence-protocol.md``), ``--robustness`` for every alternative
choice, ``--exploratory`` for the pre-protocol tables (labelled as such).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..cli_types import int_at_least
from ..errors import ConfigError
from ..files import atomic_write_text, prepare_out_dir

__all__ = ["add_parser", "command", "report_command", "check_report_args", "is_sweep_dir"]

_RUN_COLUMNS = ["run", "final_step", "final_test_acc", "emergence_step", "rise_steps", "rise_frac"]
_LEAD_COLUMNS = ["metric", "role", "n_leading", "n_measured", "median_lead", "q25_lead", "q75_lead",
                 "median_lead_frac", "n_never_emerged", "n_no_transition"]
_SCALE_COLUMNS = ["group", "metric", "kind", "space", "n_scales", "smallest", "largest", "sharpness", "jump_from",
                  "jump_to", "discontinuity", "discontinuity_rel"]
_PRED_COLUMNS = ["measure", "n_scored", "mae", "mae_baseline", "mae_ratio", "n_never_emerged", "n_beyond_end",
                 "n_no_transition"]
_EXPLORATORY_ONLY = ("axis", "budget", "loss_space")


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / "sweep.json").is_file()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``interp emergence`` to the CLI's subparsers."""
    e = subparsers.add_parser(
        "emergence", help="the emergence protocol's verdicts for a sweep: real or artefact, leads, forecasts",
        description="Reads SWEEP_DIR's results.csv, summary.csv and sweep.json and prints the verdict table of the "
                    "registered protocol (docs/emergence-protocol.md): per scale axis whether accuracy's jump is "
                    "real or an artefact of the metric, per progress measure whether it leads the t90 event "
                    "against the controls (train loss, test loss, the clock) and whether it forecasts t90 better "
                    "than the config baseline, each with its 95 %% seed-cluster bootstrap interval.")
    e.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    e.add_argument("--replication", type=Path, action="append", metavar="SWEEP_DIR2", default=[],
                   help="another sweep of the protocol (e.g. sweeps/emergence-width): its verdicts are printed "
                        "beside SWEEP_DIR's, its leads and forecasts as a replication (repeatable)")
    e.add_argument("--robustness", action="store_true",
                   help="also print the robustness table (every event x quantile x loss space, every budget)")
    e.add_argument("--n-boot", type=int_at_least("--n-boot", 100), default=None, metavar="N",
                   help="bootstrap resamples (default: the protocol's 2000)")
    e.add_argument("--out", type=Path, metavar="DIR|FILE.csv",
                   help="also write the tables as CSV into DIR (with --exploratory, FILE.csv gets the transitions)")
    e.add_argument("--exploratory", action="store_true",
                   help="print the pre-protocol tables instead (half-way steps, sharpness, leave-one-run-out): "
                        "exploratory, not the protocol's answer")
    e.add_argument("--axis", metavar="FIELD", help="with --exploratory: the scale axis (a varied field, or 'step')")
    e.add_argument("--budget", type=int_at_least("--budget", 0), metavar="STEP",
                   help="with --exploratory: the step at which runs are compared along the axis")
    e.add_argument("--loss-space", choices=["log10", "linear"], default=None,
                   help="with --exploratory: measure the transitions of losses in log10 (default) or linear space")
    return e


def _print_table(title: str, df, columns=None) -> None:
    print(f"\n== {title}")
    if df is None or not len(df):
        print("(none)")
        return
    cols = [c for c in (columns or df.columns) if c in df.columns]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 90):
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _write(out: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    prepare_out_dir(out, "--out")
    written = []
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=False))
        written.append(out / name)
    return written


def _provenance(meta: dict) -> str:
    p = meta.get("provenance") or {}
    return ", ".join(f"{k} {v}" for k, v in p.items()) if isinstance(p, dict) and p else "not recorded"


def _protocol(args) -> int:
    from ..emergence.answer import (  # scipy: loaded when the command runs
        answer,
        verdicts,
    )

    kw = {} if args.n_boot is None else {"n_boot": args.n_boot}
    a = answer(args.sweep_dir, **kw)
    ev = a.events
    print(f"{args.sweep_dir}: {len(ev)} runs in {ev['cell'].nunique()} cells, varied fields {a.tables.axes}; "
          f"provenance: {_provenance(a.tables.meta)}")
    print(f"events from {ev['event_source'].iloc[0]}; t90 reached by {int(ev['t90'].notna().sum())} of {len(ev)} "
          f"runs (the rest right-censored at their budget)")
    km = a.km[a.km["event"] == "t90"].assign(km_median=lambda d: d["km_median"].map(
        lambda v: f"> {d['budget'].max():.0f}" if v == float("inf") else f"{v:.0f}"))
    _print_table("t90 per cell (Kaplan-Meier median)", km, ["cell", "n_runs", "n_reached", "km_median"])
    _print_table("verdicts (docs/emergence-protocol.md)", a.verdict_table())
    if a.leads is not None:
        print(f"\nleads: {a.leads.counts}")
    for note in a.notes:
        print(f"note: {note}")
    if args.robustness:
        _print_table("robustness (alternatives; never a headline)", a.robustness_table())
    if args.replication:
        both = verdicts(a, *args.replication, **kw)
        _print_table("verdicts over the sweeps (leads and forecasts: headline on SWEEP_DIR)", both)
    if args.out is not None:
        tables = {"verdicts.csv": a.verdict_table(), "robustness.csv": a.robustness_table(), "events.csv": a.events,
                  "km.csv": a.km}
        if a.leads is not None:
            tables |= {"leads.csv": a.leads.summary, "lead_runs.csv": a.leads.per_run, "lead_grid.csv": a.grid}
        if a.forecasts is not None:
            tables |= {"forecast_scores.csv": a.forecasts.scores, "forecasts.csv": a.forecasts.per_run,
                       "forecast_verdicts.csv": a.forecasts.verdicts}
        if a.scale:
            tables["scale_fits.csv"] = pd.concat([s.fit_table() for s in a.scale.values()], ignore_index=True)
            tables["scale_runs.csv"] = pd.concat([s.per_run.assign(axis=s.axis, budget=s.budget)
                                                  for s in a.scale.values()], ignore_index=True)
        print(f"\nwrote {', '.join(str(p) for p in _write(args.out, tables))}")
    return 0


def _exploratory(args) -> int:
    from ..emergence.analysis import analyse

    a = analyse(args.sweep_dir, axis=args.axis, budget_step=args.budget, loss_space=args.loss_space or "log10")
    print(f"{args.sweep_dir}: {len(a.runs)} runs, varied fields {a.tables.axes} (EXPLORATORY: not the protocol's "
          "answer; `interp emergence SWEEP_DIR` prints that)")
    for line in a.headline():
        print(f"- {line}")
    _print_table("runs (emergence step: test accuracy first >= 0.5)", a.runs, ["run", *a.tables.axes, *_RUN_COLUMNS[1:]])
    _print_table("leads over emergence (steps; > 0: the metric's half-way step came first)", a.lead_summary,
                 _LEAD_COLUMNS)
    if a.scale is not None:
        at = "" if a.scale.budget_step is None else f" at step {a.scale.budget_step}"
        _print_table(f"across {a.scale.axis}{at} (log10 space for losses)", a.scale.table, _SCALE_COLUMNS)
    else:
        print(f"\n{a.scale_note}")
    _print_table("predicting the emergence step (leave one run out; MAE in steps)", a.prediction_table, _PRED_COLUMNS)
    if args.out is not None:
        if args.out.suffix == ".csv":
            if args.out.is_dir():
                raise ConfigError(f"--out {args.out}: is a directory")
            prepare_out_dir(args.out.parent if str(args.out.parent) else Path("."), "--out")
            atomic_write_text(args.out, a.transitions.to_csv(index=False))
            written = [args.out]
        else:
            tables = {"runs.csv": a.runs, "transitions.csv": a.transitions, "leads.csv": a.leads,
                      "lead_summary.csv": a.lead_summary, "prediction.csv": a.prediction_table}
            if a.predictions:
                tables["prediction_runs.csv"] = pd.concat([p.table.assign(measure=p.measure) for p in a.predictions],
                                                          ignore_index=True)
            if a.scale is not None:
                tables["scale.csv"] = a.scale.table
                tables["scale_points.csv"] = a.scale.points
            written = _write(args.out, tables)
        print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def command(args) -> int:
    """Run ``interp emergence``."""
    if args.exploratory:
        if args.replication:
            raise ConfigError("--replication applies to the protocol's verdicts, not to --exploratory")
        return _exploratory(args)
    given = [f"--{o.replace('_', '-')}" for o in _EXPLORATORY_ONLY if getattr(args, o) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: only with --exploratory (the protocol fixes its axes, budgets and "
                          "spaces; alternatives are in --robustness)")
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
    return write_sweep_report(args.run_dir, out, axis=getattr(args, "axis", None),
                              budget_step=getattr(args, "budget", None))
