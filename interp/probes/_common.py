"""Shared plumbing of the probes: the model's own hooked forward on all p^2 pairs, splits, float64 losses.

Every measure that reads activations or logits gets them here, from ``model(tokens)`` or
``model.run_with_cache(tokens)``: TransformerLens runs every hook attached to the model (``add_hook``,
``with model.hooks(...)``), so a user's ablation or patch is always what is measured.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ProbeError
from ..model import float64_cross_entropy
from ..tasks import Task

HOOK_POST = "blocks.0.mlp.hook_post"


def is_model(x: Any) -> bool:
    return isinstance(x, torch.nn.Module) and hasattr(x, "cfg")


def check_model(model: Any, task: Task, where: str) -> None:
    """The model must read [a, b, =] over p residues and predict p classes."""
    if not is_model(model):
        raise ProbeError(f"{where}: expected a HookedTransformer (or a logits tensor), got {type(model).__name__}")
    c = model.cfg
    if c.d_vocab_out != task.p or c.d_vocab < task.p + 1:
        raise ProbeError(f"{where}: the model has d_vocab={c.d_vocab}, d_vocab_out={c.d_vocab_out} but the task "
                         f"has p={task.p} (needs d_vocab >= {task.p + 1}, d_vocab_out = {task.p})")


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def logits_of(model_or_logits: Any, task: Task, where: str) -> torch.Tensor:
    """(p*p, p) float64 logits at the last position on every pair (pair order a*p + b), on the CPU.

    A tensor is checked and converted; a model is run once with its own (hooked) forward.
    """
    if isinstance(model_or_logits, torch.Tensor):
        L = model_or_logits
        if L.shape != (task.n_pairs, task.p):
            raise ProbeError(f"{where}: logits must have shape (p*p, p) = ({task.n_pairs}, {task.p}) for p={task.p} "
                             f"(last position, all pairs in order a*p + b), got {tuple(L.shape)}")
        if not L.is_floating_point():
            raise ProbeError(f"{where}: logits must be floating point, got {L.dtype}")
        return L.detach().to("cpu", torch.float64)
    check_model(model_or_logits, task, where)
    model = model_or_logits
    with torch.no_grad():
        L = model(task.tokens().to(model_device(model)))[:, -1]
    return L.to("cpu", torch.float64)


def logits_and_neuron_acts(model, task: Task, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``run_with_cache`` on all pairs: logits (p*p, p) float64 and ``blocks.0.mlp.hook_post``
    at the last position (p*p, d_mlp) float32, both on the CPU (as the model's hooks left them)."""
    check_model(model, task, where)
    tokens = task.tokens().to(model_device(model))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=HOOK_POST)
    acts = cache[HOOK_POST][:, -1].to("cpu")
    return logits[:, -1].to("cpu", torch.float64), acts


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy with the log-softmax in float64, exactly the training loss. logits: (n, classes)."""
    return float64_cross_entropy(logits, labels).item()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).to(torch.float64).mean().item()


def check_task_add(task: Task, where: str) -> None:
    if task.op != "add":
        raise ProbeError(f"{where}: defined for op 'add' (the directions of a + b); this task's op is {task.op!r}")
