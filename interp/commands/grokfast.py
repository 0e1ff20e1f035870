"""``interp grokfast SWEEP_DIR``: the Grokfast comparison of ``docs/grokfast-protocol.md`` (parse, call, print)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..cli_types import int_at_least
from ..errors import ConfigError
from .text import emit as _emit, print_table as _print_table

__all__ = ["add_parser", "command"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    g = subparsers.add_parser(
        "grokfast", help="does a gradient filter speed grokking? arms of a sweep against the baseline and lr controls",
        description="Reads SWEEP_DIR (a sweep that varies optimiser fields: optimiser, lr, weight_decay, grad_filter, "
                    "grad_filter_lambda, ...) and prints, per setting and arm, the Kaplan-Meier medians of t_mem, "
                    "t90 and t99, the speed-up over the baseline (the spec's own optimiser), over each filter's "
                    "learning-rate control (lr x (1 + lambda)) and weight-decay-matched control, and of the best "
                    "tuned filter over the best tuned baseline where the sweep has lr grids, phase durations and "
                    "the final circuit, each with its 95 %% paired seed-bootstrap interval, in the words of "
                    "docs/grokfast-protocol.md v2. Lines fit 100 columns unless --wide.")
    g.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    g.add_argument("--event", choices=["t_mem", "t90", "t99"], default="t99",
                   help="the event of the answer lines (default: the protocol's t99)")
    g.add_argument("--n-boot", type=int_at_least("--n-boot", 100), default=None, metavar="N",
                   help="bootstrap resamples (default: the protocol's 2000)")
    g.add_argument("--wide", action="store_true", help="print full tables, however wide (default: 100 columns)")
    g.add_argument("--out", type=Path, metavar="DIR", help="also write the tables as CSV into DIR")
    return g


def _fmt_median(v: float, budget: float) -> str:
    return f"> {budget:.0f}" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.0f}")


def command(args) -> int:
    from ..emergence.grokfast import compare  # scipy: loaded when the command runs
    from ..files import atomic_write_text, prepare_out_dir

    if not (args.sweep_dir / "sweep.json").is_file():
        raise ConfigError(f"{args.sweep_dir}: not a sweep directory (no sweep.json); make one with `interp sweep`")
    c = compare(args.sweep_dir, **({} if args.n_boot is None else {"n_boot": args.n_boot}))
    runs, wide = c.runs, args.wide
    cpu = f"{c.cpu_seconds / 3600:.2f} CPU-hours of training" if c.cpu_seconds else "CPU time not recorded"
    _emit(f"{args.sweep_dir}: {len(runs)} runs, {runs['setting'].nunique()} settings x {runs['arm'].nunique()} arms; "
          f"baseline {c.baseline}; {cpu}", wide)
    _emit(f"\n== answer ({args.event}; words of docs/grokfast-protocol.md v2: faster / slower / the speed-up is at "
          "most X (95 %) / not determined)", wide)
    for line in c.answer_lines(args.event):
        _emit("- " + line, wide)
    for note in c.notes:
        _emit(f"note: {note}", wide)
    med = c.medians.assign(median=[_fmt_median(v, b) for v, b in zip(c.medians["median"], c.medians["budget"])],
                           ci=[f"[{_fmt_median(lo, b)}, {_fmt_median(hi, b)}]" for lo, hi, b in
                               zip(c.medians["ci_low"], c.medians["ci_high"], c.medians["budget"])])
    for e in ("t_mem", "t90", "t99"):
        _print_table(f"{e}: Kaplan-Meier median per setting and arm",
                     med[med["event"] == e], wide, ["setting", "arm", "n_runs", "n_reached", "median", "ci"])
    if len(c.tuned):
        _print_table("tuned lr (v2 §2): the arm chosen on the data and its share of the resamples", c.tuned, wide)
    _print_table("speed-up (versus median / arm median; > 1: the arm is faster)", c.speedups, wide,
                 ["setting", "arm", "versus", "event", "ratio", "ci_low", "ci_high", "answer"])
    _print_table("phases (median steps; ratio = baseline / arm)", c.phases, wide)
    _print_table("final circuit (runs that reached t99)", c.circuit, wide)
    if args.out is not None:
        prepare_out_dir(args.out, "--out")
        for name, df in (("runs.csv", c.runs), ("medians.csv", c.medians), ("speedups.csv", c.speedups),
                         ("tuned.csv", c.tuned), ("phases.csv", c.phases), ("circuit.csv", c.circuit)):
            atomic_write_text(args.out / name, df.to_csv(index=False))
        _emit(f"\nwrote runs.csv, medians.csv, speedups.csv, tuned.csv, phases.csv, circuit.csv into {args.out}", wide)
    return 0
