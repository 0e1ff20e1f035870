"""The irrep measures on constructed ground truth: the character algorithm as logits, a model planted in one irrep,
and, for C_n, equality with the Fourier measures (on the shipped run and on a C_n group-op run)."""

import math

import numpy as np
import pytest
import torch

from interp import RunConfig, Task, probes
from interp.errors import ProbeError
from interp.finite_groups import finite_group
from interp.irreps import irrep_basis
from interp.model import build_model
from interp.probes import irreps as pi
from interp.probes._common import logits_and_neuron_acts


def character_logits(task: Task, keys, scale=1.0) -> torch.Tensor:
    """(n_pairs, n): scale * sum over key rho of chi_rho(a b c^-1), the composition algorithm of Chughtai et al."""
    g = task.finite_group
    basis = irrep_basis(g)
    a, b = task.pairs().unbind(1)
    ab = torch.as_tensor(g.table)[a, b]  # (n_pairs,)
    c = torch.arange(g.order)
    abc = torch.as_tensor(g.table)[ab[:, None], torch.as_tensor(g.inverse)[c][None, :]]  # (n_pairs, n)
    out = torch.zeros(task.n_pairs, g.order, dtype=torch.float64)
    for k in keys:
        out += scale * torch.as_tensor(basis.irreps[basis.index(k)].character)[abc]
    return out


SCALE = 1.5


@pytest.mark.parametrize("op,keys", [("S4", ["3a"]), ("D5", ["2a"]), ("D5", ["2a", "2b"]), ("S5", ["4a", "6a"])])
def test_character_logits_measures_are_exact(op, keys):
    task = Task(op=op, p=finite_group(op).order, frac_train=0.4, seed=2)
    n = task.p
    L = character_logits(task, keys, scale=SCALE)
    full_all = probes.loss_and_accuracy(L, task, "all")
    r_loss, r_acc = pi.irrep_restricted(L, task, keys)
    assert r_loss == pytest.approx(full_all.loss, rel=1e-9) and r_acc == full_all.accuracy == 1.0
    # removing the key irreps leaves constant logits: a uniform guess
    assert pi.irrep_excluded(L, task, keys)[0] == pytest.approx(math.log(n), abs=1e-9)
    per = pi.IrrepDecomposition(L, task, keys).excluded_per_irrep()
    full_train = probes.loss_and_accuracy(L, task, "train").loss
    for k, loss in per.items():
        if len(keys) == 1:
            assert loss == pytest.approx(math.log(n), abs=1e-9)
        else:  # the other key irrep still works
            assert full_train < loss < math.log(n)
    coef, total = pi.character_coefficients(L, task)
    basis = irrep_basis(op)
    for name, value in coef.items():
        r = basis.irreps[basis.index(name)]
        want = SCALE * math.sqrt(n ** 3 * r.norm) if name in keys else 0.0  # <scale chi, unit chi>
        assert value == pytest.approx(want, abs=1e-8 * n ** 2)
    assert sum(coef[k] ** 2 for k in keys) / total == pytest.approx(1.0, abs=1e-12)


def planted_irrep_model(op="S4", irrep="3a", d_mlp=12):
    """A 1-layer model whose embedding, neurons and logit map live in one irrep rho.

    W_E[x] = vec(rho(x)) (d^2 features; '=' and W_pos 0); Q = K = 0, so the last position attends uniformly to
    [a, b, =]; V = O = identity, so the MLP reads (vec rho(a) + vec rho(b)) / 3. Each neuron reads a random
    direction plus a bias large enough that ReLU stays linear: its centred activation is in V x 1 + 1 x V.
    W_U[:, c] = vec(rho(c)): every W_L column lies in V_rho.
    """
    g = finite_group(op)
    basis = irrep_basis(g)
    rho = basis.irreps[basis.index(irrep)]
    d = rho.dim
    cfg = RunConfig(op=op, frac_train=0.5, d_model=d * d, n_heads=1, d_head=d * d, d_mlp=d_mlp, name="planted")
    model = build_model(cfg)
    gen = torch.Generator().manual_seed(3)
    feats = torch.as_tensor(rho.matrices.reshape(g.order, d * d))  # (n, d^2), entries in [-1, 1]
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        model.embed.W_E[: g.order].copy_(feats)
        model.blocks[0].attn.W_V.copy_(torch.eye(d * d)[None])
        model.blocks[0].attn.W_O.copy_(torch.eye(d * d)[None])
        W_in = torch.randn(d * d, d_mlp, generator=gen, dtype=torch.float64)
        model.blocks[0].mlp.W_in.copy_(W_in)
        model.blocks[0].mlp.b_in.fill_(float(W_in.abs().sum(0).max()) + 1.0)  # pre-activation > 0 everywhere
        model.blocks[0].mlp.W_out.copy_(torch.randn(d_mlp, d * d, generator=gen))
        model.unembed.W_U.copy_(feats.T)
    return model, Task.from_config(cfg)


@pytest.mark.parametrize("op,irrep", [("S4", "3a"), ("D5", "2b"), ("S3", "2a")])
def test_planted_irrep_model_measures_are_exact(op, irrep):
    model, task = planted_irrep_model(op, irrep)
    basis = irrep_basis(op)
    R = len(basis.irreps) - 1
    norms = pi.irrep_norms(model, task)
    r = basis.index(irrep)
    for name in ("W_E", "W_L"):
        others = torch.cat([norms[name][:r], norms[name][r + 1:]])
        assert float(others.abs().max()) < 1e-5 * float(norms[name][r])
    for rule in ("neurons", "embedding", "logits"):
        assert pi.key_irreps(model, task, rule) == [irrep]
    m = pi.measure_irreps(model, task, [irrep])
    assert m["gini_irrep_W_E"] == pytest.approx(1 - 1 / R, abs=1e-5)
    assert m["gini_irrep_W_L"] == pytest.approx(1 - 1 / R, abs=1e-5)
    assert m["frac_neurons_irrep"] == 1.0 and m["frac_neurons_key_irrep"] == 1.0
    shares, variance = pi.neuron_irrep_shares(logits_and_neuron_acts(model, task, "t")[1][task.composition_idx], basis)
    assert bool((variance > 0).all())
    assert torch.allclose(shares[:, r - 1], torch.ones(shares.shape[0], dtype=torch.float64), atol=1e-5)
    clusters = pi.irrep_neuron_clusters(model, task)
    assert set(clusters["irrep"]) == {irrep} and bool(clusters["clustered"].all())


def test_irrep_measures_raise_where_they_have_no_meaning():
    task = Task(op="a2+b2", p=7)
    with pytest.raises(ProbeError, match="not applicable.*irrep basis"):
        pi.irrep_restricted(torch.zeros(49, 7), task, ["k1"])
    task = Task(op="S3", p=6)
    with pytest.raises(ProbeError, match="not abelian"):
        probes.restricted(torch.zeros(36, 6), task, [1])
    with pytest.raises(ProbeError, match="trivial"):
        pi.irrep_restricted(torch.zeros(36, 6), task, ["trivial"])
    with pytest.raises(ProbeError, match="no irrep"):
        pi.irrep_restricted(torch.zeros(36, 6), task, ["5x"])


# ---- C_n: the irrep measures are the Fourier measures -----------------------------------------------------


def test_cyclic_irrep_measures_equal_the_shipped_fourier_measures(shipped_run_final):
    """On the shipped run's final checkpoint (add mod 113, read as C_113): restricted and excluded losses (also per
    frequency), the cos share, the neuron shares and the per-frequency Gini equal their Fourier versions."""
    model, task = shipped_run_final
    freqs = [int(k) for k in probes.load_measures("probes/nanda2023-p113-seed0").key_frequencies]
    keys = [f"k{k}" for k in freqs]
    L, acts = logits_and_neuron_acts(model, task, "t")
    d, di = probes.decompose(L, task, freqs), pi.IrrepDecomposition(L, task, keys)
    assert di.restricted("all") == pytest.approx(tuple(d.restricted("all")), rel=1e-9)
    assert di.excluded("train") == pytest.approx(tuple(d.excluded("train")), rel=1e-9)
    per = d.excluded_per_frequency()
    assert di.excluded_per_irrep() == pytest.approx({f"k{k}": v for k, v in per.items()}, rel=1e-9)
    coef, total = pi.character_coefficients(L, task)
    cos = probes.cos_coefficients(L, task, freqs)
    assert [coef[f"k{k}"] for k in range(1, 57)] == pytest.approx(cos.coefficients.tolist(), rel=1e-7, abs=1e-6)
    assert sum(coef[k] ** 2 for k in keys) / total == pytest.approx(cos.explained_fraction, rel=1e-9)
    fs, fv = probes.neuron_frequency_shares(acts.double(), 113)
    s, v = pi.neuron_irrep_shares(acts, irrep_basis("C113"))
    assert torch.allclose(s, fs, atol=1e-9) and torch.allclose(v, fv, rtol=1e-9)
    assert pi.key_irreps(acts, task) == keys
    fg = probes.fourier_gini(model, task, per_frequency=True)
    assert pi.irrep_gini(model, task) == pytest.approx(fg, rel=1e-9)


@pytest.fixture(scope="module")
def shipped_run_final():
    from interp.runs import Run

    run = Run("checkpoints/nanda2023-p113-seed0")
    return run.load(run.steps[-1]), run.task


@pytest.fixture(scope="module")
def cyclic_run(tmp_path_factory):
    from interp.train import train

    cfg = RunConfig(op="C11", frac_train=0.6, d_model=32, n_heads=2, d_head=16, d_mlp=64, lr=3e-3, n_steps=60,
                    save_every=30, eval_every=10, name="c11")
    return train(cfg, tmp_path_factory.mktemp("c11") / "run", progress=False)


def test_cyclic_group_op_run_has_equal_fourier_and_irrep_columns(cyclic_run):
    freqs = [1, 3]
    m = probes.measure_run(cyclic_run, key_freqs=freqs, key_irreps=["k1", "k3"], progress=False)
    df = m.df
    assert m.key_irreps == ["k1", "k3"]
    for fourier_col, irrep_col in [("restricted_loss", "irrep_restricted_loss"),
                                   ("excluded_loss", "irrep_excluded_loss"),
                                   ("excluded_loss_k3", "irrep_excluded_loss_k3"), ("cos_explained", "char_explained"),
                                   ("frac_neurons_clustered", "frac_neurons_irrep"),
                                   ("frac_neurons_key", "frac_neurons_key_irrep"), ("gini_W_E_freq", "gini_irrep_W_E"),
                                   ("gini_W_L_freq", "gini_irrep_W_L")]:
        assert np.allclose(df[fourier_col], df[irrep_col], rtol=1e-6, atol=1e-9), fourier_col
