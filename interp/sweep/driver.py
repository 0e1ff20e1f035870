"""`run`: expand and validate a spec, lock the sweep directory, hand the unfinished runs to a backend,
record every status change (sweep.status.jsonl, folded into sweep.json), and write the tidy tables.

Layout of a sweep directory::

    DIR/sweep.json              spec, axes, each run's status (and error) as of the last compaction
    DIR/sweep.status.jsonl      the status changes since then, one line each (see interp.sweep.state)
    DIR/results.csv             one row per run x checkpoint (varied fields + every measure)
    DIR/summary.csv             one row per run (status, grokked, steps to thresholds, phases, key frequencies)
    DIR/runs/<name>/            an ordinary run directory (``interp.Run``), plus measures/ after measuring
    DIR/.lock                   held by the one sweep process working on DIR
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, RunLockedError
from ..files import prepare_out_dir
from ..runs import RunLock
from ..threads import physical_cores
from .progress import Display
from .results import RUNS_DIR, Sweep, assemble, load, run_tables, write_tables
from .spec import SweepSpec, as_spec
from .state import SWEEP_JSON, SweepState, check_dir, read_sweep_json
from .worker import disk_state

__all__ = ["run", "default_workers", "BACKENDS"]

BACKENDS = ("local", "ray")
TABLES_EVERY_S = 10.0  # the tables are rewritten at most this often while runs finish, and at the end


def default_workers(n_runs: int, threads: int = 1) -> int:
    """One worker per usable physical CPU core (for one thread each), never more than there are runs.

    Measured with benchmarks/sweep.py on 2 shared cores: 2 one-thread workers were 1.41x faster than 1
    while the cores were free, and ~0.87x while other jobs held them; one per core is the default for a
    machine the sweep has to itself (``workers=1`` on a busy one)."""
    return max(1, min(n_runs, physical_cores() // max(1, threads)))


def run(spec: SweepSpec | Mapping[str, Any] | str | Path | None, out: str | Path, *, backend: str = "local",
        workers: int | None = None, threads: int | None = None, resume: bool = False, address: str | None = None,
        progress: bool = True) -> Sweep:
    """Train, measure and tabulate every run of ``spec`` into ``out``; returns :func:`load` of it.

    spec: a SweepSpec, the TOML structure as a dict, or a TOML path; None with ``resume`` uses the
    spec recorded in ``out/sweep.json``. backend: "local" (worker processes here) or "ray" (``address``:
    "auto", "HOST:PORT" or "ray://HOST:PORT" of a running cluster; None starts a local one). workers:
    parallel runs (default :func:`default_workers`). threads: torch threads per run (default 1; a resumed
    sweep keeps its recorded count, which is what keeps resumed runs bit-identical). resume: continue a
    sweep in ``out``: finished runs are kept, interrupted ones continue from their last saved state,
    failed ones are tried again.

    Everything is validated before any training; a second sweep on the same directory is refused
    (RunLockedError) while one runs. Runs that fail are recorded with their error and the rest go on.
    """
    out = Path(out)
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    for flag, v in (("--workers", workers), ("--threads", threads)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(f"{flag} must be a positive integer, got {v!r}")
    recorded = read_sweep_json(out) if resume and (out / SWEEP_JSON).exists() else None
    if recorded is not None:
        _check_resumable(out, recorded)
    if spec is None:
        if recorded is None:
            raise ConfigError(f"no SPEC given and no sweep to resume in {out}")
        spec = SweepSpec.from_dict(recorded["spec"], source=str(out / SWEEP_JSON))
    spec = as_spec(spec)
    runs = spec.expand()  # every RunConfig validated before any work
    axes = spec.varied_fields()
    if recorded is not None:
        kept = recorded.get("threads_per_worker", 1)
        if threads is not None and threads != kept:
            raise ConfigError(f"--threads {threads}: this sweep was started with {kept} thread(s) per run; resumed "
                              "runs must keep it to stay bit-identical (omit --threads)")
        threads = kept
    threads = threads or 1
    joined = False
    if backend == "ray":
        from .ray_backend import check_available, connect, disconnect

        check_available()
        if address is not None:  # joined before anything is written: a failed connection leaves nothing behind
            joined = connect(address)
    try:
        if not (out.exists() and not out.is_dir()):
            check_dir(out, resume)  # before anything is created (checked again under the lock)
        prepare_out_dir(out, "--out")

        lock = RunLock(out)
        try:
            lock.acquire()
        except RunLockedError:
            holder = (out / ".lock").read_text(errors="replace").strip() or "another process"
            raise RunLockedError(f"{out}: a sweep is already running in this directory ({holder}); wait for it to "
                                 "finish or stop it first") from None
        display = None
        try:
            _check_no_links_out(out, [name for name, _ in runs])
            state = SweepState.open(out, spec, runs, axes, threads=threads, backend=backend, resume=resume)
            (out / RUNS_DIR).mkdir(exist_ok=True)
            jobs, initial = [], []
            for name, cfg in runs:
                if disk_state(out / RUNS_DIR / name) == "done":
                    initial.append((name, "complete", {"error": None}))
                    continue
                initial.append((name, "pending", {"error": None}))
                jobs.append({"name": name, "config": cfg.to_dict(), "measures": spec.measures, "top_k": spec.top_k})
            state.set_many(initial)  # one journal write (or one compaction), however many runs
            display = Display(len(runs), enabled=progress)
            events = _Events(out, state, display, runs, axes)
            if jobs:
                n_workers = workers or default_workers(len(jobs), threads)
                if backend == "local":
                    from .local import execute

                    execute(jobs, events, workers=n_workers, threads=threads, runs_dir=out / RUNS_DIR)
                else:
                    from .ray_backend import execute as ray_execute

                    # on a cluster, by default as many runs at a time as it has CPUs for
                    ray_execute(jobs, events, workers=workers if address else n_workers, threads=threads,
                                runs_dir=out / RUNS_DIR, address=address)
            events.write_tables()
        finally:
            if display is not None:
                display.close()
            try:
                if "state" in locals():  # runs cut short (Ctrl-C, an error here) are left to --resume
                    try:
                        state.set_many([(name, "pending", {}) for name in state.data["runs"]
                                        if state.status(name) == "running"])
                    finally:
                        state.close()  # the status journal folded into sweep.json
            finally:
                lock.release()
    finally:
        if joined:
            disconnect()
    return load(out)


def _check_resumable(out: Path, recorded: dict[str, Any]) -> None:
    """A sweep whose complete runs have no run directory (a copy of its tables only, like the shipped one) is not
    resumed: that would retrain every run over its committed tables. Refused, with the command that regenerates it."""
    runs = recorded["runs"]
    gone = [n for n, r in runs.items() if r["status"] == "complete" and not (out / RUNS_DIR / n).is_dir()]
    if gone:
        raise ConfigError(f"--out {out}: {len(gone)} of {len(runs)} runs recorded complete have no run directory "
                          f"(a copy of the sweep's tables only); --resume would retrain them over those tables. "
                          f"Regenerate the sweep into a new directory: `interp sweep {out / SWEEP_JSON} --out NEW_DIR`")


def _check_no_links_out(out: Path, names: list[str]) -> None:
    """Nothing a sweep writes may land outside its directory: a run directory (or runs/) that is a symbolic
    link leading out of it is refused."""
    root = out.resolve()
    for path in [out / RUNS_DIR] + [out / RUNS_DIR / n for n in names]:
        if path.is_symlink():
            target = path.resolve()
            if target != root and root not in target.parents:
                raise ConfigError(f"{path}: a symbolic link to {target}, outside the sweep directory {out}; refused "
                                  "(a sweep writes only inside its directory: move the run there or remove the link)")


class _Events:
    """What the backends report, applied to sweep.json, the display and the tables."""

    def __init__(self, out: Path, state: SweepState, display: Display, runs, axes: list[str]):
        self.out, self.state, self.display, self.axes = out, state, display, axes
        self.names = [n for n, _ in runs]
        self.tables: dict[str, Any] = {}
        self._tables_written = time.monotonic()

    def started(self, name: str, where: str) -> None:
        self.state.set(name, "running", error=None)
        self.display.event(self.state.counts(), name, f"started ({where})")

    def requeued(self, name: str) -> None:
        """Its worker died before starting it: back in the queue."""
        self.state.set(name, "pending")

    def progress(self, name: str, row: dict[str, Any]) -> None:
        if self.state.status(name) != "running":  # a late message of a run that has finished
            return
        self.display.latest[name] = row
        self.display.update(self.state.counts())

    def finished(self, name: str, result: dict[str, Any]) -> None:
        self.display.latest.pop(name, None)
        status = result["status"]
        self.state.set(name, status, error=result.get("error"), seconds=result.get("seconds"),
                       cpu_seconds=result.get("cpu_seconds"), final=result.get("final"))
        if status == "complete":
            f = result["final"] or {}
            what = (f"complete in {result['seconds']:.1f} s: step {f.get('step')}, train loss "
                    f"{_g(f.get('train_loss'))}, test loss {_g(f.get('test_loss'))}, test acc {_g(f.get('test_acc'))}")
        else:
            what = f"FAILED: {result.get('error')}"
        self.display.event(self.state.counts(), name, what)
        if time.monotonic() - self._tables_written >= TABLES_EVERY_S:
            self.write_tables()

    def write_tables(self) -> None:
        entries = []
        for name in self.names:
            rec = self.state.data["runs"][name]
            tables = None
            if rec["status"] == "complete":
                if name not in self.tables:
                    self.tables[name] = run_tables(self.out / RUNS_DIR / name)
                tables = self.tables[name]
            entries.append({"name": name, "varied": rec["varied"], "status": rec["status"],
                            "error": rec["error"] if rec["status"] == "failed" else None, "tables": tables})
        results, summary = assemble(entries, self.axes)
        write_tables(self.out, results, summary)
        self._tables_written = time.monotonic()


def _g(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"
