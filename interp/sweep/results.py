"""The sweep's tidy tables, and reading a sweep back (finished or not).

``DIR/results.csv``: one row per run x checkpoint: ``run``, every varied config field (named as the
RunConfig field), ``step``, then every measure column (union over runs; a run's per-key
``excluded_loss_k{K}`` columns are empty for the other runs' keys).

``DIR/summary.csv``: one row per run: ``run``, the varied fields, ``status``, ``error``, ``grokked``,
``step_test_loss_below_1`` and ``step_test_acc_0_99`` (first step of the run's per-step metrics.csv where
test loss < 1 / test accuracy >= 0.99), ``memorisation_end``, ``circuit_formation_end``, ``cleanup_end``
(``probes.phases`` of the run's measures), ``key_frequencies`` (space-separated), ``budget`` (the last step
of metrics.csv: where a run that has not reached an event is right-censored) and the events ``t_mem`` (first
step with train accuracy >= 0.99), ``t50``, ``t90``, ``t99`` (first step with test accuracy >= 0.5 / 0.9 /
0.99), all from the per-step metrics.csv, empty when not reached; ``not_applicable`` (the measure columns with
no meaning for the run's task or model, space-separated: absent from its rows, reported as "not applicable" by
the emergence analysis) and ``layer`` (the layer its neuron and W_L columns read; a multi-layer run also has
per-layer columns ``*_l{L}``).

Both are rebuilt from the run directories, which are the record of truth: :func:`load` works on a sweep
that is still running or was killed, and shows each run as far as it got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import Run, probes
from ..errors import RunFormatError
from ..files import atomic_write_text
from ..runs import RunLock
from .state import read_sweep_json
from .tables import RESULTS_CSV, SUMMARY_CSV
from .worker import MEASURES_DIR, disk_state

__all__ = ["Sweep", "load", "RunTables", "run_tables", "assemble", "write_tables", "SUMMARY_COLUMNS"]

RUNS_DIR = "runs"
SUMMARY_COLUMNS = ("status", "error", "grokked", "step_test_loss_below_1", "step_test_acc_0_99",
                   "memorisation_end", "circuit_formation_end", "cleanup_end", "key_frequencies",
                   "budget", "t_mem", "t50", "t90", "t99", "not_applicable", "layer")
# Events from the per-step metrics.csv (empty: not reached within the budget, i.e. right-censored there).
EVENTS = {"t_mem": ("train_acc", 0.99), "t50": ("test_acc", 0.5), "t90": ("test_acc", 0.9), "t99": ("test_acc", 0.99)}
_INT_COLUMNS = ("step_test_loss_below_1", "step_test_acc_0_99", "memorisation_end", "circuit_formation_end",
                "cleanup_end", "budget", *EVENTS, "layer")
_KCOL = re.compile(r"^excluded_loss_k(\d+)$")


@dataclass
class RunTables:
    """One finished run's part of the tables: its measures (one row per checkpoint) and summary fields."""

    measures: Any  # DataFrame: step + measure columns
    summary: dict[str, Any]


def run_tables(run_dir: Path) -> RunTables:
    """Read a finished run's measures and derive its summary fields."""
    m = probes.load_measures(run_dir / MEASURES_DIR)
    df, freqs = m.df, m.key_frequencies
    metrics = Run(run_dir).metrics
    ph = probes.phases(df)
    summary = {
        "grokked": bool(ph.grokked),
        "step_test_loss_below_1": _first_step(metrics, metrics["test_loss"] < 1),
        "step_test_acc_0_99": _first_step(metrics, metrics["test_acc"] >= 0.99),
        "memorisation_end": ph.memorisation_end,
        "circuit_formation_end": ph.circuit_formation_end,
        "cleanup_end": ph.cleanup_end,
        "key_frequencies": " ".join(str(int(k)) for k in freqs),
        "budget": int(metrics["step"].iloc[-1]),
        **{name: _first_step(metrics, metrics[col] >= level) for name, (col, level) in EVENTS.items()},
        "not_applicable": " ".join(sorted(m.not_applicable)),
        "layer": m.layer,
    }
    return RunTables(df, summary)


def _first_step(metrics, mask) -> int | None:
    hits = metrics.loc[mask.fillna(False), "step"]
    return int(hits.iloc[0]) if len(hits) else None


def assemble(entries: list[dict[str, Any]], axes: list[str]):
    """(results, summary) DataFrames from per-run entries ``{"name", "varied", "status", "error", "tables"}``
    (``tables`` a :class:`RunTables` or None), in the given run order."""
    import pandas as pd

    frames = []
    for e in entries:
        if e["tables"] is None:
            continue
        df = e["tables"].measures.copy()
        front = pd.DataFrame({"run": [e["name"]] * len(df), **{a: [e["varied"][a]] * len(df) for a in axes}})
        frames.append(pd.concat([front, df.reset_index(drop=True)], axis=1))
    measure_cols: list[str] = []
    for f in frames:
        measure_cols += [c for c in f.columns[len(axes) + 2:] if c not in measure_cols]
    plain = [c for c in measure_cols if not _KCOL.match(c)]
    per_key = sorted((c for c in measure_cols if _KCOL.match(c)), key=lambda c: int(_KCOL.match(c).group(1)))
    columns = ["run", *axes, "step", *plain, *per_key]
    results = (pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames
               else pd.DataFrame(columns=columns))
    results["step"] = results["step"].astype("int64")

    rows = []
    for e in entries:
        s = e["tables"].summary if e["tables"] is not None else {}
        rows.append({"run": e["name"], **{a: e["varied"][a] for a in axes}, "status": e["status"],
                     "error": e["error"], **{c: s.get(c) for c in SUMMARY_COLUMNS[2:]}})
    summary = pd.DataFrame(rows, columns=["run", *axes, *SUMMARY_COLUMNS])
    for c in _INT_COLUMNS:
        summary[c] = summary[c].astype("Int64")
    summary["grokked"] = summary["grokked"].astype("boolean")
    summary["error"] = summary["error"].astype("string")
    summary["key_frequencies"] = summary["key_frequencies"].astype("string")
    summary["not_applicable"] = summary["not_applicable"].astype("string")
    return results, summary


def write_tables(out: Path, results, summary) -> None:
    atomic_write_text(Path(out) / RESULTS_CSV, results.to_csv(index=False))
    atomic_write_text(Path(out) / SUMMARY_CSV, summary.to_csv(index=False))


@dataclass
class Sweep:
    """A sweep directory read back: the tidy tables, the axes, the spec and each run's status."""

    path: Path
    spec: Any  # SweepSpec
    axes: list[str]
    results: Any  # DataFrame, one row per run x checkpoint
    summary: Any  # DataFrame, one row per run
    statuses: dict[str, str] = field(default_factory=dict)

    def run(self, name: str) -> Run:
        """The run directory of one run, as an :class:`interp.Run`."""
        if name not in self.statuses:
            raise RunFormatError(f"{self.path}: the sweep has no run {name!r}; runs: {list(self.statuses)[:5]} ...")
        return Run(self.path / RUNS_DIR / name)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.statuses.values():
            counts[s] = counts.get(s, 0) + 1
        return f"Sweep({str(self.path)!r}, runs={len(self.statuses)}, {counts}, axes={self.axes})"


def load(out: str | Path) -> Sweep:
    """Read a sweep directory: ``.results`` (one row per run x checkpoint), ``.summary`` (one row per run),
    ``.axes``, ``.spec``, ``.statuses``. Works while the sweep runs and after it was killed: finished runs
    are read from their directories; a run recorded as running when no sweep holds the directory is
    reported as pending (``--resume`` continues it)."""
    from .spec import SweepSpec

    out = Path(out)
    data = read_sweep_json(out)
    spec = SweepSpec.from_dict(data["spec"], source=str(out / "sweep.json"))
    axes = [str(a) for a in data["axes"]]
    live = RunLock(out).held_elsewhere()
    entries, statuses = [], {}
    for name, rec in data["runs"].items():
        run_dir = out / RUNS_DIR / name
        if run_dir.is_symlink() and run_dir.resolve().parent != (out / RUNS_DIR).resolve():
            raise RunFormatError(f"{run_dir}: a symbolic link to {run_dir.resolve()}, outside the sweep directory "
                                 f"{out}; refused (its numbers would be labelled as this sweep's run {name!r})")
        status = rec["status"]
        tables = None
        if disk_state(run_dir) == "done":
            status = "complete"
            tables = run_tables(run_dir)
        elif status == "complete" or (status == "running" and not live):
            status = "pending"
        statuses[name] = status
        entries.append({"name": name, "varied": rec.get("varied", {}), "status": status,
                        "error": rec.get("error") if status == "failed" else None, "tables": tables})
    results, summary = assemble(entries, axes)
    return Sweep(out, spec, axes, results, summary, statuses)
