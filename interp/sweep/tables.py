"""The one reader of a sweep directory's tidy tables (``results.csv``, ``summary.csv``, ``sweep.json``).

:mod:`interp.sweep.results` writes these files (from the run directories, the record of truth);
:func:`load_sweep` is the only code that reads them back as tables: ``interp.emergence``, the sweep report
and the tests all go through it. Pandas only: no torch, no run directories needed (the committed tables
of a shipped sweep are enough).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import ConfigError, RunFormatError
from ..files import read_json
from ..table_checks import check_not_all_nan, read_csv_checked

__all__ = ["SweepTables", "load_sweep", "as_tables", "SEED_FIELDS", "is_seed", "RESULTS_CSV", "SUMMARY_CSV", "SWEEP_JSON"]

RESULTS_CSV, SUMMARY_CSV, SWEEP_JSON = "results.csv", "summary.csv", "sweep.json"


def is_seed(name: str) -> bool:
    """Seed fields are repeats of one configuration, not a scale axis (averaged over, never grouped by)."""
    return name == "seed" or name.endswith("_seed")


SEED_FIELDS = ("data_seed", "model_seed", "seed")


@dataclass
class SweepTables:
    """results: one row per run x checkpoint; summary: one row per run (or None); axes: the varied fields."""

    results: pd.DataFrame
    summary: pd.DataFrame | None = None
    axes: list[str] = field(default_factory=list)
    path: Path | None = None
    meta: dict = field(default_factory=dict)  # sweep.json without its per-run records (spec, provenance, ...)

    def status(self) -> dict[str, str]:
        if self.summary is None or "status" not in self.summary or "run" not in self.summary:
            return {}
        return {str(r): str(s) for r, s in zip(self.summary["run"], self.summary["status"])}

    @property
    def scale_axes(self) -> list[str]:
        """The varied fields that are not seeds."""
        return [a for a in self.axes if not is_seed(a)]


def _infer_axes(results: pd.DataFrame) -> list[str]:
    """The contract's column order: run, the varied fields, step, measures."""
    cols = list(results.columns)
    if "run" in cols and "step" in cols and cols.index("run") < cols.index("step"):
        return cols[cols.index("run") + 1:cols.index("step")]
    return []


def _read_csv(path: Path) -> pd.DataFrame:
    """A sweep table: a bounded regular file, values range-checked (accuracies in [0, 1], losses >= 0)."""
    return read_csv_checked(path)


def load_sweep(sweep_dir: Path | str) -> SweepTables:
    """Read ``results.csv`` (required), ``summary.csv`` and ``sweep.json`` (optional) of a sweep directory.

    The varied fields are ``sweep.json``'s ``axes`` when present, else the columns between ``run`` and
    ``step`` of results.csv.
    """
    d = Path(sweep_dir)
    if not d.is_dir():
        raise RunFormatError(f"{d}: not a directory (expected a sweep directory with results.csv)")
    if not (d / RESULTS_CSV).exists():
        raise RunFormatError(f"{d / RESULTS_CSV}: not found; run the sweep (and its measures) first")
    results = _read_csv(d / RESULTS_CSV)
    check_not_all_nan(results, d / RESULTS_CSV, ("test_acc", "test_loss"))
    summary = _read_csv(d / SUMMARY_CSV) if (d / SUMMARY_CSV).exists() else None
    axes, meta = None, {}
    if (d / SWEEP_JSON).exists():
        spec = read_json(d / SWEEP_JSON)
        axes = spec.get("axes") if isinstance(spec, dict) else None
        meta = {k: v for k, v in spec.items() if k != "runs"} if isinstance(spec, dict) else {}
        if axes is not None and not (isinstance(axes, list) and all(isinstance(a, str) for a in axes)):
            raise RunFormatError(f"{d / SWEEP_JSON}: 'axes' must be a list of field names")
    tables = SweepTables(results, summary, list(axes) if axes is not None else _infer_axes(results), d, meta)
    return check(tables, where=str(d / RESULTS_CSV))


def check(tables: SweepTables, needed: Sequence[str] = (), where: str = "results table") -> SweepTables:
    r = tables.results
    if not isinstance(r, pd.DataFrame):
        raise ConfigError(f"{where}: expected a DataFrame, got {type(r).__name__}")
    missing = [c for c in ("run", "step", *needed, *tables.axes) if c not in r.columns]
    if missing:
        raise RunFormatError(f"{where}: missing column(s) {missing} (has {list(r.columns)})")
    if len(r) == 0:
        raise RunFormatError(f"{where}: the table is empty (no run x checkpoint rows)")
    if not pd.api.types.is_numeric_dtype(r["step"]) or r["step"].isna().any():
        raise RunFormatError(f"{where}: column 'step' must hold numbers in every row")
    return tables


def as_tables(sweep, needed: Sequence[str] = ()) -> SweepTables:
    """A :class:`SweepTables` from one (checked), a results DataFrame (axes inferred) or a sweep directory."""
    if isinstance(sweep, pd.DataFrame):
        tables = SweepTables(sweep, None, _infer_axes(sweep))
    elif isinstance(sweep, (str, Path)):
        tables = load_sweep(sweep)
    elif hasattr(sweep, "results"):
        tables = SweepTables(sweep.results, getattr(sweep, "summary", None), list(getattr(sweep, "axes", []) or []),
                             getattr(sweep, "path", None), dict(getattr(sweep, "meta", {}) or {}))
    else:
        raise ConfigError(f"expected a sweep directory, a results DataFrame or a loaded sweep, got "
                          f"{type(sweep).__name__}")
    return check(tables, needed)
