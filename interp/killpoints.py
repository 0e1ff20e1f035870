"""Named moments between two writes where a test can kill the process, deterministically.

``INTERP_KILL_AT=NAME`` (or ``NAME:N``) makes the process SIGKILL itself the first (or N-th) time it reaches
:func:`kill_point` ``(NAME)``: exactly between the two writes the name describes, with nothing flushed or cleaned
up, as a power cut or the OOM killer would leave it. Unset (always, outside tests) it costs one dict lookup.
``tests/test_kill_points.py`` kills at every point below and checks what a reader and the next command find.
"""

from __future__ import annotations

import os
import signal

__all__ = ["kill_point", "KILL_POINTS", "ENV"]

ENV = "INTERP_KILL_AT"

KILL_POINTS = {
    "train.created": "run.json and split.json written, no checkpoint yet",
    "train.checkpoint": "a checkpoint written, metrics.csv and resume.safetensors not yet",
    "train.metrics": "metrics.csv written, resume.safetensors not yet",
    "train.resume": "resume.safetensors written, run.json's status.step not yet",
    "measure.csv": "measures.csv written, measures.json not yet",
    "report.figure": "a report figure written in the staging directory, the page not yet",
    "staged.between_renames": "the old report moved aside, the new one not yet renamed into place",
    "sweep.journal": "status changes appended to sweep.status.jsonl (fsynced), not yet compacted into sweep.json",
    "sweep.compact": "sweep.json rewritten with the status journal folded in, the journal not yet emptied",
}

_seen: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process here if ``INTERP_KILL_AT`` names this point (and this is its N-th visit)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
