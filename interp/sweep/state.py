"""``DIR/sweep.json`` and ``DIR/sweep.status.jsonl``: the spec, the varied fields (axes) and every run's status.

A status change appends one line to the journal ``sweep.status.jsonl`` (written and fsynced: a few hundred
bytes, whatever the size of the grid); the journal is folded into ``sweep.json`` (rewritten atomically) when
the sweep starts, when it ends, and after every ``max(COMPACT_EVERY, runs)`` changes, so a change costs
O(1) bytes amortised instead of a rewrite of every run's record. Every reader goes through
:func:`read_sweep_json`, which folds the journal in.

::

    sweep.json:
    {"format": "interp-sweep", "format_version": 2, "spec": {...TOML structure...},
     "axes": ["frac_train", "data_seed", ...], "threads_per_worker": 1, "backend": "local",
     "provenance": {"versions": {"torch": ...}, "cpu": "...", "platform": "...", "cpu_count": 2, ...},
     "journal_generation": 3,
     "runs": {"frac_train=0.3,seed=0": {"status": "complete", "error": null,
                                         "varied": {"frac_train": 0.3, ...}, "seconds": 12.1,
                                         "final": {"step": 1500, "train_loss": ..., ...}}, ...}}

    sweep.status.jsonl (one change a line, applied in order):
    {"gen": 3, "run": "frac_train=0.3,seed=0", "set": {"status": "running", "error": null}, "time": "..."}

Lines of an older generation than sweep.json's were folded in already (a compaction killed before it emptied
the journal) and are skipped; a last line without its newline (a kill mid-append) is ignored. Format version 1
(every status in sweep.json itself, no journal; what interp wrote before) is read as it always was.

Statuses: ``pending`` (not started, or interrupted: resumed by ``--resume``), ``running``, ``complete``,
``failed`` (with ``error``; retried by ``--resume``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterable

from .. import RunConfig
from ..errors import ConfigError, RunFormatError
from ..files import _fsync_dir, _output_error, atomic_write_text, read_json, read_limited
from ..killpoints import kill_point
from ..runs import provenance

__all__ = ["SweepState", "check_dir", "read_sweep_json", "SWEEP_JSON", "STATUS_JOURNAL", "STATUSES",
           "COMPACT_EVERY"]

SWEEP_JSON = "sweep.json"
STATUS_JOURNAL = "sweep.status.jsonl"
FORMAT = "interp-sweep"
FORMAT_VERSION = 2  # 2: the status changes since the last compaction are in STATUS_JOURNAL
READ_VERSIONS = (1, 2)
STATUSES = ("pending", "running", "complete", "failed")
COMPACT_EVERY = 1000  # fold the journal into sweep.json after max(this, number of runs) status changes
_FIELDS = ("status", "error", "seconds", "cpu_seconds", "final")  # what a journal line may set
_READ_TRIES = 5  # a reader racing a compaction reads again (sweep.json was replaced while it read)


def read_sweep_json(out: Path) -> dict[str, Any]:
    """The parsed sweep.json of ``out`` with its status journal folded in; RunFormatError naming the file if
    either is missing or damaged. Safe while a sweep writes them (a compaction in between is read again)."""
    path = Path(out) / SWEEP_JSON
    if not path.exists():
        raise RunFormatError(f"{path}: file not found; {out} is not a sweep directory "
                             "(create one with `interp sweep SPEC --out DIR`)")
    for _ in range(_READ_TRIES):
        before = _identity(path)
        data = _read_record(path)
        if data["format_version"] == 1:
            return data
        stale = _fold_journal(Path(out) / STATUS_JOURNAL, data)
        if not stale and _identity(path) == before:
            return data
    raise RunFormatError(f"{path}: replaced {_READ_TRIES} times while being read (a sweep compacting its "
                         "status journal); try again")


def _safe_run_name(name: str) -> bool:
    """A run's name is one path component under runs/: no separator, not ``.``/``..``, no NUL, not empty."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and len(name.encode("utf-8", "surrogatepass")) <= 255)


def _identity(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read_record(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunFormatError(f"{path}: not an interp sweep file (field 'format' must be {FORMAT!r})")
    version = data.get("format_version")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise RunFormatError(f"{path}: format_version {version!r} is not supported "
                             f"(this interp reads {', '.join(map(str, READ_VERSIONS))})")
    runs = data.get("runs")
    if (not isinstance(data.get("spec"), dict) or not isinstance(data.get("axes"), list)
            or not isinstance(runs, dict)
            or not all(isinstance(r, dict) and r.get("status") in STATUSES for r in runs.values())):
        raise RunFormatError(f"{path}: fields 'spec', 'axes' and 'runs' (each with a status in {list(STATUSES)}) "
                             "are missing or malformed")
    bad = next((n for n in runs if not _safe_run_name(n)), None)
    if bad is not None:
        raise RunFormatError(f"{path}: run name {bad!r} is not a plain directory name (it would lead outside "
                             f"{path.parent / 'runs'}); refused")
    gen = data.get("journal_generation")
    if version == 2 and (isinstance(gen, bool) or not isinstance(gen, int) or gen < 1):
        raise RunFormatError(f"{path}: field 'journal_generation' must be a positive integer, got {gen!r}")
    return data


def _fold_journal(path: Path, data: dict[str, Any]) -> bool:
    """Apply the journal's lines of sweep.json's generation to ``data`` in order. True if a line of a newer
    generation was met (sweep.json was replaced after it was read: read both again)."""
    if not path.exists():
        return False
    raw = read_limited(path)
    gen = data["journal_generation"]
    lines = raw.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line torn by a kill mid-append (never fsynced whole)
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            rec = None
        if (not isinstance(rec, dict) or isinstance(rec.get("gen"), bool) or not isinstance(rec.get("gen"), int)
                or not isinstance(rec.get("set"), dict)):
            raise RunFormatError(f"{path}: line {i} is not a status record")
        if rec["gen"] < gen:
            continue  # folded into sweep.json already (a compaction killed before it emptied the journal)
        if rec["gen"] > gen:
            return True
        run, fields = rec.get("run"), rec["set"]
        if run not in data["runs"]:
            raise RunFormatError(f"{path}: line {i} names run {run!r}, which {SWEEP_JSON} does not have")
        if not set(fields) <= set(_FIELDS) or fields.get("status", data["runs"][run]["status"]) not in STATUSES:
            raise RunFormatError(f"{path}: line {i}: fields must be among {list(_FIELDS)} with a status in "
                                 f"{list(STATUSES)}")
        data["runs"][run].update(fields)
        if isinstance(rec.get("time"), str):
            data["updated"] = rec["time"]
    return False


def check_dir(out: Path, resume: bool) -> None:
    """A new sweep needs a new or empty directory; ``resume`` needs one that holds a sweep."""
    out = Path(out)
    if (out / SWEEP_JSON).exists():
        if not resume:
            raise ConfigError(f"--out {out}: already holds a sweep ({SWEEP_JSON}); pass --resume to continue "
                              "it, or choose another directory")
        return
    if resume:
        raise ConfigError(f"--out {out}: no sweep to resume here (no {SWEEP_JSON})")
    stray = sorted(p.name for p in out.iterdir() if p.name != ".lock") if out.is_dir() else []
    if stray:
        raise ConfigError(f"--out {out}: is not empty ({', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''}) "
                          "and holds no sweep; choose a new or empty directory")


class SweepState:
    """The statuses of a sweep's runs: in memory, each change appended to the status journal (fsynced), the
    journal folded into sweep.json at the start, at :meth:`close` and every ``compact_every`` changes."""

    def __init__(self, out: Path, data: dict[str, Any], compact_every: int | None = None):
        self.out = Path(out)
        self.data = data
        self.compact_every = compact_every or max(COMPACT_EVERY, len(data["runs"]))
        self._counts = {s: 0 for s in STATUSES}
        for r in data["runs"].values():
            self._counts[r["status"]] += 1
        self._fd: int | None = None
        self._journal_end = 0  # bytes of whole lines in the journal (a failed append is cut back to this)
        self._since_compaction = 0

    @classmethod
    def open(cls, out: Path, spec, runs: list[tuple[str, RunConfig]], axes: list[str], *, threads: int,
             backend: str, resume: bool, compact_every: int | None = None) -> "SweepState":
        out = Path(out)
        path = out / SWEEP_JSON
        spec_dict = spec.to_dict()
        check_dir(out, resume)
        old: dict[str, Any] = {}
        generation = 0
        if path.exists():
            recorded = read_sweep_json(out)
            if recorded["spec"] != spec_dict:
                diff = sorted(k for k in set(spec_dict) | set(recorded["spec"])
                              if spec_dict.get(k) != recorded["spec"].get(k))
                raise ConfigError(f"{path}: the sweep was started with a different spec (tables {diff} differ); "
                                  "resume continues the recorded spec (omit SPEC to use it)")
            old = recorded["runs"]
            generation = recorded.get("journal_generation", 0)
        data = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec_dict, "axes": list(axes),
            "threads_per_worker": threads, "backend": backend,
            "provenance": {**provenance(), "threads_per_worker": threads},
            "journal_generation": generation,
            "runs": {name: {**{"status": "pending", "error": None, "seconds": None, "final": None},
                            **old.get(name, {}), "varied": {a: _plain(getattr(cfg, a)) for a in axes}}
                     for name, cfg in runs},
        }
        state = cls(out, data, compact_every)
        state.compact()
        return state

    def status(self, name: str) -> str:
        return self.data["runs"][name]["status"]

    def set(self, name: str, status: str, **fields: Any) -> None:
        self.set_many([(name, status, fields)])

    def set_many(self, changes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Apply (name, status, fields) changes in order, journalled with one write and one fsync."""
        now = _now()
        lines = []
        for name, status, fields in changes:
            assert status in STATUSES, status
            assert set(fields) <= set(_FIELDS), fields
            rec = self.data["runs"][name]
            new = {"status": status, **fields}
            if all(k in rec and rec[k] == v for k, v in new.items()):
                continue  # nothing changes: nothing to record
            self._counts[rec["status"]] -= 1
            self._counts[status] += 1
            rec.update(new)
            lines.append(json.dumps({"gen": self.data["journal_generation"], "run": name, "set": new,
                                     "time": now}, separators=(",", ":")) + "\n")
        if not lines:
            return
        self.data["updated"] = now
        if self._since_compaction + len(lines) >= self.compact_every:
            self.compact()  # the changes go straight into sweep.json
            return
        self._append("".join(lines).encode("utf-8"))
        self._since_compaction += len(lines)
        kill_point("sweep.journal")

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def compact(self) -> None:
        """Rewrite sweep.json with every change so far (a new journal generation), then empty the journal."""
        self.data["journal_generation"] += 1
        self.data.setdefault("updated", _now())
        atomic_write_text(self.out / SWEEP_JSON, json.dumps(self.data, indent=1) + "\n")
        kill_point("sweep.compact")
        path = self.out / STATUS_JOURNAL
        try:
            if self._fd is None:
                existed = path.exists()
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                if not existed:
                    _fsync_dir(self.out)
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        except OSError as e:
            raise _output_error(path, e) from None
        self._journal_end = 0
        self._since_compaction = 0

    def close(self) -> None:
        """Fold the journal into sweep.json (the end of a sweep) and close it."""
        if self._fd is None:
            return
        try:
            if self._since_compaction:
                self.compact()
        finally:
            os.close(self._fd)
            self._fd = None

    def _append(self, data: bytes) -> None:
        path = self.out / STATUS_JOURNAL
        try:
            if os.fstat(self._fd).st_size != self._journal_end:
                os.ftruncate(self._fd, self._journal_end)  # a torn line of a failed append: cut it off
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            raise _output_error(path, e) from None
        self._journal_end += len(data)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
