"""The real irreducible representations of a finite group, computed from its multiplication table, and the
orthonormal irrep basis of functions on the group that the representation-theory measures use.

How they are found (no tables are read): the left-regular representation L(g) (|G| x |G| permutation matrices)
is averaged into a random symmetric matrix M = sum_g L(g) X L(g)^T, which commutes with every L(g). Each
eigenspace of M is an invariant subspace; for a generic X it is irreducible over the reals (Schur's lemma: M acts
as a scalar on each irreducible summand). Restricting L to an orthonormal basis B of an eigenspace gives the
orthogonal matrices rho(g) = B^T L(g) B; eigenspaces with the same character are the same irrep, kept once.

Every irrep is checked before it is returned: it is a homomorphism, and <chi, chi> = 1 (real type: the irrep is
also irreducible over the complex numbers) or 2 (complex type: a pair of conjugate complex irreps, e.g. the
rotation by 2 pi k / n of C_n). S_n and D_n have only real-type irreps, so there sum of dim^2 = |G|; in general
sum over irreps of dim^2 / <chi, chi> = |G|.

The irrep basis: the matrix entries g -> rho(g)_ij of all irreps span the functions on G, orthogonally across
irreps (Schur orthogonality). ``irrep_basis`` gives an orthonormal basis of each irrep's span V_rho (d^2 functions
for real type, d^2 / 2 for complex type), by Gram-Schmidt over the entries in row-major order; for C_n that is
exactly the cos / sin pair of frequency k (:mod:`interp.fourier`), up to sign.

>>> irreps = real_irreps(finite_group("S4")); [r.dim for r in irreps]
[1, 1, 2, 3, 3]
>>> [r.name for r in real_irreps(finite_group("C6"))]
['trivial', 'k3', 'k1', 'k2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import ProbeError
from .finite_groups import FiniteGroup, finite_group

__all__ = ["Irrep", "real_irreps", "irrep_basis", "character_table", "IrrepBasis"]

GENERIC_MAX_ORDER = 256  # the eigen-decomposition of the regular representation is O(|G|^3)


@dataclass(frozen=True, eq=False)
class Irrep:
    """One real irreducible representation: ``matrices`` (|G|, d, d) orthogonal, ``character`` (|G|,),
    ``norm`` = <chi, chi> = (1 / |G|) sum_g chi(g)^2 (1: real type, 2: complex type). ``frequency``: k for the
    irreps of C_n (the trivial one 0, the sign of an even n n/2), None for other groups."""

    name: str
    dim: int
    matrices: np.ndarray = field(repr=False)
    character: np.ndarray = field(repr=False)
    norm: int
    frequency: int | None = None

    @property
    def trivial(self) -> bool:
        return bool(np.allclose(self.character, 1.0))


def _restrict(group: FiniteGroup, B: np.ndarray) -> np.ndarray:
    """(n, d, d): rho(g) = B^T L(g) B for the left-regular L(g) e_h = e_{gh}, i.e. (L(g) B)[i] = B[g^-1 i]."""
    moved = B[group.table[group.inverse]]  # (n, n, d): row i of L(g) B for every g
    return np.einsum("ia,gib->gab", B, moved)


def _decompose(group: FiniteGroup, seed: int) -> list[np.ndarray] | None:
    n = group.order
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n))
    X = X + X.T
    M = np.zeros((n, n))
    for g in range(n):  # sum_g L(g) X L(g)^T; (L(g) X L(g)^T)[i, l] = X[g^-1 i, g^-1 l]
        P = group.table[group.inverse[g]]
        M += X[P][:, P]
    w, V = np.linalg.eigh((M + M.T) / (2 * n))
    scale = max(1.0, float(np.abs(w).max()))
    out, start = [], 0
    for i in range(1, n + 1):
        if i == n or w[i] - w[i - 1] > 1e-7 * scale:
            out.append(V[:, start:i])
            start = i
    bases = []
    for B in out:
        rho = _restrict(group, B)
        if not np.allclose(np.einsum("gab,hbc->ghac", rho, rho), rho[group.table], atol=1e-6):
            return None  # an eigenspace that is not invariant: a coincidence of eigenvalues; retry
        chi = np.trace(rho, axis1=1, axis2=2)
        norm = float(chi @ chi) / n
        if abs(norm - round(norm)) > 1e-6 or round(norm) not in (1, 2):
            return None  # two irreducible summands share an eigenvalue; retry with another X
        bases.append(rho)
    return bases


def _search(group: FiniteGroup) -> list[np.ndarray]:
    for seed in range(20):
        found = _decompose(group, seed)
        if found is not None:
            return found
    raise ProbeError(f"real_irreps: could not split the regular representation of {group.name}")  # pragma: no cover


def _cyclic_irreps(n: int) -> list[np.ndarray]:
    """C_n of a large n (O(n^3) is too slow there): element x acts as the rotation by 2 pi k x / n, k = 0..n//2."""
    x = np.arange(n)
    out = []
    for k in range(n // 2 + 1):
        t = 2 * math.pi * k * x / n
        if k == 0 or 2 * k == n:
            out.append(np.cos(t)[:, None, None])
        else:
            out.append(np.stack([np.stack([np.cos(t), -np.sin(t)], -1), np.stack([np.sin(t), np.cos(t)], -1)], -2))
    return out


def _cyclic_frequency(group: FiniteGroup, chi: np.ndarray, dim: int) -> int:
    """k with chi(1) = dim * cos(2 pi k / n) (element 1 generates C_n)."""
    n = group.order
    c = float(np.clip(chi[1] / dim, -1, 1))
    return int(round(math.acos(c) * n / (2 * math.pi)))


@lru_cache(maxsize=32)
def _irreps(name: str) -> tuple[Irrep, ...]:
    group = finite_group(name)
    if group.cyclic and group.order > GENERIC_MAX_ORDER:
        found = _cyclic_irreps(group.order)
    else:
        found = _search(group)

    distinct: dict[tuple, np.ndarray] = {}
    for rho in found:
        chi = np.trace(rho, axis1=1, axis2=2)
        distinct.setdefault(tuple(np.round(chi, 6)), rho)
    # Order: by dimension, then by character (descending), so the trivial irrep comes first and the 2-d irreps of
    # C_n come in increasing frequency k.
    items = sorted(distinct.values(), key=lambda r: (r.shape[1], tuple(-np.round(np.trace(r, axis1=1, axis2=2), 6))))
    n = group.order
    out, counts = [], {}
    for rho in items:
        d = rho.shape[1]
        chi = np.trace(rho, axis1=1, axis2=2)
        norm = int(round(float(chi @ chi) / n))
        freq = _cyclic_frequency(group, chi, d) if group.cyclic else None
        if np.allclose(chi, 1.0):
            label = "trivial"
        elif group.cyclic:
            label = f"k{freq}"
        elif name.startswith("S") and d == 1:
            label = "sign"
        else:
            counts[d] = counts.get(d, 0) + 1
            label = f"{d}{'abcdefghijklmnopqrstuvwxyz'[counts[d] - 1]}" if counts[d] <= 26 else f"{d}_{counts[d]}"
        out.append(Irrep(label, d, rho, chi, norm, freq))
    return tuple(out)


def real_irreps(group: FiniteGroup | str) -> list[Irrep]:
    """The real irreducible representations of ``group`` (a FiniteGroup or an op such as ``"S5"``), trivial first.

    Names: ``trivial``; for C_n ``k1`` .. ``k{n//2}`` (the rotation by 2 pi k / n; for even n, ``k{n/2}`` is the
    sign x -> (-1)^x); for S_n ``sign``; otherwise the dimension and a letter (``2a``, ``3b``). Cached per group.
    """
    name = group if isinstance(group, str) else group.name
    return list(_irreps(name))


def character_table(group: FiniteGroup | str) -> tuple[np.ndarray, list[list[int]]]:
    """(n_irreps, n_classes) characters on the conjugacy classes (classes in ``group.conjugacy_classes`` order)."""
    g = finite_group(group) if isinstance(group, str) else group
    classes = g.conjugacy_classes
    return np.array([[r.character[c[0]] for c in classes] for r in real_irreps(g)]), classes


@dataclass(frozen=True, eq=False)
class IrrepBasis:
    """An orthonormal basis of the functions on G, one block of rows per irrep.

    ``Q``: (n, n) float64, rows orthonormal; ``rows_of[i]``: the rows of irrep i; ``irrep_of_row``: (n,) its
    inverse. Row r of Q is a function of the group element (column index).
    """

    group: str
    irreps: tuple[Irrep, ...]
    Q: np.ndarray = field(repr=False)
    rows_of: tuple[tuple[int, ...], ...]
    irrep_of_row: np.ndarray = field(repr=False)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.irreps]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ProbeError(f"{self.group} has no irrep {name!r}; its irreps are {self.names}") from None


def _span(rho: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the matrix-entry functions of one irrep, Gram-Schmidt in row-major order."""
    n, d, _ = rho.shape
    rows = []
    for v in rho.reshape(n, d * d).T:
        v = v.copy()
        for _ in range(2):  # twice: Gram-Schmidt in floating point
            for u in rows:
                v -= (u @ v) * u
        norm = np.linalg.norm(v)
        if norm > 1e-6 * math.sqrt(n):
            rows.append(v / norm)
    return np.array(rows)


@lru_cache(maxsize=32)
def _basis(name: str) -> IrrepBasis:
    irreps = _irreps(name)
    blocks, rows_of, start = [], [], 0
    for r in irreps:
        B = _span(r.matrices)
        expected = r.dim * r.dim // r.norm
        if B.shape[0] != expected:
            raise ProbeError(f"irrep_basis: irrep {r.name} of {name} spans {B.shape[0]} functions, expected {expected}")
        blocks.append(B)
        rows_of.append(tuple(range(start, start + len(B))))
        start += len(B)
    Q = np.concatenate(blocks)
    n = finite_group(name).order
    if Q.shape != (n, n) or not np.allclose(Q @ Q.T, np.eye(n), atol=1e-8):
        raise ProbeError(f"irrep_basis: the irreps of {name} do not give an orthonormal basis (got {Q.shape})")
    which = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)])
    Q.setflags(write=False)
    return IrrepBasis(name, irreps, Q, tuple(rows_of), which)


def irrep_basis(group: FiniteGroup | str) -> IrrepBasis:
    """The orthonormal irrep basis of functions on ``group`` (cached per group)."""
    return _basis(group if isinstance(group, str) else group.name)
