"""How many torch CPU threads a process uses: one policy for the CLI and the Python API.

A single run (``interp train``, ``interp measure``, ``interp report``, and :func:`interp.train.train`,
:func:`interp.probes.measure_run`, :func:`interp.viz.write_report` from Python) uses the machine's free physical
cores, at most :data:`MAX_THREADS`; a sweep worker uses one thread (its parallelism is the workers). Measured with
``benchmarks/train_step.py`` (nanda2023, one full-batch step): on an idle 2-core machine 2 threads take 33.6 ms
per step against 56.8 ms with 1, but next to other busy processes an OpenMP team of 2 waits for the core it does
not get and is slower than 1 thread. So the cores other processes keep busy (the 1-minute load average) are not
counted. An explicit ``threads`` (``--threads N``) always wins, and a resumed run keeps the count recorded in its
run.json, so that it stays bit-identical.

>>> from interp import threads
>>> threads.default_threads()          # e.g. 2 on an idle 2-core machine, 1 while it is busy   # doctest: +SKIP
>>> with threads.torch_threads(None):  # the policy's count for the block, then the caller's again  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from typing import Callable, Iterator, TypeVar

__all__ = ["MAX_THREADS", "physical_cores", "busy_cores", "default_threads", "resolve", "torch_threads",
           "uses_threads"]

F = TypeVar("F", bound=Callable)

# More threads stop paying for this project's models (matrices of a few thousand rows by 128-512 columns): the
# 2-core speed-up of 1.7x means about 82 % of a step parallelises, which gives about 2.6x at 4 threads and 3.5x at 8,
# and less than 0.1x more per extra thread beyond 8.
MAX_THREADS = 8


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads are not counted: they share a core's FPUs)."""
    usable = _usable_logical_cores()
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = _cpuinfo_physical_cores()
    logical = os.cpu_count() or usable
    if not physical:
        return max(1, usable)
    # an affinity mask or a container limits the logical cores; keep the physical share of those
    return max(1, min(physical, usable, round(physical * usable / max(logical, 1))))


def busy_cores() -> int:
    """Cores other processes keep busy now: the 1-minute load average, rounded (0 where it is unknown)."""
    try:
        return max(0, round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0


def default_threads(role: str = "run") -> int:
    """The thread count the policy gives a ``role``: ``"run"`` (one process on its own) or ``"worker"``."""
    if role == "worker":
        return 1
    if role != "run":
        raise ValueError(f"role must be 'run' or 'worker', got {role!r}")
    cores = physical_cores()
    return max(1, min(MAX_THREADS, cores - min(busy_cores(), cores - 1)))


def resolve(threads: int | None, role: str = "run") -> int:
    """``threads`` if given (a positive int), else the policy's :func:`default_threads`."""
    if threads is None:
        return default_threads(role)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        from .errors import ConfigError

        raise ConfigError(f"threads must be a positive integer, got {threads!r}", field="threads",
                          detail=f"must be a positive integer, got {threads!r}")
    return threads


@contextlib.contextmanager
def torch_threads(threads: int | None, role: str = "run") -> Iterator[int]:
    """Set torch's CPU threads to ``resolve(threads, role)`` for the block (yields it), then restore them."""
    import torch

    n = resolve(threads, role)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def uses_threads(fn: F) -> F:
    """Run ``fn`` under :func:`torch_threads` of its own ``threads`` argument (None: the policy's count)."""
    sig = inspect.signature(fn)
    if "threads" not in sig.parameters:
        raise TypeError(f"{fn.__qualname__} has no 'threads' parameter")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        with torch_threads(bound.arguments.get("threads")):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _usable_logical_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpuinfo_physical_cores(text: str | None = None) -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo (or ``text``); None where there are none."""
    if text is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            return None
    cores, phys = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            cores.add((phys, value.strip()))
    return len(cores) or None
