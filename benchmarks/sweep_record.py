"""The sweep record's cost per status change: the old way (sweep.json rewritten whole, atomically, on every
change) against the status journal (one fsynced line appended; sweep.json rewritten only when the journal is
compacted, every max(COMPACT_EVERY, runs) changes), for grids of 100, 2,000 and 20,000 runs.

Drives ``interp.sweep.state.SweepState`` directly (no training). For each grid it applies the same sequence of
changes (running, then complete with a final-metrics record, run after run) both ways and prints, per change,
the bytes handed to write(2) (from /proc/self/io where there is one) and the seconds, and old/new as ratios.
"amortised" adds one compaction's cost spread over the changes between two compactions.

    python benchmarks/sweep_record.py [--grids 100,2000,20000] [--changes 200] [--dir DIR]

DIR (default: a temporary directory) should be on the disk sweeps are written to: fsync dominates the time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from interp.config import preset
from interp.files import atomic_write_text
from interp.sweep.state import SWEEP_JSON, SweepState


class _Spec:
    def to_dict(self):
        return {"sweep": {"preset": "tiny"}, "grid": {"lr": "..."}}


def _written() -> int | None:
    """Bytes this process has passed to write(2) so far (Linux), else None."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _changes(n_runs: int, n: int):
    final = {"step": 3000, "train_loss": 1.234e-7, "train_acc": 1.0, "test_loss": 0.0123, "test_acc": 0.998}
    for i in range(n):
        name = f"run{(i // 2) % n_runs}"
        yield (name, "running", {"error": None}) if i % 2 == 0 else \
              (name, "complete", {"error": None, "seconds": 41.5 + i, "final": dict(final, step=3000 + i)})


def _measure(fn, changes) -> tuple[float | None, float]:
    w0, t0 = _written(), time.perf_counter()
    for c in changes:
        fn(c)
    dt = time.perf_counter() - t0
    w1 = _written()
    n = len(changes)
    return ((w1 - w0) / n if w0 is not None and w1 is not None else None), dt / n


def one_grid(root: Path, n_runs: int, n_changes: int) -> dict:
    cfg = preset("tiny")
    runs = [(f"run{i}", cfg) for i in range(n_runs)]
    out = root / f"grid{n_runs}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    state = SweepState.open(out, _Spec(), runs, ["lr"], threads=1, backend="local", resume=False)
    record_bytes = (out / SWEEP_JSON).stat().st_size

    # the old way: the whole record rewritten atomically (fsynced, renamed) on every change; fewer changes on
    # big grids (each one rewrites megabytes), the per-change figure is an average either way
    old_changes = list(_changes(n_runs, max(4, min(n_changes, 200_000 // n_runs))))
    data = json.loads(json.dumps(state.data))

    def old(change):
        name, status, fields = change
        data["runs"][name].update(status=status, **fields)
        atomic_write_text(out / "old-sweep.json", json.dumps(data, indent=1) + "\n")

    old_bytes, old_s = _measure(old, old_changes)

    new_changes = list(_changes(n_runs, n_changes))
    state.compact_every = 10**12  # the appends alone; the compaction is measured by itself below
    new_bytes, new_s = _measure(lambda c: state.set(c[0], c[1], **c[2]), new_changes)
    compact_bytes, compact_s = _measure(lambda _: state.compact(), [None])
    state.close()
    every = max(SweepState(out, state.data).compact_every, 1)
    amort_bytes = None if new_bytes is None else new_bytes + compact_bytes / every
    amort_s = new_s + compact_s / every
    return {"runs": n_runs, "record_bytes": record_bytes, "compact_every": every,
            "old_bytes": old_bytes, "old_s": old_s, "new_bytes": new_bytes, "new_s": new_s,
            "amort_bytes": amort_bytes, "amort_s": amort_s, "compact_s": compact_s}


def _b(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _r(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:,.0f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", default="100,2000,20000", help="numbers of runs, comma-separated")
    ap.add_argument("--changes", type=int, default=200, help="status changes timed the new way (default 200)")
    ap.add_argument("--dir", type=Path, help="where to write (default: a temporary directory)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="interp-record-", dir=args.dir))
    try:
        rows = [one_grid(root, int(n), args.changes) for n in args.grids.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'runs':>7} {'sweep.json':>11} | {'old B/chg':>11} {'new B/chg':>9} {'amortised':>9} {'old/new':>8} | "
          f"{'old ms/chg':>10} {'new ms/chg':>10} {'amortised':>9} {'old/new':>8} | compaction (every)")
    for r in rows:
        print(f"{r['runs']:>7,} {r['record_bytes']:>11,} | {_b(r['old_bytes']):>11} {_b(r['new_bytes']):>9} "
              f"{_b(r['amort_bytes']):>9} {_r(r['old_bytes'], r['amort_bytes']):>8} | {r['old_s'] * 1e3:>10.2f} "
              f"{r['new_s'] * 1e3:>10.2f} {r['amort_s'] * 1e3:>9.2f} {_r(r['old_s'], r['amort_s']):>8} | "
              f"{r['compact_s'] * 1e3:.1f} ms ({r['compact_every']:,} changes)")
    first, last = rows[0], rows[-1]
    print(f"\nfrom {first['runs']:,} to {last['runs']:,} runs, bytes per change grow "
          f"{_r(last['old_bytes'], first['old_bytes'])} the old way and {_r(last['amort_bytes'], first['amort_bytes'])} "
          f"with the journal (amortised); seconds per change {_r(last['old_s'], first['old_s'])} and "
          f"{_r(last['amort_s'], first['amort_s'])}")


if __name__ == "__main__":
    main()
