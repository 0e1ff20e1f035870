"""Sweep throughput: the local backend against the same runs one after another, in one run of this script.

8 `small` runs (seeds 0-3 x data fractions 0.3 and 0.4, data_seed = model_seed), each trained and then
measured (every progress measure at every checkpoint), three ways:

(a) baseline: one after another in this process with ``interp.train.train`` and ``probes.measure_run``,
    torch's default thread count -- what a user looping over `interp train` / `interp measure` gets;
(b) ``interp.sweep.run`` with the local backend, 2 worker processes x 1 thread;
(c) the same with 1 worker x 1 thread (to choose the default worker count);
(d) the baseline again with 1 torch thread (how much of (b)'s gain is the thread count, how much the
    parallel runs).

Prints wall time and runs/hour of each, the ratios to (a), the peak resident memory of each (this
process plus its worker processes, sampled every 0.1 s), and the largest difference of the final train
and test losses between (a) and (b) (different thread counts: equal up to float rounding, not bitwise).

    python benchmarks/sweep.py [--steps 1500] [--no-one-worker] [--out DIR]

n_steps is shortened from the preset's 3000 to 1500 by default (the runs memorise and most grok by
then); the shape of the comparison does not depend on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from interp import probes, sweep
from interp.train import train


class PeakRSS:
    """Peak of the summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.1):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def spec(steps: int) -> dict:
    return {"sweep": {"preset": "small", "n_steps": steps, "save_every": 100},
            "grid": {"frac_train": [0.3, 0.4]}, "seeds": {"both": [0, 1, 2, 3]}}


def baseline(steps: int, root: Path, threads: int | None = None) -> tuple[float, int, dict]:
    runs = sweep.SweepSpec.from_dict(spec(steps)).expand()
    finals = {}
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        for name, cfg in runs:
            run = train(cfg, root / name, progress=False)
            m = probes.measure_run(run, progress=False)
            probes.save_measures(getattr(m, "df", m), root / name / "measures", run=run)
            last = run.metrics.dropna().iloc[-1]
            finals[name] = (float(last.train_loss), float(last.test_loss))
        wall = time.perf_counter() - t0
    torch.set_num_threads(default)
    return wall, mem.peak, finals


def swept(steps: int, root: Path, workers: int) -> tuple[float, int, dict]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        s = sweep.run(spec(steps), root, workers=workers, threads=1, progress=False)
        wall = time.perf_counter() - t0
    assert set(s.statuses.values()) == {"complete"}, s.statuses
    finals = {}
    for name in s.statuses:
        last = s.run(name).metrics.dropna().iloc[-1]
        finals[name] = (float(last.train_loss), float(last.test_loss))
    return wall, mem.peak, finals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--no-one-worker", action="store_true", help="skip (c), 1 worker")
    ap.add_argument("--no-one-thread", action="store_true", help="skip (d), the baseline at 1 thread")
    ap.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="interp-bench-sweep-"))
    print(f"8 `small` runs x {args.steps} steps, train + measure; {os.cpu_count()} CPUs, "
          f"torch default threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    results = {}
    a = baseline(args.steps, root / "baseline")
    results[f"(a) one after another, 1 process x {torch.get_num_threads()} threads"] = a
    b = swept(args.steps, root / "sweep2", workers=2)
    results["(b) interp sweep, 2 workers x 1 thread"] = b
    if not args.no_one_worker:
        results["(c) interp sweep, 1 worker x 1 thread"] = swept(args.steps, root / "sweep1", workers=1)
    if not args.no_one_thread:
        results["(d) one after another, 1 process x 1 thread"] = baseline(args.steps, root / "baseline1", threads=1)
    print(f"{'':48s} {'wall s':>8s} {'runs/hour':>10s} {'vs (a)':>7s} {'peak RSS GiB':>13s}")
    for label, (wall, peak, _) in results.items():
        print(f"{label:48s} {wall:8.1f} {8 * 3600 / wall:10.0f} {a[0] / wall:6.2f}x {peak / 2**30:13.2f}")
    diff = max(abs(x - y) for n in a[2] for x, y in zip(a[2][n], b[2][n]))
    rel = max(abs(x - y) / max(abs(x), 1e-30) for n in a[2] for x, y in zip(a[2][n], b[2][n]))
    print(f"final train/test losses, (a) vs (b): largest difference {diff:.2e} (relative {rel:.2e}); "
          f"equal to 1e-6: {diff <= 1e-6}")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (the machine is shared: ratios, not absolute times)")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
