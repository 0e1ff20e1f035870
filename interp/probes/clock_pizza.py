"""Clock or pizza: which algorithm a modular-addition model learned (Zhong, Liu, Tegmark and Andreas 2023, "The clock
and the pizza", arXiv 2306.17844). Definitions and thresholds: docs/groups.md.

Both algorithms use the same Fourier features, so a good Fourier fit does not tell them apart. The clock (Nanda et
al.) multiplies the two inputs' rotations: its logit for c is sum_k cos(w_k(a + b - c)), the same for every correct
answer. The pizza adds the inputs' embeddings first (E_a + E_b lies inside the circle), so its logit for c depends
on the distance: |cos(w(a - b)/2)| cos(w(a + b - c)). Two diagnostics follow:

* **gradient symmetricity**: the mean, over triples (a, b, c), of the cosine similarity between the gradients of
  the logit Q_abc with respect to the input embeddings of a and of b. A function of E_a + E_b has equal gradients
  (symmetricity 1: pizza); the clock's product of rotations gives gradients along the two circles' tangents at a
  and b, whose cosine averages to about 0 over pairs.
* **distance irrelevance**: with the correct logit Q_{a,b,a+b} laid out by (a + b, a - b), the mean over distances
  d = a - b of its standard deviation over pairs with that distance, divided by its standard deviation over all
  pairs. The clock's correct logit does not depend on the distance (about 1); the pizza's does (near 0).

Both run the model's own hooked forward (the gradient through ``hook_embed``). The diagnostics are defined for
addition mod p; any other task raises ProbeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ProbeError
from ..tasks import Task
from ._common import check_model, logits_of, model_device

__all__ = ["gradient_symmetricity", "distance_irrelevance", "ClockPizza", "clock_or_pizza", "clock_pizza_series",
           "verdicts", "check_applicable", "THRESHOLDS", "VERDICTS", "COLUMNS", "PROTOCOL"]

VERDICTS = ("clock", "pizza", "neither")
# The rule (docs/groups.md): pizza needs both signs of a function of E_a + E_b whose correct logit depends on the
# distance; clock both signs of a product of rotations whose correct logit does not; anything else is neither.
THRESHOLDS = {
    "pizza": {"gradient_symmetricity_min": 0.9, "distance_irrelevance_max": 0.4},
    "clock": {"gradient_symmetricity_max": 0.7, "distance_irrelevance_min": 0.6},
    "accuracy_min": 0.99,
}
# The measures-table columns of ``measure_run(..., clock_pizza=True)``; the verdict of a row follows from them.
COLUMNS = ("gradient_symmetricity", "distance_irrelevance", "all_pairs_acc")
PROTOCOL = {
    "gradient_symmetricity": "mean over every pair (a, b), with a seeded uniform class c, of the cosine of the "
                             "gradients of the logit Q_abc at the token embeddings of positions 0 and 1 (hook_embed)",
    "distance_irrelevance": "mean over d of std{Q_(a,b,a+b) : a - b = d} / std of Q_(a,b,a+b) over all pairs",
    "all_pairs_acc": "accuracy on all p^2 pairs (the verdict needs >= 0.99)",
    "verdict": "pizza: symmetricity >= 0.9 and irrelevance <= 0.4; clock: symmetricity <= 0.7 and irrelevance >= "
               "0.6; otherwise neither (interp.probes.clock_pizza.verdicts(df); docs/groups.md)",
}


def check_applicable(task: Task, where: str = "clock_or_pizza") -> None:
    """ProbeError (one line, with the reason) unless the diagnostics have a meaning for ``task``: addition mod p."""
    _check_addition(task, where)


def _check_addition(task: Task, where: str) -> None:
    g = task.group
    if g is None or g.generator is not None or g.sign != 1 or task.given_tokens is not None:
        raise ProbeError(f"{where}: not applicable to {task.description}: the clock and pizza diagnostics are "
                         "defined for addition mod p (op add, or C<n>) with the [a, b, =] or [a, b] input")


def gradient_symmetricity(model, task: Task, *, n_triples: int | None = None, seed: int = 0) -> float:
    """Mean over triples (a, b, c) of cos(grad_{E_a} Q_abc, grad_{E_b} Q_abc), the gradients taken at the token
    embeddings of positions 0 and 1 (``hook_embed``). Default: every pair (a, b) once, each with a seeded uniform
    class c (p^2 triples; ``n_triples`` draws that many pairs instead, as the paper's 100 random triples)."""
    _check_addition(task, "gradient_symmetricity")
    check_model(model, task, "gradient_symmetricity")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.arange(task.n_pairs) if n_triples is None else torch.randint(task.n_pairs, (int(n_triples),),
                                                                             generator=gen)
    c = torch.randint(task.p, (len(idx),), generator=gen)
    tokens = task.tokens()[idx].to(model_device(model))
    held: list[torch.Tensor] = []

    def grab(x: torch.Tensor, hook=None) -> torch.Tensor:
        x = x.detach().requires_grad_(True)  # the same values, a leaf whose gradient we read
        held.append(x)
        return x

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", grab)])[:, -1]
        picked = logits.gather(1, c.to(logits.device)[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, held[0])
    ga, gb = grad[:, 0].double(), grad[:, 1].double()
    cos = (ga * gb).sum(1) / (ga.norm(dim=1) * gb.norm(dim=1)).clamp_min(1e-300)
    return float(cos.mean())


def distance_irrelevance(model_or_logits: Any, task: Task) -> float:
    """mean over d of std{Q_{a,b,a+b} : a - b = d} / std{Q_{a,b,a+b}} (population standard deviations)."""
    _check_addition(task, "distance_irrelevance")
    L = logits_of(model_or_logits, task, "distance_irrelevance")
    p = task.p
    a, b = task.pairs().unbind(1)
    correct = L[torch.arange(task.n_pairs), task.labels()].numpy()
    grid = np.zeros((p, p))
    grid[((a + b) % p).numpy(), ((a - b) % p).numpy()] = correct  # rows a + b, columns the distance a - b
    total = grid.std()
    return float(grid.std(axis=0).mean() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class ClockPizza:
    """The two diagnostics of one model, its accuracy on all pairs, and the verdict with its reason."""

    gradient_symmetricity: float
    distance_irrelevance: float
    accuracy: float
    verdict: str
    reason: str


def verdict(gs: float, di: float, acc: float) -> tuple[str, str]:
    """The rule's verdict and its reason, from the two diagnostics and the accuracy on all pairs."""
    t = THRESHOLDS
    if not acc >= t["accuracy_min"]:
        return "neither", f"accuracy on all pairs {acc:.3f} < {t['accuracy_min']}: the model does not solve the task"
    p, c = t["pizza"], t["clock"]
    if gs >= p["gradient_symmetricity_min"] and di <= p["distance_irrelevance_max"]:
        return "pizza", (f"gradient symmetricity {gs:.3f} >= {p['gradient_symmetricity_min']} and distance "
                         f"irrelevance {di:.3f} <= {p['distance_irrelevance_max']}")
    if gs <= c["gradient_symmetricity_max"] and di >= c["distance_irrelevance_min"]:
        return "clock", (f"gradient symmetricity {gs:.3f} <= {c['gradient_symmetricity_max']} and distance "
                         f"irrelevance {di:.3f} >= {c['distance_irrelevance_min']}")
    return "neither", (f"gradient symmetricity {gs:.3f} and distance irrelevance {di:.3f} fit neither the clock's "
                       "nor the pizza's thresholds (a mixture, or another algorithm)")


def clock_or_pizza(model, task: Task) -> ClockPizza:
    """Both diagnostics of one model and the verdict "clock", "pizza" or "neither" (thresholds: :data:`THRESHOLDS`)."""
    _check_addition(task, "clock_or_pizza")
    gs = gradient_symmetricity(model, task)
    L = logits_of(model, task, "clock_or_pizza")
    di = distance_irrelevance(L, task)
    acc = float((L.argmax(-1) == task.labels()).double().mean())
    v, why = verdict(gs, di, acc)
    return ClockPizza(gs, di, acc, v, why)


def verdicts(df) -> list[str]:
    """The verdict of each row of a measures table that holds :data:`COLUMNS` (``measure_run(..., clock_pizza=True)``):
    "clock", "pizza" or "neither", by the same rule as :func:`clock_or_pizza`."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ProbeError(f"verdicts: the table has no column {missing[0]!r}; measure with clock_pizza=True "
                         "(`interp measure --clock-pizza`) on an addition run")
    return [verdict(float(g), float(d), float(a))[0]
            for g, d, a in zip(df["gradient_symmetricity"], df["distance_irrelevance"], df["all_pairs_acc"])]


def clock_pizza_series(run, steps=None):
    """One row per checkpoint of ``run``: step, gradient_symmetricity, distance_irrelevance, accuracy, verdict.
    A pandas DataFrame."""
    import pandas as pd

    _check_addition(run.task, "clock_pizza_series")
    rows = []
    for step in run.steps if steps is None else steps:
        r = clock_or_pizza(run.load(step), run.task)
        rows.append({"step": step, "gradient_symmetricity": r.gradient_symmetricity,
                     "distance_irrelevance": r.distance_irrelevance, "accuracy": r.accuracy, "verdict": r.verdict})
    return pd.DataFrame(rows)
