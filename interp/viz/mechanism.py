"""The arrays behind the mechanism figures: attention and neurons over the (a, b) grid, spectra over time.

Everything here runs the model's own hooked forward (``model.run_with_cache`` on all p² inputs
``[a, b, =]``), so a hook a user attached (an ablation, a patch) shows in the result. Nothing here
plots; :mod:`interp.viz.mechanism_figures` draws these arrays.

>>> grid = attention_grid(model)                  # (n_heads, p, p): attention from '=' to a   # doctest: +SKIP
>>> acts = neuron_grids(model)                    # (d_mlp, p, p): blocks.0.mlp.hook_post at '='  # doctest: +SKIP
>>> nf = neuron_frequencies(model)                # neuron x frequency shares, sorted by cluster  # doctest: +SKIP
>>> sp = spectra_over_time(run)                   # Fourier norms of W_E and W_L at every checkpoint  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .. import probes, tl
from ..errors import ConfigError
from ..progress import Progress
from ..tasks import Task

__all__ = [
    "POSITIONS",
    "model_p",
    "all_inputs",
    "model_format",
    "attention_grid",
    "attention_grids",
    "neuron_grids",
    "NeuronFrequencies",
    "neuron_frequencies",
    "representative_neurons",
    "Spectra",
    "spectra_over_time",
]

POSITIONS = {"a": 0, "b": 1, "=": 2}  # the input is [a, b, =] (or [a, b]); logits are read at the last position


def model_p(model) -> int:
    """p of a modular-arithmetic model: inputs [a, b, =] (the p residues and '=' as token id p, n_ctx = 3) or
    [a, b] (the p residues alone, n_ctx = 2, as Zhong et al.'s models: ``RunConfig.eq_sign`` false)."""
    return model_format(model)[0]


def model_format(model) -> tuple[int, bool]:
    """``(p, eq_sign)`` of a modular-arithmetic model: eq_sign True for [a, b, =] inputs, False for [a, b]."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise ConfigError(f"expected a HookedTransformer or TransformerBridge, got {type(model).__name__}")
    reason = tl.unsupported(model)
    if reason:
        raise ConfigError(f"not measurable: {reason}")
    if cfg.n_ctx == 3 and cfg.d_vocab_out == cfg.d_vocab - 1:
        return cfg.d_vocab_out, True
    if cfg.n_ctx == 2 and cfg.d_vocab_out == cfg.d_vocab:
        return cfg.d_vocab_out, False
    raise ConfigError(f"the model has d_vocab={cfg.d_vocab}, d_vocab_out={cfg.d_vocab_out}, n_ctx={cfg.n_ctx}; "
                      "expected a modular-arithmetic model ([a, b, =] inputs with d_vocab = p + 1, or [a, b] "
                      "inputs with d_vocab = p)")


def all_inputs(p: int, device: Any = "cpu", eq_sign: bool = True):
    """``(p*p, 3)`` long tensor of every input ``[a, b, =]`` (``(p*p, 2)``, ``[a, b]``, with ``eq_sign`` false),
    row a*p + b (the task's pair order)."""

    a = torch.arange(p, device=device).repeat_interleave(p)
    b = torch.arange(p, device=device).repeat(p)
    if not eq_sign:
        return torch.stack([a, b], dim=1)
    return torch.stack([a, b, torch.full_like(a, p)], dim=1)


def _check_layer(model, layer: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer must be an integer in [0, {model.cfg.n_layers}), got {layer!r}")
    return layer


def _hooked(model, names: Sequence[str]) -> dict[str, Any]:
    """One ``run_with_cache`` on all p² inputs; the named activations, on the CPU (float32)."""

    p, eq_sign = model_format(model)
    device = next(model.parameters()).device
    wanted = set(names)
    with torch.no_grad():
        _, cache = model.run_with_cache(all_inputs(p, device, eq_sign), names_filter=lambda n: n in wanted)
    return {n: cache[n].detach().to("cpu", torch.float32) for n in names}


def attention_grid(model, *, layer: int = 0, source: str = "a") -> np.ndarray:
    """Attention paid by the last position ('=', or b for [a, b] inputs) to ``source`` ('a', 'b' or '='), over
    every input.

    Returns ``(n_heads, p, p)`` float32: ``grid[h, a, b]`` is ``blocks.{layer}.attn.hook_pattern``
    of head h, destination the last position, source position of ``source``, on the input ``[a, b, =]``.
    """
    p, eq_sign = model_format(model)
    sources = POSITIONS if eq_sign else {"a": 0, "b": 1}
    if source not in sources:
        raise ConfigError(f"attention_grid: source must be one of {list(sources)}, got {source!r}")
    name = f"blocks.{_check_layer(model, layer)}.attn.hook_pattern"
    pattern = _hooked(model, [name])[name]  # (p*p, n_heads, n_ctx, n_ctx): destination x source
    grid = pattern[:, :, -1, sources[source]]  # (p*p, n_heads)
    return grid.T.reshape(-1, p, p).numpy()


def attention_grids(run, steps: Iterable[int], *, layer: int = 0, source: str = "a") -> dict[int, np.ndarray]:
    """:func:`attention_grid` of ``run.load(step)`` for each step: step -> ``(n_heads, p, p)``."""
    out = {}
    for step in steps:
        model = run.load(int(step))
        out[int(step)] = attention_grid(model, layer=layer, source=source)
        del model
    return out


def neuron_grids(model, neurons: Sequence[int] | None = None, *, layer: int = 0) -> np.ndarray:
    """MLP activations (``blocks.{layer}.mlp.hook_post``) at '=' over every input.

    Returns ``(n, p, p)`` float32, ``out[i, a, b]`` the activation of neuron ``neurons[i]`` (all
    d_mlp neurons when None) on ``[a, b, =]``.
    """
    p = model_p(model)
    name = f"blocks.{_check_layer(model, layer)}.mlp.hook_post"
    acts = _hooked(model, [name])[name][:, -1]  # (p*p, d_mlp), at the last position
    if neurons is not None:
        idx = _check_neurons(neurons, acts.shape[1])
        acts = acts[:, idx]
    return acts.T.reshape(-1, p, p).numpy()


def _check_neurons(neurons: Sequence[int], d_mlp: int) -> list[int]:
    try:
        idx = [int(n) for n in neurons]
    except (TypeError, ValueError):
        raise ConfigError(f"neurons must be integers, got {neurons!r}") from None
    bad = [n for n in idx if not 0 <= n < d_mlp]
    if bad or not idx:
        raise ConfigError(f"neurons {bad or '[]'}: expected a non-empty list of indices in [0, {d_mlp})")
    return idx


def _task_for(model, task: Task | None) -> Task:
    """The task whose group the figures use (default: addition's Z_p for the model's p), checked against the model."""
    p = model_p(model)
    if task is None:
        return Task(op="add", p=p)
    if task.p != p:
        raise ConfigError(f"the model is for p={p} but the task is {task.op} mod {task.p}")
    task.require_group("neuron frequencies")
    return task


@dataclass(frozen=True, repr=False)
class NeuronFrequencies:
    """How much of each MLP neuron's variance over the task's group pairs each frequency explains.

    shares: ``(d_mlp, K)`` with K = n//2 for the group of order n (Z_p: (p-1)/2), column k-1 for frequency k
    (the share of the neuron's centred variance in the block {const, cos k, sin k}², as
    ``probes.neuron_frequency_shares``). frequency: ``(d_mlp,)`` best k; frac: ``(d_mlp,)`` its share;
    clustered: frac >= threshold; order: neuron indices sorted by cluster (clustered neurons by frequency, then
    unclustered), and within a cluster by decreasing share. ``layer``: the MLP layer read; ``group``: its name.
    """

    shares: np.ndarray
    frequency: np.ndarray
    frac: np.ndarray
    clustered: np.ndarray
    order: np.ndarray
    threshold: float
    variance: np.ndarray = field(default=None)
    layer: int = 0
    group: str = ""

    @property
    def p(self) -> int:
        """The group order n for odd n (Z_p); use ``n_frequencies`` for the number of frequencies."""
        return 2 * self.shares.shape[1] + 1

    @property
    def n_frequencies(self) -> int:
        return int(self.shares.shape[1])

    def cluster_sizes(self) -> dict[int, int]:
        """Frequency -> number of clustered neurons, by frequency."""
        ks, counts = np.unique(self.frequency[self.clustered], return_counts=True)
        return {int(k): int(c) for k, c in zip(ks, counts)}

    def __repr__(self) -> str:
        sizes = self.cluster_sizes()
        return (f"NeuronFrequencies({len(self.frequency)} neurons of layer {self.layer}"
                f"{' in ' + self.group if self.group else ''}, {int(self.clustered.sum())} clustered "
                f"(>= {self.threshold:g}) on {len(sizes)} frequencies {list(sizes)[:8]}{' ...' if len(sizes) > 8 else ''})")


def neuron_frequencies(model, *, layer: int | None = None, threshold: float = 0.85,
                       task: Task | None = None) -> NeuronFrequencies:
    """The neuron x frequency matrix of ``model``'s MLP (``blocks.{layer}.mlp.hook_post`` at '='; default: the
    last layer), in the group of ``task`` (default: Z_p, the basis of add and sub; pass the run's task for mul
    and div, whose pairs with a zero input are left out)."""

    if not 0 < float(threshold) <= 1:
        raise ConfigError(f"neuron_frequencies: threshold must be in (0, 1], got {threshold!r}")
    p = model_p(model)
    layer = model.cfg.n_layers - 1 if layer is None else _check_layer(model, layer)
    task = _task_for(model, task)
    g = task.group
    acts = torch.from_numpy(neuron_grids(model, layer=layer)).reshape(-1, p * p).T  # (p*p, d_mlp), all inputs
    acts = acts[g.pair_grid()]  # the group's pairs in group order
    shares_t, variance_t = probes.neuron_frequency_shares(acts.to(torch.float64), g.order)
    shares, variance = shares_t.numpy(), variance_t.numpy()
    best = shares.argmax(axis=1)
    frac = shares[np.arange(len(best)), best]
    frequency = best + 1
    clustered = frac >= threshold
    # clustered first (by frequency), unclustered last; within a group by decreasing share
    group = np.where(clustered, frequency, shares.shape[1] + 1)
    order = np.lexsort((-frac, group))
    return NeuronFrequencies(shares, frequency, frac, clustered, order, float(threshold), variance, layer, g.name)


def representative_neurons(nf: NeuronFrequencies, per_cluster: int = 1) -> list[tuple[int, int, float]]:
    """``(neuron, frequency, share)`` of the ``per_cluster`` best-explained neurons of each cluster, by frequency."""
    out = []
    for k in sorted(nf.cluster_sizes()):
        members = [int(n) for n in nf.order if nf.clustered[n] and nf.frequency[n] == k]
        out += [(n, k, float(nf.frac[n])) for n in members[:per_cluster]]
    return out


@dataclass(frozen=True, repr=False)
class Spectra:
    """Per-frequency Fourier norms over training: ``norms[name]`` is ``(n_steps, K)``, row i at ``steps[i]``,
    column k-1 for frequency k (``probes.fourier_norms(model, task, per_frequency=True)``), in ``group``."""

    steps: np.ndarray
    norms: dict[str, np.ndarray]
    group: str = ""
    layer: int | None = None

    @property
    def frequencies(self) -> np.ndarray:
        return np.arange(1, next(iter(self.norms.values())).shape[1] + 1)

    def peak_frequency(self, name: str) -> np.ndarray:
        """``(n_steps,)``: the frequency with the largest norm at each step."""
        return self.norms[name].argmax(axis=1) + 1

    def __repr__(self) -> str:
        s = self.steps
        span = f"steps {int(s[0])}..{int(s[-1])}" if len(s) else "no steps"
        return (f"Spectra({len(s)} checkpoints, {span}, {len(self.frequencies)} frequencies"
                f"{' of ' + self.group if self.group else ''}, norms of {sorted(self.norms)}"
                f"{'' if self.layer is None else f', W_L of layer {self.layer}'})")


def spectra_over_time(run_or_models, steps: Iterable[int] | None = None, *, progress: bool = False,
                      task: Task | None = None, layer: int | None = None) -> Spectra:
    """Fourier norms of W_E and W_L at every checkpoint, in the task's group (a run's own task; for an iterable,
    ``task``, default Z_p of the model's p) and W_L of ``layer`` (default: the last).

    run_or_models: an :class:`interp.Run` (checkpoints loaded one at a time; ``steps`` picks some of
    them) or any iterable of ``(step, model)``. Returns a :class:`Spectra`.
    """

    if hasattr(run_or_models, "load") and hasattr(run_or_models, "steps"):
        run = run_or_models
        chosen = run.steps if steps is None else [int(s) for s in steps]
        items: Iterable = ((s, run.load(s)) for s in chosen)
        total = len(chosen)
        task = task or run.task
    else:
        items, total = run_or_models, None
    bar = Progress(total or 0, "spectra", "checkpoint", enabled=progress and total is not None)
    got_steps: list[int] = []
    rows: dict[str, list] = {}
    group_name, used_layer = "", None
    for i, (step, model) in enumerate(items, start=1):
        bar.update(i)
        t = _task_for(model, task)
        used_layer = model.cfg.n_layers - 1 if layer is None else layer
        group_name = t.group.name
        norms = probes.fourier_norms(model, t, per_frequency=True, layer=used_layer)
        got_steps.append(int(step))
        for name, v in norms.items():
            rows.setdefault(name, []).append(v.numpy())
    bar.close()
    if not got_steps:
        raise ConfigError("spectra_over_time: no checkpoints (empty steps or models)")
    order = np.argsort(got_steps, kind="stable")
    return Spectra(np.asarray(got_steps)[order], {n: np.stack(v)[order] for n, v in rows.items()}, group_name,
                   used_layer)
