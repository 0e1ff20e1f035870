"""Every name the sweep borrows from the rest of `interp` that is not part of its stable surface.

The run-directory helpers (atomic writes, the one-writer lock) and the shape of
``probes.measure_run``'s result are imported or adapted here and nowhere else in ``interp.sweep``,
so a change to those modules is fixed in this one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoints import RunLock, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)
from ..config import parse_steps  # noqa: F401  (re-exported)

__all__ = ["RunLock", "lock_is_held", "parse_steps", "atomic_write_text", "atomic_write_bytes", "measure",
           "save_measures", "load_measures", "EXTRA_MEASURES"]


def lock_is_held(directory: Path) -> bool:
    """Whether some process holds the RunLock of ``directory`` (checked without taking or writing it)."""
    import fcntl
    import os

    try:
        fd = os.open(Path(directory) / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return False


# Columns the sweep adds when measure_run does not (yet) give them (see _test_probabilities).
EXTRA_MEASURES = ("test_prob_correct", "test_brier")


def measure(run) -> tuple[Any, list[int]]:
    """``probes.measure_run(run)`` as (DataFrame: one row per checkpoint, ``step`` + measure columns,
    key frequencies). Accepts both the DataFrame result (``df.attrs["key_frequencies"]``) and a
    ``Measures`` object (``.df``, ``.key_frequencies``)."""
    from .. import probes

    m = probes.measure_run(run, progress=False)
    if hasattr(m, "df"):
        df, freqs = m.df, list(m.key_frequencies)
    else:
        df, freqs = m, list(m.attrs["key_frequencies"])
    missing = [c for c in EXTRA_MEASURES if c not in df.columns]
    if missing:
        extra = [_test_probabilities(run, int(s)) for s in df["step"]]
        for c in missing:
            df[c] = [e[c] for e in extra]
    df.attrs["key_frequencies"] = [int(k) for k in freqs]
    return df, [int(k) for k in freqs]


def _test_probabilities(run, step: int) -> dict[str, float]:
    """Mean softmax probability of the correct class on the test pairs, and the Brier score
    (mean over test pairs of sum over classes of (prob - onehot)^2), probabilities in float64."""
    import torch

    model = run.load(step)
    task = run.task
    idx = task.test_idx
    with torch.no_grad():
        logits = model(task.tokens()[idx])[:, -1, : run.config.p]  # (n_test, p)
    probs = logits.to(torch.float64).softmax(-1)
    labels = task.labels()[idx]
    onehot = torch.nn.functional.one_hot(labels, run.config.p).to(torch.float64)
    return {"test_prob_correct": probs.gather(-1, labels[:, None]).mean().item(),
            "test_brier": ((probs - onehot) ** 2).sum(-1).mean().item()}


def save_measures(df, out_dir: Path, run) -> None:
    """Write a run's measures (``measures.csv`` + ``key_frequencies.json``), each file atomically."""
    from .. import probes

    probes.save_measures(df, out_dir, run=run)


def load_measures(directory: Path) -> tuple[Any, list[int]]:
    """(DataFrame, key frequencies) of what :func:`save_measures` wrote."""
    from .. import probes

    m = probes.load_measures(directory)
    if hasattr(m, "df"):
        return m.df, [int(k) for k in m.key_frequencies]
    return m, [int(k) for k in m.attrs.get("key_frequencies", [])]
