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
