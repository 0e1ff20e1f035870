"""Fourier sparsity (Gini coefficients of Fourier norms) and the sum of squared weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import tl
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


def fourier_gini(model: Any, task: Any = None, per_frequency: bool = False, *,
                 layer: int | None = None) -> dict[str, float]:
    """``{"W_E": G, "W_L": G}``: Gini coefficients of the Fourier norms of W_E and W_L = W_out W_U, in the
    task's group (default: Z_p of the model's p, the basis of add and sub).

    Default (the reference choice): the n norms, one per cos-first basis row including the constant
    (N = n, the group order). ``per_frequency=True``: the n//2 per-frequency norms (N = n//2).
    See :func:`interp.probes.fourier_norms`.
    """
    if isinstance(task, bool):
        raise ProbeError("fourier_gini: the second argument is the task; pass per_frequency= by name")
    return {name: gini(v) for name, v in fourier_norms(model, task, per_frequency=per_frequency, layer=layer).items()}


SSW_INCLUDES = ("every trainable parameter (requires_grad) except normalisation gains and biases (ln*.w, ln*.b): "
                "frozen parameters (the zero attention and unembed biases) would add 0, and a LayerNorm gain "
                "starts at 1 per entry, which would hide the fall of the weights")


def is_norm_parameter(name: str) -> bool:
    """True for a TransformerLens LayerNorm / RMSNorm parameter (``ln1.w``, ``blocks.0.ln2.b``, ``ln_final.w``)."""
    return any(part.startswith("ln") for part in name.split(".")[:-1])


def sum_squared_weights(model: Any, per_tensor: bool = False, *, include_norm: bool = False) -> float | dict[str, float]:
    """Sum over trainable parameters (``requires_grad``) of every entry squared (see :data:`SSW_INCLUDES`).

    LayerNorm / RMSNorm gains and biases are left out unless ``include_norm=True``. A parameter shared by two
    modules (tied embeddings) is counted once. ``per_tensor=True`` gives ``{parameter name: sum of squares}``
    of the same parameters instead of the total.
    """
    if not isinstance(model, torch.nn.Module):
        raise ProbeError(f"sum_squared_weights: expected a model (torch.nn.Module), got {type(model).__name__}")
    with torch.no_grad():
        sums = {name: float(p.detach().to(torch.float64).square().sum())
                for name, p in tl.parameters(model).items()
                if p.requires_grad and (include_norm or not is_norm_parameter(name))}
    return sums if per_tensor else float(sum(sums.values()))
