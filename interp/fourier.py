"""The Fourier basis over Z_n (cos-first), its 1-D and 2-D transforms, and the directions of a + b and a - b.

Conventions (docs/science.md, section 2): ``F = fourier_basis(n)`` is an (n, n) orthonormal matrix whose
rows are functions of a group element x in {0, ..., n-1}:

* row 0: the constant 1/sqrt(n)
* row 2k-1: cos(w_k x) * sqrt(2/n), row 2k: sin(w_k x) * sqrt(2/n), with w_k = 2 pi k / n, k = 1..(n-1)//2
* for even n only, the last row n-1: the Nyquist term cos(pi x) / sqrt(n) (frequency n/2, which has no sine)

Frequencies are k = 1..n//2 (:func:`n_frequencies`); for odd n (Z_p of the additive tasks) that is 1..(p-1)/2,
for even n (Z_(p-1) of the multiplicative tasks, by discrete logarithm) the last one is the Nyquist frequency.
This is the *cos-first* order; TransformerLens' grokking demo is sin-first, so its indices differ.
Anything indexed by a pair (a, b) is laid out as index a * n + b (see :mod:`interp.tasks`).

>>> F = fourier_basis(7)
>>> torch.allclose(F @ F.T, torch.eye(7, dtype=F.dtype))
True
>>> basis_labels(5), basis_labels(4)
(['const', 'cos 1', 'sin 1', 'cos 2', 'sin 2'], ['const', 'cos 1', 'sin 1', 'cos 2'])
>>> x = torch.randn(6 * 6, 3, dtype=torch.float64)
>>> torch.allclose(ifft2d(fft2d(x)), x)
True
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence

import torch

from .errors import ProbeError

__all__ = [
    "fourier_basis",
    "basis_labels",
    "n_frequencies",
    "row_frequencies",
    "check_frequencies",
    "fft1d",
    "ifft1d",
    "fft2d",
    "ifft2d",
    "per_frequency_norms",
    "sum_directions",
    "key_directions",
    "frequency_coefficients",
    "project_onto_frequencies",
]


def _check_p(p: int) -> int:
    if not isinstance(p, int) or isinstance(p, bool) or p < 3:
        raise ProbeError(f"Fourier basis: the group order must be an integer >= 3, got {p!r}")
    return p


def n_frequencies(p: int) -> int:
    """Number of non-constant frequencies of Z_n: n // 2 ((n - 1) / 2 for odd n; for even n the last is Nyquist)."""
    return _check_p(p) // 2


def has_nyquist(p: int) -> bool:
    """True for even n: frequency n/2 is a single row cos(pi x), the last row of the basis."""
    return _check_p(p) % 2 == 0


@lru_cache(maxsize=64)
def _row_freq(p: int) -> tuple[int, ...]:
    rows = [0]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [k, k]
    if p % 2 == 0:
        rows.append(p // 2)
    return tuple(rows)


def row_frequencies(p: int) -> list[int]:
    """The frequency of each row of :func:`fourier_basis`: ``[0, 1, 1, 2, 2, ...]`` (and n/2 last for even n)."""
    return list(_row_freq(_check_p(p)))


@lru_cache(maxsize=64)
def _basis(p: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.full((p,), 1.0, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * x), torch.sin(w * x)]
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * x))  # Nyquist: (-1)^x
    F = torch.stack(rows)
    return (F / F.norm(dim=1, keepdim=True)).to(dtype)


def fourier_basis(p: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n): the orthonormal cos-first basis of Z_n, one basis function per row. Cached per (n, dtype).

    Computed in float64 and cast; the returned tensor is a fresh copy, safe to modify.
    """
    F = _basis(_check_p(p), dtype)
    return F.to(device) if device is not None and torch.device(device) != F.device else F.clone()


def basis_labels(p: int) -> list[str]:
    """Names of the rows of :func:`fourier_basis`: ``['const', 'cos 1', 'sin 1', ...]`` (``'cos n/2'`` last for even n)."""
    labels = ["const"]
    for k in range(1, (_check_p(p) - 1) // 2 + 1):
        labels += [f"cos {k}", f"sin {k}"]
    if p % 2 == 0:
        labels.append(f"cos {p // 2}")
    return labels


def per_frequency_norms(norms: torch.Tensor) -> torch.Tensor:
    """(n,) norms per basis row -> (n//2,) norm per frequency: sqrt(cos^2 + sin^2) (|cos| for Nyquist)."""
    n = norms.shape[0]
    K = n_frequencies(n)
    idx = torch.tensor(_row_freq(n), device=norms.device)
    sq = torch.zeros(K + 1, dtype=norms.dtype, device=norms.device).index_add_(0, idx, norms.square())
    return sq[1:].sqrt()


def check_frequencies(freqs: Iterable[int], p: int, *, what: str = "frequencies") -> list[int]:
    """Sorted distinct frequencies, each an integer in 1..n//2; ProbeError naming ``what`` otherwise."""
    if isinstance(freqs, (int, float, str, bytes)) or not hasattr(freqs, "__iter__"):
        raise ProbeError(f"{what} must be a list of frequencies (integers in 1..{n_frequencies(p)}), "
                         f"got {freqs!r}; for one frequency write [{freqs!r}]")
    try:
        given = list(freqs)
        if any(isinstance(k, bool) or int(k) != k for k in given):
            raise ValueError
        out = sorted({int(k) for k in given})
    except (TypeError, ValueError):
        raise ProbeError(f"{what} must be integers, got {freqs!r}") from None
    half = n_frequencies(p)
    bad = [k for k in out if not 1 <= k <= half]
    if bad:
        raise ProbeError(f"{what} {bad} out of range: frequencies must be in 1..{half} for Z_{p}")
    return out


def _apply(F: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    # y[..., i, ...] = sum_j F[i, j] x[..., j, ...] along `dim`
    x = x.movedim(dim, 0)
    y = torch.tensordot(F, x, dims=([1], [0]))
    return y.movedim(0, dim)


def _basis_for(x: torch.Tensor, p: int) -> torch.Tensor:
    dtype = x.dtype if x.is_floating_point() else torch.float64
    return fourier_basis(p, dtype, x.device)


def fft1d(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Fourier coefficients of ``x`` along ``dim`` (length p): ``F @ x`` along that axis. Same shape as ``x``.

    e.g. ``fft1d(model.W_E[:p])`` is (p, d_model) with row i the component on basis row i.
    """
    p = x.shape[dim]
    return _apply(_basis_for(x, p), x if x.is_floating_point() else x.double(), dim)


def ifft1d(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Inverse of :func:`fft1d`: ``F.T @ x`` along ``dim``."""
    p = x.shape[dim]
    return _apply(_basis_for(x, p).T, x if x.is_floating_point() else x.double(), dim)


def _pair_grid(x: torch.Tensor, p: int | None) -> tuple[torch.Tensor, int, bool]:
    """View ``x`` as (p, p, ...); also return p and whether the input was flattened (p*p, ...)."""
    if x.ndim == 0:
        raise ProbeError("fft2d: expected a tensor indexed by pair, shape (p*p, ...) or (p, p, ...), got a scalar")
    n = x.shape[0]
    if p is None:
        q = math.isqrt(n)
        if q * q == n and q >= 3:
            p = q
        elif x.ndim >= 2 and x.shape[1] == n:
            p = n
        else:
            raise ProbeError(f"fft2d: cannot read a pair axis from shape {tuple(x.shape)}; "
                             "expected (n*n, ...) or (n, n, ...)")
    _check_p(p)
    if n == p * p:
        return x.reshape(p, p, *x.shape[1:]), p, True
    if x.ndim >= 2 and x.shape[0] == p and x.shape[1] == p:
        return x, p, False
    raise ProbeError(f"fft2d: shape {tuple(x.shape)} is not indexed by pairs of residues mod {p}: "
                     f"expected ({p * p}, ...) or ({p}, {p}, ...)")


def fft2d(x: torch.Tensor, p: int | None = None) -> torch.Tensor:
    """2-D Fourier coefficients of anything indexed by the pair (a, b): F on the a axis and on the b axis.

    x: (p*p, ...) flattened as a*p + b, or (p, p, ...). Returns the same shape; entry (i, j, ...)
    (flattened i*p + j) is the component on ``F[i] ⊗ F[j]``. ``p`` is inferred unless given.
    """
    grid, p, flat = _pair_grid(x if x.is_floating_point() else x.double(), p)
    F = _basis_for(grid, p)
    y = _apply(F, _apply(F, grid, 0), 1)
    return y.reshape(x.shape) if flat else y


def ifft2d(x: torch.Tensor, p: int | None = None) -> torch.Tensor:
    """Inverse of :func:`fft2d` (same shapes)."""
    grid, p, flat = _pair_grid(x if x.is_floating_point() else x.double(), p)
    F = _basis_for(grid, p).T
    y = _apply(F, _apply(F, grid, 0), 1)
    return y.reshape(x.shape) if flat else y


@lru_cache(maxsize=32)
def _sum_directions(p: int, dtype: torch.dtype, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.arange(p, dtype=torch.float64)
    ab = (s[:, None] + sign * s[None, :]).reshape(-1)  # a + b (or a - b) at pair index a*n + b
    w = 2 * math.pi * torch.arange(1, p // 2 + 1, dtype=torch.float64) / p
    cos = torch.cos(w[:, None] * ab[None, :])
    sin = torch.sin(w[:, None] * ab[None, :])
    if p % 2 == 0:
        sin[-1] = 0.0  # Nyquist: sin(pi (a + b)) is 0 on the grid; its row stays zero (no direction)
    cos = cos / cos.norm(dim=1, keepdim=True)
    norm = sin.norm(dim=1, keepdim=True)
    sin = sin / torch.where(norm > 0, norm, torch.ones_like(norm))
    return cos.to(dtype), sin.to(dtype)


def _check_sign(sign: int) -> int:
    if sign not in (1, -1):
        raise ProbeError(f"sum directions: sign must be +1 (a + b) or -1 (a - b), got {sign!r}")
    return sign


def sum_directions(p: int, dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None, sign: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors of cos(w_k(a+b)) and sin(w_k(a+b)) on the n^2 grid, for k = 1..n//2.

    ``sign=-1`` gives the directions of a - b instead. Returns ``(c, s)``, each (n//2, n*n); row k-1 is
    frequency k. All rows are orthonormal and orthogonal to the constant, except the Nyquist row of ``s`` for
    even n, which is zero (sin(pi (a + b)) vanishes on the grid). For a + b, equal to
    ``(F[2k-1]⊗F[2k-1] - F[2k]⊗F[2k]) / sqrt(2)`` and ``(F[2k]⊗F[2k-1] + F[2k-1]⊗F[2k]) / sqrt(2)``
    (docs/science.md, section 2). Cached per (n, dtype, sign).
    """
    c, s = _sum_directions(_check_p(p), dtype, _check_sign(sign))
    return c.to(device, copy=True), s.to(device, copy=True)


def direction_rows(p: int, freqs: Sequence[int]) -> tuple[list[int], dict[int, list[int]]]:
    """Row indices into ``cat([c, s])`` of :func:`sum_directions` for ``freqs``: all the c rows, then the s rows
    (no s row for the Nyquist frequency), and, per frequency, which positions of that list are its own."""
    K = n_frequencies(p)
    cos_rows = [k - 1 for k in freqs]
    sin_rows = [K + k - 1 for k in freqs if not (p % 2 == 0 and k == p // 2)]
    rows = cos_rows + sin_rows
    own = {k: [i for i, r in enumerate(rows) if r in (k - 1, K + k - 1)] for k in freqs}
    return rows, own


def key_directions(p: int, freqs: Sequence[int], dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None, sign: int = 1) -> torch.Tensor:
    """(2|S|, n*n) orthonormal rows: c_k for k in ``freqs`` (in the given order), then s_k in the same order
    (the Nyquist frequency of an even n has only its c row). ``sign=-1``: the directions of a - b."""
    freqs = list(freqs)
    check_frequencies(freqs, p)
    c, s = _sum_directions(_check_p(p), dtype, _check_sign(sign))
    both = torch.cat([c, s])
    if device is not None:
        both = both.to(device)  # no copy on the same device; indexing below copies
    rows, _ = direction_rows(p, freqs)
    return both[torch.tensor(rows, dtype=torch.long, device=both.device)]


def _directions(p: int, freqs: Sequence[int], x: torch.Tensor, sign: int = 1) -> torch.Tensor:
    return key_directions(p, freqs, x.dtype, x.device, sign)


def _as_pair_matrix(x: torch.Tensor, p: int | None, where: str) -> tuple[torch.Tensor, int]:
    if not x.is_floating_point():
        raise ProbeError(f"{where}: expected a floating-point tensor, got {x.dtype}")
    n = x.shape[0] if x.ndim else 0
    if p is None:
        p = math.isqrt(n)
    if x.ndim == 0 or n != p * p or p < 3:
        raise ProbeError(f"{where}: expected shape (n*n, ...) indexed by pair a*n + b, got {tuple(x.shape)}")
    return x.reshape(n, -1), p


def frequency_coefficients(x: torch.Tensor, freqs: Iterable[int] | None = None,
                           p: int | None = None, sign: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner products of ``x`` with c_k and s_k: ``(c_k · x, s_k · x)``, each (|S|, ...).

    x: (n*n, ...) indexed by pair a*n + b. ``freqs`` defaults to every frequency 1..n//2 (the Nyquist
    frequency of an even n has s_k · x = 0). ``sign=-1``: the directions of a - b.
    """
    flat, p = _as_pair_matrix(x, p, "frequency_coefficients")
    freqs = list(range(1, n_frequencies(p) + 1)) if freqs is None else check_frequencies(freqs, p)
    c, s = _sum_directions(p, flat.dtype, _check_sign(sign))
    idx = torch.tensor([k - 1 for k in freqs], dtype=torch.long)
    n = len(freqs)
    c, s = c[idx].to(flat.device), s[idx].to(flat.device)
    return (c @ flat).reshape(n, *x.shape[1:]), (s @ flat).reshape(n, *x.shape[1:])


def project_onto_frequencies(x: torch.Tensor, freqs: Iterable[int], p: int | None = None, sign: int = 1) -> torch.Tensor:
    """P_S x: the projection of ``x`` onto span{c_k, s_k : k in S}, along the pair axis.

    x: (n*n, ...) indexed by pair a*n + b; returns the same shape and dtype. Uses the rank-2|S|
    structure (inner products with c_k and s_k), never a (n*n, n*n) matrix: memory O(|S| n^2 + x).
    An empty ``freqs`` gives zeros. ``x - P_S x`` is the excluded part. ``sign=-1``: the directions of a - b.
    """
    flat, p = _as_pair_matrix(x, p, "project_onto_frequencies")
    freqs = check_frequencies(freqs, p, what="key frequencies")
    if not freqs:
        return torch.zeros_like(x)
    D = _directions(p, freqs, flat, sign)
    return (D.T @ (D @ flat)).reshape(x.shape)
