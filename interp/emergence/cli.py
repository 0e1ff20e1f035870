"""``interp emergence SWEEP_DIR`` and the sweep branch of ``interp report``: parse, call, print.

Wired into ``interp.cli`` with :func:`add_parser` (the subcommand), :func:`command` (running it) and
:func:`report_command` (``interp report`` on a directory that holds sweep.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..cli_types import int_at_least
from ..errors import ConfigError
from ..files import atomic_write_text, prepare_out_dir
from ..viz.sweep_report import write_sweep_report
from .analysis import analyse

__all__ = ["add_parser", "command", "report_command", "is_sweep_dir"]

_RUN_COLUMNS = ["run", "final_step", "final_test_acc", "emergence_step", "rise_steps", "rise_frac"]
_LEAD_COLUMNS = ["metric", "role", "n_leading", "n_measured", "median_lead", "q25_lead", "q75_lead",
                 "median_lead_frac", "n_never_emerged", "n_no_transition"]
_SCALE_COLUMNS = ["group", "metric", "kind", "space", "n_scales", "smallest", "largest", "sharpness", "jump_from",
                  "jump_to", "discontinuity", "discontinuity_rel"]
_PRED_COLUMNS = ["measure", "n_scored", "mae", "mae_baseline", "mae_ratio", "n_never_emerged", "n_beyond_end",
                 "n_no_transition"]


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / "sweep.json").is_file()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``interp emergence`` to the CLI's subparsers."""
    e = subparsers.add_parser(
        "emergence", help="emergence analysis of a sweep: transitions, leads, scale, prediction",
        description="Reads SWEEP_DIR/results.csv (one row per run x checkpoint). Prints when each run's test "
                    "accuracy emerged, how far ahead each progress measure made half its change, each metric's "
                    "sharpness and discontinuity across a scale axis, and how well the emergence step is "
                    "predicted (leave one run out) against the mean of the other runs.")
    e.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    e.add_argument("--axis", metavar="FIELD",
                   help="scale axis: a varied field of the sweep, or 'step' (default: the first varied non-seed field)")
    e.add_argument("--budget", type=int_at_least("--budget", 0), metavar="STEP",
                   help="training step at which runs are compared along the axis (default: the largest step "
                        "every run reached)")
    e.add_argument("--loss-space", choices=["log10", "linear"], default="log10",
                   help="measure the transitions of losses in log10 (default) or linear space")
    e.add_argument("--out", type=Path, metavar="FILE.csv|DIR",
                   help="also write the tables: FILE.csv gets the per-run x metric transitions; a directory gets "
                        "every table as CSV")
    return e


def _print_table(title: str, df, columns) -> None:
    print(f"\n== {title}")
    if df is None or not len(df):
        print("(none)")
        return
    cols = [c for c in columns if c in df.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.max_colwidth", 40):
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _write_tables(a, out: Path) -> list[Path]:
    if out.suffix == ".csv":
        if out.is_dir():
            raise ConfigError(f"--out {out}: is a directory")
        prepare_out_dir(out.parent if str(out.parent) else Path("."), "--out")
        atomic_write_text(out, a.transitions.to_csv(index=False))
        return [out]
    prepare_out_dir(out, "--out")
    tables = {"runs.csv": a.runs, "transitions.csv": a.transitions, "leads.csv": a.leads,
              "lead_summary.csv": a.lead_summary, "prediction.csv": a.prediction_table}
    if a.predictions:
        tables["prediction_runs.csv"] = pd.concat([p.table.assign(measure=p.measure) for p in a.predictions],
                                                  ignore_index=True)
    if a.scale is not None:
        tables["scale.csv"] = a.scale.table
        tables["scale_points.csv"] = a.scale.points
    written = []
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=False))
        written.append(out / name)
    return written


def command(args) -> int:
    """Run ``interp emergence``."""
    a = analyse(args.sweep_dir, axis=args.axis, budget_step=args.budget, loss_space=args.loss_space)
    print(f"{args.sweep_dir}: {len(a.runs)} runs, varied fields {a.tables.axes}")
    for line in a.headline():
        print(f"- {line}")
    _print_table("runs (emergence step: test accuracy first >= 0.5)", a.runs,
                 ["run", *a.tables.axes, *_RUN_COLUMNS[1:]])
    _print_table("leads over emergence (steps; > 0: the metric's half-way step came first)", a.lead_summary,
                 _LEAD_COLUMNS)
    if a.scale is not None:
        at = "" if a.scale.budget_step is None else f" at step {a.scale.budget_step}"
        _print_table(f"across {a.scale.axis}{at} (log10 space for losses)", a.scale.table, _SCALE_COLUMNS)
    else:
        print(f"\n{a.scale_note}")
    _print_table("predicting the emergence step (leave one run out; MAE in steps)", a.prediction_table,
                 _PRED_COLUMNS)
    if args.out is not None:
        written = _write_tables(a, args.out)
        print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def check_report_args(args) -> None:
    """Options of ``interp report`` that only apply to a run are refused for a sweep directory."""
    if getattr(args, "measures", None) is not None or getattr(args, "recompute", False):
        raise ConfigError(f"{args.run_dir} is a sweep directory: --measures and --recompute apply to a run")


def report_command(args, out: Path) -> Path:
    """``interp report SWEEP_DIR``: the sweep report written into ``out``; returns its index.html."""
    check_report_args(args)
    return write_sweep_report(args.run_dir, out, axis=getattr(args, "axis", None),
                              budget_step=getattr(args, "budget", None))
