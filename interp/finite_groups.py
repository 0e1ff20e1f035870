"""Finite groups as tasks: the cyclic group C_n, the dihedral group D_n and the symmetric group S_n.

A group task (op ``"C7"``, ``"D5"``, ``"S4"``, ...) asks the model for the composition ``a * b`` of two group
elements: element i is token i (0 .. |G| - 1, ``=`` is token |G|) and the label is the index of a * b. In a run
config, ``p`` is the number of elements |G| (the classes the model predicts); it is filled in from the op when
left out.

Elements are listed in a fixed order, the identity first:

* ``C_n``: the residues 0 .. n-1 under addition mod n (so ``C_n`` is the task ``add`` mod n, for any n);
* ``D_n``: the symmetries of the regular n-gon (order 2n), as permutations of its vertices 0 .. n-1: the rotations
  r^k (x -> x + k) for k = 0 .. n-1, then the reflections r^k s (x -> k - x);
* ``S_n`` (n <= 5): all permutations of 0 .. n-1 in lexicographic order.

Composition of permutations is (g * h)(x) = g(h(x)): apply h first.

>>> g = finite_group("S3"); g.order, g.labels[:3]
(6, ('(0 1 2)', '(0 2 1)', '(1 0 2)'))
>>> g.compose(3, 1) == g.index_of(tuple(g.perms[3][g.perms[1][x]] for x in range(3)))
True
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .errors import ConfigError

__all__ = ["FiniteGroup", "finite_group", "is_group_op", "group_op_order", "GROUP_FAMILIES", "MAX_GROUP_ORDER"]

GROUP_FAMILIES = {"C": "cyclic group C_n (addition mod n)",
                  "D": "dihedral group D_n (symmetries of the n-gon, order 2n)",
                  "S": "symmetric group S_n (permutations of n things, n <= 5)"}
_OP_RE = re.compile(r"^([CDS])(\d{1,4})$")
MAX_GROUP_ORDER = 2003  # the same bound as p: |G|^2 pairs are trained full-batch
_LIMITS = {"C": (3, MAX_GROUP_ORDER), "D": (3, 128), "S": (3, 5)}  # |D_n| = 2n: irreps found in O(|G|^3)


def _parse(op: object) -> tuple[str, int] | None:
    m = _OP_RE.match(op) if isinstance(op, str) else None
    return (m.group(1), int(m.group(2))) if m else None


def is_group_op(op: object) -> bool:
    """True for an op naming a finite group's composition (``C7``, ``D5``, ``S4``), in range or not."""
    return _parse(op) is not None


def group_op_order(op: str, where: str = "RunConfig") -> int:
    """|G| of a group op; ConfigError naming the op when n is out of range (C_n, D_n: n >= 3; S_n: 3 <= n <= 5)."""
    family, n = _parse(op)  # type: ignore[misc]
    lo, hi = _LIMITS[family]
    if not lo <= n <= hi:
        raise ConfigError(f"{where}.op {op!r}: the {GROUP_FAMILIES[family]} needs {lo} <= n <= {hi}, got n = {n}",
                          field="op", detail=f"{op!r}: {family}_n needs {lo} <= n <= {hi}")
    return {"C": n, "D": 2 * n, "S": _factorial(n)}[family]


def _factorial(n: int) -> int:
    out = 1
    for k in range(2, n + 1):
        out *= k
    return out


@dataclass(frozen=True)
class FiniteGroup:
    """A finite group given by its elements as permutations of 0 .. degree-1 (the identity first).

    ``table[i, j]`` is the index of element i * j; ``inverse[i]`` the index of i^-1 (both (n, n) / (n,) int64
    numpy arrays, built once). ``cyclic`` is True for C_n, whose element i is the residue i.
    """

    name: str
    perms: tuple[tuple[int, ...], ...]
    cyclic: bool = False

    @property
    def order(self) -> int:
        return len(self.perms)

    @cached_property
    def _index(self) -> dict[tuple[int, ...], int]:
        return {p: i for i, p in enumerate(self.perms)}

    def index_of(self, perm: tuple[int, ...]) -> int:
        return self._index[tuple(perm)]

    @cached_property
    def _points(self) -> int:
        # how many leading points fix a permutation of this group: 2 for C_n and D_n (x -> +-x + k), all for S_n
        return min(len(self.perms[0]), 2) if self.name[0] in "CD" else len(self.perms[0])

    def _codes(self, P: np.ndarray) -> np.ndarray:
        degree, m = len(self.perms[0]), self._points
        return (P[..., :m] * degree ** np.arange(m - 1, -1, -1)).sum(-1)

    @cached_property
    def table(self) -> np.ndarray:
        """(n, n) int64: table[i, j] = index of element i * j ((g * h)(x) = g(h(x)))."""
        P = np.array(self.perms, dtype=np.int64)  # (n, degree)
        lookup = np.full(P.shape[1] ** self._points, -1, dtype=np.int64)
        lookup[self._codes(P)] = np.arange(len(P))
        # composed[i, j, x] = g_i(g_j(x)); only the leading points are needed to name the product
        lead = P[:, : self._points]  # (n, m): g_j(x) for the leading x
        composed = P[:, lead]  # (n, n, m): g_i(g_j(x))
        out = lookup[self._codes(composed)]
        assert (out >= 0).all()
        return out

    def compose(self, i: int, j: int) -> int:
        return int(self.table[i, j])

    @cached_property
    def inverse(self) -> np.ndarray:
        """(n,) int64: the index of each element's inverse."""
        return np.argmax(self.table == 0, axis=1)

    @cached_property
    def conjugacy_classes(self) -> list[list[int]]:
        """The conjugacy classes, each a sorted list of element indices; the class of the identity first."""
        seen, out = set(), []
        for g in range(self.order):
            if g in seen:
                continue
            cls = sorted({int(self.table[self.table[h, g], self.inverse[h]]) for h in range(self.order)})
            seen.update(cls)
            out.append(cls)
        return out

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """A name per element: the residue for C_n, r^k / r^k s for D_n, the permutation in one-line notation."""
        if self.cyclic:
            return tuple(str(i) for i in range(self.order))
        if self.name.startswith("D"):
            n = self.order // 2
            return tuple([f"r^{k}" for k in range(n)] + [f"r^{k} s" for k in range(n)])
        return tuple("(" + " ".join(str(v) for v in p) + ")" for p in self.perms)

    @property
    def abelian(self) -> bool:
        return bool((self.table == self.table.T).all())

    def record(self) -> dict:
        """What a measurement records about the group it used."""
        return {"group": self.name, "order": self.order, "elements": "identity first, " + _ORDER_WORDS[self.name[0]]}


_ORDER_WORDS = {"C": "element i is the residue i mod n",
                "D": "rotations r^k (x -> x + k) for k = 0..n-1, then reflections r^k s (x -> k - x)",
                "S": "permutations of 0..n-1 in lexicographic order, composed as (g h)(x) = g(h(x))"}


@lru_cache(maxsize=32)
def finite_group(op: str) -> FiniteGroup:
    """The group of a group op (``"C7"``, ``"D5"``, ``"S4"``); ConfigError for anything else."""
    if not is_group_op(op):
        raise ConfigError(f"{op!r} is not a group op: use C<n>, D<n> or S<n> (e.g. S4)", field="op")
    group_op_order(op, "finite_group")
    family, n = _parse(op)  # type: ignore[misc]
    if family == "C":
        perms = [tuple((x + k) % n for x in range(n)) for k in range(n)]
        return FiniteGroup(op, tuple(perms), cyclic=True)
    if family == "D":
        rot = [tuple((x + k) % n for x in range(n)) for k in range(n)]
        ref = [tuple((k - x) % n for x in range(n)) for k in range(n)]
        return FiniteGroup(op, tuple(rot + ref))
    return FiniteGroup(op, tuple(itertools.permutations(range(n))))
