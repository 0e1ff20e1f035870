"""``interp sweep-llc SWEEP_DIR --out DIR [--select FIELD=V,...]``: the LLC on the checkpoints of some of a sweep's
runs, as a sweep directory that ``interp emergence`` reads (parse, call, print)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_types import MAX_THREADS, int_at_least

__all__ = ["add_parser", "command"]

SETTING_FLAGS = (("epsilon", float), ("gamma", float), ("n_beta", float), ("chains", int), ("draws", int),
                 ("burn_in", int), ("batch_size", int), ("seed", int))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep-llc", help="the local learning coefficient on every checkpoint of some of a sweep's runs (resumable)",
        description="Estimates probes.llc (devinterp's SGLD; needs the extra interp[llc]) at every checkpoint row of "
                    "the selected runs of SWEEP_DIR (their run directories must be in SWEEP_DIR/runs/) and writes DIR/"
                    "results.csv (those rows with the columns llc, llc_std, llc_frac_negative, llc_chain_spread), "
                    "DIR/summary.csv and DIR/sweep.json. `interp emergence DIR` then analyses llc beside the other "
                    "measures. Killed, it continues where it stopped when run again with the same arguments.")
    p.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep directory (made by `interp sweep`)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the new sweep directory")
    p.add_argument("--select", action="append", metavar="FIELD=V1,V2",
                   help="keep only runs whose FIELD is one of the values (repeatable; default: every run)")
    p.add_argument("--every", type=int_at_least("--every", 1), default=1, metavar="N",
                   help="measure every N-th checkpoint of each run, its first and last always (default 1: all)")
    p.add_argument("--workers", type=int_at_least("--workers", 1, MAX_THREADS), default=1, metavar="N",
                   help="runs measured at a time (default 1)")
    p.add_argument("--threads", type=int_at_least("--threads", 1, MAX_THREADS), default=1, metavar="N",
                   help="torch threads per worker (default 1)")
    for name, kind in SETTING_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, metavar="V",
                       help=f"LLCSettings.{name} (default: the calibrated default)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def command(args) -> int:
    from ..probes.learning_coefficient import LLCSettings
    from ..sweep.llc import parse_select, sweep_llc

    over = {name: getattr(args, name) for name, _ in SETTING_FLAGS if getattr(args, name) is not None}
    settings = LLCSettings(**over)
    select = parse_select(args.select)
    sweep_llc(args.sweep_dir, args.out, select, settings, every=args.every, workers=args.workers, threads=args.threads,
              log=None if args.quiet else print)
    print(f"next: interp emergence {args.out}")
    return 0
