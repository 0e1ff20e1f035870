"""Fourier sparsity (Gini coefficients of Fourier norms) and the sum of squared weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ProbeError
from .frequencies import fourier_norms


def gini(values: Any) -> float:
    """Gini coefficient of a non-negative vector (Hurley and Rickard 2009).

    With c sorted ascending, c_1 <= ... <= c_N: G = 1 - 2 sum_k (c_k / |c|_1) (N - k + 1/2) / N.
    0 for a uniform vector, 1 - 1/N for a one-hot one; invariant to scale. A zero vector gives 0.

    >>> gini([1, 1, 1, 1]), gini([0, 0, 0, 5])
    (0.0, 0.75)
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    c = np.asarray(values, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ProbeError(f"gini: expected a non-empty 1-D vector, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ProbeError("gini: values must be finite (got NaN or inf)")
    if np.any(c < 0):
        raise ProbeError(f"gini: values must be non-negative (norms), got minimum {c.min():.3g}")
    total = c.sum()
    if total == 0:
        return 0.0
    n = c.size
    k = np.arange(1, n + 1)
    g = float(1 - 2 * np.sum(np.sort(c) / total * (n - k + 0.5)) / n)
    return max(g, 0.0)  # a uniform vector can round to -2e-16


def fourier_gini(model: Any, per_frequency: bool = False) -> dict[str, float]:
    """``{"W_E": G, "W_L": G}``: Gini coefficients of the Fourier norms of W_E and W_L = W_out W_U.

    Default (the reference choice): the p norms, one per cos-first basis row including the constant
    (N = p). ``per_frequency=True``: the (p-1)/2 norms sqrt(cos^2 + sin^2) (N = (p-1)/2).
    See :func:`interp.probes.fourier_norms`.
    """
    return {name: gini(v) for name, v in fourier_norms(model, per_frequency=per_frequency).items()}


def sum_squared_weights(model: Any, per_tensor: bool = False) -> float | dict[str, float]:
    """Sum over trainable parameters (``requires_grad``) of every entry squared.

    Frozen parameters (the zero attention and unembed biases) are left out; they would add 0.
    ``per_tensor=True`` gives ``{parameter name: sum of squares}`` instead of the total.
    """
    if not isinstance(model, torch.nn.Module):
        raise ProbeError(f"sum_squared_weights: expected a model (torch.nn.Module), got {type(model).__name__}")
    with torch.no_grad():
        sums = {name: float(p.detach().to(torch.float64).square().sum())
                for name, p in model.named_parameters() if p.requires_grad}
    return sums if per_tensor else float(sum(sums.values()))
