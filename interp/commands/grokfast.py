"""``interp grokfast SWEEP_DIR``: the Grokfast comparison of ``docs/grokfast-protocol.md`` (parse, call, print)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from ..cli_types import int_at_least
from ..errors import ConfigError
from ..files import atomic_write_text, prepare_out_dir

__all__ = ["add_parser", "command"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    g = subparsers.add_parser(
        "grokfast", help="does a gradient filter speed grokking? arms of a sweep against the baseline and lr controls",
        description="Reads SWEEP_DIR (a sweep that varies optimiser fields: optimiser, lr, weight_decay, grad_filter, "
                    "grad_filter_lambda, ...) and prints, per setting and arm, the Kaplan-Meier medians of t_mem, "
                    "t90 and t99, the speed-up over the baseline (the spec's own optimiser) and over each filter's "
                    "learning-rate control (lr x (1 + lambda)), phase durations and the final circuit, each with "
                    "its 95 %% paired seed-bootstrap interval (docs/grokfast-protocol.md).")
    g.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    g.add_argument("--event", choices=["t_mem", "t90", "t99"], default="t99",
                   help="the event of the answer lines (default: the protocol's t99)")
    g.add_argument("--n-boot", type=int_at_least("--n-boot", 100), default=None, metavar="N",
                   help="bootstrap resamples (default: the protocol's 2000)")
    g.add_argument("--out", type=Path, metavar="DIR", help="also write the tables as CSV into DIR")
    return g


def _fmt_median(v: float, budget: float) -> str:
    return f"> {budget:.0f}" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.0f}")


def _print(title: str, df: pd.DataFrame) -> None:
    print(f"\n== {title}")
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 70):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}") if len(df) else "(none)")


def command(args) -> int:
    from ..emergence.grokfast import compare  # scipy: loaded when the command runs

    if not (args.sweep_dir / "sweep.json").is_file():
        raise ConfigError(f"{args.sweep_dir}: not a sweep directory (no sweep.json); make one with `interp sweep`")
    c = compare(args.sweep_dir, **({} if args.n_boot is None else {"n_boot": args.n_boot}))
    runs = c.runs
    cpu = f"{c.cpu_seconds / 3600:.2f} CPU-hours of training" if c.cpu_seconds else "CPU time not recorded"
    print(f"{args.sweep_dir}: {len(runs)} runs, {runs['setting'].nunique()} settings x {runs['arm'].nunique()} arms; "
          f"baseline {c.baseline}; {cpu}")
    med = c.medians.assign(median=[_fmt_median(v, b) for v, b in zip(c.medians["median"], c.medians["budget"])],
                           ci=[f"[{_fmt_median(lo, b)}, {_fmt_median(hi, b)}]" for lo, hi, b in
                               zip(c.medians["ci_low"], c.medians["ci_high"], c.medians["budget"])])
    for e in ("t_mem", "t90", "t99"):
        _print(f"{e}: Kaplan-Meier median per setting and arm",
               med[med["event"] == e][["setting", "arm", "n_runs", "n_reached", "median", "ci"]])
    _print("speed-up (versus median / arm median; > 1: the arm is faster; answer in docs/grokfast-protocol.md v2 words)",
           c.speedups[["setting", "arm", "versus", "event", "ratio", "ci_low", "ci_high", "answer"]])
    _print("phases (median steps; ratio = baseline / arm)", c.phases)
    _print("final circuit (runs that reached t99)", c.circuit)
    print(f"\n== answer ({args.event})")
    for line in c.answer_lines(args.event):
        print(line)
    for note in c.notes:
        print(f"note: {note}")
    if args.out is not None:
        prepare_out_dir(args.out, "--out")
        for name, df in (("runs.csv", c.runs), ("medians.csv", c.medians), ("speedups.csv", c.speedups),
                         ("phases.csv", c.phases), ("circuit.csv", c.circuit)):
            atomic_write_text(args.out / name, df.to_csv(index=False))
        print(f"\nwrote runs.csv, medians.csv, speedups.csv, phases.csv, circuit.csv into {args.out}")
    return 0
