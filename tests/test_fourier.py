"""interp.fourier: the cos-first basis, its transforms, the directions of a + b and the projection P_S."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interp import fourier
from interp.errors import ProbeError

PS = [3, 5, 7, 23, 53, 113]


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_basis_is_orthonormal_and_cos_first(p, dtype):
    F = fourier.fourier_basis(p, dtype)
    assert F.shape == (p, p) and F.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(F @ F.T, torch.eye(p, dtype=dtype), atol=tol)
    assert torch.allclose(F.T @ F, torch.eye(p, dtype=dtype), atol=tol)
    x = torch.arange(p, dtype=torch.float64)
    F64 = F.double()
    assert torch.allclose(F64[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64), atol=tol)
    for k in (1, (p - 1) // 2):
        w = 2 * math.pi * k / p
        assert torch.allclose(F64[2 * k - 1], torch.cos(w * x) * math.sqrt(2 / p), atol=tol)
        assert torch.allclose(F64[2 * k], torch.sin(w * x) * math.sqrt(2 / p), atol=tol)


def test_labels_and_cache_is_not_shared_mutable_state():
    assert fourier.basis_labels(7) == ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3"]
    F = fourier.fourier_basis(11)
    F.zero_()
    assert fourier.fourier_basis(11).abs().sum() > 0


@pytest.mark.parametrize("bad", [2, 1, 0, -3, 2.5, "7"])
def test_basis_rejects_a_non_integer_or_too_small_order(bad):
    with pytest.raises(ProbeError, match="integer >= 3"):
        fourier.fourier_basis(bad)


@pytest.mark.parametrize("n", [4, 22, 52])
def test_even_length_basis_has_the_nyquist_term_last_and_is_orthonormal(n):
    F = fourier.fourier_basis(n)
    assert torch.allclose(F @ F.T, torch.eye(n, dtype=F.dtype), atol=1e-12)
    x = torch.arange(n, dtype=torch.float64)
    assert torch.allclose(F[-1], torch.cos(math.pi * x) / math.sqrt(n), atol=1e-12)
    assert torch.allclose(F[1], torch.cos(2 * math.pi * x / n) * math.sqrt(2 / n), atol=1e-12)
    labels = fourier.basis_labels(n)
    assert len(labels) == n and labels[-1] == f"cos {n // 2}" and labels[-2] == f"sin {n // 2 - 1}"
    assert fourier.n_frequencies(n) == n // 2
    assert fourier.row_frequencies(n)[-1] == n // 2
    # per-frequency norms: the Nyquist frequency is the one cos row
    norms = torch.arange(1.0, n + 1, dtype=torch.float64)
    pf = fourier.per_frequency_norms(norms)
    assert pf.shape == (n // 2,) and pf[-1] == norms[-1]
    assert torch.isclose(pf[0], (norms[1] ** 2 + norms[2] ** 2).sqrt())


@pytest.mark.parametrize("n,sign", [(22, 1), (22, -1), (7, -1)])
def test_sum_and_difference_directions_are_orthonormal_and_match_their_formula(n, sign):
    c, s = fourier.sum_directions(n, sign=sign)
    a = torch.arange(n, dtype=torch.float64)
    ab = (a[:, None] + sign * a[None, :]).reshape(-1)
    for k in range(1, n // 2 + 1):
        want = torch.cos(2 * math.pi * k * ab / n)
        assert torch.allclose(c[k - 1], want / want.norm(), atol=1e-12)
        want = torch.sin(2 * math.pi * k * ab / n)
        if n % 2 == 0 and k == n // 2:  # sin(pi (a +- b)) vanishes on the grid: the Nyquist sine row is zero
            assert torch.allclose(s[k - 1], torch.zeros_like(want), atol=1e-12)
        else:
            assert torch.allclose(s[k - 1], want / want.norm(), atol=1e-12)
    D = fourier.key_directions(n, range(1, n // 2 + 1), sign=sign)
    assert D.shape[0] == 2 * (n // 2) - (n % 2 == 0)  # Nyquist has no sine row
    assert torch.allclose(D @ D.T, torch.eye(D.shape[0], dtype=D.dtype), atol=1e-10)
    assert torch.allclose(D.sum(1), torch.zeros(D.shape[0], dtype=D.dtype), atol=1e-10)


@pytest.mark.parametrize("p", [5, 23, 31])
def test_transforms_invert_and_agree_between_layouts(p):
    g = torch.Generator().manual_seed(p)
    x = torch.randn(p, 6, dtype=torch.float64, generator=g)
    assert torch.allclose(fourier.ifft1d(fourier.fft1d(x)), x, atol=1e-12)
    y = torch.randn(4, p, 3, dtype=torch.float64, generator=g)
    assert torch.allclose(fourier.ifft1d(fourier.fft1d(y, dim=1), dim=1), y, atol=1e-12)
    assert torch.allclose(fourier.fft1d(y, dim=1), torch.einsum("ij,ajb->aib", fourier.fourier_basis(p), y))

    flat = torch.randn(p * p, 5, dtype=torch.float64, generator=g)
    grid = flat.reshape(p, p, 5)
    assert torch.allclose(fourier.ifft2d(fourier.fft2d(flat)), flat, atol=1e-12)
    assert torch.allclose(fourier.fft2d(flat).reshape(p, p, 5), fourier.fft2d(grid), atol=1e-12)
    F = fourier.fourier_basis(p)
    assert torch.allclose(fourier.fft2d(grid), torch.einsum("ia,jb,abn->ijn", F, F, grid), atol=1e-12)
    # Parseval: an orthonormal transform keeps the norm
    assert torch.allclose(fourier.fft2d(flat).norm(), flat.norm())


def test_fft2d_of_a_basis_product_is_one_hot():
    p = 7
    F = fourier.fourier_basis(p)
    x = torch.outer(F[3], F[4]).reshape(-1)  # (p*p,): cos 2 on a, sin 2 on b
    X = fourier.fft2d(x)
    expected = torch.zeros(p * p, dtype=torch.float64)
    expected[3 * p + 4] = 1
    assert torch.allclose(X, expected, atol=1e-12)


def test_fft2d_rejects_shapes_without_a_pair_axis():
    with pytest.raises(ProbeError, match="pair"):
        fourier.fft2d(torch.zeros(10, 3))
    with pytest.raises(ProbeError, match=r"\(49, \.\.\.\)"):
        fourier.fft2d(torch.zeros(50, 3), p=7)


@pytest.mark.parametrize("p", [5, 23, 53])
def test_sum_directions_match_the_reference_formula(p):
    c, s = fourier.sum_directions(p)
    K = (p - 1) // 2
    assert c.shape == s.shape == (K, p * p)
    F = fourier.fourier_basis(p)
    for k in range(1, K + 1):
        ck = (torch.outer(F[2 * k - 1], F[2 * k - 1]) - torch.outer(F[2 * k], F[2 * k])).reshape(-1) / math.sqrt(2)
        sk = (torch.outer(F[2 * k], F[2 * k - 1]) + torch.outer(F[2 * k - 1], F[2 * k])).reshape(-1) / math.sqrt(2)
        assert torch.allclose(c[k - 1], ck, atol=1e-12) and torch.allclose(s[k - 1], sk, atol=1e-12)
    D = torch.cat([c, s])
    assert torch.allclose(D @ D.T, torch.eye(2 * K, dtype=torch.float64), atol=1e-12)
    assert D.sum(1).abs().max() < 1e-10  # orthogonal to the constant


def _explicit_projection(p, freqs):
    """The (p*p, p*p) projection matrix, built the slow way (only for tiny p)."""
    c, s = fourier.sum_directions(p)
    idx = [k - 1 for k in freqs]
    D = torch.cat([c[idx], s[idx]])
    return D.T @ D


@settings(max_examples=25, deadline=None)
@given(p=st.sampled_from([5, 7, 11, 13]), data=st.data())
def test_projection_is_idempotent_complementary_and_matches_the_matrix(p, data):
    K = (p - 1) // 2
    freqs = data.draw(st.sets(st.integers(1, K), min_size=1, max_size=K))
    seed = data.draw(st.integers(0, 2**16))
    x = torch.randn(p * p, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    Px = fourier.project_onto_frequencies(x, freqs)
    assert torch.allclose(fourier.project_onto_frequencies(Px, freqs), Px, atol=1e-10)  # idempotent
    rest = x - Px
    assert fourier.project_onto_frequencies(rest, freqs).abs().max() < 1e-10  # complementary
    assert abs(float((Px * rest).sum())) < 1e-9  # orthogonal parts
    assert torch.allclose(Px, _explicit_projection(p, sorted(freqs)) @ x, atol=1e-10)
    # all frequencies + the constant span everything symmetric in a + b, so a function of a + b is reproduced
    ab = (torch.arange(p)[:, None] + torch.arange(p)[None, :]).reshape(-1) % p
    f = torch.randn(p, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))[ab]
    full = fourier.project_onto_frequencies(f, range(1, K + 1)) + f.mean()
    assert torch.allclose(full, f, atol=1e-10)


def test_projection_of_an_empty_set_is_zero_and_bad_frequencies_fail():
    x = torch.randn(49, 2, dtype=torch.float64)
    assert torch.equal(fourier.project_onto_frequencies(x, []), torch.zeros_like(x))
    with pytest.raises(ProbeError, match=r"\[4\] out of range: frequencies must be in 1..3 for Z_7"):
        fourier.project_onto_frequencies(x, [1, 4])
    with pytest.raises(ProbeError, match="pair a\\*n \\+ b"):
        fourier.project_onto_frequencies(torch.randn(48, 2, dtype=torch.float64), [1])


def test_frequency_coefficients_are_inner_products():
    p = 11
    x = torch.randn(p * p, 3, dtype=torch.float64)
    cos, sin = fourier.frequency_coefficients(x, [2, 5])
    c, s = fourier.sum_directions(p)
    assert torch.allclose(cos, c[[1, 4]] @ x) and torch.allclose(sin, s[[1, 4]] @ x)
    assert torch.allclose(fourier.key_directions(p, [5, 2]), torch.cat([c[[4, 1]], s[[4, 1]]]))
