"""Finite groups as tasks, and their real irreps checked against the character table's defining properties."""

import math

import numpy as np
import pytest
import torch

from interp import RunConfig, Task
from interp.errors import ConfigError
from interp.finite_groups import finite_group
from interp.irreps import character_table, irrep_basis, real_irreps

GROUPS = ["C3", "C6", "C7", "D3", "D4", "D5", "D6", "S3", "S4", "S5"]
# Facts of the groups (textbook, not computed here): conjugacy classes and the dimensions of the irreps over C.
N_CLASSES = {"C3": 3, "C6": 6, "C7": 7, "D3": 3, "D4": 5, "D5": 4, "D6": 6, "S3": 3, "S4": 5, "S5": 7}
REAL_DIMS = {"S3": [1, 1, 2], "S4": [1, 1, 2, 3, 3], "S5": [1, 1, 4, 4, 5, 5, 6], "D3": [1, 1, 2],
             "D4": [1, 1, 1, 1, 2], "D5": [1, 1, 2, 2], "D6": [1, 1, 1, 1, 2, 2],
             "C6": [1, 1, 2, 2], "C7": [1, 2, 2, 2], "C3": [1, 2]}


@pytest.mark.parametrize("op", GROUPS)
def test_group_axioms(op):
    g = finite_group(op)
    t, n = g.table, g.order
    assert sorted(t[0]) == list(range(n)) and (t[0] == np.arange(n)).all()  # the identity first
    for row in t:
        assert sorted(row) == list(range(n))  # Latin square
    a, b, c = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    assert (t[t[a, b], c] == t[a, t[b, c]]).all()  # associative
    assert (t[np.arange(n), g.inverse] == 0).all()
    assert len(g.conjugacy_classes) == N_CLASSES[op]
    assert g.abelian == op.startswith("C")


@pytest.mark.parametrize("op", GROUPS)
def test_irreps_are_the_character_table(op):
    g = finite_group(op)
    n = g.order
    irreps = real_irreps(g)
    assert sorted(r.dim for r in irreps) == REAL_DIMS[op]
    assert irreps[0].name == "trivial"
    for r in irreps:
        M = r.matrices
        # a homomorphism into the orthogonal matrices
        assert np.allclose(np.einsum("gab,hbc->ghac", M, M), M[g.table], atol=1e-9)
        assert np.allclose(np.einsum("gba,gbc->gac", M, M), np.eye(r.dim), atol=1e-9)
        # real type (irreducible over C): <chi, chi> = 1; complex type (a conjugate pair): 2
        assert r.norm == round(float(r.character @ r.character) / n)
    chi, classes = character_table(g)
    # characters are class functions
    for r in irreps:
        for cls in classes:
            assert np.allclose(r.character[cls], r.character[cls[0]])
    # row orthogonality: (1/|G|) sum_g chi_i(g) chi_j(g) = norm_i delta_ij
    sizes = np.array([len(c) for c in classes])
    gram = (chi * sizes) @ chi.T / n
    assert np.allclose(gram, np.diag([r.norm for r in irreps]), atol=1e-9)
    # sum over irreps of dim^2 / norm = |G| (sum of squared dimensions of the complex irreps)
    assert sum(r.dim ** 2 // r.norm for r in irreps) == n
    if not op.startswith("C"):  # S_n, D_n: every irrep is real, so sum dim^2 = |G| and the table is square
        assert sum(r.dim ** 2 for r in irreps) == n and chi.shape == (len(classes), len(classes))
        # column orthogonality: sum_i chi_i(a) chi_i(b) = |G| / |class of a| delta_ab
        assert np.allclose(chi.T @ chi, np.diag(n / sizes), atol=1e-9)


def test_cyclic_irreps_are_the_fourier_frequencies():
    basis = irrep_basis("C7")
    from interp import fourier

    F = fourier.fourier_basis(7).numpy()
    for r, rows in zip(basis.irreps, basis.rows_of):
        k = r.frequency
        span = F[[i for i, f in enumerate(fourier.row_frequencies(7)) if f == k]]
        # the irrep's rows and the frequency's cos/sin rows span the same plane
        assert np.allclose(span @ basis.Q[list(rows)].T @ basis.Q[list(rows)], span, atol=1e-9)
    assert [r.name for r in basis.irreps] == ["trivial", "k1", "k2", "k3"]


@pytest.mark.parametrize("op", ["S4", "D5", "C6"])
def test_irrep_basis_is_orthonormal_and_complete(op):
    b = irrep_basis(op)
    n = finite_group(op).order
    assert np.allclose(b.Q @ b.Q.T, np.eye(n), atol=1e-9)
    assert sorted(i for rows in b.rows_of for i in rows) == list(range(n))


def test_group_task_labels_and_config():
    cfg = RunConfig(op="S4", frac_train=0.5)
    assert cfg.p == 24 and cfg.d_vocab == 25 and cfg.d_vocab_out == 24
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    task = Task.from_config(cfg)
    g = finite_group("S4")
    pairs, labels = task.pairs(), task.labels()
    for (a, b), c in zip(pairs.tolist()[:50], labels.tolist()[:50]):
        want = tuple(g.perms[a][g.perms[b][x]] for x in range(4))
        assert g.perms[c] == want
    assert task.group is None and task.finite_group is g
    assert Task(op="C6", p=6).group.order == 6  # C_n has a Fourier basis (any n)
    with pytest.raises(ConfigError, match="must be 24"):
        RunConfig(op="S4", p=23)
    with pytest.raises(ConfigError, match="S_n"):
        RunConfig(op="S6")
    assert RunConfig().replace(op="D5").p == 10


@pytest.mark.parametrize("op,p", [("add", 7), ("sub", 7), ("mul", 7), ("div", 7), ("D4", 8), ("C5", 5)])
def test_composition_pairs(op, p):
    """Pair i*n + j of composition_idx is labelled with the element i * j, for every task with a group."""
    task = Task(op=op, p=p, frac_train=0.5)
    g = task.finite_group
    labels = task.labels()[task.composition_idx]
    assert torch.equal(labels, task.element_tokens[torch.as_tensor(g.table).reshape(-1)])


def test_no_group_for_quadratic_tasks():
    from interp.errors import ProbeError

    task = Task(op="a2+b2", p=7)
    assert task.finite_group is None
    with pytest.raises(ProbeError, match="not the composition"):
        task.require_finite_group("key_irreps")


def test_s3_characters_are_the_textbook_ones():
    """S3's character table (textbook): at a transposition 1, -1, 0; at a 3-cycle 1, 1, -1; dims 1 + 1 + 2."""
    g = finite_group("S3")
    irreps = real_irreps(g)
    t = g.index_of((1, 0, 2))
    assert sorted(round(float(r.character[t])) for r in irreps) == [-1, 0, 1]
    three_cycle = g.index_of((1, 2, 0))
    assert sorted(round(float(r.character[three_cycle])) for r in irreps) == [-1, 1, 1]
    assert math.isclose(sum(r.character[0] for r in irreps), 4)


def test_a_sweep_varies_the_group():
    """A sweep's grid over op: each group op brings its own p (|G|); an arithmetic op keeps the preset's p."""
    from interp.sweep.spec import SweepSpec

    runs = SweepSpec(preset="tiny", grid={"op": ["S3", "D5", "add"]}, seeds={"both": 1}).expand()
    assert [(cfg.op, cfg.p) for _, cfg in runs] == [("S3", 6), ("D5", 10), ("add", 23)]
