"""`interp sweep SPEC --out DIR [--backend local|ray] [--address ADDR] [--workers N] [--resume]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "command"]


def _positive(flag: str):
    from ..cli_types import MAX_THREADS, int_at_least

    return int_at_least(flag, 1, MAX_THREADS)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="train, measure and tabulate a grid of runs (resumable; local or Ray)",
        description="Expands SPEC (a TOML sweep spec: base preset, grid, zip-axes, seeds, step budget, measures), "
                    "validates every run, then trains and measures each into DIR/runs/<name>/ and writes "
                    "DIR/results.csv (one row per run x checkpoint), DIR/summary.csv (one row per run) and "
                    "DIR/sweep.json (spec and statuses). Exit status 1 if any run failed.")
    p.add_argument("spec", type=Path, nargs="?", metavar="SPEC",
                   help="sweep spec (TOML); optional with --resume (the recorded spec is used)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="sweep directory (new, or with --resume)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: a Ray cluster")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to use: auto, HOST:PORT or ray://HOST:PORT (default: start a local one)")
    p.add_argument("--workers", type=_positive("--workers"), metavar="N",
                   help="runs at a time (default: one per CPU core, at most the number of runs)")
    p.add_argument("--threads", type=_positive("--threads"), metavar="N",
                   help="torch threads per run (default 1; a resumed sweep keeps its own)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in DIR: keep finished runs, resume interrupted ones, retry failed ones")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def command(args) -> int:
    from .driver import run

    sweep = run(args.spec, args.out, backend=args.backend, workers=args.workers, threads=args.threads,
                resume=args.resume, address=args.address, progress=not args.quiet)
    counts: dict[str, int] = {}
    for s in sweep.statuses.values():
        counts[s] = counts.get(s, 0) + 1
    print(f"{sweep.path}: {len(sweep.statuses)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + f"; results.csv ({len(sweep.results)} rows), summary.csv")
    failed = [n for n, s in sweep.statuses.items() if s == "failed"]
    if failed:
        errors = dict(zip(sweep.summary["run"], sweep.summary["error"]))
        for name in failed:
            print(f"interp sweep: run {name} failed: {errors.get(name)}", file=sys.stderr)
        return 1
    return 0


def resume_command(args) -> str:
    """The exact command that continues the sweep ``args`` started (printed when it is interrupted)."""
    import shlex

    parts = ["interp sweep --resume --out", shlex.quote(str(args.out))]
    if getattr(args, "backend", "local") != "local":
        parts += ["--backend", args.backend]
    if getattr(args, "address", None):
        parts += ["--address", shlex.quote(args.address)]
    if getattr(args, "workers", None):
        parts += ["--workers", str(args.workers)]
    return " ".join(parts)
