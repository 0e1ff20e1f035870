"""Ground truth for the mechanism views: a hand-set model that implements known Fourier features.

The model (p = 13, key frequencies 2 and 5) is built weight by weight so that every array the
views draw has a closed form:

* W_E row x = [A1 cos(w1 x), A1 sin(w1 x), A2 cos(w2 x), A2 sin(w2 x), 0]; '=' = e_eq (dim 4); W_pos = 0.
* head 0 reads e_eq as its query and cos(w1 x) as its key, so from '=' its scores are
  beta cos(w1 a) / sqrt(d_head), beta cos(w1 b) / sqrt(d_head) and 0; it writes nothing.
* head 1 has zero queries (uniform attention, 1/3 each) and copies the four Fourier dims, so the
  residual at '=' is e_eq + (f(a) + f(b)) / 3.
* neuron 0 reads cos w1, neuron 1 sin w2, neuron 2 cos w2 (biases keep them above 0, so ReLU is
  the identity there); neuron 3 is dead. W_out sends each neuron to the dim it read, and W_U maps
  the Fourier dims to cos/sin(w_k c), so W_L = W_out W_U has rows cos(w1 c), sin(w2 c), cos(w2 c).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.errors import ConfigError
from interp.viz.mechanism import (
    all_inputs,
    attention_grid,
    neuron_frequencies,
    neuron_grids,
    representative_neurons,
    spectra_over_time,
)

P, K1, K2, BETA, D_HEAD = 13, 2, 5, 3.0, 4

pytestmark = pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")


def fourier_model(amps=(1.0, 2.0), freqs=(K1, K2), p=P):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=5, n_heads=2, d_head=D_HEAD, d_mlp=4, d_vocab=p + 1,
                                  d_vocab_out=p, n_ctx=3, act_fn="relu", normalization_type=None, seed=0)
    model = HookedTransformer(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    x = torch.arange(p, dtype=torch.float32)
    (k1, k2), (a1, a2) = freqs, amps
    w1, w2 = 2 * math.pi * k1 / p, 2 * math.pi * k2 / p
    W_E = torch.zeros(p + 1, 5)
    W_E[:p, 0], W_E[:p, 1] = a1 * torch.cos(w1 * x), a1 * torch.sin(w1 * x)
    W_E[:p, 2], W_E[:p, 3] = a2 * torch.cos(w2 * x), a2 * torch.sin(w2 * x)
    W_E[p, 4] = 1.0
    sd["embed.W_E"] = W_E
    sd["blocks.0.attn.W_Q"][0, 4, 0] = BETA
    sd["blocks.0.attn.W_K"][0, 0, 0] = 1.0 / a1  # key: cos(w1 x), whatever A1
    for i in range(4):
        sd["blocks.0.attn.W_V"][1, i, i] = 1.0
        sd["blocks.0.attn.W_O"][1, i, i] = 1.0
    for neuron, dim in ((0, 0), (1, 3), (2, 2)):
        sd["blocks.0.mlp.W_in"][dim, neuron] = 3.0
        sd["blocks.0.mlp.b_in"][neuron] = 10.0
        sd["blocks.0.mlp.W_out"][neuron, dim] = 1.0
    sd["blocks.0.mlp.b_in"][3] = -1.0  # dead
    W_U = torch.zeros(5, p)
    W_U[0], W_U[1] = torch.cos(w1 * x), torch.sin(w1 * x)
    W_U[2], W_U[3] = torch.cos(w2 * x), torch.sin(w2 * x)
    sd["unembed.W_U"] = W_U
    # keep the causal-mask buffers and the like exactly as built
    for k, v in model.state_dict().items():
        if not v.is_floating_point() or k.endswith(("mask", "IGNORE")):
            sd[k] = v
    model.load_state_dict(sd)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return fourier_model()


def _grid(f):
    a = np.arange(P)[:, None]
    b = np.arange(P)[None, :]
    return f(a, b)


def test_all_inputs_are_in_pair_order():
    t = all_inputs(5)
    assert t.shape == (25, 3)
    assert t[7].tolist() == [1, 2, 5] and (t[:, 2] == 5).all()


def test_attention_grid_is_the_known_softmax(model):
    grid = attention_grid(model)
    assert grid.shape == (2, P, P)
    w1 = 2 * math.pi * K1 / P
    s = BETA / math.sqrt(D_HEAD)
    expected = _grid(lambda a, b: np.exp(s * np.cos(w1 * a)) /
                     (np.exp(s * np.cos(w1 * a)) + np.exp(s * np.cos(w1 * b)) + 1.0))
    np.testing.assert_allclose(grid[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grid[1], np.full((P, P), 1 / 3), atol=1e-6)  # uniform head
    # periodic in a with frequency K1: its spectrum along a (averaged over b) peaks at K1
    spectrum = np.abs(np.fft.rfft(grid[0] - grid[0].mean(0), axis=0)).mean(1)
    assert int(spectrum[1:].argmax()) + 1 == K1
    # the three sources of '=' add to one
    total = attention_grid(model, source="a") + attention_grid(model, source="b") + attention_grid(model, source="=")
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    np.testing.assert_allclose(attention_grid(model, source="b")[0], expected.T, rtol=1e-5, atol=1e-6)


def test_neuron_grids_are_the_known_activations(model):
    grids = neuron_grids(model)
    assert grids.shape == (4, P, P)
    w1, w2 = 2 * math.pi * K1 / P, 2 * math.pi * K2 / P
    # residual at '=' carries (f(a) + f(b)) / 3; W_in reads it times 3; amplitudes A1 = 1, A2 = 2
    np.testing.assert_allclose(grids[0], _grid(lambda a, b: np.cos(w1 * a) + np.cos(w1 * b) + 10), rtol=1e-5)
    np.testing.assert_allclose(grids[1], _grid(lambda a, b: 2 * np.sin(w2 * a) + 2 * np.sin(w2 * b) + 10), rtol=1e-5)
    np.testing.assert_allclose(grids[2], _grid(lambda a, b: 2 * np.cos(w2 * a) + 2 * np.cos(w2 * b) + 10), rtol=1e-5)
    assert (grids[3] == 0).all()
    np.testing.assert_array_equal(neuron_grids(model, [2, 0]), grids[[2, 0]])
    with pytest.raises(ConfigError, match=r"neurons \[4\]"):
        neuron_grids(model, [4])


def test_neuron_frequency_matrix_recovers_the_frequencies(model):
    nf = neuron_frequencies(model)
    assert nf.shares.shape == (4, (P - 1) // 2)
    expected = np.zeros((4, (P - 1) // 2))
    expected[0, K1 - 1] = expected[1, K2 - 1] = expected[2, K2 - 1] = 1.0
    np.testing.assert_allclose(nf.shares, expected, atol=1e-9)
    assert nf.frequency[:3].tolist() == [K1, K2, K2]
    assert nf.clustered.tolist() == [True, True, True, False]
    assert nf.cluster_sizes() == {K1: 1, K2: 2}
    assert nf.order[0] == 0 and set(nf.order[1:3]) == {1, 2} and nf.order[3] == 3  # sorted by cluster
    reps = representative_neurons(nf)
    assert reps[0][:2] == (0, K1) and reps[1][1] == K2 and len(reps) == 2


def test_spectra_over_time_peaks_where_the_weights_put_them():
    early, late = fourier_model(amps=(1.0, 2.0)), fourier_model(amps=(3.0, 1.0))
    sp = spectra_over_time([(100, late), (0, early)])  # any order in, sorted by step out
    assert sp.steps.tolist() == [0, 100]
    K = (P - 1) // 2
    assert sp.norms["W_E"].shape == sp.norms["W_L"].shape == (2, K)
    # W_E: per-frequency norm A_k sqrt(p) at k, zero elsewhere
    exp_early = np.zeros(K)
    exp_early[K1 - 1], exp_early[K2 - 1] = 1.0 * math.sqrt(P), 2.0 * math.sqrt(P)
    np.testing.assert_allclose(sp.norms["W_E"][0], exp_early, atol=1e-5)
    assert sp.peak_frequency("W_E").tolist() == [K2, K1]
    # W_L rows cos(w1 c), sin(w2 c), cos(w2 c): sqrt(p/2) at K1, sqrt(p) at K2, the same at both steps
    exp_L = np.zeros(K)
    exp_L[K1 - 1], exp_L[K2 - 1] = math.sqrt(P / 2), math.sqrt(P)
    np.testing.assert_allclose(sp.norms["W_L"], np.stack([exp_L, exp_L]), atol=1e-5)
    assert sp.frequencies.tolist() == list(range(1, K + 1))
    with pytest.raises(ConfigError, match="no checkpoints"):
        spectra_over_time([])


def test_user_hooks_are_honoured(model):
    """Patches a user attached with TransformerLens hooks show in every grid (the hooked forward is used)."""
    def uniform(pattern, hook):
        return torch.full_like(pattern, 0.25)

    def ablate_neuron_0(post, hook):
        post[..., 0] = 0.0
        return post

    model.blocks[0].attn.hook_pattern.add_hook(uniform)
    model.blocks[0].mlp.hook_post.add_hook(ablate_neuron_0)
    try:
        np.testing.assert_allclose(attention_grid(model), 0.25)
        grids = neuron_grids(model)
        assert (grids[0] == 0).all() and grids[2].min() > 0
    finally:
        model.reset_hooks(including_permanent=True)
    assert not np.allclose(attention_grid(model)[0], 0.25)


def test_spectra_of_a_run_and_attention_grids_at_steps(probe_run):
    from interp import probes
    from interp.viz.mechanism import attention_grids

    sp = spectra_over_time(probe_run, steps=[0, 400])
    assert sp.steps.tolist() == [0, 400]
    final = probes.fourier_norms(probe_run.load(400), per_frequency=True)
    np.testing.assert_allclose(sp.norms["W_L"][1], final["W_L"].numpy(), rtol=1e-12)
    grids = attention_grids(probe_run, [400])
    assert set(grids) == {400} and grids[400].shape == (probe_run.config.n_heads, 53, 53)
    assert ((grids[400] >= 0) & (grids[400] <= 1)).all()
