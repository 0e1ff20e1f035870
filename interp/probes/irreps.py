"""Progress measures in a group's irrep basis (Chughtai, Chan and Nanda 2023, "A toy model of universality").

For a task whose label is the composition i * j of two elements of a finite group G (:attr:`interp.Task.finite_group`:
the group ops C_n, D_n, S_n; also add/sub as C_p and mul/div as C_(p-1)), the model's algorithm is read in the
real irreducible representations rho of G (:mod:`interp.irreps`): logits(i, j, c) ~ sum over key rho of
chi_rho(i j c^-1). Each measure generalises the Fourier one of Nanda et al. and equals it for C_n (tested):

* **irrep norms** of W_E (its rows of the group's elements, along the token axis) and of W_L = W_out W_U (along the
  output axis): the norm of the projection onto each irrep's span V_rho (the span of its matrix entries);
* **key irreps** by the neuron rule (each MLP neuron's variance over the pairs, 2-D transformed in the irrep basis,
  is attributed to the rho whose block (1 + V_rho) x (1 + V_rho) holds the largest share; the key irreps are the
  winners above 0.85) or by the embedding / logit rule (irrep norm of W_E / W_L at least half the largest);
* **restricted loss** (logits projected, for each class, onto span{(i, j) -> u(i j) : u in V_rho, rho key} plus
  their mean; all pairs) and **excluded loss** (those directions removed; training pairs), also per key irrep;
* **character share**: the share of the class-centred logits explained by the unit functions chi_rho(i j c^-1) of
  the key irreps (the cos(w(a+b-c)) share of the Fourier measures);
* the share of neurons explained (>= 0.85) by one irrep, and by a key irrep;
* the **Gini coefficient** of the per-irrep norms of W_E and W_L (non-trivial irreps, N = number of irreps - 1).

Every function runs the model's own hooked forward. A task that is not a group composition raises ProbeError.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import ProbeError
from ..irreps import IrrepBasis, irrep_basis
from ..tasks import Task
from ._common import check_layer, check_model, logits_and_neuron_acts, logits_of
from .frequencies import logit_map
from .losses import KeyProjection, Score
from .sparsity import gini

__all__ = ["irrep_basis_of", "irrep_norms", "neuron_irrep_shares", "irrep_neuron_clusters", "key_irreps",
           "IrrepDecomposition", "irrep_restricted", "irrep_excluded", "character_coefficients", "irrep_gini",
           "measure_irreps", "IRREP_RULES", "IRREP_THRESHOLDS"]

IRREP_RULES = ("neurons", "embedding", "logits")
IRREP_THRESHOLDS = {"neurons": 0.85, "embedding": 0.5, "logits": 0.5}


def irrep_basis_of(task: Task, where: str = "irrep measures") -> IrrepBasis:
    """The irrep basis of the task's group; ProbeError when the task is not a group composition."""
    return irrep_basis(task.require_finite_group(where))


def _Q(basis: IrrepBasis, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(np.asarray(basis.Q), dtype=dtype)


def _group_rows(x: torch.Tensor, basis: IrrepBasis) -> torch.Tensor:
    """Sum ``x`` over the basis rows of each irrep along dim 0: (n, ...) -> (n_irreps, ...)."""
    idx = torch.as_tensor(basis.irrep_of_row, dtype=torch.long)
    return torch.zeros(len(basis.irreps), *x.shape[1:], dtype=x.dtype).index_add_(0, idx, x)


def irrep_norms(model: Any, task: Task, *, layer: int | None = None) -> dict[str, torch.Tensor]:
    """``{"W_E": (n_irreps,), "W_L": (n_irreps,)}``: the norm of the projection of W_E (rows of the group's elements,
    along the token axis) and of W_L = W_out W_U of ``layer`` (along the output axis, classes of the group's
    elements) onto each irrep's span, trivial irrep first (:func:`interp.irreps.real_irreps` order). float64, CPU.
    For C_n these are the per-frequency Fourier norms (and the constant's)."""
    basis = irrep_basis_of(task, "irrep_norms")
    check_model(model, task, "irrep_norms")
    el = task.element_tokens
    Q = _Q(basis)
    with torch.no_grad():
        W_E = model.W_E[el].detach().to("cpu", torch.float64)  # (n, d_model)
    out = {"W_E": _group_rows((Q @ W_E).square(), basis).sum(1).sqrt()}
    if not getattr(model.cfg, "attn_only", False):
        W_L = logit_map(model, layer, "irrep_norms")[:, el]  # (d_mlp, n)
        out["W_L"] = _group_rows((Q @ W_L.T).square(), basis).sum(1).sqrt()
    return out


def neuron_irrep_shares(acts: torch.Tensor, basis: IrrepBasis) -> tuple[torch.Tensor, torch.Tensor]:
    """For each neuron, the share of its variance in each non-trivial irrep's block (1 + V_rho) x (1 + V_rho).

    acts: (n*n, n_neurons) indexed by group pair i*n + j (``acts[task.composition_idx]``). Returns ``(shares,
    variance)``: (n_neurons, n_irreps - 1) (column r - 1 for irrep r), and (n_neurons,), the sum of squares of
    the centred activations (0, with shares 0, for a constant neuron). For C_n: the Fourier frequency shares.
    """
    n = basis.Q.shape[0]
    if acts.ndim != 2 or acts.shape[0] != n * n:
        raise ProbeError(f"neuron_irrep_shares: acts must be (n*n, n_neurons) = ({n * n}, m), got {tuple(acts.shape)}")
    x = acts.to(torch.float64)
    raw = x
    x = (x - x.mean(0, keepdim=True)).reshape(n, n, -1)
    Q = _Q(basis)
    power = torch.einsum("ai,ijm,bj->abm", Q, x, Q).square()  # (n, n, m)
    blocks = _group_rows(_group_rows(power, basis).transpose(0, 1), basis).transpose(0, 1)  # (R, R, m)
    variance = power.sum((0, 1)) - power[0, 0]
    diag = blocks.diagonal(dim1=0, dim2=1).T  # (R, m)
    in_block = blocks[0, 1:] + blocks[1:, 0] + diag[1:]  # (R - 1, m)
    alive = variance > (1e3 * torch.finfo(torch.float32).eps) ** 2 * raw.square().sum(0)
    safe = torch.where(alive, variance, torch.ones_like(variance))
    shares = torch.where(alive, in_block / safe, torch.zeros_like(in_block))
    return shares.T.contiguous(), torch.where(alive, variance, torch.zeros_like(variance))


def _shares(model_or_acts: Any, task: Task, where: str, layer: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    basis = irrep_basis_of(task, where)
    acts = model_or_acts if isinstance(model_or_acts, torch.Tensor) else \
        logits_and_neuron_acts(model_or_acts, task, where, layer)[1]
    if acts.ndim != 2 or acts.shape[0] != task.n_pairs:
        raise ProbeError(f"{where}: acts must be (n_pairs, n_neurons) = ({task.n_pairs}, m), got {tuple(acts.shape)}")
    return neuron_irrep_shares(acts[task.composition_idx], basis)


def irrep_neuron_clusters(model_or_acts: Any, task: Task, threshold: float = 0.85, *, layer: int | None = None):
    """One row per MLP neuron: ``irrep`` (the non-trivial irrep whose block holds the largest share of its
    variance), ``frac_explained``, ``clustered`` (>= threshold) and ``variance``. A pandas DataFrame."""
    import pandas as pd

    basis = irrep_basis_of(task, "irrep_neuron_clusters")
    shares, variance = _shares(model_or_acts, task, "irrep_neuron_clusters", layer)
    best, r = shares.max(dim=1)
    names = basis.names[1:]
    return pd.DataFrame({"neuron": range(shares.shape[0]), "irrep": [names[i] for i in r.tolist()],
                         "frac_explained": best.numpy(), "clustered": (best >= threshold).numpy(),
                         "variance": variance.numpy()})


def key_irreps(model_or_acts: Any, task: Task, rule: str = "neurons", threshold: float | None = None, *,
               layer: int | None = None) -> list[str]:
    """The key irreps of a model (names, in irrep order); ``[]`` when none qualifies.

    rule="neurons": the irreps that explain at least ``threshold`` (0.85) of some neuron's variance (as the paper's
    key-frequency rule); "embedding" / "logits": the non-trivial irreps whose W_E / W_L irrep norm is at least
    ``threshold`` (0.5) of the largest non-trivial one.
    """
    if rule not in IRREP_RULES:
        raise ProbeError(f"key_irreps: rule must be one of {list(IRREP_RULES)}, got {rule!r}")
    t = IRREP_THRESHOLDS[rule] if threshold is None else float(threshold)
    if not 0 < t <= 1:
        raise ProbeError(f"key_irreps: threshold must be in (0, 1], got {threshold!r}")
    basis = irrep_basis_of(task, "key_irreps")
    if rule == "neurons":
        shares, _ = _shares(model_or_acts, task, "key_irreps", layer)
        best, r = shares.max(dim=1)
        return [basis.names[i + 1] for i in sorted(set(r[best >= t].tolist()))]
    if rule == "logits":
        check_layer(model_or_acts, layer, "key_irreps")
    norms = irrep_norms(model_or_acts, task, layer=layer)["W_E" if rule == "embedding" else "W_L"][1:]
    top = norms.max()
    if top <= 0:
        return []
    return [basis.names[i + 1] for i in torch.nonzero(norms >= t * top).flatten().tolist()]


def _check_keys(keys: Iterable[str], basis: IrrepBasis, where: str) -> list[str]:
    if isinstance(keys, str):
        keys = [keys]
    given = list(keys)
    idx = sorted({basis.index(k) for k in given})
    if 0 in idx:
        raise ProbeError(f"{where}: the trivial irrep is the constant; it cannot be a key irrep")
    if not idx:
        raise ProbeError(f"{where}: empty key-irrep set; pass at least one of {basis.names[1:]}")
    return [basis.names[i] for i in idx]


class IrrepDecomposition(KeyProjection):
    """The logits split along the key irreps' directions on the pair grid, computed once for every loss (the
    projection mechanism is :class:`interp.probes.losses.KeyProjection`, shared with the Fourier measures).

    L: (n_pairs, p) float64; key irreps S (names). ``G`` = L on the group's pairs in group order (n*n, p); the
    directions are the functions (i, j) -> u(i j) / sqrt(n) for u in an orthonormal basis of V_rho, rho in S
    (orthonormal on the grid); P_S G is their projection of every class column.
    """

    def __init__(self, L: torch.Tensor, task: Task, keys: Iterable[str], where: str = "IrrepDecomposition"):
        self.basis = irrep_basis_of(task, where)
        self.keys = _check_keys(keys, self.basis, where)
        self.task = task
        n = self.basis.Q.shape[0]
        self.G = L[task.composition_idx]
        self.labels = task.labels()[task.composition_idx]
        table = torch.as_tensor(task.finite_group.table).reshape(-1)  # (n*n,) element i*j
        basis_rows = {k: list(self.basis.rows_of[self.basis.index(k)]) for k in self.keys}  # rows of Q
        self.D = _Q(self.basis, L.dtype)[[r for k in self.keys for r in basis_rows[k]]][:, table] / math.sqrt(n)
        self.rows_of, pos = {}, 0  # rows of D
        for k in self.keys:
            self.rows_of[k] = list(range(pos, pos + len(basis_rows[k])))
            pos += len(basis_rows[k])
        self._project()

    def _positions(self, split: str) -> torch.Tensor:
        member = torch.zeros(self.task.n_pairs, dtype=torch.bool)
        member[self.task.split_idx(split)] = True
        return member[self.task.composition_idx].nonzero().squeeze(1)

    def excluded_per_irrep(self, split: str = "train") -> dict[str, float]:
        """``{irrep: loss}`` after removing only that key irrep's directions."""
        return self._excluded_per_key(split)


def irrep_restricted(model_or_logits: Any, task: Task, keys: Iterable[str], split: str = "all") -> Score:
    """``Score(loss, accuracy)`` of the logits restricted to the key irreps (default: all pairs)."""
    task.split_idx(split)
    return IrrepDecomposition(logits_of(model_or_logits, task, "irrep_restricted"), task, keys,
                              "irrep_restricted").restricted(split)


def irrep_excluded(model_or_logits: Any, task: Task, keys: Iterable[str], split: str = "train") -> Score:
    """``Score(loss, accuracy)`` of the logits with the key irreps removed (default: the training pairs)."""
    task.split_idx(split)
    return IrrepDecomposition(logits_of(model_or_logits, task, "irrep_excluded"), task, keys,
                              "irrep_excluded").excluded(split)


def character_coefficients(model_or_logits: Any, task: Task) -> tuple[dict[str, float], float]:
    """``({irrep: coefficient}, centred_norm_sq)``: the inner product of the logits (group pairs, the classes of the
    group's elements) with the unit-norm function chi_rho(i j c^-1) on the (n*n, n) cube, for every non-trivial
    irrep, and the squared norm of those logits centred over the classes of each pair. For C_n the coefficient of
    k is that of cos(w_k(a+b-c)) (:func:`interp.probes.cos_coefficients`)."""
    basis = irrep_basis_of(task, "character_coefficients")
    L = logits_of(model_or_logits, task, "character_coefficients")
    fg = task.finite_group
    n = fg.order
    G = L[task.composition_idx][:, task.element_tokens]  # (n*n, n): classes in element order
    H = torch.zeros(n, n, dtype=G.dtype).index_add_(0, torch.as_tensor(fg.table).reshape(-1), G)  # (g, k)
    gk = torch.as_tensor(fg.table[:, fg.inverse])  # (n, n): element g k^-1
    out = {}
    for r in basis.irreps[1:]:
        chi = torch.as_tensor(r.character, dtype=G.dtype)
        C = chi[gk]
        out[r.name] = float((H * C).sum()) / math.sqrt(n ** 3 * float(chi @ chi) / n)
    centred = G - G.mean(1, keepdim=True)
    return out, float(centred.square().sum())


def irrep_gini(model: Any, task: Task, *, layer: int | None = None) -> dict[str, float]:
    """``{"W_E": G, "W_L": G}``: Gini coefficients of the non-trivial irreps' norms of W_E and W_L (N = number of
    irreps - 1). For C_n: the per-frequency Fourier Gini (``fourier_gini(..., per_frequency=True)``)."""
    return {k: gini(v[1:]) for k, v in irrep_norms(model, task, layer=layer).items()}


def measure_irreps(model, task: Task, keys: Sequence[str], *, layer: int | None = None, L: torch.Tensor | None = None,
                   acts: torch.Tensor | None = None,
                   threshold: float = IRREP_THRESHOLDS["neurons"]) -> dict[str, float]:
    """Every irrep scalar of one model (columns of :func:`interp.probes.measure_run` for a group task):
    ``irrep_restricted_loss``/``_acc`` (all pairs), ``irrep_excluded_loss``/``_acc`` (train pairs),
    ``irrep_excluded_loss_{rho}`` per key irrep, ``char_explained`` (key irreps' share of the centred logits),
    ``frac_neurons_irrep`` (neurons >= 0.85 in one irrep), ``frac_neurons_key_irrep`` (... in a key irrep),
    ``gini_irrep_W_E``, ``gini_irrep_W_L``. ``L`` / ``acts``: the logits and neuron activations of one forward
    already taken (pair order), else the model is run. NaN for the key columns when ``keys`` is empty."""
    basis = irrep_basis_of(task, "measure_irreps")
    chosen = check_layer(model, layer, "measure_irreps", needs_mlp=False)
    has_mlp = not getattr(model.cfg, "attn_only", False)
    if L is None or (acts is None and has_mlp):
        L, acts = logits_and_neuron_acts(model, task, "measure_irreps", chosen) if has_mlp else \
            (logits_of(model, task, "measure_irreps"), None)
    out: dict[str, float] = {}
    keys = _check_keys(keys, basis, "measure_irreps") if keys else []
    if keys:
        d = IrrepDecomposition(L, task, keys, "measure_irreps")
        out["irrep_restricted_loss"], out["irrep_restricted_acc"] = d.restricted("all")
        out["irrep_excluded_loss"], out["irrep_excluded_acc"] = d.excluded("train")
        for k, v in d.excluded_per_irrep("train").items():
            out[f"irrep_excluded_loss_{k}"] = v
        coef, total = character_coefficients(L, task)
        out["char_explained"] = sum(coef[k] ** 2 for k in keys) / total if total > 0 else 0.0
    else:
        out.update({c: math.nan for c in ("irrep_restricted_loss", "irrep_restricted_acc", "irrep_excluded_loss",
                                          "irrep_excluded_acc", "char_explained")})
    if has_mlp:
        shares, _ = neuron_irrep_shares(acts[task.composition_idx], basis)
        best, r = shares.max(dim=1)
        clustered = best >= threshold
        out["frac_neurons_irrep"] = clustered.double().mean().item()
        key_idx = torch.tensor([basis.index(k) - 1 for k in keys], dtype=torch.long)
        out["frac_neurons_key_irrep"] = (torch.isin(r, key_idx) & clustered).double().mean().item() if keys \
            else math.nan
    for name, v in irrep_gini(model, task, layer=chosen).items():
        out[f"gini_irrep_{name}"] = v
    return out
