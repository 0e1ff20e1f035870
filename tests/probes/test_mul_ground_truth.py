"""Multiplication and division measured in their own basis: ground truth built by hand in discrete-log coordinates.

Two constructions, as for addition (test_probes.py): logits that *are* the discrete-log Fourier algorithm,
sum_k cos(w_k (dlog a + dlog b - dlog c)) with w_k = 2 pi k / (p - 1), and a HookedTransformer whose neurons
are pure functions of planted frequencies of dlog a and dlog b. Every measure is known exactly; junk on the
pairs with a zero input must change the losses and nothing in the circuit measures.
"""

import math

import numpy as np
import pytest
import torch

from interp import probes
from interp.config import RunConfig
from interp.model import build_model
from interp.tasks import Task

P = 53  # Z_53*: cyclic of order 52, generator 2; 26 is the Nyquist frequency
N = P - 1


def dlog_table(task):
    g = task.group
    table = torch.full((task.p,), -1, dtype=torch.long)
    table[g.residue_index()] = torch.arange(g.order)
    return table


def dlog_fourier_logits(task, freqs, scale=1.0, junk=0.0):
    """(n_pairs, p): scale * sum_k cos(w_k (i + sign j - l)) for non-zero a, b, c (i, j, l their discrete logs);
    class 0 gets 0; the pairs with a zero input get seeded junk of size ``junk``."""
    g, n = task.group, task.group.order
    dl = dlog_table(task)
    a, b = task.pairs().unbind(1)
    i, j, c = dl[a], dl[b], dl[torch.arange(task.p)]
    d = (i + g.sign * j)[:, None] - c[None, :]
    L = scale * sum(torch.cos(2 * math.pi * k * d.double() / n) for k in freqs)
    L[:, 0] = 0.0
    outside = (a == 0) | (b == 0)
    gen = torch.Generator().manual_seed(0)
    L[outside] = junk * torch.randn(int(outside.sum()), task.p, generator=gen, dtype=torch.float64)
    return L


@pytest.mark.parametrize("op, freqs", [("mul", [3, 11]), ("mul", [5, 26]), ("div", [2, 9, 26])])
def test_discrete_log_algorithm_logits_are_all_circuit(op, freqs):
    task = Task(op=op, p=P, frac_train=0.4, seed=2)
    assert task.group.generator == 2 and task.group.order == N
    scale = 12.0 / len(freqs)
    L = dlog_fourier_logits(task, freqs, scale=scale, junk=5.0)
    inside = task.circuit_idx
    labels = task.labels()
    for split in ("all", "train", "test"):
        r = probes.restricted(L, task, freqs, split)
        pos = inside[task.circuit_split(split)]
        want = float(torch.nn.functional.cross_entropy(L[pos], labels[pos]))
        assert r.loss == pytest.approx(want, rel=1e-9) and r.accuracy == 1.0
    # removing the key directions leaves zero logits on every pair in the group: exactly chance over p classes
    assert probes.excluded(L, task, freqs).loss == pytest.approx(math.log(P), abs=1e-9)
    per_k = probes.excluded_loss_per_frequency(L, task, freqs)
    assert sorted(per_k) == sorted(freqs)
    cos = probes.cos_coefficients(L, task, freqs)
    assert cos.explained_fraction == pytest.approx(1.0, abs=1e-12)
    assert len(cos.coefficients) == N // 2
    for k in range(1, N // 2 + 1):
        unit = math.sqrt(N ** 3) if k == N // 2 else math.sqrt(N ** 3 / 2)  # norm of cos(w_k(s - c)) on the cube
        want = scale * unit if k in freqs else 0.0
        assert float(cos.coefficients[k - 1]) == pytest.approx(want, abs=1e-8 * unit)


def test_pairs_with_a_zero_input_change_the_losses_but_no_circuit_measure():
    task = Task(op="mul", p=P, frac_train=0.4, seed=2)
    clean, noisy = dlog_fourier_logits(task, [3, 11], 6.0), dlog_fourier_logits(task, [3, 11], 6.0, junk=50.0)
    assert probes.loss_and_accuracy(clean, task).loss != pytest.approx(probes.loss_and_accuracy(noisy, task).loss)
    for fn in (probes.restricted, probes.excluded):
        assert fn(clean, task, [3, 11]) == fn(noisy, task, [3, 11])
    assert probes.cos_coefficients(clean, task).explained_fraction == \
        probes.cos_coefficients(noisy, task).explained_fraction


PLANTED = [4, 13, 26]  # 26: the Nyquist frequency of Z_52, a single direction cos(pi i)
PER_FREQ = 5
N_MIXED = 3


def planted_mul_model():
    """A 1-layer model whose neurons are pure functions of planted frequencies of the discrete logs.

    W_E[x] = (cos w_k dlog x, sin w_k dlog x) per planted k for x != 0, W_E[0] = W_E['='] = 0; uniform attention
    (Q = K = 0), V = O = identity: the MLP sees (e(a) + e(b)) / 3. Neuron n of frequency k with phase phi reads
    A (cos(w_k i + phi) + cos(w_k j + phi)) + 5A > 0 (ReLU is linear there), so on the pairs in the group its
    activation lies in the block {const, cos k, sin k}^2 exactly. W_U[:, c] = (cos w_k dlog c, sin w_k dlog c).
    """
    p, n = P, N
    d_model = 2 * len(PLANTED) + 2
    cfg = RunConfig(op="mul", p=p, frac_train=0.5, d_model=d_model, n_heads=1, d_head=d_model,
                    d_mlp=PER_FREQ * len(PLANTED) + N_MIXED, name="planted-mul")
    model, task = build_model(cfg), Task.from_config(cfg)
    dl = dlog_table(task)
    g = torch.Generator().manual_seed(1)
    A = 2.0
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        W_E = torch.zeros(p + 1, d_model, dtype=torch.float64)
        W_in = torch.zeros(d_model, cfg.d_mlp, dtype=torch.float64)
        W_out = torch.zeros(cfg.d_mlp, d_model, dtype=torch.float64)
        W_U = torch.zeros(d_model, p, dtype=torch.float64)
        x = dl[1:].double()  # discrete logs of residues 1..p-1
        for q, k in enumerate(PLANTED):
            w = 2 * math.pi * k / n
            W_E[1:p, 2 * q], W_E[1:p, 2 * q + 1] = torch.cos(w * x), torch.sin(w * x)
            W_U[2 * q, 1:], W_U[2 * q + 1, 1:] = torch.cos(w * x), torch.sin(w * x)
            for m in range(q * PER_FREQ, (q + 1) * PER_FREQ):
                phi = float(torch.rand((), generator=g)) * 2 * math.pi
                W_in[2 * q, m], W_in[2 * q + 1, m] = 3 * A * math.cos(phi), -3 * A * math.sin(phi)
                W_out[m, 2 * q], W_out[m, 2 * q + 1] = math.cos(phi), math.sin(phi)
        for m in range(N_MIXED):  # reads planted frequencies 0 and 1 equally: unclustered
            W_in[0, PER_FREQ * len(PLANTED) + m] = W_in[2, PER_FREQ * len(PLANTED) + m] = 3 * A
        model.embed.W_E.copy_(W_E)
        model.blocks[0].attn.W_V.copy_(torch.eye(d_model)[None])
        model.blocks[0].attn.W_O.copy_(torch.eye(d_model)[None])
        model.blocks[0].mlp.W_in.copy_(W_in)
        model.blocks[0].mlp.b_in.fill_(5 * A)
        model.blocks[0].mlp.W_out.copy_(W_out)
        model.unembed.W_U.copy_(W_U)
    return model, task


def test_planted_mul_model_every_measure_exact():
    model, task = planted_mul_model()
    for rule in ("neurons", "embedding", "logits"):
        assert probes.key_frequencies(model, task, rule=rule) == PLANTED
    clusters = probes.neuron_clusters(model, task)
    for q, k in enumerate(PLANTED):
        rows = clusters.iloc[q * PER_FREQ:(q + 1) * PER_FREQ]
        assert (rows.frequency == k).all() and np.allclose(rows.frac_explained, 1.0, atol=1e-5)
    mixed = clusters.iloc[PER_FREQ * len(PLANTED):]
    assert not mixed.clustered.any() and np.allclose(mixed.frac_explained, 0.5, atol=1e-5)
    # W_E: non-zero components exactly on the planted rows, 2 per frequency and 1 (cos(pi i)) for Nyquist, of
    # norm sqrt(n/2) each (sqrt(n) for Nyquist, whose sine column is zero)
    norms = probes.fourier_norms(model, task)
    assert norms["W_E"].shape == norms["W_L"].shape == (N,)
    want = torch.zeros(N, dtype=torch.float64)
    for k in PLANTED:
        if k == N // 2:
            want[N - 1] = math.sqrt(N)
        else:
            want[2 * k - 1] = want[2 * k] = math.sqrt(N / 2)
    assert torch.allclose(norms["W_E"], want, atol=1e-4)
    gini = probes.fourier_gini(model, task)
    assert gini["W_E"] == pytest.approx(probes.gini(want), abs=1e-5)
    assert probes.gini(want) > 0.9
    m = probes.measure_model(model, task, PLANTED)
    assert m["frac_neurons_clustered"] == pytest.approx(PER_FREQ * len(PLANTED) / model.cfg.d_mlp)
    assert m["frac_neurons_key"] == pytest.approx(PER_FREQ * len(PLANTED) / model.cfg.d_mlp)
    assert m["gini_W_E"] == pytest.approx(gini["W_E"])
    # the same model read in Z_p, as addition (the old behaviour), sees no structure at all
    as_add = Task(op="add", p=P, frac_train=0.5)
    assert probes.fourier_gini(model, as_add)["W_E"] < 0.3
    assert probes.key_frequencies(model, as_add) == []
