"""Losses on all pairs, and the paper's restricted and excluded losses and cos(w(a+b-c)) coefficients.

L is the logits at the last position on every pair, shape (p*p, p) (pair index a*p + b, the p output
classes). P_S projects each class's column onto span{c_k, s_k : k in S}, the directions of
cos(w_k(a+b)) and sin(w_k(a+b)) (REFERENCE.md sections 2-3):

* restricted logits ``P_S L + mean over pairs of L`` (keep what the algorithm uses);
* excluded logits ``(I - P_S) L`` (remove what it uses; no mean added back).

Every function takes a HookedTransformer (run once with the exact last-position forward) or the
logits tensor itself, so one forward can feed many measures. Cross-entropy is taken in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch

from .. import fourier
from ..errors import ProbeError
from ..tasks import Task
from ._common import accuracy, check_task_add, cross_entropy, logits_of, split_idx


def loss_and_accuracy(model_or_logits: Any, task: Task, split: str = "all") -> tuple[float, float]:
    """(cross-entropy, accuracy) of the logits on the pairs of ``split`` ("all", "train" or "test")."""
    split_idx(task, split, "loss_and_accuracy")  # a bad split fails before the forward pass
    return _evaluate(logits_of(model_or_logits, task, "loss_and_accuracy"), task, split, "loss_and_accuracy")


def train_test_metrics(model_or_logits: Any, task: Task) -> dict[str, float]:
    """``{"train_loss", "train_acc", "test_loss", "test_acc"}`` from one forward."""
    L = logits_of(model_or_logits, task, "train_test_metrics")
    out = {}
    for split in ("train", "test"):
        out[f"{split}_loss"], out[f"{split}_acc"] = _evaluate(L, task, split, "train_test_metrics")
    return out


class Decomposition:
    """The logits split along the key directions, computed once and reused by every measure.

    L: (p*p, p) float64; freqs: the key set S (non-empty). ``coef`` holds (c_k · L, s_k · L) for k in S
    as (2|S|, p); the projection P_S L is never more than (p*p, p).
    """

    def __init__(self, L: torch.Tensor, task: Task, key_freqs: Iterable[int], where: str):
        check_task_add(task, where)
        freqs = fourier.check_frequencies(key_freqs, task.p, what=f"{where}: key frequencies")
        if not freqs:
            raise ProbeError(f"{where}: empty key-frequency set; the measure needs at least one key frequency "
                             "(key_frequencies() found none: pass key_freqs explicitly or lower the threshold)")
        self.L, self.task, self.freqs = L, task, freqs
        self.D = fourier.key_directions(task.p, freqs, L.dtype)  # (2|S|, p*p): rows c_k, then s_k
        self.coef = self.D @ L  # (2|S|, p)
        self.projected = self.D.T @ self.coef  # P_S L, (p*p, p)

    def restricted(self) -> torch.Tensor:
        return self.projected + self.L.mean(0, keepdim=True)

    def excluded(self) -> torch.Tensor:
        return self.L - self.projected

    def excluded_without(self, k: int, idx: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``idx`` of L with only frequency k's directions removed (``rows``: L[idx], if already taken)."""
        i, n = self.freqs.index(k), len(self.freqs)
        pick = [i, n + i]
        rows = self.L[idx] if rows is None else rows
        return torch.addmm(rows, self.D[pick][:, idx].T, self.coef[pick], alpha=-1)


def _evaluate(logits: torch.Tensor, task: Task, split: str, where: str) -> tuple[float, float]:
    idx = split_idx(task, split, where)
    labels = task.labels()[idx]
    return cross_entropy(logits[idx], labels), accuracy(logits[idx], labels)


def _decompose(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str, where: str) -> Decomposition:
    split_idx(task, split, where)  # a bad split fails before any work
    return Decomposition(logits_of(model_or_logits, task, where), task, key_freqs, where)


def restricted_loss(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all") -> float:
    """Cross-entropy of ``P_S L + mean over pairs of L`` on ``split`` (default: all p^2 pairs)."""
    d = _decompose(model_or_logits, task, key_freqs, split, "restricted_loss")
    return _evaluate(d.restricted(), task, split, "restricted_loss")[0]


def restricted_accuracy(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "all") -> float:
    """Accuracy of the restricted logits ``P_S L + mean over pairs of L`` on ``split`` (default "all")."""
    d = _decompose(model_or_logits, task, key_freqs, split, "restricted_accuracy")
    return _evaluate(d.restricted(), task, split, "restricted_accuracy")[1]


def excluded_loss(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "train") -> float:
    """Cross-entropy of ``(I - P_S) L`` on ``split`` (default: the training pairs)."""
    d = _decompose(model_or_logits, task, key_freqs, split, "excluded_loss")
    return _evaluate(d.excluded(), task, split, "excluded_loss")[0]


def excluded_accuracy(model_or_logits: Any, task: Task, key_freqs: Iterable[int], split: str = "train") -> float:
    """Accuracy of the excluded logits ``(I - P_S) L`` on ``split`` (default "train")."""
    d = _decompose(model_or_logits, task, key_freqs, split, "excluded_accuracy")
    return _evaluate(d.excluded(), task, split, "excluded_accuracy")[1]


def excluded_loss_per_frequency(model_or_logits: Any, task: Task, key_freqs: Iterable[int],
                                split: str = "train") -> dict[int, float]:
    """``{k: loss}``: cross-entropy on ``split`` after removing only frequency k's directions, for k in key_freqs."""
    d = _decompose(model_or_logits, task, key_freqs, split, "excluded_loss_per_frequency")
    return _per_frequency(d, split)


def _per_frequency(d: Decomposition, split: str) -> dict[int, float]:
    idx = d.task.split_idx(split)
    labels, rows = d.task.labels()[idx], d.L[idx]
    return {k: cross_entropy(d.excluded_without(k, idx, rows), labels) for k in d.freqs}


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
    return _cos_coefficients(L, task, key_freqs)


def _cos_coefficients(L: torch.Tensor, task: Task, key_freqs: Sequence[int] | None) -> CosCoefficients:
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
    frac = (lambda ks: float(sq[[k - 1 for k in ks]].sum()) / total if total > 0 and ks else 0.0)
    return CosCoefficients(frequencies=list(range(1, K + 1)), coefficients=coef, key_frequencies=keys,
                           explained_fraction=frac(keys), explained_fraction_all=frac(list(range(1, K + 1))),
                           centred_norm_sq=total)
