"""The thread policy: one rule for a single run from the CLI and from Python, one thread per sweep worker,
an explicit count always wins, the count is recorded in run.json and a resumed run keeps it."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from interp import probes, threads
from interp.cli import main
from interp.config import preset
from interp.errors import ConfigError
from interp.runs import Run
from interp.train import train

CPUINFO_2_SOCKETS_HT = "".join(  # 2 sockets x 2 cores x 2 hyper-threads: 8 logical CPUs, 4 physical cores
    f"processor\t: {i}\nphysical id\t: {i // 4}\ncore id\t\t: {(i // 2) % 2}\n\n" for i in range(8))


@pytest.mark.parametrize("cores, busy, expected", [
    (2, 0, 2),     # an idle 2-core machine: both cores (1.7x faster than 1 thread for nanda2023)
    (2, 1, 1),     # one other busy process: one thread (an OpenMP team of 2 would wait for the busy core)
    (2, 9, 1),     # never fewer than one
    (6, 2, 4),     # the free cores
    (64, 0, threads.MAX_THREADS),  # capped where more threads stop helping
])
def test_a_single_run_uses_the_free_physical_cores_up_to_the_cap(monkeypatch, cores, busy, expected):
    monkeypatch.setattr(threads, "physical_cores", lambda: cores)
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    assert threads.default_threads() == threads.resolve(None) == expected
    assert threads.default_threads("worker") == 1
    assert threads.resolve(3) == 3  # an explicit count wins


def test_physical_cores_without_psutil_come_from_cpuinfo(monkeypatch):
    assert threads._cpuinfo_physical_cores(CPUINFO_2_SOCKETS_HT) == 4
    assert threads._cpuinfo_physical_cores("processor\t: 0\n") is None
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` fails
    assert 1 <= threads.physical_cores() <= len(__import__("os").sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_thread_count_is_refused(bad):
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        threads.resolve(bad)


def _seen_threads():
    seen = []
    return seen, lambda step, row: seen.append(torch.get_num_threads())


def test_python_and_cli_use_the_same_policy_record_it_and_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda role="run": 3)
    before = torch.get_num_threads()
    seen, on_step = _seen_threads()
    run = train(preset("tiny", n_steps=4), tmp_path / "py", progress=False, on_step=on_step)
    assert set(seen) == {3} and torch.get_num_threads() == before  # the caller's count is restored
    assert run.meta["torch_threads"] == [{"from_step": 0, "threads": 3}]

    assert main(["train", "--preset", "tiny", "--steps", "4", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    recorded = json.loads((tmp_path / "cli" / "run.json").read_text())["torch_threads"]
    assert recorded == [{"from_step": 0, "threads": 3}] and torch.get_num_threads() == before

    monkeypatch.setattr(threads, "default_threads", lambda role="run": 1)  # the machine got busier
    seen, on_step = _seen_threads()
    run = train(None, tmp_path / "py", resume=True, n_steps=8, progress=False, on_step=on_step)
    assert set(seen) == {3}, "a resumed run keeps its recorded count (bit-identity)"
    assert run.meta["torch_threads"] == [{"from_step": 0, "threads": 3}]
    assert main(["train", "--out", str(tmp_path / "cli"), "--resume", "--steps", "8", "--threads", "2",
                 "--quiet"]) == 0
    assert Run(tmp_path / "cli").meta["torch_threads"] == [{"from_step": 0, "threads": 3},
                                                            {"from_step": 4, "threads": 2}]


def test_measure_run_uses_the_policy_or_its_threads_argument(tmp_path, monkeypatch):
    run = train(preset("tiny", n_steps=2), tmp_path / "run", progress=False, threads=1)
    monkeypatch.setattr(threads, "default_threads", lambda role="run": 3)
    seen = []
    real = probes.series._measures

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(probes.series, "_measures", spy)
    probes.measure_run(run, progress=False)
    probes.measure_run(run, progress=False, threads=2)
    assert seen == [3, 3, 2, 2]  # two checkpoints each
