"""Losses on all pairs, the paper's restricted and excluded losses, and the cos(w(a+b-c)) coefficients.

L is the logits at the last position on every pair, shape (n_pairs, p) (pair index a*p + b, the p output
classes). The circuit measures read it in the task's group (:attr:`interp.Task.group`): the pairs inside
the group (``task.circuit_idx``; for mul/div those without a zero input, by discrete log), where P_S projects
each class's column onto span{c_k, s_k : k in S}, the directions of cos(w_k s) and sin(w_k s) with s the
group sum i + j (add, mul) or difference i - j (sub, div) (docs/science.md):

* restricted logits ``P_S L + mean over pairs of L`` (keep what the algorithm uses);
* excluded logits ``(I - P_S) L`` (remove what it uses; no mean added back).

Every function takes a HookedTransformer (run once with its own hooked forward) or the logits tensor
itself, so one forward can feed many measures. Cross-entropy is taken in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Sequence

import torch

from .. import fourier
from ..errors import ProbeError
from ..tasks import Task
from ._common import accuracy, cross_entropy, logits_of


class Score(NamedTuple):
    """Cross-entropy (float64 log-softmax) and accuracy of some logits on a set of pairs."""

    loss: float
    accuracy: float


def _score(logits: torch.Tensor, task: Task, split: str) -> Score:
    idx = task.split_idx(split)
    labels = task.labels()[idx]
    return Score(cross_entropy(logits[idx], labels), accuracy(logits[idx], labels))


def loss_and_accuracy(model_or_logits: Any, task: Task, split: str = "all") -> Score:
    """``Score(loss, accuracy)`` of the model's logits on the pairs of ``split`` ("all", "train" or "test")."""
    task.split_idx(split)  # a bad split fails before the forward pass
    return _score(logits_of(model_or_logits, task, "loss_and_accuracy"), task, split)


def outcome_metrics(L: torch.Tensor, task: Task, split: str) -> dict[str, float]:
    """Continuous scores of the predicted distribution on ``split``: ``prob_correct`` (mean softmax probability
    of the correct class) and ``brier`` (mean over pairs of sum over classes of (prob - one-hot)^2, in [0, 2])."""
    idx = task.split_idx(split)
    probs = L[idx].to(torch.float64).softmax(-1)
    labels = task.labels()[idx]
    correct = probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    brier = probs.square().sum(1) - 2 * correct + 1
    return {"prob_correct": correct.mean().item(), "brier": brier.mean().item()}


def train_test_metrics(model_or_logits: Any, task: Task) -> dict[str, float]:
    """From one forward: ``{split}_loss``, ``{split}_acc``, ``{split}_prob_correct`` and ``{split}_brier``
    for split in train and test."""
    L = logits_of(model_or_logits, task, "train_test_metrics")
    out = {}
    for split in ("train", "test"):
        out[f"{split}_loss"], out[f"{split}_acc"] = _score(L, task, split)
    for split in ("train", "test"):
        for name, value in outcome_metrics(L, task, split).items():
            out[f"{split}_{name}"] = value
    return out


class KeyProjection:
    """Logits on a group's pairs split along orthonormal key directions: the mechanism every restricted/excluded
    measure shares, whatever basis the directions come from (Fourier frequencies, irreps).

    Set by a subclass: ``task``; ``G`` (n*n, p) the logits on the group's pairs in group order; ``labels`` (n*n,);
    ``D`` (r, n*n) the key directions, orthonormal rows; ``rows_of`` {key: rows of D}. :meth:`_project` then
    computes ``coef`` = D G (r, p) and the projection P_S G (n*n, p), never a (n*n, n*n) matrix.
    """

    task: Task
    G: torch.Tensor
    labels: torch.Tensor
    D: torch.Tensor
    rows_of: dict

    def _project(self) -> None:
        self.coef = self.D @ self.G  # (r, p)
        self.projected = self.D.T @ self.coef  # P_S G, (n*n, p)

    @property
    def restricted_logits(self) -> torch.Tensor:
        """``P_S G + mean over the group's pairs of G``, (n*n, p)."""
        return self.projected + self.G.mean(0, keepdim=True)

    @property
    def excluded_logits(self) -> torch.Tensor:
        """``(I - P_S) G``, (n*n, p)."""
        return self.G - self.projected

    def _positions(self, split: str) -> torch.Tensor:
        """Rows of ``G`` (positions in group order) that belong to ``split``."""
        return self.task.circuit_split(split)

    def _score(self, logits: torch.Tensor, split: str) -> Score:
        pos = self._positions(split)
        return Score(cross_entropy(logits[pos], self.labels[pos]), accuracy(logits[pos], self.labels[pos]))

    def restricted(self, split: str = "all") -> Score:
        return self._score(self.restricted_logits, split)

    def excluded(self, split: str = "train") -> Score:
        return self._score(self.excluded_logits, split)

    def _excluded_per_key(self, split: str) -> dict:
        """``{key: loss}`` on the group's pairs of ``split`` after removing only that key's directions."""
        pos = self._positions(split)
        labels, rows = self.labels[pos], self.G[pos]
        out = {}
        for k, pick in self.rows_of.items():
            without_k = torch.addmm(rows, self.D[pick][:, pos].T, self.coef[pick], alpha=-1)
            out[k] = cross_entropy(without_k, labels)
        return out


class Decomposition(KeyProjection):
    """The logits split along the key frequencies' directions, computed once and shared by every restricted/excluded
    measure.

    L: (n_pairs, p) float64; key_freqs: the key set S (non-empty), frequencies of the task's group. ``G`` is
    L on the group's pairs in group order, (n*n, p); ``coef`` holds the inner products of its columns with the
    key directions, (2|S|, p) (the Nyquist frequency of an even n has one direction). Restricted and excluded
    scores are over the group's pairs of a split.
    """

    def __init__(self, L: torch.Tensor, task: Task, key_freqs: Iterable[int], where: str = "Decomposition"):
        g = task.require_group(where)
        freqs = fourier.check_frequencies(key_freqs, g.order, what=f"{where}: key frequencies")
        if not freqs:
            raise ProbeError(f"{where}: empty key-frequency set; the measure needs at least one key frequency "
                             "(key_frequencies() found none: pass key_freqs explicitly or lower the threshold)")
        self.L, self.task, self.freqs = L, task, freqs
        self.G = L[task.circuit_idx]  # (n*n, p)
        self.labels = task.labels()[task.circuit_idx]
        self.D = fourier.key_directions(g.order, freqs, L.dtype, sign=g.sign)  # (2|S| or less, n*n)
        self.rows_of = fourier.direction_rows(g.order, freqs)[1]
        self._project()

    def excluded_per_frequency(self, split: str = "train") -> dict[int, float]:
        """``{k: loss}`` on the group's pairs of ``split`` after removing only frequency k's directions."""
        return self._excluded_per_key(split)


def decompose(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all",
              where: str = "decompose") -> Decomposition:
    """The :class:`Decomposition` of a model's (or a logits tensor's) logits along the key directions."""
    task.split_idx(split)  # a bad split fails before any work
    return Decomposition(logits_of(model_or_logits, task, where), task, key_freqs, where)


def restricted(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all") -> Score:
    """``Score(loss, accuracy)`` of the restricted logits ``P_S L + mean over pairs of L`` (default: all pairs
    inside the task's group)."""
    return decompose(model_or_logits, task, key_freqs, split, "restricted").restricted(split)


def excluded(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "train") -> Score:
    """``Score(loss, accuracy)`` of the excluded logits ``(I - P_S) L`` (default: the training pairs)."""
    return decompose(model_or_logits, task, key_freqs, split, "excluded").excluded(split)


def excluded_loss_per_frequency(model_or_logits: Any, task: Task, key_freqs: Iterable[int],
                                split: str = "train") -> dict[int, float]:
    """``{k: loss}``: cross-entropy on ``split`` after removing only frequency k's directions, for k in key_freqs."""
    return decompose(model_or_logits, task, key_freqs, split, "excluded_loss_per_frequency").excluded_per_frequency(split)


@dataclass(frozen=True)
class CosCoefficients:
    """How much of the logits is the sum of cos(w_k(s-c)) terms, s the group sum (or difference) of the inputs.

    coefficients[k-1] is the inner product of the logits on the group (pairs and classes in group order) with
    the unit-norm function cos(w_k(s-c)) on the (n*n, n) cube, for k = 1..n//2. ``centred_norm_sq`` is the
    squared norm of those logits centred over the classes of each pair (the part softmax sees; the cos terms
    lie in it). ``explained_fraction`` = sum over k in ``key_frequencies`` of coefficient^2 / centred_norm_sq
    (every frequency when no key set was given); ``explained_fraction_all`` uses every frequency.
    """

    frequencies: list[int]
    coefficients: torch.Tensor = field(repr=False)
    key_frequencies: list[int]
    explained_fraction: float
    explained_fraction_all: float
    centred_norm_sq: float

    def key_coefficients(self) -> dict[int, float]:
        return {k: float(self.coefficients[k - 1]) for k in self.key_frequencies}


def cos_coefficients(model_or_logits: Any, task: Task, key_freqs: Sequence[int] | None = None) -> CosCoefficients:
    """Coefficients of the logits on cos(w_k(s-c)) for every k, and the share of the centred logits the key terms
    explain, in the task's group (for add: cos(w(a+b-c)) on all p^2 pairs and p classes; for mul: by discrete
    log, on the (p-1)^2 pairs without a zero input and the p-1 non-zero classes).

    Uses cos(w(s-c)) = cos(ws) cos(wc) + sin(ws) sin(wc): with unit vectors c_k, s_k on the pair grid and
    F[2k-1], F[2k] on the classes, the coefficient is (c_k^T G F[2k-1] + s_k^T G F[2k]) / sqrt(2) (the Nyquist
    term of an even n: c_k^T G F[n-1]). Memory O(n^3 / 2) for the sum directions, never the cube per frequency.
    """
    g = task.require_group("cos_coefficients")
    L = logits_of(model_or_logits, task, "cos_coefficients")
    n = g.order
    G = L[task.circuit_idx][:, g.residue_index()]  # (n*n, n): pairs and classes in group order
    K = fourier.n_frequencies(n)
    keys = list(range(1, K + 1)) if key_freqs is None else fourier.check_frequencies(
        key_freqs, n, what="cos_coefficients: key frequencies")
    cos_ab, sin_ab = fourier.frequency_coefficients(G, p=n, sign=g.sign)  # (K, n): c_k^T G and s_k^T G
    F = fourier.fourier_basis(n, L.dtype)
    m = (n - 1) // 2  # frequencies with a cos and a sin row
    coef = torch.empty(K, dtype=L.dtype)
    coef[:m] = ((cos_ab[:m] * F[1:2 * m:2]).sum(1) + (sin_ab[:m] * F[2:2 * m + 1:2]).sum(1)) / math.sqrt(2)
    if n % 2 == 0:
        coef[K - 1] = (cos_ab[K - 1] * F[n - 1]).sum()
    centred = G - G.mean(1, keepdim=True)
    total = float(centred.square().sum())
    sq = coef.square()

    def explained(ks: list[int]) -> float:
        return float(sq[[k - 1 for k in ks]].sum()) / total if total > 0 and ks else 0.0

    return CosCoefficients(frequencies=list(range(1, K + 1)), coefficients=coef, key_frequencies=keys,
                           explained_fraction=explained(keys), explained_fraction_all=explained(list(range(1, K + 1))),
                           centred_norm_sq=total)
