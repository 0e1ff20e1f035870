"""Shared plumbing of the probes: the model's own hooked forward on all p^2 pairs, splits, float64 losses.

Every measure that reads activations or logits gets them here, from ``model(tokens)`` or
``model.run_with_cache(tokens)``: TransformerLens runs every hook attached to the model (``add_hook``,
``with model.hooks(...)``), so a user's ablation or patch is always what is measured.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import tl
from ..errors import ProbeError
from ..model import float64_cross_entropy
from ..tasks import Task

HOOK_POST = "blocks.0.mlp.hook_post"


def hook_post(layer: int) -> str:
    return f"blocks.{layer}.mlp.hook_post"


def is_model(x: Any) -> bool:
    return tl.is_model(x)


def check_model(model: Any, task: Task, where: str) -> None:
    """The model must be one the measures cover (a HookedTransformer, or a TransformerLens-native
    TransformerBridge) and read the task's inputs (n_ctx positions, its vocabulary, '=' at the right id) and predict
    its p classes; a mismatch is one line naming both."""
    if not is_model(model):
        raise ProbeError(f"{where}: expected a HookedTransformer or TransformerBridge (or a logits tensor), got "
                         f"{type(model).__name__}")
    reason = tl.unsupported(model)
    if reason:
        raise ProbeError(f"{where}: not measurable: {reason}")
    c = model.cfg
    want = (f"the task {task.op} mod {task.p} feeds {task.input_format} (n_ctx={task.n_ctx}, d_vocab={task.d_vocab}) "
            f"and predicts {task.p} classes")
    hint = (" (Task(..., eq_sign=False) for the input [a, b] with no '=' token; Task.custom(..., tokens=, "
            "labels=) for another input format)")
    if c.d_vocab_out != task.p:
        extra = " (a tied-embedding model with an '=' output class is not supported)" \
            if c.d_vocab_out == task.d_vocab else ""
        raise ProbeError(f"{where}: the model predicts d_vocab_out={c.d_vocab_out} classes but {want}{extra}")
    if c.n_ctx != task.n_ctx:
        raise ProbeError(f"{where}: the model has n_ctx={c.n_ctx} but {want}{hint}")
    if c.d_vocab != task.d_vocab:
        why = f" (so its '=' token is not id {task.p})" if task.eq_token is not None else ""
        raise ProbeError(f"{where}: the model has d_vocab={c.d_vocab}{why} but {want}{hint}")


def has_mlp(model) -> bool:
    return not getattr(model.cfg, "attn_only", False)


def check_layer(model, layer: int | None, where: str, needs_mlp: bool = True) -> int:
    """``layer`` checked against the model (None: the last layer); ProbeError for an attention-only model when the
    measure reads MLP neurons or W_L."""
    n = model.cfg.n_layers
    if needs_mlp and not has_mlp(model):
        raise ProbeError(f"{where}: not applicable to an attention-only model (attn_only=True): it has no MLP "
                         "neurons and no W_L = W_out W_U")
    if layer is None:
        return n - 1
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise ProbeError(f"{where}: layer must be an integer in [0, {n}) for this {n}-layer model, got {layer!r}")
    return layer


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def logits_of(model_or_logits: Any, task: Task, where: str) -> torch.Tensor:
    """(n_pairs, p) float64 logits at the last position on every pair (pair order a*p + b), on the CPU.

    A tensor is checked and converted; a model is run once with its own (hooked) forward.
    """
    if isinstance(model_or_logits, torch.Tensor):
        L = model_or_logits
        if L.shape != (task.n_pairs, task.p):
            raise ProbeError(f"{where}: logits must have shape (n_pairs, p) = ({task.n_pairs}, {task.p}) for "
                             f"{task.op} mod {task.p} (last position, all pairs in order a*p + b), got {tuple(L.shape)}")
        if not L.is_floating_point():
            raise ProbeError(f"{where}: logits must be floating point, got {L.dtype}")
        return L.detach().to("cpu", torch.float64)
    check_model(model_or_logits, task, where)
    model = model_or_logits
    with torch.no_grad():
        L = model(task.tokens().to(model_device(model)))[:, -1]
    return L.to("cpu", torch.float64)


def logits_and_neuron_acts(model, task: Task, where: str, layer: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``run_with_cache`` on all pairs: logits (n_pairs, p) float64 and ``blocks.{layer}.mlp.hook_post``
    at the last position (n_pairs, d_mlp) float32, both on the CPU (as the model's hooks left them)."""
    logits, acts = logits_and_layer_acts(model, task, where, [check_layer(model, layer, where)])
    return logits, acts[0]


def logits_and_layer_acts(model, task: Task, where: str, layers: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits (n_pairs, p) and the last-position ``hook_post`` of each of ``layers``, from one forward."""
    check_model(model, task, where)
    tokens = task.tokens().to(model_device(model))
    names = [hook_post(layer) for layer in layers]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return logits[:, -1].to("cpu", torch.float64), [cache[n][:, -1].to("cpu") for n in names]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy with the log-softmax in float64, exactly the training loss. logits: (n, classes)."""
    return float64_cross_entropy(logits, labels).item()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).to(torch.float64).mean().item()

