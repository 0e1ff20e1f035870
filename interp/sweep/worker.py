"""One run of a sweep, start to finish, in whichever process executes it: train (or resume), then measure.

Used by both backends (a local worker process, a Ray task). The run directory ends up an ordinary run
(``Run(path)`` opens it, ``interp measure`` measures it) with its measures beside the checkpoints in
``measures/`` (``measures.csv`` + ``measures.json``, as ``interp measure`` writes them).
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .. import probes
from ..config import RunConfig
from ..errors import InterpError, RunFormatError
from ..runs import RUN_JSON, Run, RunLock
from ..train import train
from .spec import select_measures

__all__ = ["run_job", "disk_state", "MEASURES_DIR", "PROGRESS_EVERY_S"]

MEASURES_DIR = "measures"
PROGRESS_EVERY_S = 0.5


def disk_state(run_dir: Path) -> str:
    """What is left to do for a run directory: "new" (nothing usable there), "resume" (training was
    interrupted), "measure" (trained, not measured) or "done"."""
    if not (run_dir / RUN_JSON).is_file():
        return "new"
    try:
        finished = Run(run_dir).finished  # interp.runs is the one reader of run.json
    except RunFormatError:
        return "resume"  # let train(resume=True) name what is wrong with it
    if not finished:
        return "resume"
    m = run_dir / MEASURES_DIR
    if (m / "measures.csv").is_file() and (m / "measures.json").is_file():
        return "done"
    return "measure"


def run_job(job: dict[str, Any], run_dir: Path, threads: int,
            on_progress: Callable[[dict[str, Any]], None] | None = None,
            check_alive: Callable[[], None] | None = None) -> dict[str, Any]:
    """Train/resume/measure ``job`` (``name``, ``config`` as a dict, ``measures``) into ``run_dir``.

    Returns ``{"status": "complete"|"failed", "error": str|None, "final": {...losses}, "seconds": s,
    "cpu_seconds": c}`` (wall time, and the CPU time of this process: what the run cost on a busy machine too);
    a deliberate error (diverged training, a damaged file) and any other exception become a failed
    result naming it, so that one bad run never stops the sweep.
    """
    import torch

    torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        cfg = RunConfig.from_dict(job["config"], where=f"run {job['name']}")
        _train(cfg, run_dir, on_progress, check_alive, threads)
        if check_alive is not None:
            check_alive()
        final = _measure(run_dir, job, threads)
        return {"status": "complete", "error": None, "final": final, "seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0}
    except InterpError as e:
        error = str(e)
    except Exception as e:  # a bug or a library failure: recorded with where it happened, the sweep goes on
        where = traceback.extract_tb(e.__traceback__)[-1]
        error = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
    return {"status": "failed", "error": " ".join(error.split()), "final": None,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def _train(cfg: RunConfig, run_dir: Path, on_progress, check_alive, threads: int) -> None:
    state = disk_state(run_dir)
    if state in ("measure", "done"):
        return
    last = [0.0]

    def on_step(step: int, row: dict[str, Any]) -> None:
        if check_alive is not None and step % 10 == 0:
            check_alive()
        if on_progress is not None and row["test_loss"] is not None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or step == cfg.n_steps:
                last[0] = now
                on_progress(dict(row, n_steps=cfg.n_steps))

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    train(cfg, run_dir, resume=state == "resume", progress=False, on_step=on_step, threads=threads)


def _measure(run_dir: Path, job: dict[str, Any], threads: int) -> dict[str, Any]:
    """Measure every checkpoint (or, with measures = "none", take the training metrics at each) and save."""
    run = Run(run_dir)
    measures = job.get("measures", "all")
    with RunLock(run_dir):
        if measures == "none":  # the training metrics at each checkpoint, nothing else
            m = probes.Measures(run.metrics[run.metrics["step"].isin(run.steps)].reset_index(drop=True), [],
                                "none", None, None, {"measures": "none: train/test loss and accuracy from metrics.csv"},
                                {"name": run.name, "path": str(run.path), "run_id": run.run_id,
                                 "state": run.state, "finished": run.finished})
        else:
            k = job.get("top_k")
            m = probes.measure_run(run, progress=False, fallback_top_k=k, causal_top_k=k, threads=threads)
        kept = select_measures(measures, list(m.df.columns))
        probes.save_measures(dataclasses.replace(m, df=m.df[kept].copy()), run_dir / MEASURES_DIR)
    last = run.metrics.dropna().iloc[-1]
    final: dict[str, Any] = {"step": int(last["step"])}
    for k in ("train_loss", "test_loss", "test_acc"):
        final[k] = float(last[k]) if math.isfinite(float(last[k])) else None
    return final
