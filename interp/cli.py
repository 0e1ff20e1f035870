"""`interp` command line: train, presets, measure, report, attention.

The CLI only parses and wires library calls together. Every deliberate error is an
InterpError, printed as one line (``interp: error: ...``) with a non-zero exit and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import ConfigError, InterpError
from .sweep import cli as _sweep_cli

DEFAULT_RUN = Path("checkpoints") / "nanda2023-p113-seed0"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(name: str, minimum: int):
    """argparse type: an integer >= minimum, with an error that names the option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be positive, got {value}" if minimum == 1 else f"{name} must be >= {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interp", description="Grokking progress measures on TransformerLens models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a preset into a run directory (resumable)",
                       description="Full-batch training of a preset; writes run.json, split.json, metrics.csv "
                                   "and step_XXXXXX.safetensors checkpoints into --out.")
    p.add_argument("--preset", help="preset name (see `interp presets`); not needed with --resume")
    p.add_argument("--out", required=True, type=Path, help="run directory to create (or resume)")
    p.add_argument("--steps", type=_int_at_least("--steps", 1), help="number of training steps (default: the preset's)")
    p.add_argument("--save-every", type=_int_at_least("--save-every", 0),
                   help="checkpoint every N steps (0: only --save-steps, step 0 and the last step)")
    p.add_argument("--save-steps", metavar="LIST",
                   help="extra checkpoint steps: comma-separated steps and ranges START-END:EVERY, "
                        "e.g. 0-2000:100,2500,3000-20000:500 (thins a long run to what you keep)")
    p.add_argument("--seed", type=_int_at_least("--seed", 0), help="seed for both the data split and the model init")
    p.add_argument("--stop-test-loss", type=float, metavar="X", help="stop early once test loss < X")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("presets", help="list the presets", description="One line per preset: name, purpose, CPU time.")

    m = sub.add_parser("measure", help="compute the progress measures of every checkpoint of a run",
                       description="Writes measures.csv and key_frequencies.json to probes/<run-name>/ by default.")
    m.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    m.add_argument("--out", type=Path, help="output directory (default: probes/<run-name>)")
    m.add_argument("--key-freqs", metavar="K,K,...", help="use these key frequencies instead of finding them")
    m.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("report", help="write the HTML report of a run (the main job)",
                       description="Curves, phase boundaries, Fourier spectra, neuron clusters and attention "
                                   "patterns of a run in one offline page. Uses the committed measures in "
                                   "probes/<run-name>/ when they exist, else computes them.")
    r.add_argument("run_dir", type=Path, nargs="?", default=DEFAULT_RUN, metavar="RUN_DIR",
                   help=f"run directory (default: {DEFAULT_RUN})")
    r.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: report/)")
    r.add_argument("--measures", type=Path, metavar="DIR",
                   help="directory with measures.csv (default: probes/<run-name> if present)")
    r.add_argument("--recompute", action="store_true", help="ignore committed measures and recompute them")

    a = sub.add_parser("attention", help="write an attention-pattern page for one checkpoint",
                       description="Renders blocks.0.attn.hook_pattern with circuitsvis, offline.")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    a.add_argument("--step", type=_int_at_least("--step", 0), help="checkpoint step (default: the final one)")
    a.add_argument("--pairs", metavar="A,B;A,B",
                   help="input pairs a,b separated by ';' (default: four pairs spread over 0..p-1)")
    a.add_argument("--out", type=Path, required=True, metavar="FILE.html")
    _sweep_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except InterpError as e:
        print(f"interp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted", file=sys.stderr)
        return 130


def _cmd_presets(args) -> int:
    from .config import PRESETS

    width = max(len(n) for n in PRESETS)
    for name, pr in PRESETS.items():
        print(f"{name:<{width}}  {pr.purpose}  [{pr.cpu_time} on 2 CPU cores]")
    return 0


def _cmd_train(args) -> int:
    from .config import parse_steps, preset
    from .train import train

    overrides: dict = {}
    if args.save_every is not None:
        overrides["save_every"] = args.save_every
    if args.save_steps is not None:
        overrides["save_steps"] = parse_steps(args.save_steps)
    if args.seed is not None:
        overrides["data_seed"] = overrides["model_seed"] = args.seed
    if args.stop_test_loss is not None:
        overrides["stop_test_loss"] = args.stop_test_loss
    if args.resume:
        # The same command line plus --resume is fine; anything that changes the recorded config is refused.
        if overrides and not args.preset:
            raise ConfigError("--resume continues the run as recorded in run.json; give --preset with these "
                              "options (they must match the run) or drop them")
        cfg = preset(args.preset, **overrides) if args.preset else None
    else:
        if not args.preset:
            raise ConfigError("--preset is required for a new run (see `interp presets`)")
        cfg = preset(args.preset, **overrides)
    run = train(cfg, args.out, device=args.device, resume=args.resume, n_steps=args.steps,
                progress=not args.quiet)
    last = run.metrics.dropna().iloc[-1]
    print(f"{run.path}: {len(run.steps)} checkpoints, step {int(last.step)}: train loss {last.train_loss:.3g}, "
          f"test loss {last.test_loss:.3g}, test acc {last.test_acc:.3f}")
    return 0


def _parse_freqs(text: str) -> list[int]:
    try:
        freqs = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"--key-freqs must be comma-separated integers, got {text!r}") from None
    if not freqs:
        raise ConfigError("--key-freqs is empty; give at least one frequency or omit it")
    return freqs


def _cmd_measure(args) -> int:
    from . import probes
    from .checkpoints import Run

    run = Run(args.run_dir)
    run.final_step  # fails early on a run without checkpoints
    key_freqs = _parse_freqs(args.key_freqs) if args.key_freqs is not None else None
    if key_freqs is not None:
        half = (run.config.p - 1) // 2
        bad = [k for k in key_freqs if not 1 <= k <= half]
        if bad:
            raise ConfigError(f"--key-freqs {bad}: frequencies must be in 1..{half} for p={run.config.p}")
    out = args.out or Path("probes") / run.name
    _check_writable_dir(out, "--out")
    df = probes.measure_run(run, key_freqs=key_freqs, progress=not args.quiet)
    probes.save_measures(df, out, run=run)
    print(f"{out}: measures.csv ({len(df)} checkpoints), key_frequencies.json "
          f"(key frequencies {df.attrs.get('key_frequencies')})")
    return 0


def _check_writable_dir(path: Path, flag: str) -> None:
    from .train import prepare_out_dir

    prepare_out_dir(path, flag)


def _cmd_report(args) -> int:
    import time

    from . import probes
    from .checkpoints import Run
    from .viz.report import write_report

    t0 = time.perf_counter()
    if not args.run_dir.exists() and args.run_dir == DEFAULT_RUN:
        raise ConfigError(f"{DEFAULT_RUN}: the shipped run is not here; run `interp report` from the repository "
                          "root or pass a RUN_DIR")
    run = Run(args.run_dir)
    run.final_step
    measures = None
    if not args.recompute:
        mdir = args.measures or Path("probes") / run.name
        if (mdir / "measures.csv").exists():
            measures = probes.load_measures(mdir)
            if list(measures["step"]) != run.steps:
                raise ConfigError(f"{mdir / 'measures.csv'}: its steps do not match the checkpoints of {run.path}; "
                                  "rerun `interp measure` or pass --recompute")
        elif args.measures is not None:
            raise ConfigError(f"--measures {mdir}: no measures.csv there")
    _check_writable_dir(args.out, "--out")
    index = write_report(run, args.out, measures=measures)
    print(f"{index}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _parse_pairs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in (s.strip() for s in text.split(";")):
        if not item:
            continue
        parts = item.split(",")
        try:
            a, b = (int(x) for x in parts)
        except ValueError:
            raise ConfigError(f"--pairs item {item!r}: expected two integers 'a,b'") from None
        pairs.append((a, b))
    if not pairs:
        raise ConfigError("--pairs is empty; give pairs like '1,2;12,40'")
    return pairs


def _cmd_attention(args) -> int:
    from .checkpoints import Run
    from .viz.attention import write_attention_page

    run = Run(args.run_dir)
    p = run.config.p
    pairs = _parse_pairs(args.pairs) if args.pairs is not None else [(0, 0), (1, 2), (p // 3, p // 2), (p - 1, p // 5)]
    bad = [pr for pr in pairs if not (0 <= pr[0] < p and 0 <= pr[1] < p)]
    if bad:
        raise ConfigError(f"--pairs {bad}: a and b must be in [0, {p}) for this run (p={p})")
    step = run.final_step if args.step is None else args.step
    out: Path = args.out
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; give a file name like attention.html")
    _check_writable_dir(out.parent if str(out.parent) else Path("."), "--out")
    model = run.load(step)
    write_attention_page(model, pairs, out, title=f"{run.name} step {step}")
    print(out)
    return 0


_COMMANDS = {
    "train": _cmd_train,
    "presets": _cmd_presets,
    "measure": _cmd_measure,
    "report": _cmd_report,
    "attention": _cmd_attention,
    "sweep": _sweep_cli.command,
}


if __name__ == "__main__":
    sys.exit(main())
