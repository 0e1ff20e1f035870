"""The update rule of training: optimiser, learning-rate schedule, minibatches and gradient filter.

Each piece is built from a :class:`RunConfig` and keeps its state as named tensors, so the resume state
(``resume.safetensors``) holds all of it and a resumed run is bit-identical. The tensor names say what they are:

    optim.<param>.<key>        the optimiser's per-parameter state: ``optimiser_state_keys(cfg)`` lists the keys
    filter.<param>.mu          Grokfast EMA: the running average of the gradient
    filter.<param>.queue       Grokfast MA: the last (up to ``grad_filter_window``) gradients, oldest first
    batches.generator          minibatches: the torch.Generator's state, the current epoch's order and position
    batches.order, batches.position

Grokfast (Lee et al. 2024, arXiv 2405.20233) runs between ``backward()`` and the optimiser step:

- EMA: ``mu_t = alpha * mu_(t-1) + (1 - alpha) * g_t`` with ``mu_0 = g_0``; the optimiser steps with
  ``g_t + lambda * mu_t``.
- MA: a queue of the last ``w`` gradients (``g_t`` included); once it holds ``w`` the optimiser steps with
  ``g_t + lambda * mean(queue)``, before that with ``g_t`` alone (the published code's default warm-up).

>>> f = GradFilter.from_config(RunConfig(grad_filter="ema", grad_filter_alpha=0.5, grad_filter_lambda=2.0))
>>> [f.filter({"w": torch.tensor([g])})["w"].item() for g in (1.0, -2.0, 3.0)]
[3.0, -3.0, 5.5]
"""

from __future__ import annotations

import math

import torch

from .config import RunConfig
from .errors import RunFormatError

__all__ = ["make_optimiser", "optimiser_state_keys", "learning_rate", "GradFilter", "Minibatches",
           "describe_update"]

_OPTIMISER_NAMES = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD"}


def make_optimiser(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """The run's torch optimiser over ``params`` (its learning rate is set before every step)."""
    if cfg.optimiser == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimiser == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimiser == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise AssertionError(f"no optimiser {cfg.optimiser!r}")  # RunConfig validates the name


def optimiser_state_keys(cfg: RunConfig) -> tuple[str, ...]:
    """The per-parameter state tensors the run's optimiser holds after its first step (``optim.<param>.<key>``).

    Before the first step there are none. SGD without momentum keeps no state.
    """
    if cfg.optimiser in ("adamw", "adam"):
        return ("step", "exp_avg", "exp_avg_sq")
    return ("momentum_buffer",) if cfg.momentum > 0 else ()


def optimiser_state_tensors(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter],
                            keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for name, p in params.items():
        st = opt.state.get(p, {})
        for key in keys:
            if isinstance(st.get(key), torch.Tensor):
                value = st[key]
                tensors[f"optim.{name}.{key}"] = value.reshape(1) if value.dim() == 0 else value
    return tensors


def load_optimiser_state(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter],
                         keys: tuple[str, ...], tensors: dict[str, torch.Tensor], where: str) -> None:
    """Put the saved per-parameter state back; a parameter with none saved starts empty, as in a fresh run."""
    for name, p in params.items():
        present = [k for k in keys if f"optim.{name}.{k}" in tensors]
        if not present:
            continue
        if len(present) != len(keys):
            raise RunFormatError(f"{where}: the optimiser state of {name} has {present}, the run's optimiser "
                                 f"needs {list(keys)}")
        state = {}
        for key in keys:
            value = tensors[f"optim.{name}.{key}"].clone()
            state[key] = value.reshape(()) if key == "step" else value.to(p.device)
        opt.state[p] = state


def learning_rate(cfg: RunConfig, t: int) -> float:
    """The learning rate of the update from step t to t + 1.

    ``lr * min(t / warmup_steps, 1)`` (the paper's linear warm-up, so the first update has rate 0); after the
    warm-up ``lr`` (``constant``) or a cosine / linear decay from ``lr`` at ``warmup_steps`` to ``lr_min`` at
    ``n_steps``.
    """
    warm = cfg.lr * min(t / cfg.warmup_steps, 1.0) if cfg.warmup_steps else cfg.lr
    if cfg.lr_schedule == "constant" or t < cfg.warmup_steps:
        return warm
    span = cfg.n_steps - cfg.warmup_steps
    frac = min(max((t - cfg.warmup_steps) / span, 0.0), 1.0) if span > 0 else 1.0
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if cfg.lr_schedule == "cosine" else 1 - frac
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * shape


class GradFilter:
    """A gradient filter (none, Grokfast EMA or MA) with its state as named tensors."""

    def __init__(self, kind: str, alpha: float = 0.98, lamb: float = 2.0, window: int = 100):
        self.kind, self.alpha, self.lamb, self.window = kind, alpha, lamb, window
        self.mu: dict[str, torch.Tensor] = {}
        self.queue: dict[str, list[torch.Tensor]] = {}

    @classmethod
    def from_config(cls, cfg: RunConfig) -> "GradFilter":
        return cls(cfg.grad_filter, cfg.grad_filter_alpha, cfg.grad_filter_lambda, cfg.grad_filter_window)

    @property
    def active(self) -> bool:
        return self.kind != "none"

    @torch.no_grad()
    def filter(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The gradients the optimiser steps with, given this step's ``grads`` (name -> tensor); updates the state."""
        if self.kind == "none":
            return grads
        out = {}
        for name, g in grads.items():
            if self.kind == "ema":
                prev = self.mu.get(name)
                mu = g.clone() if prev is None else prev * self.alpha + g * (1 - self.alpha)
                self.mu[name] = mu
                out[name] = g + mu * self.lamb
            else:
                queue = self.queue.setdefault(name, [])
                queue.append(g.clone())
                del queue[:-self.window]
                out[name] = g + torch.stack(queue).mean(0) * self.lamb if len(queue) == self.window else g
        return out

    def apply(self, params: dict[str, torch.nn.Parameter]) -> None:
        """Replace each parameter's ``.grad`` by its filtered gradient (between backward and the optimiser step)."""
        if not self.active:
            return
        named = {n: p for n, p in params.items() if p.grad is not None}
        for name, g in self.filter({n: p.grad for n, p in named.items()}).items():
            named[name].grad = g

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.kind == "ema":
            return {f"filter.{n}.mu": mu for n, mu in self.mu.items()}
        return {f"filter.{n}.queue": torch.stack(q) for n, q in self.queue.items()}

    def load_state(self, tensors: dict[str, torch.Tensor], names: list[str], step: int, where: str) -> None:
        """Restore from the resume tensors; after any update (``step > 0``) every parameter's state must be there."""
        if not self.active:
            return
        key = "mu" if self.kind == "ema" else "queue"
        missing = [n for n in names if f"filter.{n}.{key}" not in tensors]
        if step > 0 and missing:
            raise RunFormatError(f"{where}: resume state lacks the {self.kind} gradient filter's {key} of "
                                 f"{missing[:3]} (the run records grad_filter = {self.kind!r})")
        for n in names:
            t = tensors.get(f"filter.{n}.{key}")
            if t is None:
                continue
            if self.kind == "ema":
                self.mu[n] = t.clone()
            else:
                self.queue[n] = [row.clone() for row in t]


class Minibatches:
    """Seeded minibatches: each epoch a random order of the training pairs, cut into ``batch_size`` pieces.

    The order comes from a ``torch.Generator`` seeded with ``data_seed``; an incomplete last piece is dropped
    (the next epoch draws a new order). ``next()`` gives the indices (into the training pairs) of one batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        idx = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return idx

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"batches.generator": self.generator.get_state(), "batches.order": self.order,
                "batches.position": torch.tensor([self.position], dtype=torch.long)}

    def load_state(self, tensors: dict[str, torch.Tensor], where: str) -> None:
        missing = [k for k in ("batches.generator", "batches.order", "batches.position") if k not in tensors]
        if missing:
            raise RunFormatError(f"{where}: resume state lacks the minibatch state {missing} "
                                 "(the run records a batch_size)")
        self.generator.set_state(tensors["batches.generator"].clone())
        self.order = tensors["batches.order"].clone()
        self.position = int(tensors["batches.position"].item())


def describe_update(cfg: RunConfig) -> dict[str, str]:
    """The protocol entries (recorded in run.json) for the update rule; the paper's run gives its two lines."""
    batching = "full-batch" if cfg.batch_size is None else f"minibatch ({cfg.batch_size} pairs)"
    out = {"step": f"step t = model after t {batching} {_OPTIMISER_NAMES[cfg.optimiser]} updates; "
                   "step 0 is the initialisation"}
    if cfg.optimiser == "adam":
        out["optimiser"] = "torch.optim.Adam: weight_decay is an L2 term added to the gradient (not decoupled)"
    elif cfg.optimiser == "sgd":
        out["optimiser"] = f"torch.optim.SGD, momentum {cfg.momentum}; weight_decay is an L2 term in the gradient"
    warm = "lr * min(t / warmup_steps, 1) for the update from step t (the paper's LambdaLR)"
    out["lr_schedule"] = warm if cfg.lr_schedule == "constant" else (
        f"{warm}, then from step warmup_steps a {cfg.lr_schedule} decay from lr to lr_min at n_steps")
    if cfg.batch_size is not None:
        out["minibatches"] = ("each epoch a torch.randperm of the training pairs (torch.Generator seeded with "
                              "data_seed) cut into batch_size pieces, an incomplete last piece dropped; "
                              "metrics.csv's train loss/acc are over all training pairs")
    if cfg.grad_filter == "ema":
        out["grad_filter"] = (f"Grokfast EMA (Lee et al. 2024), alpha {cfg.grad_filter_alpha}, lambda "
                              f"{cfg.grad_filter_lambda}: mu_t = alpha mu_(t-1) + (1 - alpha) g_t, mu_0 = g_0; "
                              "the optimiser steps with g_t + lambda mu_t")
    elif cfg.grad_filter == "ma":
        out["grad_filter"] = (f"Grokfast MA (Lee et al. 2024), window {cfg.grad_filter_window}, lambda "
                              f"{cfg.grad_filter_lambda}: the optimiser steps with g_t + lambda * mean of the last "
                              "window gradients (g_t included) once that many, with g_t before")
    return out
