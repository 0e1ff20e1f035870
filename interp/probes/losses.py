"""Losses on all pairs, the paper's restricted and excluded losses, and the cos(w(a+b-c)) coefficients.

L is the logits at the last position on every pair, shape (p*p, p) (pair index a*p + b, the p output
classes). P_S projects each class's column onto span{c_k, s_k : k in S}, the directions of
cos(w_k(a+b)) and sin(w_k(a+b)) (docs/science.md):

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
from ._common import accuracy, check_task_add, cross_entropy, logits_of


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


class Decomposition:
    """The logits split along the key directions, computed once and shared by every restricted/excluded measure.

    L: (p*p, p) float64; key_freqs: the key set S (non-empty). ``coef`` holds (c_k · L, s_k · L) for k in S
    as (2|S|, p); the projection P_S L is (p*p, p), never a (p*p, p*p) matrix.
    """

    def __init__(self, L: torch.Tensor, task: Task, key_freqs: Iterable[int], where: str = "Decomposition"):
        check_task_add(task, where)
        freqs = fourier.check_frequencies(key_freqs, task.p, what=f"{where}: key frequencies")
        if not freqs:
            raise ProbeError(f"{where}: empty key-frequency set; the measure needs at least one key frequency "
                             "(key_frequencies() found none: pass key_freqs explicitly or lower the threshold)")
        self.L, self.task, self.freqs = L, task, freqs
        self.D = fourier.key_directions(task.p, freqs, L.dtype)  # (2|S|, p*p): rows c_k, then s_k
        self.coef = self.D @ L  # (2|S|, p)
        self.projected = self.D.T @ self.coef  # P_S L, (p*p, p)

    @property
    def restricted_logits(self) -> torch.Tensor:
        """``P_S L + mean over pairs of L``, (p*p, p)."""
        return self.projected + self.L.mean(0, keepdim=True)

    @property
    def excluded_logits(self) -> torch.Tensor:
        """``(I - P_S) L``, (p*p, p)."""
        return self.L - self.projected

    def restricted(self, split: str = "all") -> Score:
        return _score(self.restricted_logits, self.task, split)

    def excluded(self, split: str = "train") -> Score:
        return _score(self.excluded_logits, self.task, split)

    def excluded_per_frequency(self, split: str = "train") -> dict[int, float]:
        """``{k: loss}`` on ``split`` after removing only frequency k's two directions, for each key k."""
        idx = self.task.split_idx(split)
        labels, rows = self.task.labels()[idx], self.L[idx]
        n, out = len(self.freqs), {}
        for i, k in enumerate(self.freqs):
            pick = [i, n + i]
            without_k = torch.addmm(rows, self.D[pick][:, idx].T, self.coef[pick], alpha=-1)
            out[k] = cross_entropy(without_k, labels)
        return out


def decompose(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all",
              where: str = "decompose") -> Decomposition:
    """The :class:`Decomposition` of a model's (or a logits tensor's) logits along the key directions."""
    task.split_idx(split)  # a bad split fails before any work
    return Decomposition(logits_of(model_or_logits, task, where), task, key_freqs, where)


def restricted(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all") -> Score:
    """``Score(loss, accuracy)`` of the restricted logits ``P_S L + mean over pairs of L`` (default: all pairs)."""
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
    """How much of the logits is the sum of cos(w_k(a+b-c)) terms.

    coefficients[k-1] is the inner product of L with the unit-norm function cos(w_k(a+b-c)) on the
    (p*p, p) cube (pairs x classes), for k = 1..(p-1)/2. ``centred_norm_sq`` is the squared norm of the
    logits centred over the classes of each pair (the part softmax sees; the cos terms lie in it).
    ``explained_fraction`` = sum over k in ``key_frequencies`` of coefficient^2 / centred_norm_sq
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
    """Coefficients of L on cos(w_k(a+b-c)) for every k, and the share of the centred logits the key terms explain.

    Uses cos(w(a+b-c)) = cos(w(a+b)) cos(wc) + sin(w(a+b)) sin(wc): with unit vectors c_k, s_k on the pair
    grid and F[2k-1], F[2k] on the classes, the coefficient is (c_k^T L F[2k-1] + s_k^T L F[2k]) / sqrt(2).
    Memory O(p^3 / 2) for the sum directions, never the (p*p, p) cube per frequency.
    """
    check_task_add(task, "cos_coefficients")
    L = logits_of(model_or_logits, task, "cos_coefficients")
    p = task.p
    K = fourier.n_frequencies(p)
    keys = list(range(1, K + 1)) if key_freqs is None else fourier.check_frequencies(
        key_freqs, p, what="cos_coefficients: key frequencies")
    cos_ab, sin_ab = fourier.frequency_coefficients(L, p=p)  # (K, p): c_k^T L and s_k^T L
    F = fourier.fourier_basis(p, L.dtype)
    coef = ((cos_ab * F[1::2]).sum(1) + (sin_ab * F[2::2]).sum(1)) / math.sqrt(2)  # (K,)
    centred = L - L.mean(1, keepdim=True)
    total = float(centred.square().sum())
    sq = coef.square()

    def explained(ks: list[int]) -> float:
        return float(sq[[k - 1 for k in ks]].sum()) / total if total > 0 and ks else 0.0

    return CosCoefficients(frequencies=list(range(1, K + 1)), coefficients=coef, key_frequencies=keys,
                           explained_fraction=explained(keys), explained_fraction_all=explained(list(range(1, K + 1))),
                           centred_norm_sq=total)
