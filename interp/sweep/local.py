"""The local backend: a few long-lived worker processes on this machine, one run at a time each.

Workers are started with the "spawn" context (a fresh interpreter: no torch state copied by fork), set
their torch thread count once, and are sent one job at a time over a pipe. Each job's events (started,
progress, finished) come back on the same pipe. A worker that dies (killed, out of memory, a crash in
native code) is noticed through its process sentinel: its run is recorded as failed with the exit
signal, a fresh worker takes its place, and the other runs go on. Workers also die with the sweep:
on Linux the kernel kills them when the sweep process dies (PR_SET_PDEATHSIG), and everywhere they
check their parent between training steps.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from ..errors import InterpError
from .worker import run_job

__all__ = ["execute"]

STARTUP_FAILURES = 3  # workers dying before they are ready this many times stop the sweep with an error


def execute(jobs: list[dict[str, Any]], events, *, workers: int, threads: int, runs_dir: Path) -> None:
    """Run ``jobs`` on ``workers`` processes; report through ``events.started/progress/finished``."""
    ctx = mp.get_context("spawn")
    pending = deque(jobs)
    pool: list[_Worker] = []
    startup_failures = 0
    try:
        while pending or any(w.job is not None for w in pool):
            # keep every worker busy; start workers (or replace dead ones) while there is work for them
            for w in pool:
                if w.job is None and pending and w.alive():
                    w.give(pending.popleft(), events)
            pool = [w for w in pool if w.alive() or w.job is not None]
            while pending and len(pool) < workers:
                w = _Worker(ctx, threads, runs_dir)
                pool.append(w)
                w.give(pending.popleft(), events)
            busy = [w for w in pool if w.job is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            for w in busy:
                if w.conn in ready or w.process.sentinel in ready:
                    unstarted = w.drain(events)
                    if unstarted is not None:  # the process died before it could run anything: not the run's fault
                        startup_failures += 1
                        if startup_failures >= STARTUP_FAILURES:
                            raise InterpError(
                                f"sweep worker processes die as they start (one {_death(w.process.exitcode)}); "
                                "if a script calls interp.sweep.run, it must do so under "
                                "`if __name__ == \"__main__\":` (workers are started with 'spawn')")
                        pending.appendleft(unstarted)
                        events.requeued(unstarted["name"])
    finally:
        for w in pool:
            w.stop()


class _Worker:
    def __init__(self, ctx, threads: int, runs_dir: Path):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, threads, str(runs_dir), os.getpid()),
                                   name="interp-sweep-worker", daemon=True)
        self.process.start()
        child.close()
        self.job: dict[str, Any] | None = None
        self.ready = False  # set when the process has imported everything and can run jobs

    def alive(self) -> bool:
        return self.process.is_alive()

    def give(self, job: dict[str, Any], events) -> None:
        self.job = job
        events.started(job["name"], f"pid {self.process.pid}")
        try:
            self.conn.send(job)
        except (BrokenPipeError, OSError):
            pass  # died before it could take the job: drain() records it

    def drain(self, events) -> dict[str, Any] | None:
        """Handle every message waiting from this worker; if it has died, fail its job -- or, if it died
        before it was ready to run anything, return the job to be given to another worker."""
        try:
            while self.conn.poll():
                kind, name, payload = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                elif kind == "progress":
                    events.progress(name, payload)
                elif kind == "finished":
                    self.job = None
                    events.finished(name, payload)
        except (EOFError, OSError):
            pass
        if self.job is not None and not self.process.is_alive():
            self.process.join()
            job, self.job = self.job, None
            if not self.ready:
                return job
            error = f"worker process {_death(self.process.exitcode)} while running this run"
            events.finished(job["name"], {"status": "failed", "error": error,
                                          "final": None, "seconds": None})
        return None

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=5 if self.job is None else 0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _death(code: int | None) -> str:
    """How a process ended: "died (SIGKILL)" or "exited with code N"."""
    if code is not None and code < 0:
        try:
            return f"died ({signal.Signals(-code).name})"
        except ValueError:
            return f"died (signal {-code})"
    return f"exited with code {code}"


# ---------------------------------------------------------------------------------------------
# the worker process


def _worker_main(conn, threads: int, runs_dir: str, parent: int) -> None:
    _die_with_parent(parent)

    def check_alive() -> None:
        if os.getppid() != parent:  # the sweep is gone: stop at once, like a killed run
            os._exit(1)

    import torch

    from .. import probes, train  # noqa: F401  (imported before the first job, not inside its timing)

    torch.set_num_threads(threads)
    conn.send(("ready", "", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            return
        name = job["name"]

        def progress(row: dict[str, Any], name: str = name) -> None:
            conn.send(("progress", name, row))

        try:
            result = run_job(job, Path(runs_dir) / name, threads, on_progress=progress, check_alive=check_alive)
        except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the sweep handles it
            return
        conn.send(("finished", name, result))


def _die_with_parent(parent: int) -> None:
    """Linux: ask the kernel to SIGKILL this process when the process that started it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
