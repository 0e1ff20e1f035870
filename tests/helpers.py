"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import math

import torch

from interp.config import RunConfig
from interp.model import build_model
from interp.tasks import Task


def perturbed_model(cfg: RunConfig, scale: float = 0.3, seed: int = 5):
    """``build_model(cfg)`` with seeded Gaussian noise of std ``scale`` added to every trainable parameter
    (so the frozen zero biases stay zero), and its task."""
    model = build_model(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in model.parameters():
            if prm.requires_grad:
                prm.add_(torch.randn(prm.shape, generator=g) * scale)
    return model, Task.from_config(cfg)


def fourier_logits(task: Task, freqs, scale=1.0) -> torch.Tensor:
    """(p*p, p): scale * sum_{k in freqs} cos(w_k (a + b - c)), the algorithm of the paper, exactly."""
    p = task.p
    a, b = task.pairs().unbind(1)
    c = torch.arange(p)
    d = (a + b)[:, None] - c[None, :]
    return scale * sum(torch.cos(2 * math.pi * k * d.double() / p) for k in freqs)


# The cross-host noise floor (benchmarks/host_floor.py, docs/reliability.md "Same numbers on any host"): retraining
# a shipped run where float rounding differs (torch's scalar kernels instead of AVX2, from step 0) moved the
# memorisation step t_mem by at most 2 steps (6 runs), the LLC of the initial model by 9.2e-8 relative, and the LLC
# of trained checkpoints (steps 100-300) by at most 5.0e-3 relative; t90 and t99 moved by up to 550 steps, so no
# test compares a retrained run's grokking step with a shipped one. Tolerances are these floors with a margin.
FLOOR_T_MEM_STEPS = 2
FLOOR_LLC_REL_INIT = 9.2e-8
FLOOR_LLC_REL_TRAINED = 5.0e-3
TOL_T_MEM_STEPS = 2 * FLOOR_T_MEM_STEPS
TOL_LLC_REL_INIT = 1e-5
TOL_LLC_REL_TRAINED = 4 * FLOOR_LLC_REL_TRAINED
