"""The group a task's inputs live in, and the relabelling of residues onto it (docs/science.md, "Other tasks").

* ``add``, ``sub``: Z_p itself; element i is the residue i; c = a + b (or a - b).
* ``mul``, ``div``: the multiplicative group Z_p* = {1, ..., p-1}, cyclic of order p - 1. With a generator g
  (the smallest primitive root, computed), residue x = g^i is relabelled i = dlog x, so a * b = g^(i + j) and
  a / b = g^(i - j): the task becomes addition (subtraction) in Z_(p-1), where the Fourier basis of even
  length p - 1 (with its Nyquist term) applies. The residue 0 has no logarithm: the pairs with a zero input
  (2p - 1 of them for ``mul``, p - 1 for ``div``, which has no b = 0) are outside the group. They are left out
  of every circuit measure (key frequencies, restricted and excluded loss, cos terms, Fourier norms, neuron
  clusters) and kept in the losses and accuracies.

>>> g = group_of("mul", 53); g.generator, g.order, g.elements[:4]
(2, 52, (1, 2, 4, 8))
>>> group_of("sub", 5).sign
-1
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["Group", "group_of", "primitive_root", "GROUP_OPS"]

# op -> (multiplicative?, sign: +1 the output is the group sum of the inputs, -1 their difference)
GROUP_OPS = {"add": (False, 1), "sub": (False, -1), "mul": (True, 1), "div": (True, -1)}


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        if n % d == 0:
            out.append(d)
            while n % d == 0:
                n //= d
        d += 1
    return out + ([n] if n > 1 else [])


@lru_cache(maxsize=64)
def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime p (2 for 53, 3 for 113, 5 for 97 and 23)."""
    factors = _prime_factors(p - 1)
    for g in range(2, p):
        if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
            return g
    raise ValueError(f"{p} has no primitive root (is it prime?)")  # unreachable for a prime p


@dataclass(frozen=True)
class Group:
    """A cyclic group of order ``order`` and the residue of each of its elements.

    ``elements[i]`` is the residue that group element i stands for (add/sub: i; mul/div: g^i mod p);
    ``sign`` is +1 when the output is the group sum of the inputs, -1 when it is their difference;
    ``generator`` is g for the multiplicative tasks (None for Z_p).
    """

    name: str
    p: int
    order: int
    elements: tuple[int, ...]
    sign: int
    generator: int | None = None

    @property
    def description(self) -> str:
        if self.generator is None:
            return f"Z_{self.p}: residue i is group element i"
        return (f"Z_{self.order} by discrete logarithm: residue g^i (g = {self.generator}, the smallest primitive "
                f"root mod {self.p}) is group element i; the residue 0 is outside the group")

    def residue_index(self) -> torch.Tensor:
        """(order,) long: the residues in group order (``elements`` as a tensor)."""
        return torch.tensor(self.elements, dtype=torch.long)

    def pair_grid(self) -> torch.Tensor:
        """(order^2,) long: the full-grid pair index a*p + b of group pair (i, j), in the order i*order + j."""
        r = self.residue_index()
        return (r[:, None] * self.p + r[None, :]).reshape(-1)

    def record(self) -> dict:
        """What a measurement records about the basis it used."""
        return {"group": self.name, "order": self.order, "generator": self.generator,
                "directions": "a + b" if self.sign > 0 else "a - b", "relabelling": self.description}


@lru_cache(maxsize=64)
def group_of(op: str, p: int) -> Group | None:
    """The cyclic group of ``op`` mod ``p`` whose Fourier basis the task uses, or None when the task has none (the
    quadratic tasks; the non-abelian groups D_n and S_n, which have irreps instead: :mod:`interp.irreps`).
    The group op ``C<n>`` is Z_n, element i the token i."""
    if isinstance(op, str) and op.startswith("C") and op[1:].isdigit():
        return Group(f"Z_{p}", p, p, tuple(range(p)), 1)
    if op not in GROUP_OPS:
        return None
    multiplicative, sign = GROUP_OPS[op]
    if not multiplicative:
        return Group(f"Z_{p}", p, p, tuple(range(p)), sign)
    g = primitive_root(p)
    elements = tuple(pow(g, i, p) for i in range(p - 1))
    return Group(f"Z_{p - 1} (discrete log, generator {g})", p, p - 1, elements, sign, g)
