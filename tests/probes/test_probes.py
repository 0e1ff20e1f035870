"""interp.probes: every progress measure against ground truth built by hand.

Ground truths: logits that *are* the Fourier algorithm (sum of cos(w_k(a+b-c))), a HookedTransformer whose
weights are set so that each MLP neuron is a pure function of one planted frequency, brute-force versions of
the cheap formulas on tiny p, and the training run's own metrics.csv.
"""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interp import fourier, probes
from interp.config import RunConfig, preset
from interp.errors import ConfigError, ProbeError, RunFormatError
from interp.model import build_model
from interp.tasks import Task
from tests.helpers import fourier_logits, perturbed_model

# ---- helpers -------------------------------------------------------------------------------------


PLANTED_P = 31
PLANTED = [3, 7, 11]
PER_FREQ = 6  # neurons per planted frequency
N_MIXED = 4  # neurons that read two frequencies equally (share 0.5 each: unclustered)


def planted_model():
    """A 1-layer HookedTransformer whose MLP neurons are pure functions of planted frequencies.

    W_E[x] = (cos w_k x, sin w_k x) for each planted k; W_pos = 0 and the '=' embedding is 0; Q = K = 0 so the
    last position attends uniformly to [a, b, =]; V = O = identity, so the MLP sees (e(a) + e(b)) / 3.
    Neuron i of frequency k with phase phi reads A (cos(w_k a + phi) + cos(w_k b + phi)) + 5A > 0, so ReLU
    passes it unchanged: hook_post lies in the block {const, cos k, sin k}^2 exactly.
    W_out @ W_U maps each neuron to cos/sin(w_k c) of its own frequency.
    """
    p, d_model = PLANTED_P, 2 * len(PLANTED) + 2
    cfg = RunConfig(p=p, frac_train=0.5, d_model=d_model, n_heads=1, d_head=d_model,
                    d_mlp=PER_FREQ * len(PLANTED) + N_MIXED, name="planted")
    model = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.arange(p, dtype=torch.float64)
    A = 2.0
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        W_E = torch.zeros(p + 1, d_model, dtype=torch.float64)
        W_in = torch.zeros(d_model, cfg.d_mlp, dtype=torch.float64)
        W_out = torch.zeros(cfg.d_mlp, d_model, dtype=torch.float64)
        W_U = torch.zeros(d_model, p, dtype=torch.float64)
        for j, k in enumerate(PLANTED):
            w = 2 * math.pi * k / p
            W_E[:p, 2 * j], W_E[:p, 2 * j + 1] = torch.cos(w * x), torch.sin(w * x)
            W_U[2 * j], W_U[2 * j + 1] = torch.cos(w * x), torch.sin(w * x)
            for n in range(j * PER_FREQ, (j + 1) * PER_FREQ):
                phi = float(torch.rand((), generator=g)) * 2 * math.pi
                W_in[2 * j, n], W_in[2 * j + 1, n] = 3 * A * math.cos(phi), -3 * A * math.sin(phi)
                W_out[n, 2 * j], W_out[n, 2 * j + 1] = math.cos(phi), math.sin(phi)
        for m in range(N_MIXED):  # reads frequency 0 and 1 with equal weight
            n = PER_FREQ * len(PLANTED) + m
            W_in[0, n], W_in[2, n] = 3 * A, 3 * A
        model.embed.W_E.copy_(W_E)
        model.blocks[0].attn.W_V.copy_(torch.eye(d_model)[None])
        model.blocks[0].attn.W_O.copy_(torch.eye(d_model)[None])
        model.blocks[0].mlp.W_in.copy_(W_in)
        model.blocks[0].mlp.b_in.fill_(5 * A)  # read-outs are >= -2A (>= -4A for mixed neurons): ReLU is linear here
        model.blocks[0].mlp.W_out.copy_(W_out)
        model.unembed.W_U.copy_(W_U)
    return model, Task(p=p, frac_train=0.5, seed=0)


# ---- Gini ------------------------------------------------------------------------------------------


def _gini_direct(c):
    """Mean absolute difference over twice the mean: O(N^2), independent of the sorted formula."""
    c = np.asarray(c, dtype=np.float64)
    return float(np.abs(c[:, None] - c[None, :]).sum() / (2 * len(c) ** 2 * c.mean()))


@pytest.mark.parametrize("n", [1, 2, 5, 56, 113])
def test_gini_uniform_is_zero_and_one_hot_is_one_minus_one_over_n(n):
    assert probes.gini(np.full(n, 3.7)) == pytest.approx(0, abs=1e-12)
    one_hot = np.zeros(n)
    one_hot[n // 2] = 2.0
    assert probes.gini(one_hot) == pytest.approx(1 - 1 / n, abs=1e-12)
    assert probes.gini(torch.zeros(n)) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=60).filter(lambda v: sum(v) > 1e-6),
       st.floats(1e-3, 1e3))
def test_gini_agrees_with_the_direct_formula_and_is_scale_invariant(values, scale):
    g = probes.gini(values)
    assert g == pytest.approx(_gini_direct(values), abs=1e-9)
    assert probes.gini(np.asarray(values) * scale) == pytest.approx(g, abs=1e-9)
    assert 0 <= g <= 1 - 1 / len(values) + 1e-12


def test_gini_rejects_bad_input():
    with pytest.raises(ProbeError, match="non-negative"):
        probes.gini([1.0, -0.5])
    with pytest.raises(ProbeError, match="1-D"):
        probes.gini(np.ones((2, 2)))
    with pytest.raises(ProbeError, match="finite"):
        probes.gini([1.0, float("nan")])


# ---- the exact Fourier algorithm as logits -------------------------------------------------------


@pytest.mark.parametrize("p,freqs", [(23, [2, 5]), (31, [3, 7, 11]), (53, [4, 17, 25, 26])])
def test_algorithm_logits_restricted_equals_full_and_excluded_is_chance(p, freqs):
    task = Task(p=p, frac_train=0.3, seed=1)
    L = fourier_logits(task, freqs, scale=20.0 / len(freqs))
    for split in ("all", "train", "test"):
        full = probes.loss_and_accuracy(L, task, split)
        assert probes.restricted(L, task, freqs, split).loss == pytest.approx(full[0], rel=1e-9, abs=1e-12)
        assert probes.restricted(L, task, freqs, split).accuracy == full[1] == 1.0
    # the key directions are everything: removing them leaves constant logits, i.e. a uniform guess
    assert probes.excluded(L, task, freqs).loss == pytest.approx(math.log(p), abs=1e-9)
    assert probes.excluded(L, task, freqs, split="test").loss == pytest.approx(math.log(p), abs=1e-9)
    # removing one frequency leaves the others working: far better than chance, worse than the full model
    per_k = probes.excluded_loss_per_frequency(L, task, freqs)
    assert sorted(per_k) == sorted(freqs)
    full_train = probes.loss_and_accuracy(L, task, "train")[0]
    for loss in per_k.values():
        assert full_train < loss < math.log(p)
    cos = probes.cos_coefficients(L, task, freqs)
    assert cos.explained_fraction == pytest.approx(1.0, abs=1e-12)
    assert cos.explained_fraction_all == pytest.approx(1.0, abs=1e-12)
    unit_norm = math.sqrt(p ** 3 / 2)  # the coefficient on unit cos(w(a+b-c)) of scale * cos(...)
    for k in range(1, (p - 1) // 2 + 1):
        want = 20.0 / len(freqs) * unit_norm if k in freqs else 0.0
        assert float(cos.coefficients[k - 1]) == pytest.approx(want, abs=1e-8 * unit_norm)


def test_decomposition_is_the_orthogonal_projection_onto_the_key_directions():
    """P_S is checked against an explicit basis: restricted logits lie in span{const, c_k, s_k : k in S}, the
    excluded logits are orthogonal to every c_k, s_k of S (and keep the rest of L), and P_S is idempotent."""
    p, freqs = 23, [1, 4, 9]
    task = Task(p=p, seed=2)
    L = torch.randn(p * p, p, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d = probes.Decomposition(L, task, freqs)
    a, b = task.pairs().double().unbind(1)
    basis = [torch.ones(p * p, dtype=torch.float64)]
    for k in freqs:
        w = 2 * math.pi * k / p
        basis += [torch.cos(w * (a + b)), torch.sin(w * (a + b))]
    B = torch.linalg.qr(torch.stack(basis, 1)).Q  # (p*p, 1 + 2|S|), orthonormal
    want_restricted = B @ (B.T @ L)  # projection onto const + key directions
    assert torch.allclose(d.restricted_logits, want_restricted, atol=1e-10)
    assert torch.allclose(B[:, 1:].T @ d.excluded_logits, torch.zeros(2 * len(freqs), p, dtype=torch.float64),
                          atol=1e-10)
    other = torch.cos(2 * math.pi * 5 * (a + b) / p)  # a non-key direction passes through untouched
    assert torch.allclose(other @ d.excluded_logits, other @ L, atol=1e-9)
    assert torch.allclose(fourier.project_onto_frequencies(d.projected, freqs), d.projected, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_cos_coefficients_match_the_brute_force_cube(seed):
    p = 11
    task = Task(p=p, seed=0)
    g = torch.Generator().manual_seed(seed)
    L = torch.randn(p * p, p, dtype=torch.float64, generator=g) + fourier_logits(task, [2, 4], 3.0)
    a, b = task.pairs().unbind(1)
    d = ((a + b)[:, None] - torch.arange(p)[None, :]).double()
    centred = L - L.mean(1, keepdim=True)
    coef = []
    for k in range(1, (p - 1) // 2 + 1):
        u = torch.cos(2 * math.pi * k * d / p)
        u = u / u.norm()  # unit-norm on the (p*p, p) cube
        coef.append(float((L * u).sum()))
    got = probes.cos_coefficients(L, task, [2, 4])
    assert torch.allclose(got.coefficients, torch.tensor(coef, dtype=torch.float64), atol=1e-10)
    assert got.explained_fraction == pytest.approx((coef[1] ** 2 + coef[3] ** 2) / float(centred.square().sum()))
    assert got.centred_norm_sq == pytest.approx(float(centred.square().sum()))


def test_restricted_loss_matches_a_2d_fourier_reference():
    """The public notebook's way: 2-D transform, keep the (a+b) components of the key frequencies, invert."""
    p, freqs = 13, [2, 5]
    task = Task(p=p, seed=0)
    L = torch.randn(p * p, p, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 3
    F = fourier.fourier_basis(p)
    X = fourier.fft2d(L).reshape(p, p, p)  # (basis a, basis b, class)
    kept = torch.zeros_like(X)
    for k in freqs:
        c, s = 2 * k - 1, 2 * k
        cos_part = (X[c, c] - X[s, s]) / 2  # coefficient along (cc - ss)/sqrt(2), divided by sqrt(2) again
        sin_part = (X[s, c] + X[c, s]) / 2
        kept[c, c] += cos_part
        kept[s, s] -= cos_part
        kept[s, c] += sin_part
        kept[c, s] += sin_part
    restricted = torch.einsum("ia,jb,ijn->abn", F, F, kept).reshape(p * p, p) + L.mean(0, keepdim=True)
    labels = task.labels()
    ref = float(torch.nn.functional.cross_entropy(restricted, labels))
    assert probes.restricted(L, task, freqs).loss == pytest.approx(ref, rel=1e-10)


# ---- a model with planted frequencies ---------------------------------------------------------------


def test_planted_frequencies_are_recovered_by_every_rule():
    model, task = planted_model()
    assert probes.key_frequencies(model, task) == PLANTED
    assert probes.key_frequencies(model, task, rule="embedding") == PLANTED
    assert probes.key_frequencies(model, task, rule="logits") == PLANTED
    clusters = probes.neuron_clusters(model, task)
    assert list(clusters.columns[:4]) == ["neuron", "frequency", "frac_explained", "clustered"]
    assert len(clusters) == model.cfg.d_mlp
    for j, k in enumerate(PLANTED):
        rows = clusters.iloc[j * PER_FREQ:(j + 1) * PER_FREQ]
        assert (rows.frequency == k).all() and rows.clustered.all()
        assert np.allclose(rows.frac_explained, 1.0, atol=1e-5)  # float32 activations
    mixed = clusters.iloc[PER_FREQ * len(PLANTED):]
    assert not mixed.clustered.any() and np.allclose(mixed.frac_explained, 0.5, atol=1e-5)
    assert probes.key_frequencies(model, task, threshold=0.4) == PLANTED  # mixed neurons add nothing new


def test_neuron_shares_of_hand_made_activations():
    p = 23
    task = Task(p=p)
    a, b = task.pairs().unbind(1)
    w = 2 * math.pi / p
    acts = torch.stack([
        torch.cos(w * 5 * (a + b)) + 0.3 * torch.sin(w * 5 * a),  # all in the block of k = 5
        torch.full((p * p,), 2.5),  # constant: dead
        torch.cos(w * 2 * a) + torch.cos(w * 9 * b),  # half k = 2, half k = 9
        torch.cos(w * 4 * a) ** 2,  # cos^2 = (1 + cos 2x) / 2: all at k = 8
    ], 1).float()
    shares, variance = probes.neuron_frequency_shares(acts, p)
    assert shares.shape == (4, (p - 1) // 2)
    assert shares[0, 4] == pytest.approx(1, abs=1e-5) and shares[0].sum() == pytest.approx(1, abs=1e-5)
    assert variance[1] == 0 and shares[1].abs().max() == 0
    assert shares[2, 1] == pytest.approx(0.5, abs=1e-5) and shares[2, 8] == pytest.approx(0.5, abs=1e-5)
    assert shares[3, 7] == pytest.approx(1, abs=1e-5)
    clusters = probes.neuron_clusters(acts, task)
    assert clusters.frequency.tolist()[0::3] == [5, 8] and clusters.clustered.tolist() == [True, False, False, True]
    assert probes.key_frequencies(acts, task) == [5, 8]


def test_planted_model_fourier_norms_and_gini():
    model, task = planted_model()
    p = task.p
    norms = probes.fourier_norms(model)
    assert norms["W_E"].shape == norms["W_L"].shape == (p,)
    # Parseval: the transform keeps the Frobenius norm
    assert float(norms["W_E"].square().sum()) == pytest.approx(float(model.W_E[:p].detach().double().square().sum()))
    per_k = probes.fourier_norms(model, per_frequency=True)
    assert per_k["W_E"].shape == ((p - 1) // 2,)
    assert set(torch.nonzero(per_k["W_E"] > 1e-6).flatten().add(1).tolist()) == set(PLANTED)
    # 2|S| equal non-zero norms out of p: Gini = 1 - 2|S|/p; per frequency: 1 - |S|/((p-1)/2)
    gini = probes.fourier_gini(model)
    assert gini["W_E"] == pytest.approx(1 - 2 * len(PLANTED) / p, abs=1e-6)
    assert probes.fourier_gini(model, per_frequency=True)["W_E"] == pytest.approx(
        1 - len(PLANTED) / ((p - 1) // 2), abs=1e-6)


def test_random_init_has_no_key_frequency_and_low_gini():
    cfg = preset("small")
    model, task = build_model(cfg), Task.from_config(cfg)
    clusters = probes.neuron_clusters(model, task)
    assert clusters.frac_explained.max() < 0.5
    assert probes.key_frequencies(model, task) == []
    gini = probes.fourier_gini(model)
    assert gini["W_E"] < 0.15 and gini["W_L"] < 0.15
    with pytest.raises(ProbeError, match="empty key-frequency set"):
        probes.restricted(model, task, probes.key_frequencies(model, task)).loss
    with pytest.raises(ProbeError, match="empty key-frequency set"):
        probes.measure_model(model, task, [])


def test_sum_squared_weights_counts_trainable_parameters_only():
    cfg = preset("tiny")
    model = build_model(cfg)
    with torch.no_grad():
        model.unembed.b_U.fill_(5.0)  # frozen: must not count
    total = probes.sum_squared_weights(model)
    by_tensor = probes.sum_squared_weights(model, per_tensor=True)
    assert "unembed.b_U" not in by_tensor and "blocks.0.mlp.b_in" in by_tensor
    manual = sum(float(p.detach().double().square().sum()) for p in model.parameters() if p.requires_grad)
    assert total == pytest.approx(manual) == pytest.approx(sum(by_tensor.values()))


# ---- one model, every measure ------------------------------------------------------------------------


def test_measure_model_equals_the_single_functions():
    cfg = preset("tiny")
    model, task = perturbed_model(cfg)
    freqs = [2, 5, 9]
    m = probes.measure_model(model, task, freqs)
    tol = dict(rel=1e-5, abs=1e-7)
    for split in ("train", "test"):
        loss, acc = probes.loss_and_accuracy(model, task, split)
        assert m[f"{split}_loss"] == pytest.approx(loss, **tol) and m[f"{split}_acc"] == pytest.approx(acc)
    assert m["restricted_loss"] == pytest.approx(probes.restricted(model, task, freqs).loss, **tol)
    assert m["restricted_acc"] == pytest.approx(probes.restricted(model, task, freqs).accuracy)
    assert m["excluded_loss"] == pytest.approx(probes.excluded(model, task, freqs).loss, **tol)
    assert m["excluded_acc"] == pytest.approx(probes.excluded(model, task, freqs).accuracy)
    for k, v in probes.excluded_loss_per_frequency(model, task, freqs).items():
        assert m[f"excluded_loss_k{k}"] == pytest.approx(v, **tol)
    gini = probes.fourier_gini(model)
    assert m["gini_W_E"] == pytest.approx(gini["W_E"]) and m["gini_W_L"] == pytest.approx(gini["W_L"])
    assert m["sum_sq_weights"] == pytest.approx(probes.sum_squared_weights(model))
    assert m["cos_explained"] == pytest.approx(probes.cos_coefficients(model, task, freqs).explained_fraction, **tol)
    assert m["test_over_restricted"] == pytest.approx(m["test_loss"] / m["restricted_loss"])
    # the logits a model gives and the same logits passed in agree
    with torch.no_grad():
        L = model(task.tokens())[:, -1]
    assert probes.restricted(L, task, freqs).loss == pytest.approx(m["restricted_loss"], **tol)


def test_measure_model_counts_planted_neurons_on_key_frequencies():
    model, task = planted_model()
    assert probes.measure_model(model, task, PLANTED)["frac_neurons_key"] == pytest.approx(
        PER_FREQ * len(PLANTED) / model.cfg.d_mlp)
    assert probes.measure_model(model, task, [3])["frac_neurons_key"] == pytest.approx(PER_FREQ / model.cfg.d_mlp)


def test_bad_input_raises_probe_errors():
    cfg = preset("tiny")
    model, task = build_model(cfg), Task.from_config(cfg)
    with pytest.raises(ConfigError, match="split must be one of \\['all', 'train', 'test'\\], got 'val'"):
        probes.restricted(model, task, [1], split="val").loss
    with pytest.raises(ConfigError, match="split"):
        probes.loss_and_accuracy(model, task, "validation")
    with pytest.raises(ProbeError, match="empty key-frequency set"):
        probes.excluded(model, task, []).loss
    with pytest.raises(ProbeError, match=r"\[12\] out of range"):
        probes.excluded(model, task, [3, 12]).loss
    with pytest.raises(ProbeError, match="rule must be one of"):
        probes.key_frequencies(model, task, rule="attention")
    with pytest.raises(ProbeError, match="threshold"):
        probes.key_frequencies(model, task, threshold=1.5)
    with pytest.raises(ProbeError, match=r"\(529, 23\)"):
        probes.restricted(torch.zeros(10, 23), task, [1]).loss
    with pytest.raises(ProbeError, match="predicts d_vocab_out=23 classes but the task add mod 31"):
        probes.loss_and_accuracy(model, Task(p=31), "all")
    with pytest.raises(ProbeError, match=r"restricted: not applicable to task 'a2\+b2'"):
        probes.restricted(torch.zeros(23 * 23, 23), Task(op="a2+b2", p=23), [1])


# ---- a real run --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured(probe_run):
    # 400 steps of `small` have memorised but not grokked: no neuron reaches 0.85 yet, so the key set is
    # found with a lower threshold (still once, from the final checkpoint).
    return probes.measure_run(probe_run, threshold=0.5, progress=False)


def test_measure_run_has_one_row_per_checkpoint_and_fixed_key_frequencies(probe_run, measured):
    df = measured.df
    assert df["step"].tolist() == probe_run.steps
    final = probe_run.load(probe_run.final_step)
    keys = probes.key_frequencies(final, probe_run.task, threshold=0.5)
    assert keys and measured.key_frequencies == keys
    required = ["step", "train_loss", "test_loss", "train_acc", "test_acc", "restricted_loss", "excluded_loss",
                "gini_W_E", "gini_W_L", "sum_sq_weights", "restricted_acc", "excluded_acc", "test_over_restricted"]
    assert set(required + [f"excluded_loss_k{k}" for k in keys]) <= set(df.columns)
    assert df[required].notna().all().all()
    proto = measured.protocol
    assert proto["key_frequencies"]["rule"] == "neurons" and proto["key_frequencies"]["threshold"] == 0.5
    assert proto["restricted_loss"]["split"] == "all" and proto["excluded_loss"]["split"] == "train"
    assert "cos-first" in proto["fourier_order"]
    # the recomputed train and test losses are the ones training logged (same split, same float64 loss)
    metrics = probe_run.metrics.set_index("step")
    for _, row in df.iterrows():
        logged = metrics.loc[int(row.step)]
        assert row.train_loss == pytest.approx(logged.train_loss, rel=1e-4, abs=1e-7)
        assert row.test_loss == pytest.approx(logged.test_loss, rel=1e-4, abs=1e-7)


def test_measure_run_rows_equal_the_single_model_functions(probe_run, measured):
    keys, task = measured.key_frequencies, probe_run.task
    for step in (probe_run.steps[1], probe_run.final_step):
        row = measured.df.set_index("step").loc[step]
        model = probe_run.load(step)
        tol = dict(rel=1e-5, abs=1e-7)
        assert row.restricted_loss == pytest.approx(probes.restricted(model, task, keys).loss, **tol)
        assert row.excluded_loss == pytest.approx(probes.excluded(model, task, keys).loss, **tol)
        assert row.test_loss == pytest.approx(probes.loss_and_accuracy(model, task, "test")[0], **tol)
        assert row.gini_W_E == pytest.approx(probes.fourier_gini(model)["W_E"])
        assert row.sum_sq_weights == pytest.approx(probes.sum_squared_weights(model))
        for k in keys:
            assert row[f"excluded_loss_k{k}"] == pytest.approx(
                probes.excluded_loss_per_frequency(model, task, keys)[k], **tol)


def test_measure_run_with_an_empty_key_set_fills_nan(probe_run):
    m = probes.measure_run(probe_run, steps=probe_run.steps[-2:], progress=False)  # 0.85: none yet
    df = m.df
    assert m.key_frequencies == [] and len(df) == 2
    assert df["restricted_loss"].isna().all() and df["test_loss"].notna().all()
    with pytest.raises(ProbeError, match="steps \\[7\\] have no checkpoint"):
        probes.measure_run(probe_run, steps=[0, 7], progress=False)
    with pytest.raises(ProbeError, match="key_freqs is empty"):
        probes.measure_run(probe_run, key_freqs=[], progress=False)


def test_save_and_load_measures_round_trip(probe_run, measured, tmp_path):
    out = tmp_path / "probes" / probe_run.name
    probes.save_measures(measured, out)
    # the pair, and the marker that says interp wrote this directory (so a later `interp measure` may replace it)
    assert sorted(f.name for f in out.iterdir()) == [".interp-measures", "measures.csv", "measures.json"]
    meta = json.loads((out / "measures.json").read_text())
    assert meta["key_frequencies"] == measured.key_frequencies
    assert meta["rule"] == "neurons" and meta["threshold"] == 0.5 and meta["key_frequency_step"] == 400
    assert meta["run"]["name"] == probe_run.name and meta["steps"] == probe_run.steps
    assert meta["run"]["run_id"] == probe_run.run_id and meta["run"]["finished"] is True
    back = probes.load_measures(out)
    assert back.key_frequencies == measured.key_frequencies and back.protocol == measured.protocol
    assert back.belongs_to(probe_run)
    assert list(back.df.columns) == list(measured.df.columns)
    assert np.array_equal(back.df.to_numpy(), measured.df.to_numpy(), equal_nan=True)  # CSV floats round-trip exactly
    (out / "measures.json").write_text("{nope")
    with pytest.raises(RunFormatError, match="measures.json: malformed JSON"):
        probes.load_measures(out)
    with pytest.raises(RunFormatError, match="measures.csv: file not found"):
        probes.load_measures(tmp_path)


# ---- the top-k rule and the causal columns ---------------------------------------------------------


def test_top_frequencies_recovers_the_planted_frequencies_and_always_returns_k():
    model, task = planted_model()
    assert probes.top_frequencies(model, task, k=3) == PLANTED
    # one frequency fewer: the planted ones hold equal neuron variance, so the tie goes to the lower ones
    assert probes.top_frequencies(model, task, k=2) == PLANTED[:2]
    five = probes.top_frequencies(model, task, k=5)
    assert len(five) == 5 and set(PLANTED) <= set(five)
    for bad in (0, 16, 2.5, True):
        with pytest.raises(ProbeError, match="k must be an integer in 1..15"):
            probes.top_frequencies(model, task, k=bad)


def test_fallback_and_causal_columns(probe_run):
    steps = probe_run.steps[-2:]
    m = probes.measure_run(probe_run, steps=steps, progress=False, fallback_top_k=4, causal_top_k=4)
    final = probe_run.load(steps[-1])
    assert probes.key_frequencies(final, probe_run.task) == []  # the paper's rule finds none: the fallback is used
    top_final = probes.top_frequencies(final, probe_run.task, 4)
    assert m.key_frequencies == top_final and m.rule == "top4"
    assert "top-4 rule" in m.protocol["key_frequencies"]["source"]
    df = m.df.set_index("step")
    assert df["restricted_loss"].notna().all()
    for step in steps:  # the causal columns use the keys of their own checkpoint, never the final one
        model = probe_run.load(step)
        keys = probes.top_frequencies(model, probe_run.task, 4)
        assert df.loc[step, "restricted_loss_causal"] == pytest.approx(
            probes.restricted(model, probe_run.task, keys).loss, rel=1e-9)
        assert df.loc[step, "excluded_loss_causal"] == pytest.approx(
            probes.excluded(model, probe_run.task, keys).loss, rel=1e-9)
    assert df.loc[steps[-1], "restricted_loss_causal"] == pytest.approx(df.loc[steps[-1], "restricted_loss"])
    with pytest.raises(ProbeError, match="causal_top_k must be None or an integer"):
        probes.measure_run(probe_run, steps=steps, progress=False, causal_top_k=0)
