"""`interp` command line: train, presets, measure, report, attention.

The CLI only parses and wires library calls together. Every deliberate error is an InterpError, printed as
one line (``interp COMMAND: error: ...``) with a non-zero exit and no traceback; errors about a library field
or parameter are restated with the flag that sets it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence


# Only what parsing needs is imported here: torch, pandas, TransformerLens and matplotlib load inside the command
# that uses them, so `--help`, a parse error or a refused argument answers at once.
from . import __version__
from .cli_types import MAX_THREADS as MAX_THREADS_FLAG, int_at_least
from .config import GROUP_OPS_HELP, OPS, PRESETS, parse_field, parse_steps, preset
from .commands import emergence as emergence_cli
from .commands import grokfast as grokfast_cli
from .commands import sweep_llc as sweep_llc_cli
from .errors import ConfigError, InterpError
from .sweep import cli as sweep_cli
from .threads import MAX_THREADS

DEFAULT_RUN = Path("checkpoints") / "nanda2023-p113-seed0"
REPORT_MARKER = ".interp-report"

# Library field / parameter -> the flag that sets it, per command (for restating ConfigErrors).
FLAGS = {
    "measure": {"device": "--device", "layer": "--layer", "op": "--task", "p": "--p", "frac_train": "--frac-train"},
    "report": {"device": "--device", "op": "--task", "p": "--p", "frac_train": "--frac-train"},
    "train": {"n_steps": "--steps", "save_every": "--save-every", "save_steps": "--save-steps",
              "data_seed": "--seed", "model_seed": "--seed", "stop_test_loss": "--stop-test-loss",
              "device": "--device", "out_dir": "--out", "threads": "--threads"},
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--p 4` is not `--preset 4`: only whole option names
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int_at_least("--threads", 1, MAX_THREADS_FLAG), metavar="N",
                   help="torch CPU threads (default: the free physical cores, at most "
                        f"{MAX_THREADS}; a resumed run keeps its recorded count, bit-identical only with the same N)")


def _folder_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("checkpoints trained elsewhere (a folder of *_STEP.safetensors with config.json, "
                             "no run.json)")
    g.add_argument("--task", metavar="OP", help="the operation its models learnt: " + ", ".join(OPS) + ", "
                   + GROUP_OPS_HELP
                   + " (needed for such a folder; a run directory records its own)")
    g.add_argument("--p", type=int, metavar="P", help="the modulus (default: d_vocab_out of config.json)")
    g.add_argument("--frac-train", type=float, metavar="F", default=None,
                   help="share of pairs in the seeded training split (default 0.3)")
    g.add_argument("--seed", type=int_at_least("--seed", 0), default=None, dest="data_seed", metavar="S",
                   help="seed of that split (default 0)")
    g.add_argument("--split", type=Path, metavar="FILE",
                   help="JSON whose 'train' lists the training pairs a*p+b (instead of the seeded split)")


FOLDER_FLAGS = (("task", "--task"), ("p", "--p"), ("frac_train", "--frac-train"), ("data_seed", "--seed"),
                ("split", "--split"))


def _open_source(path: Path, args):
    """A run directory (``Run``) or a folder of checkpoints trained elsewhere (``CheckpointFolder``, its task from
    --task and the split flags); a folder flag given with a run directory is refused."""
    from .folder import CheckpointFolder, folder_task, is_checkpoint_folder
    from .probes._common import check_model
    from .runs import Run

    given = [flag for attr, flag in FOLDER_FLAGS if getattr(args, attr, None) is not None]
    if is_checkpoint_folder(path):
        if args.task is None:
            raise ConfigError(f"{path}: a folder of state dicts (config.json, no run.json) does not say what its "
                              f"models learnt; pass --task OP (one of {', '.join(OPS)}), e.g. --task add")
        if args.split is not None and (args.frac_train is not None or args.data_seed is not None):
            raise ConfigError("--split lists the training pairs; --frac-train and --seed choose a seeded split; "
                              "give one or the other")
        task = folder_task(path, args.task, p=args.p, split=args.split,
                           frac_train=0.3 if args.frac_train is None else args.frac_train,
                           seed=0 if args.data_seed is None else args.data_seed)
        split = (f"the pairs listed in {args.split.name} (--split)" if args.split is not None else
                 f"the seeded split of interp (frac_train {task.frac_train:g}, seed {task.seed}; --frac-train, "
                 "--seed)")
        folder = CheckpointFolder(path, task, split_source=split)
        check_model(folder.load(), task, f"--task {args.task}")  # before any output is prepared
        return folder
    if given:
        raise ConfigError(f"{' '.join(given)}: for a folder of checkpoints trained elsewhere; {path} is a run "
                          "directory, which records its own task and split (drop the flag)")
    return Run(path)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interp", description="Grokking progress measures on TransformerLens models.")
    parser.add_argument("--version", action="version", version=f"interp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a preset into a run directory (resumable)",
                       description="Training of a preset, with any RunConfig field changed by --set; writes "
                                   "run.json, split.json, metrics.csv and step_XXXXXX.safetensors checkpoints "
                                   "into --out.")
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
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="set_fields",
                   help="set any RunConfig field (repeatable), e.g. --set op=mul --set n_layers=2 --set "
                        "optimiser=sgd --set lr_schedule=cosine --set batch_size=512 --set layer_norm=true "
                        "--set grad_filter=ema --set grad_filter_lambda=2 (fields: docs/tour.md, 'Training knobs')")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(p)

    sub.add_parser("presets", help="list the presets", description="One line per preset: name, purpose, CPU time.")

    m = sub.add_parser("measure", help="compute the progress measures of every checkpoint of a run",
                       description="Writes measures.csv and measures.json to probes/<run-name>/ (under the current "
                                   "directory) by default.")
    m.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="run directory (made by `interp train`), or a folder of TransformerLens state dicts with "
                        "config.json (then --task)")
    m.add_argument("--out", type=Path, help="output directory (default: probes/<run-name>)")
    m.add_argument("--key-freqs", metavar="K,K,...", help="use these key frequencies instead of finding them")
    m.add_argument("--llc", action="store_true",
                   help="add the local learning coefficient of every checkpoint (column llc; needs the extra "
                        "interp[llc]; slower than every other measure together)")
    m.add_argument("--clock-pizza", action="store_true",
                   help="add the clock / pizza diagnostics of every checkpoint (Zhong et al. 2023: columns "
                        "gradient_symmetricity, distance_irrelevance, all_pairs_acc) and print each one's verdict; "
                        "addition runs only, 'not applicable' otherwise")
    m.add_argument("--layer", type=int_at_least("--layer", 0), metavar="L",
                   help="the MLP layer the neuron and W_L columns read (default: the last; a multi-layer run also "
                        "gets per-layer columns)")
    m.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    m.add_argument("--recompute", action="store_true",
                   help="rewrite this run's measures in --out even when they are up to date")
    m.add_argument("--force", action="store_true",
                   help="write into an --out that holds files interp did not write (its measures.csv and "
                        "measures.json are replaced; other files are left alone)")
    m.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(m)
    _folder_options(m)

    r = sub.add_parser("report", help="write the HTML report of a run (the main job)",
                       description="Curves, phase boundaries, Fourier spectra, neuron clusters and attention "
                                   "patterns of a run (or of a folder of checkpoints trained elsewhere, with "
                                   "--task) in one offline page. Uses the run's saved measures "
                                   "(probes/<run-name>/ beside the run's folder or in the current directory) when "
                                   "they belong to this run, else computes them.")
    r.add_argument("run_dir", type=Path, nargs="?", default=DEFAULT_RUN, metavar="RUN_DIR",
                   help=f"run directory (default: {DEFAULT_RUN}), a folder of TransformerLens state dicts with "
                        "config.json (then --task), or a sweep directory (holds sweep.json): then the sweep's "
                        "emergence report")
    r.add_argument("--out", type=Path, help="output directory (default: report/<run-name>/); refused if it holds "
                                            "anything but an earlier report")
    r.add_argument("--measures", type=Path, metavar="DIR",
                   help="directory with measures.csv and measures.json (default: found as described above)")
    r.add_argument("--recompute", action="store_true", help="ignore saved measures and recompute them")
    r.add_argument("--device", default="cpu", help="cpu (default) or cuda, for measures computed now")
    _threads_option(r)
    _folder_options(r)

    a = sub.add_parser("attention", help="write an attention-pattern page for one checkpoint",
                       description="Renders blocks.0.attn.hook_pattern with circuitsvis, offline.")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory (made by `interp train`)")
    a.add_argument("--step", type=int_at_least("--step", 0), help="checkpoint step (default: the final one)")
    a.add_argument("--pairs", metavar="A,B;A,B",
                   help="input pairs a,b separated by ';' (default: four pairs spread over 0..p-1)")
    a.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the page to write")

    sweep_cli.add_parser(sub)
    emergence_cli.add_parser(sub)
    grokfast_cli.add_parser(sub)
    sweep_llc_cli.add_parser(sub)
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
        print(f"interp {args.command}: error: {_in_flags(e, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted{_continue_hint(args)}", file=sys.stderr)
        return 130
    except RecursionError:  # a structure nested too deeply for a parser we do not own (checked where we can)
        print(f"interp {args.command}: error: an input file is nested too deeply to read", file=sys.stderr)
        return 1


def _in_flags(e: InterpError, command: str) -> str:
    """A library ConfigError about a field that a flag of this command sets, restated with the flag."""
    flag = FLAGS.get(command, {}).get(getattr(e, "field", None) or "")
    if flag and getattr(e, "detail", None):
        return f"{flag} {e.detail}"
    return str(e)


def _continue_hint(args) -> str:
    if args.command == "sweep":
        return f"; continue it with `{sweep_cli.resume_command(args)}`"
    if args.command != "train":
        return ""
    from .runs import Run

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
    flagged = {field: flag for field, flag in FLAGS["train"].items() if field in overrides}
    if args.steps is not None:
        flagged["n_steps"] = "--steps"
    fields = _set_fields(args.set_fields, flagged)
    n_steps = fields.pop("n_steps", args.steps)  # like --steps: a resumed run may be extended
    overrides.update(fields)
    if args.resume:
        # The same command line plus --resume is fine; anything that changes the recorded config is refused.
        if overrides and not args.preset:
            raise ConfigError("--resume continues the run as recorded in run.json; give --preset with these "
                              "options (they must match the run) or drop them")
        cfg = _preset_with(args.preset, overrides, fields) if args.preset else None
    else:
        if not args.preset:
            raise ConfigError("--preset is required for a new run (see `interp presets`)")
        cfg = _preset_with(args.preset, overrides, fields)
    run = train(cfg, args.out, device=args.device, resume=args.resume, n_steps=n_steps,
                progress=not args.quiet, threads=args.threads)
    last = run.metrics.dropna().iloc[-1]
    print(f"{run.path}: {run.state}, {len(run.steps)} checkpoints, step {int(last.step)}: train loss "
          f"{last.train_loss:.3g}, test loss {last.test_loss:.3g}, test acc {last.test_acc:.3f}")
    return 0


def _set_fields(items: list[str], flagged: dict[str, str]) -> dict:
    """``--set FIELD=VALUE`` items as RunConfig values (read by each field's type); errors name --set and the field."""
    values: dict = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set optimiser=sgd")
        if name in values:
            raise ConfigError(f"--set {name} is given twice; give it once")
        if name in flagged:
            raise ConfigError(f"--set {name}={text} and {flagged[name]} both set {name}; give it once")
        try:
            values[name] = parse_field(name, text)
        except ConfigError as e:
            raise ConfigError(f"--set {name} {e.detail}") from None
    return values


def _preset_with(name: str, overrides: dict, set_fields: dict):
    """The preset with the overrides, validated; an error about a field given with --set names --set."""
    try:
        return preset(name, **overrides)
    except ConfigError as e:
        if e.field in set_fields and e.detail:
            raise ConfigError(f"--set {e.field} {e.detail}") from None
        raise


def _warn_unfinished(run) -> None:
    if not run.finished:
        print(f"interp: warning: {run.describe_state()}; its measures describe only the steps trained so far",
              file=sys.stderr)


def _parse_freqs(text: str, p: int) -> list[int]:
    from .fourier import check_frequencies

    try:
        freqs = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--key-freqs must be comma-separated integers, got {text!r}") from None
    if not freqs:
        raise ConfigError("--key-freqs is empty; give at least one frequency or omit it")
    return check_frequencies(freqs, p, what="--key-freqs")


def _cmd_measure(args) -> int:
    from . import probes
    from .files import OutputLock
    from .model import check_device

    run = _open_source(args.run_dir, args)
    run.final_step  # fails early on a run without checkpoints
    _warn_unfinished(run)
    check_device(args.device)
    group = run.task.group
    if args.key_freqs is not None and group is None and run.task.finite_group is not None:
        raise ConfigError(f"--key-freqs: the group {run.task.op} is not abelian, so it has no Fourier frequencies; "
                          "its key irreps are found from the final checkpoint")
    if args.key_freqs is not None and group is None:
        raise ConfigError(f"--key-freqs: task {run.task.op!r} has no group basis; its circuit measures are not "
                          "applicable")
    key_freqs = _parse_freqs(args.key_freqs, group.order) if args.key_freqs is not None else None
    out = args.out or Path("probes") / run.name
    if args.llc:
        probes.learning_coefficient.devinterp_modules()  # a missing extra fails before any work
    run = run.snapshot()
    with OutputLock(out):  # one command at a time writes this --out
        return _measure_into(run, out, key_freqs, args)


def _measure_into(run, out: Path, key_freqs, args) -> int:
    from . import probes
    from .files import prepare_out_dir

    foreign = probes.measures_dir_foreign(out)
    if foreign and not args.force:
        raise ConfigError(f"--out {out}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which "
                          "interp did not write; choose another --out or pass --force (nothing was written)")
    owner = probes.saved_identity(out)
    if owner is not None and owner.get("run_id") != run.run_id:
        raise ConfigError(f"--out {out}: holds the measures of run {owner.get('run_id')} ({owner.get('path')}), not "
                          f"of {run.path} (run {run.run_id}); choose another --out (nothing was written)")
    if owner is not None and not args.recompute:
        try:
            kept = probes.load_measures(out)
        except InterpError:
            kept = None  # this run's own pair, damaged (an interrupted write): rewritten
        if kept is not None and kept.same_measurement(run, key_freqs, llc=args.llc, layer=args.layer,
                                                      clock_pizza=args.clock_pizza):
            print(f"{out}: measures of this run at the same {len(kept.steps)} checkpoints are already there; kept "
                  "(pass --recompute to compute them again)")
            if args.clock_pizza:
                _print_clock_pizza(kept)
            return 0
    prepare_out_dir(out, "--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", probes.LLCWarning)
        m = probes.measure_run(run, key_freqs=key_freqs, progress=not args.quiet, device=args.device,
                               layer=args.layer, threads=args.threads, llc=args.llc,
                               clock_pizza=args.clock_pizza)
    for w in caught:
        if issubclass(w.category, probes.LLCWarning):
            print(f"interp: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    probes.save_measures(m, out)
    irreps = f", key irreps {m.key_irreps}" if m.key_irreps else ""
    print(f"{out}: measures.csv ({len(m.df)} checkpoints), measures.json (key frequencies {m.key_frequencies}"
          f"{irreps})")
    if args.clock_pizza:
        _print_clock_pizza(m)
    return 0


def _print_clock_pizza(m) -> None:
    """Each checkpoint's clock / pizza diagnostics and verdict, or the one line that says why they do not apply."""
    from . import probes

    cp = probes.clock_pizza
    why = m.not_applicable.get(cp.COLUMNS[0])
    if why is not None:
        print(f"clock or pizza: not applicable ({why})")
        return
    print("step  gradient_symmetricity  distance_irrelevance  all_pairs_acc  verdict")
    for (_, row), v in zip(m.df.iterrows(), cp.verdicts(m.df)):
        print(f"{int(row['step'])}  {row['gradient_symmetricity']:.4f}  {row['distance_irrelevance']:.4f}  "
              f"{row['all_pairs_acc']:.4f}  {v}")


def _check_report_dir(out: Path, owner: dict) -> None:
    """The report's directory must be new, empty, or an earlier report of the same run or sweep (its marker records
    whose); anything else is refused before any work, naming both owners."""
    from .files import prepare_out_dir, read_limited

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        marker = out / REPORT_MARKER
        if not marker.is_file():
            raise ConfigError(f"--out {out}: holds files that are not an interp report; choose a new or empty "
                              "directory")
        try:
            recorded = json.loads(read_limited(marker, 4096) or b"{}")  # empty: a report of an older interp
        except (ValueError, InterpError):
            recorded = {"path": "an unreadable marker"}
        recorded = recorded if isinstance(recorded, dict) else {"path": "an unreadable marker"}
        key = "run_id" if "run_id" in owner else "sweep"
        if recorded and recorded.get(key) != owner[key]:
            raise ConfigError(f"--out {out}: holds the report of {recorded.get('path', 'another run')} "
                              f"({recorded.get('run_id') or recorded.get('sweep')}), not of {owner['path']}; choose "
                              "another --out (nothing was written)")
    prepare_out_dir(out.parent if str(out.parent) else Path("."), "--out")


def _write_report_dir(out: Path, owner: dict, write) -> Path:
    """Build the report in a staging directory and move it into place whole (never a page of one run with
    another's figures); returns the final index.html."""
    from .files import staged_dir

    with staged_dir(out) as tmp:
        (tmp / REPORT_MARKER).write_text(json.dumps(owner) + "\n")
        write(tmp)
    return out / "index.html"


def _cmd_report(args) -> int:
    from .files import OutputLock
    from .model import check_device

    t0 = time.perf_counter()
    if emergence_cli.is_sweep_dir(args.run_dir):
        given = [flag for attr, flag in FOLDER_FLAGS if getattr(args, attr, None) is not None]
        if given:
            raise ConfigError(f"{' '.join(given)}: for a folder of checkpoints trained elsewhere, not a sweep")
        emergence_cli.check_report_args(args)
        out = args.out or Path("report") / args.run_dir.resolve().name
        owner = {"sweep": str(args.run_dir.resolve()), "path": str(args.run_dir)}
        with OutputLock(out):  # one command at a time writes this --out (and its staging directories)
            _check_report_dir(out, owner)
            index = _write_report_dir(out, owner, lambda tmp: emergence_cli.report_command(args, tmp))
        print(f"{index}  ({time.perf_counter() - t0:.1f} s)")
        return 0
    if not args.run_dir.exists() and args.run_dir == DEFAULT_RUN:
        raise ConfigError(f"{DEFAULT_RUN}: the shipped run is not here; run `interp report` from the repository "
                          "root or pass a RUN_DIR")
    check_device(args.device)
    run = _open_source(args.run_dir, args).snapshot()  # one list of checkpoints for the whole report
    run.final_step
    out = args.out or Path("report") / run.name
    owner = {"run_id": run.run_id, "path": str(run.path)}
    with OutputLock(out):  # one command at a time writes this --out (and its staging directories)
        return _report_run(run, out, owner, args, t0)


def _report_run(run, out: Path, owner: dict, args, t0: float) -> int:
    from . import probes
    from .viz.report import write_report

    _check_report_dir(out, owner)  # checked before any work
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
    index = _write_report_dir(out, owner, lambda tmp: write_report(run, tmp, measures=measures, device=args.device,
                                                                 threads=args.threads))
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
    from .files import prepare_out_dir
    from .runs import Run
    from .viz.attention import attention

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
    "grokfast": grokfast_cli.command,
    "train": _cmd_train,
    "presets": _cmd_presets,
    "measure": _cmd_measure,
    "report": _cmd_report,
    "attention": _cmd_attention,
    "sweep": sweep_cli.command,
    "sweep-llc": sweep_llc_cli.command,
}


if __name__ == "__main__":
    sys.exit(main())
