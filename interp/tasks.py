"""Modular-arithmetic tasks: all p^2 pairs, their labels, and a seeded train/test split.

Pairs are always listed in the order index = a * p + b, so anything indexed by pair can be
reshaped to a (p, p) grid with ``x.reshape(p, p, ...)`` (a on the first axis).

>>> task = Task(op="add", p=5, frac_train=0.5, seed=0)
>>> task.tokens().shape, task.labels()[:6].tolist()
(torch.Size([25, 3]), [0, 1, 2, 3, 4, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from .config import RunConfig, check_task_fields
from .errors import ConfigError

__all__ = ["Task", "SPLITS"]

SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Task:
    """c = op(a, b) mod p on all pairs; the first ``int(frac_train * p^2)`` of a seeded permutation train."""

    op: str = "add"
    p: int = 113
    frac_train: float = 0.3
    seed: int = 0
    # A run directory's split.json is the record of truth; a Task opened from a run carries it
    # here so that probes use exactly the pairs the run trained on.
    explicit_train: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_task_fields(self.op, self.p, self.frac_train, "Task")
        if self.explicit_train is not None:
            idx = self.explicit_train
            if len(idx) != self.n_train or len(set(idx)) != len(idx) or not all(
                    0 <= i < self.n_pairs for i in idx):
                raise ConfigError(f"Task.explicit_train must be {self.n_train} distinct pair indices "
                                  f"in [0, {self.n_pairs}), got {len(idx)} entries", field="explicit_train",
                                  detail=f"must be {self.n_train} distinct pair indices in [0, {self.n_pairs})")

    @classmethod
    def from_config(cls, cfg: RunConfig, explicit_train: tuple[int, ...] | None = None) -> "Task":
        """The task of a run's config; ``explicit_train``: the recorded training pairs (split.json), if any."""
        return cls(op=cfg.op, p=cfg.p, frac_train=cfg.frac_train, seed=cfg.data_seed, explicit_train=explicit_train)

    @property
    def eq_token(self) -> int:
        """Token id of '=' (one past the residues)."""
        return self.p

    @property
    def n_pairs(self) -> int:
        return self.p * self.p

    @property
    def n_train(self) -> int:
        return int(self.frac_train * self.n_pairs)

    def pairs(self) -> torch.Tensor:
        """(p*p, 2) long: row a*p + b is (a, b)."""
        a = torch.arange(self.p).repeat_interleave(self.p)
        b = torch.arange(self.p).repeat(self.p)
        return torch.stack([a, b], dim=1)

    def tokens(self) -> torch.Tensor:
        """(p*p, 3) long: [a, b, =] for every pair, in pair order."""
        pairs = self.pairs()
        eq = torch.full((self.n_pairs, 1), self.eq_token, dtype=torch.long)
        return torch.cat([pairs, eq], dim=1)

    def labels(self) -> torch.Tensor:
        """(p*p,) long: op(a, b) mod p, in pair order."""
        a, b = self.pairs().unbind(1)
        if self.op == "add":
            c = a + b
        elif self.op == "sub":
            c = a - b
        elif self.op == "mul":
            c = a * b
        else:  # x2y2
            c = a * a + b * b
        return c % self.p

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
