"""`interp` command line: train, presets, measure, report, attention.

The CLI only parses and wires library calls together. Every deliberate error is an InterpError, printed as
one line (``interp COMMAND: error: ...``) with a non-zero exit and no traceback; errors about a library field
or parameter are restated with the flag that sets it.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import torch

from . import __version__, probes
from .cli_types import int_at_least
from .config import PRESETS, parse_steps, preset
from .emergence import cli as emergence_cli
from .errors import ConfigError, InterpError
from .files import prepare_out_dir
from .fourier import check_frequencies
from .runs import Run
from .sweep import cli as sweep_cli
from .train import train
from .viz.attention import attention
from .viz.report import write_report

DEFAULT_RUN = Path("checkpoints") / "nanda2023-p113-seed0"
DEFAULT_THREADS = 1  # measured: see README "Threads"
REPORT_MARKER = ".interp-report"

# Library field / parameter -> the flag that sets it, per command (for restating ConfigErrors).
FLAGS = {
    "train": {"n_steps": "--steps", "save_every": "--save-every", "save_steps": "--save-steps",
              "data_seed": "--seed", "model_seed": "--seed", "stop_test_loss": "--stop-test-loss",
              "device": "--device", "out_dir": "--out"},
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int_at_least("--threads", 1), default=DEFAULT_THREADS, metavar="N",
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: on a small or busy machine one thread per "
                        "process is fastest; a resumed run is bit-identical only with the same N)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interp", description="Grokking progress measures on TransformerLens models.")
    parser.add_argument("--version", action="version", version=f"interp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a preset into a run directory (resumable)",
                       description="Full-batch training of a preset; writes run.json, split.json, metrics.csv "
                                   "and step_XXXXXX.safetensors checkpoints into --out.")
    p.add_argument("--preset", help="preset name (see `interp presets`); not needed with --resume")
    p.add_argument("--out", required=True, type=Path, help="run directory to create (or resume)")
    p.add_argument("--steps", type=int_at_least("--steps", 1), help="number of training steps (default: the preset's)")
    p.add_argument("--save-every", type=int_at_least("--save-every", 0),
                   help="checkpoint every N steps (0: only --save-steps, step 0 and the last step)")
    p.add_argument("--save-steps", metavar="LIST",
                   help="extra checkpoint steps: comma-separated steps and ranges START-END:EVERY, "
                        "e.g. 0-2000:100,2500,3000-20000:500 (thins a long run to what you keep)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), help="seed for both the data split and the model init")
    p.add_argument("--stop-test-loss", type=float, metavar="X", help="stop early once test loss < X")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(p)

    sub.add_parser("presets", help="list the presets", description="One line per preset: name, purpose, CPU time.")

    m = sub.add_parser("measure", help="compute the progress measures of every checkpoint of a run",
                       description="Writes measures.csv and measures.json to probes/<run-name>/ (under the current "
                                   "directory) by default.")
    m.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory (made by `interp train`)")
    m.add_argument("--out", type=Path, help="output directory (default: probes/<run-name>)")
    m.add_argument("--key-freqs", metavar="K,K,...", help="use these key frequencies instead of finding them")
    m.add_argument("--llc", action="store_true",
                   help="add the local learning coefficient of every checkpoint (column llc; needs the extra "
                        "interp[llc]; slower than every other measure together)")
    m.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(m)

    r = sub.add_parser("report", help="write the HTML report of a run (the main job)",
                       description="Curves, phase boundaries, Fourier spectra, neuron clusters and attention "
                                   "patterns of a run in one offline page. Uses the run's saved measures "
                                   "(probes/<run-name>/ beside the run's folder or in the current directory) when "
                                   "they belong to this run, else computes them.")
    r.add_argument("run_dir", type=Path, nargs="?", default=DEFAULT_RUN, metavar="RUN_DIR",
                   help=f"run directory (default: {DEFAULT_RUN}), or a sweep directory (holds sweep.json): "
                        "then the sweep's emergence report")
    r.add_argument("--out", type=Path, help="output directory (default: report/<run-name>/); refused if it holds "
                                            "anything but an earlier report")
    r.add_argument("--measures", type=Path, metavar="DIR",
                   help="directory with measures.csv and measures.json (default: found as described above)")
    r.add_argument("--recompute", action="store_true", help="ignore saved measures and recompute them")
    _threads_option(r)

    a = sub.add_parser("attention", help="write an attention-pattern page for one checkpoint",
                       description="Renders blocks.0.attn.hook_pattern with circuitsvis, offline.")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory (made by `interp train`)")
    a.add_argument("--step", type=int_at_least("--step", 0), help="checkpoint step (default: the final one)")
    a.add_argument("--pairs", metavar="A,B;A,B",
                   help="input pairs a,b separated by ';' (default: four pairs spread over 0..p-1)")
    a.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the page to write")

    sweep_cli.add_parser(sub)
    emergence_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return _COMMANDS[args.command](args)
    except InterpError as e:
        print(f"interp {args.command}: error: {_in_flags(e, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted{_continue_hint(args)}", file=sys.stderr)
        return 130


def _in_flags(e: InterpError, command: str) -> str:
    """A library ConfigError about a field that a flag of this command sets, restated with the flag."""
    flag = FLAGS.get(command, {}).get(getattr(e, "field", None) or "")
    if flag and getattr(e, "detail", None):
        return f"{flag} {e.detail}"
    return str(e)


def _continue_hint(args) -> str:
    if args.command != "train":
        return ""

    try:
        status = Run(args.out).meta.get("status", {})
    except InterpError:
        return ""
    return (f" at step {status.get('step', 0)} (last saved); continue with "
            f"`interp train --out {args.out} --resume`")


def _cmd_presets(args) -> int:
    width = max(len(n) for n in PRESETS)
    for name, pr in PRESETS.items():
        print(f"{name:<{width}}  {pr.purpose}  [{pr.cpu_time} on 2 CPU cores]")
    return 0


def _cmd_train(args) -> int:
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
    print(f"{run.path}: {run.state}, {len(run.steps)} checkpoints, step {int(last.step)}: train loss "
          f"{last.train_loss:.3g}, test loss {last.test_loss:.3g}, test acc {last.test_acc:.3f}")
    return 0


def _warn_unfinished(run) -> None:
    if not run.finished:
        print(f"interp: warning: {run.describe_state()}; its measures describe only the steps trained so far",
              file=sys.stderr)


def _parse_freqs(text: str, p: int) -> list[int]:
    try:
        freqs = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--key-freqs must be comma-separated integers, got {text!r}") from None
    if not freqs:
        raise ConfigError("--key-freqs is empty; give at least one frequency or omit it")
    return check_frequencies(freqs, p, what="--key-freqs")


def _cmd_measure(args) -> int:
    run = Run(args.run_dir)
    run.final_step  # fails early on a run without checkpoints
    _warn_unfinished(run)
    key_freqs = _parse_freqs(args.key_freqs, run.config.p) if args.key_freqs is not None else None
    out = args.out or Path("probes") / run.name
    prepare_out_dir(out, "--out")
    if args.llc:
        probes.learning_coefficient.devinterp_modules()  # a missing extra fails before any work
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", probes.LLCWarning)
        m = probes.measure_run(run, key_freqs=key_freqs, progress=not args.quiet, llc=args.llc)
    for w in caught:
        if issubclass(w.category, probes.LLCWarning):
            print(f"interp: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    probes.save_measures(m, out)
    print(f"{out}: measures.csv ({len(m.df)} checkpoints), measures.json (key frequencies {m.key_frequencies})")
    return 0


def _report_dir(out: Path) -> Path:
    """The report's directory: new, empty, or an earlier report (marked); anything else is refused."""
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_MARKER).exists():
        raise ConfigError(f"--out {out}: holds files that are not an interp report; choose a new or empty directory")
    prepare_out_dir(out, "--out")
    (out / REPORT_MARKER).touch()
    return out


def _cmd_report(args) -> int:
    if emergence_cli.is_sweep_dir(args.run_dir):
        return emergence_cli.report_command(args, _report_dir(args.out or Path("report") / args.run_dir.resolve().name))
    t0 = time.perf_counter()
    if not args.run_dir.exists() and args.run_dir == DEFAULT_RUN:
        raise ConfigError(f"{DEFAULT_RUN}: the shipped run is not here; run `interp report` from the repository "
                          "root or pass a RUN_DIR")
    run = Run(args.run_dir)
    run.final_step
    out = _report_dir(args.out or Path("report") / run.name)  # checked before any work
    _warn_unfinished(run)
    measures = None
    if not args.recompute:
        if args.measures is not None:
            measures = probes.find_measures(run, [args.measures])
            if measures is None:
                raise ConfigError(f"--measures {args.measures}: no measures.json there")
        else:
            measures = probes.find_measures(run)
        if measures is None:
            print(f"interp report: no saved measures of {run.path} found; computing them now "
                  f"({len(run.steps)} checkpoints)", file=sys.stderr)
    index = write_report(run, out, measures=measures)
    print(f"{index}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _parse_pairs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in (s.strip() for s in text.split(";")):
        if not item:
            continue
        try:
            a, b = (int(x) for x in item.split(","))
        except ValueError:
            raise ConfigError(f"--pairs item {item!r}: expected two integers 'a,b'") from None
        pairs.append((a, b))
    if not pairs:
        raise ConfigError("--pairs is empty; give pairs like '1,2;12,40'")
    return pairs


def _cmd_attention(args) -> int:
    run = Run(args.run_dir)
    p = run.config.p
    pairs = _parse_pairs(args.pairs) if args.pairs is not None else [(0, 0), (1, 2), (p // 3, p // 2), (p - 1, p // 5)]
    step = run.final_step if args.step is None else args.step
    out: Path = args.out
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; give a file name like attention.html")
    prepare_out_dir(out.parent if str(out.parent) else Path("."), "--out")
    model = run.load(step)
    attention(model, pairs, step=step, title=f"{run.name}: attention at step {step}").save(out)
    print(out)
    return 0


_COMMANDS = {
    "emergence": emergence_cli.command,
    "train": _cmd_train,
    "presets": _cmd_presets,
    "measure": _cmd_measure,
    "report": _cmd_report,
    "attention": _cmd_attention,
    "sweep": sweep_cli.command,
}


if __name__ == "__main__":
    sys.exit(main())
