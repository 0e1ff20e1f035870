"""The local learning coefficient on the checkpoints of some of a sweep's runs, as a sweep directory of its own.

``sweep_llc(SWEEP, OUT, select={"frac_train": [0.4, 0.45]})`` estimates ``probes.llc`` at every checkpoint row of
the selected runs (or every n-th, ``every``; read from ``SWEEP/runs/<run>/``) and writes ``OUT/results.csv`` (the source's rows of those runs
with the columns llc, llc_std, llc_frac_negative, llc_chain_spread added), ``OUT/summary.csv`` (their rows) and
``OUT/sweep.json`` (what was selected, from where, the LLC's settings and protocol). ``interp emergence OUT`` then
treats ``llc`` as one more candidate beside the other measures, with the same controls and baselines.

Resumable: each run's estimates are kept in ``OUT/llc/<run>.csv``, rewritten atomically after every checkpoint, so
a killed command continues where it stopped (same source and settings; anything else is refused). The tables
appear only once every selected run is measured.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..errors import ConfigError, RunFormatError
from ..files import atomic_write_text, read_json
from ..table_checks import read_csv_checked
from .tables import RESULTS_CSV, SUMMARY_CSV, SweepTables, load_sweep

__all__ = ["FORMAT", "parse_select", "select_runs", "sweep_llc"]

FORMAT = "interp-sweep-llc-1"
SWEEP_JSON = "sweep.json"
CACHE_DIR = "llc"
RUNS_DIR = "runs"


def parse_select(texts: Sequence[str] | None) -> dict[str, list[float | str]]:
    """``["frac_train=0.4,0.45", "seed=0,1"]`` -> ``{"frac_train": [0.4, 0.45], "seed": [0, 1]}`` (numbers where
    they parse)."""
    out: dict[str, list[float | str]] = {}
    for text in texts or ():
        field, eq, values = str(text).partition("=")
        field = field.strip()
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not field or not items:
            raise ConfigError(f"--select {text!r}: expected FIELD=V1,V2,... (e.g. frac_train=0.4,0.45)")
        parsed: list[float | str] = []
        for v in items:
            try:
                parsed.append(float(v))
            except ValueError:
                parsed.append(v)
        out.setdefault(field, []).extend(parsed)
    return out


def _matches(value: Any, wanted: Sequence[Any]) -> bool:
    for w in wanted:
        if isinstance(w, float):
            try:
                if math.isclose(float(value), w, rel_tol=1e-9, abs_tol=1e-12):
                    return True
            except (TypeError, ValueError):
                continue
        elif str(value) == str(w):
            return True
    return False


def select_runs(tables: SweepTables, select: Mapping[str, Sequence[Any]] | None) -> list[str]:
    """The runs of ``tables`` whose fields take one of the listed values in every selected field (all when
    ``select`` is empty), in the order of the summary; only runs with checkpoint rows."""
    per_run = tables.summary if tables.summary is not None else tables.results.drop_duplicates("run")
    if tables.summary is not None and "status" in per_run.columns:
        per_run = per_run[per_run["status"].astype(str) == "complete"]
    fields = [a for a in tables.axes] + ["data_seed", "model_seed"]
    for field in select or {}:
        if field not in per_run.columns:
            raise ConfigError(f"--select {field}: not a field of this sweep; its fields: "
                              f"{[f for f in fields if f in per_run.columns]}")
    mask = pd.Series(True, index=per_run.index)
    for field, wanted in (select or {}).items():
        mask &= per_run[field].map(lambda v, w=wanted: _matches(v, w))
    names = [str(r) for r in per_run.loc[mask, "run"]]
    have = set(tables.results["run"].astype(str))
    names = [n for n in names if n in have]
    if not names:
        raise ConfigError(f"--select {dict(select or {})}: no finished run of the sweep matches")
    return names


def _record(source: Path, select, names: list[str], settings, state: str, every: int) -> dict[str, Any]:
    from ..probes.learning_coefficient import llc_protocol

    return {"format": FORMAT, "state": state,
            "source": {"sweep": source.name, "path": str(source), "select": {k: list(v) for k, v in select.items()},
                       "runs": names},
            "every": every,
            "llc": llc_protocol(settings)}


def _check_out(out: Path, source: Path, select, settings, every: int) -> None:
    """OUT must be new, empty, or an earlier (possibly interrupted) LLC sweep of the same source and settings."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / SWEEP_JSON).is_file():
        raise ConfigError(f"--out {out}: holds files that are not an LLC sweep; choose a new or empty directory")
    rec = read_json(out / SWEEP_JSON)
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        kind = rec.get("format") if isinstance(rec, dict) else "unreadable"
        raise ConfigError(f"--out {out}: holds another kind of sweep ({kind}); choose a new or empty directory "
                          "(nothing was written)")
    was = rec.get("source", {})
    had = (rec.get("llc") or {}).get("settings")
    if was.get("sweep") != source.name or was.get("select") != {k: list(v) for k, v in select.items()} or \
            had != settings.to_dict() or rec.get("every", 1) != every:
        raise ConfigError(f"--out {out}: holds the LLC of {was.get('sweep')} selected by {was.get('select')} at "
                          f"settings {had}, every {rec.get('every', 1)} checkpoint(s); this is {source.name} selected "
                          f"by {dict(select)} at {settings.to_dict()}, every {every}: choose another --out (nothing "
                          "was written)")


def _read_cache(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        df = read_csv_checked(path)
    except Exception:  # a damaged cache (written atomically, so only by hand): measured again
        return None
    from ..probes.learning_coefficient import LLC_COLUMNS

    return df if {"step", *LLC_COLUMNS} <= set(df.columns) else None


def _measure_run(run_dir: str, steps: list[int], cache: str, settings_dict: dict, threads: int) -> tuple[str, int]:
    """Worker: the LLC of one run's checkpoints ``steps``, kept in ``cache`` after each; returns (run, n unhealthy)."""
    import torch

    from ..probes.learning_coefficient import LLC_COLUMNS, LLCSettings, llc_row
    from ..runs import Run

    torch.set_num_threads(threads)
    settings = LLCSettings(**settings_dict)
    run = Run(run_dir)
    missing = sorted(set(steps) - set(run.steps))
    if missing:
        raise RunFormatError(f"{run_dir}: the sweep's tables list checkpoint(s) {missing[:5]} that the run directory "
                             "does not have")
    cache_path = Path(cache)
    done = _read_cache(cache_path)
    rows = done.to_dict("records") if done is not None else []
    have = {int(r["step"]) for r in rows}
    for step in steps:
        if step in have:
            continue
        values, problems = llc_row(run.load(step), run.task, settings)
        rows.append({"step": step, **values, "llc_healthy": not problems})
        rows.sort(key=lambda r: r["step"])
        atomic_write_text(cache_path, pd.DataFrame(rows, columns=["step", *LLC_COLUMNS, "llc_healthy"])
                          .to_csv(index=False))
    table = pd.DataFrame(rows)
    return run.path.name, int((~table["llc_healthy"].astype(bool)).sum())


def _every(steps: list[int], every: int) -> list[int]:
    """Every ``every``-th of ``steps`` (sorted), the first and the last always included."""
    keep = steps[::every]
    return keep + [steps[-1]] if steps and keep[-1] != steps[-1] else keep


def sweep_llc(sweep_dir: Path | str, out: Path | str, select: Mapping[str, Sequence[Any]] | None = None,
              settings=None, *, every: int = 1, workers: int = 1, threads: int = 1,
              log: Callable[[str], None] | None = print) -> SweepTables:
    """Measure the LLC on every checkpoint row of the selected runs of ``sweep_dir`` into ``out`` (see the module
    docstring); returns the new tables (``load_sweep(out)``). ``every``: measure every n-th checkpoint row of each
    run (its first and last always; the rows between keep an empty llc, which the emergence analysis skips)."""
    from ..probes.learning_coefficient import LLCSettings, devinterp_modules

    devinterp_modules()  # a missing extra fails before any work
    source, out = Path(sweep_dir), Path(out)
    settings = settings if settings is not None else LLCSettings()
    if not isinstance(settings, LLCSettings):
        raise ConfigError(f"sweep_llc: settings must be an LLCSettings, got {type(settings).__name__}")
    select = {str(k): list(v) for k, v in (select or {}).items()}
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"--every must be an integer >= 1, got {every!r}")
    tables = load_sweep(source)
    names = select_runs(tables, select)
    for name in names:
        if not (source / RUNS_DIR / name).is_dir():
            raise RunFormatError(f"{source / RUNS_DIR / name}: the run directory is not here (the LLC needs the "
                                 "checkpoints; a sweep's committed tables alone do not hold them)")
    _check_out(out, source, select, settings, every)
    (out / CACHE_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SWEEP_JSON, json.dumps(_record(source, select, names, settings, "measuring", every),
                                                   indent=1) + "\n")
    results = tables.results[tables.results["run"].astype(str).isin(names)]
    wanted = {n: _every(sorted(int(s) for s in results.loc[results["run"].astype(str) == n, "step"]), every)
              for n in names}
    jobs = [(str(source / RUNS_DIR / n), wanted[n], str(out / CACHE_DIR / f"{n}.csv"), settings.to_dict(), threads)
            for n in names]
    n_steps = sum(len(v) for v in wanted.values())
    if log:
        log(f"{source}: LLC of {len(names)} runs x their checkpoints ({n_steps} estimates) into {out}")
    t0 = time.perf_counter()
    unhealthy: dict[str, int] = {}
    if workers <= 1:
        for j in jobs:
            name, bad = _measure_run(*j)
            unhealthy[name] = bad
            if log:
                log(f"  {name}: done ({time.perf_counter() - t0:.0f} s)")
    else:
        from .local import _die_with_parent  # a killed command leaves no worker behind

        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for name, bad in pool.map(_measure_run, *zip(*jobs)):
                unhealthy[name] = bad
                if log:
                    log(f"  {name}: done ({time.perf_counter() - t0:.0f} s)")
    from ..probes.learning_coefficient import LLC_COLUMNS

    parts = []
    for n in names:
        c = _read_cache(out / CACHE_DIR / f"{n}.csv")
        c = c[c["step"].astype(int).isin(wanted[n])]
        parts.append(c.drop(columns=["llc_healthy"], errors="ignore").assign(run=n))
    llc = pd.concat(parts, ignore_index=True)
    merged = results.assign(run=results["run"].astype(str)).merge(llc, on=["run", "step"], how="left",
                                                                   validate="one_to_one")
    measured = merged["llc"].notna()
    if int(measured.sum()) != sum(len(v) for v in wanted.values()):
        raise RunFormatError(f"{out}: {sum(len(v) for v in wanted.values()) - int(measured.sum())} checkpoint rows "
                             "have no LLC estimate")
    merged = merged[[c for c in results.columns] + list(LLC_COLUMNS)]
    summary = tables.summary[tables.summary["run"].astype(str).isin(names)] if tables.summary is not None else None
    atomic_write_text(out / RESULTS_CSV, merged.to_csv(index=False))
    if summary is not None:
        atomic_write_text(out / SUMMARY_CSV, summary.to_csv(index=False))
    rec = _record(source, select, names, settings, "complete", every)
    rec["axes"] = list(tables.axes)
    rec["unhealthy_estimates"] = int(sum(unhealthy.values()))
    for key in ("spec", "provenance", "threads_per_worker"):
        if key in tables.meta:
            rec[key] = tables.meta[key]
    atomic_write_text(out / SWEEP_JSON, json.dumps(rec, indent=1) + "\n")
    if log:
        log(f"{out}: results.csv ({len(merged)} rows, {len(names)} runs), summary.csv, sweep.json; "
            f"{rec['unhealthy_estimates']} of {int(measured.sum())} estimates failed a health check; "
            f"{time.perf_counter() - t0:.0f} s")
    return load_sweep(out)
