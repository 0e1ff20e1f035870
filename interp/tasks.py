"""Modular-arithmetic tasks: the pairs, their labels, a seeded train/test split, and the group they live in.

Pairs are listed in the order index = a * p + b, so anything indexed by pair can be reshaped to a (p, p)
grid with ``x.reshape(p, p, ...)`` (a on the first axis); ``div`` has no b = 0 and lists its p (p - 1) pairs in
the same order with those left out (``Task.grid_index`` gives each pair's a * p + b).

A task owns its group and basis (:mod:`interp.groups`): ``task.group`` says which cyclic group the inputs
live in and how residues map onto it, and ``task.circuit_idx`` lists the pairs inside the group in group
order, which is what every Fourier measure reads. A user's own input format (another ``=`` token, more
positions) or labels: :meth:`Task.custom`.

>>> task = Task(op="add", p=5, frac_train=0.5, seed=0)
>>> task.tokens().shape, task.labels()[:6].tolist()
(torch.Size([25, 3]), [0, 1, 2, 3, 4, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import torch

from .config import RunConfig, check_task_fields, describe_op, n_pairs_of
from .errors import ConfigError, ProbeError
from .finite_groups import FiniteGroup, finite_group, is_group_op
from .groups import Group, group_of

__all__ = ["Task", "SPLITS"]

SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Task:
    """c = op(a, b) mod p on all pairs; the first ``int(frac_train * p^2)`` of a seeded permutation train."""

    op: str = "add"
    p: int = 113
    frac_train: float = 0.3
    seed: int = 0
    # True: the input [a, b, =] ('=' is token p); False: [a, b] (Zhong et al.'s models: no '=', 2 positions)
    eq_sign: bool = True
    # A run directory's split.json is the record of truth; a Task opened from a run carries it
    # here so that probes use exactly the pairs the run trained on.
    explicit_train: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    # A user's own tokens (n_pairs, n_ctx) and labels (n_pairs,), in pair order (see Task.custom).
    given_tokens: torch.Tensor | None = field(default=None, repr=False, compare=False)
    given_labels: torch.Tensor | None = field(default=None, repr=False, compare=False)
    given_d_vocab: int | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_task_fields(self.op, self.p, self.frac_train, "Task")
        if not isinstance(self.eq_sign, bool):
            raise ConfigError(f"Task.eq_sign must be true or false, got {self.eq_sign!r}", field="eq_sign",
                              detail=f"must be true or false, got {self.eq_sign!r}")
        if self.explicit_train is not None:
            idx = self.explicit_train
            if len(idx) != self.n_train or len(set(idx)) != len(idx) or not all(
                    0 <= i < self.n_pairs for i in idx):
                raise ConfigError(f"Task.explicit_train must be {self.n_train} distinct pair indices "
                                  f"in [0, {self.n_pairs}), got {len(idx)} entries", field="explicit_train",
                                  detail=f"must be {self.n_train} distinct pair indices in [0, {self.n_pairs})")
        if self.given_tokens is not None:
            t = self.given_tokens
            if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[0] != self.n_pairs or t.is_floating_point():
                raise ConfigError(f"Task.custom: tokens must be an integer tensor ({self.n_pairs}, n_ctx) in pair "
                                  f"order, got {getattr(t, 'shape', type(t).__name__)}", field="tokens")
        if self.given_labels is not None:
            y = self.given_labels
            if (not isinstance(y, torch.Tensor) or y.shape != (self.n_pairs,) or y.is_floating_point()
                    or int(y.min()) < 0 or int(y.max()) >= self.p):
                raise ConfigError(f"Task.custom: labels must be an integer tensor ({self.n_pairs},) of classes "
                                  f"0..{self.p - 1} in pair order", field="labels")

    @classmethod
    def custom(cls, op: str, p: int, *, tokens: torch.Tensor | None = None, labels: torch.Tensor | None = None,
               d_vocab: int | None = None, frac_train: float = 0.3, seed: int = 0,
               train_idx: Sequence[int] | None = None, eq_sign: bool = True) -> "Task":
        """A task with a user's own input format or labels, measured in the basis of ``op``.

        tokens: (n_pairs, n_ctx) long, one row per pair in pair order (a*p + b), the logits read at the last
        position; labels: (n_pairs,) long classes in 0..p-1 (default: ``op``'s). d_vocab: the model's input
        vocabulary (default: the largest token + 1). train_idx: the pair indices the model trained on (default:
        the seeded split). ``op`` decides the group and the directions every Fourier measure uses. eq_sign: with
        no tokens given, [a, b, =] (True) or [a, b] (False).
        """
        tokens = None if tokens is None else torch.as_tensor(tokens)
        labels = None if labels is None else torch.as_tensor(labels)
        explicit = None if train_idx is None else tuple(sorted(int(i) for i in train_idx))
        if explicit is not None:  # + 0.5: int(frac_train * n_pairs) is exactly len(explicit), never one below
            frac_train = (len(explicit) + 0.5) / n_pairs_of(op, p)
        return cls(op=op, p=p, frac_train=frac_train, seed=seed, eq_sign=eq_sign, explicit_train=explicit,
                   given_tokens=tokens, given_labels=labels, given_d_vocab=d_vocab)

    @classmethod
    def from_config(cls, cfg: RunConfig, explicit_train: tuple[int, ...] | None = None) -> "Task":
        """The task of a run's config; ``explicit_train``: the recorded training pairs (split.json), if any."""
        return cls(op=cfg.op, p=cfg.p, frac_train=cfg.frac_train, seed=cfg.data_seed, eq_sign=cfg.eq_sign,
                   explicit_train=explicit_train)

    @property
    def eq_token(self) -> int | None:
        """Token id of '=' (one past the residues); None for the input [a, b] or the user's own tokens."""
        return self.p if self.given_tokens is None and self.eq_sign else None

    @property
    def n_ctx(self) -> int:
        """Positions of one input: 3 for ``[a, b, =]``, 2 for ``[a, b]``."""
        if self.given_tokens is not None:
            return int(self.given_tokens.shape[1])
        return 3 if self.eq_sign else 2

    @property
    def d_vocab(self) -> int:
        """The input vocabulary the model must have: p residues and '=' (p + 1), p residues alone, or the user's."""
        if self.given_d_vocab is not None:
            return int(self.given_d_vocab)
        if self.given_tokens is not None:
            return int(self.given_tokens.max()) + 1
        return self.p + 1 if self.eq_sign else self.p

    @property
    def input_format(self) -> str:
        if self.given_tokens is not None:
            return f"the given tokens ({self.n_ctx} positions)"
        return f"[a, b, =] with '=' = token {self.p}" if self.eq_sign else "[a, b] (no '=' token)"

    @property
    def n_pairs(self) -> int:
        return n_pairs_of(self.op, self.p)

    @property
    def description(self) -> str:
        if is_group_op(self.op):
            return f"{self.op}: {describe_op(self.op)} (|G| = {self.p})"
        return f"{self.op} mod {self.p}: {describe_op(self.op)}"

    # ---- the group and basis
    @property
    def group(self) -> Group | None:
        """The group the inputs live in (:mod:`interp.groups`), or None when the task has no group basis."""
        return group_of(self.op, self.p)

    def require_group(self, measure: str) -> Group:
        """The task's group; ProbeError naming the task and the measure when it has none."""
        g = self.group
        if g is None and self.finite_group is not None:
            raise ProbeError(f"{measure}: not applicable to task {self.op!r} ({describe_op(self.op)}): the group is "
                             "not abelian, so it has no Fourier basis; use the irrep measures (interp.probes.irreps)")
        if g is None:
            raise ProbeError(f"{measure}: not applicable to task {self.op!r} ({describe_op(self.op)}): its labels are "
                             "not a group operation of the inputs, so no Fourier basis of a group describes the "
                             "algorithm")
        return g

    @property
    def finite_group(self) -> FiniteGroup | None:
        """The group whose composition the labels are (:mod:`interp.finite_groups`), for the irrep measures:
        C_p for add/sub, C_(p-1) by discrete log for mul/div, the group of a group op; None for the quadratic
        tasks. See :attr:`composition_idx` for how pairs map onto it."""
        if is_group_op(self.op):
            return finite_group(self.op)
        g = self.group
        return None if g is None else finite_group(f"C{g.order}")

    def require_finite_group(self, measure: str) -> FiniteGroup:
        """The task's finite group; ProbeError naming the task and the measure when it has none."""
        fg = self.finite_group
        if fg is None:
            raise ProbeError(f"{measure}: not applicable to task {self.op!r} ({describe_op(self.op)}): its labels "
                             "are not the composition of the inputs in a group, so no irrep basis describes the "
                             "algorithm")
        return fg

    @cached_property
    def composition_idx(self) -> torch.Tensor:
        """(n^2,) long: for group elements i, j (the order of :attr:`finite_group`), the index of the pair whose
        label is the element i * j, at position i * n + j. Group ops: the pair (i, j) itself. add, mul: the
        residues of i and j (by discrete log for mul); sub, div: the residues of i and j^-1 (a - b = a + (-b))."""
        fg = self.require_finite_group("composition pairs")
        if is_group_op(self.op):
            return torch.arange(self.n_pairs)
        g = self.group
        n, r = g.order, g.residue_index()
        second = r[(g.sign * torch.arange(n)) % n]  # the residue standing for j (or j^-1)
        where = torch.full((self.p * self.p,), -1, dtype=torch.long)
        where[self.grid_index] = torch.arange(self.n_pairs)
        idx = where[(r[:, None] * self.p + second[None, :]).reshape(-1)]
        assert bool((idx >= 0).all()) and fg.order == n
        return idx

    @cached_property
    def element_tokens(self) -> torch.Tensor:
        """(n,) long: the token (and the output class) of each group element of :attr:`finite_group`."""
        self.require_finite_group("element tokens")
        if is_group_op(self.op):
            return torch.arange(self.p)
        return self.group.residue_index()

    @cached_property
    def grid_index(self) -> torch.Tensor:
        """(n_pairs,) long: a * p + b of each pair, in pair order (arange(p*p) except for div)."""
        a, b = self.pairs().unbind(1)
        return a * self.p + b

    @cached_property
    def circuit_idx(self) -> torch.Tensor:
        """(n^2,) long: the pair indices of the pairs inside the group, in group order (i * n + j for the group
        elements i, j). add/sub: every pair, in pair order; mul/div: the pairs without a zero input, by discrete
        log. ProbeError for a task without a group."""
        g = self.require_group("circuit pairs")
        where = torch.full((self.p * self.p,), -1, dtype=torch.long)
        where[self.grid_index] = torch.arange(self.n_pairs)
        idx = where[g.pair_grid()]
        assert bool((idx >= 0).all())
        return idx

    def circuit_split(self, split: str) -> torch.Tensor:
        """Positions in :attr:`circuit_idx` (sorted) of the pairs in ``split`` ("all", "train" or "test")."""
        member = torch.zeros(self.n_pairs, dtype=torch.bool)
        member[self.split_idx(split)] = True
        return member[self.circuit_idx].nonzero().squeeze(1)

    @property
    def n_train(self) -> int:
        return int(self.frac_train * self.n_pairs)

    def pairs(self) -> torch.Tensor:
        """(n_pairs, 2) long: the pairs (a, b) in the order a*p + b (div: b = 0 left out)."""
        a = torch.arange(self.p).repeat_interleave(self.p)
        b = torch.arange(self.p).repeat(self.p)
        keep = b != 0 if self.op == "div" else torch.ones_like(b, dtype=torch.bool)
        return torch.stack([a[keep], b[keep]], dim=1)

    def tokens(self) -> torch.Tensor:
        """(n_pairs, n_ctx) long: [a, b, =] (or [a, b], or the given tokens) for every pair, in pair order."""
        if self.given_tokens is not None:
            return self.given_tokens.to(torch.long).clone()
        pairs = self.pairs()
        if not self.eq_sign:
            return pairs
        eq = torch.full((self.n_pairs, 1), self.p, dtype=torch.long)
        return torch.cat([pairs, eq], dim=1)

    def labels(self) -> torch.Tensor:
        """(n_pairs,) long: op(a, b) mod p (or the given labels), in pair order."""
        if self.given_labels is not None:
            return self.given_labels.to(torch.long).clone()
        a, b = self.pairs().unbind(1)
        p = self.p
        if is_group_op(self.op):
            return torch.as_tensor(finite_group(self.op).table)[a, b].to(torch.long)
        if self.op == "add":
            c = a + b
        elif self.op == "sub":
            c = a - b
        elif self.op == "mul":
            c = a * b
        elif self.op == "div":
            c = a * torch.tensor([pow(int(x), p - 2, p) for x in range(p)])[b]  # b^(p-2) = 1/b mod p
        elif self.op == "a2+b2":
            c = a * a + b * b
        else:  # a2+ab+b2
            c = a * a + a * b + b * b
        return c % p

    @cached_property
    def _is_train(self) -> torch.Tensor:
        mask = torch.zeros(self.n_pairs, dtype=torch.bool)
        if self.explicit_train is not None:
            mask[torch.tensor(self.explicit_train, dtype=torch.long)] = True
        else:
            g = torch.Generator().manual_seed(self.seed)
            mask[torch.randperm(self.n_pairs, generator=g)[: self.n_train]] = True
        return mask

    @property
    def train_idx(self) -> torch.Tensor:
        """Sorted pair indices of the training split (n_train,)."""
        return self._is_train.nonzero().squeeze(1)

    @property
    def test_idx(self) -> torch.Tensor:
        """Sorted pair indices of the test split (p*p - n_train,)."""
        return (~self._is_train).nonzero().squeeze(1)

    def split_idx(self, split: str) -> torch.Tensor:
        """Pair indices of "train", "test" or "all"."""
        if split == "train":
            return self.train_idx
        if split == "test":
            return self.test_idx
        if split == "all":
            return torch.arange(self.n_pairs)
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}", field="split",
                          detail=f"must be one of {list(SPLITS)}, got {split!r}")
