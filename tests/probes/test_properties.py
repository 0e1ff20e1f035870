"""Property tests: the probes' invariants on random models with random p (hypothesis)."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interp import probes
from interp.config import RunConfig
from tests.helpers import perturbed_model

PRIMES = [5, 7, 11, 13, 17, 19, 23, 29]


def _random_model(p, seed, scale):
    cfg = RunConfig(p=p, frac_train=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=24, model_seed=seed, data_seed=seed)
    return perturbed_model(cfg, scale, seed)


@settings(max_examples=12, deadline=None)
@given(p=st.sampled_from(PRIMES), seed=st.integers(0, 10_000), scale=st.floats(0.01, 2.0),
       data=st.data())
def test_probe_invariants_on_random_models(p, seed, scale, data):
    model, task = _random_model(p, seed, scale)
    K = (p - 1) // 2
    freqs = sorted(data.draw(st.sets(st.integers(1, K), min_size=1, max_size=K)))
    with torch.no_grad():
        L = model(task.tokens())[:, -1].double()

    # Losses are cross-entropies: non-negative, and accuracy in [0, 1]; model and logits agree.
    loss, acc = probes.loss_and_accuracy(model, task, "all")
    assert loss >= 0 and 0 <= acc <= 1
    assert math.isclose(loss, probes.loss_and_accuracy(L, task, "all")[0], rel_tol=1e-5)

    # Removing every frequency's (a+b) part and keeping it are complementary: per-frequency removals of a
    # single key set equal the whole-set removal when the set has one element.
    k = freqs[0]
    assert math.isclose(probes.excluded(L, task, [k]).loss, probes.excluded_loss_per_frequency(L, task, [k])[k],
                        rel_tol=1e-9)

    # Gini of anything lies in [0, 1 - 1/N].
    for name, g in probes.fourier_gini(model).items():
        assert 0 <= g <= 1 - 1 / p + 1e-9, name
    for name, g in probes.fourier_gini(model, per_frequency=True).items():
        assert 0 <= g <= 1 - 1 / K + 1e-9, name

    # Parseval: the Fourier norms of W_E carry exactly its squared norm (orthonormal basis).
    norms = probes.fourier_norms(model)
    assert torch.allclose(norms["W_E"].double().pow(2).sum(), model.W_E[:p].double().pow(2).sum(), rtol=1e-5)

    # Neuron shares are fractions of variance that add up to at most 1 over frequencies.
    clusters = probes.neuron_clusters(model, task)
    assert clusters.frac_explained.between(0, 1 + 1e-6).all()
    assert set(probes.key_frequencies(model, task)) <= set(range(1, K + 1))

    # The explained fraction of the cos(w(a+b-c)) terms is a fraction and grows with the key set.
    part = probes.cos_coefficients(L, task, freqs).explained_fraction
    whole = probes.cos_coefficients(L, task, list(range(1, K + 1))).explained_fraction
    assert -1e-12 <= part <= whole + 1e-12 <= 1 + 1e-9

    # The per-tensor sum of squared weights adds up to the total.
    total = probes.sum_squared_weights(model)
    per = probes.sum_squared_weights(model, per_tensor=True)
    assert math.isclose(total, sum(per.values()), rel_tol=1e-9)
