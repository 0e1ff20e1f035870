"""What a resume file must hold: the model's tensors and the optimiser's full state at the recorded step.

The optimiser's layout is not a hard-coded list of AdamW keys: :func:`optimiser_state_layout` takes one update of a
twin of whatever optimiser the config built (same class, same hyperparameters, zero gradients on zero tensors) and
reads the state it keeps per parameter. So Adam, AdamW or SGD with momentum are each checked against their own
state, and a file whose optimiser tensors are missing, misshapen, of the wrong dtype, not finite or counting a
different number of updates is refused instead of silently restarting the optimiser.

Resume files name the model's tensors ``model.<param>`` and the optimiser's ``optim.<param>.<key>``; a 0-d state
value (AdamW's ``step``) is stored with shape ``(1,)``. Tensors under any other prefix belong to another part of
the trainer and are left to it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import tl
from .errors import CheckpointError
from .runs import check_tensors

__all__ = ["optimiser_state_layout", "check_resume_tensors"]


def optimiser_state_layout(opt: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """``{"optim.<param>.<key>": template}`` of the state ``opt`` keeps once it has made an update.

    names: ``id(param) -> name`` for every parameter ``opt`` updates. Templates carry shape and dtype only.
    """
    twins: dict[int, torch.Tensor] = {}
    groups = []
    for g in opt.param_groups:
        params = []
        for p in g["params"]:
            twin = torch.zeros_like(p, device="cpu", requires_grad=True)
            twin.grad = torch.zeros_like(twin)
            twins[id(p)] = twin
            params.append(twin)
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": params})
    shadow = type(opt)(groups)
    shadow.step()
    layout: dict[str, torch.Tensor] = {}
    for pid, twin in twins.items():
        for key, value in shadow.state.get(twin, {}).items():
            if isinstance(value, torch.Tensor):
                layout[f"optim.{names[pid]}.{key}"] = value.reshape(1) if value.dim() == 0 else value
    return layout


def check_resume_tensors(tensors: dict[str, torch.Tensor], model: torch.nn.Module, opt: torch.optim.Optimizer,
                         names: dict[int, str], step: int, updates: int | None, path: Path) -> None:
    """Raise CheckpointError unless the resume file holds the model and the optimiser's full state at ``step``.

    updates: the optimiser updates made by then (its ``step`` count, where it keeps one); None skips that check.
    At step 0 no update has been made, so the optimiser has no state to hold.
    """
    model_t = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_tensors(model_t, tl.state_dict(model), path, what="this run's model (model.* tensors)",
                  optional=("IGNORE", "mask"))
    optim_t = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    if step == 0:
        if optim_t:
            raise CheckpointError(f"{path}: optimiser state at step 0 (before any update); a damaged resume file")
        return
    layout = optimiser_state_layout(opt, names)
    if not optim_t and layout:  # (SGD without momentum keeps no state at all)
        raise CheckpointError(f"{path}: no optimiser state at step {step} (expected {len(layout)} optim.* tensors); "
                              "resuming would silently restart the optimiser")
    check_tensors(optim_t, layout, path, what=f"the {type(opt).__name__} state of this run")
    if updates is not None:
        for key, value in optim_t.items():
            if key.endswith(".step") and int(value.reshape(-1)[0].item()) != updates:
                raise CheckpointError(f"{path}: tensor {key!r} counts {value.reshape(-1)[0].item():g} updates, but "
                                      f"the file is at step {step} ({updates} updates); a damaged resume file")
