"""Every probe honours TransformerLens hooks: an ablation or a patch attached to the model is what gets measured.

Each hook is attached three ways (permanently with ``add_hook``, inside ``with model.hooks(...)``, and by
measuring the cache of a hooked ``run_with_cache``), and every probe's number is compared with the same
quantity computed here, directly, from ``model.run_with_hooks`` on all pairs.
"""

import math
from contextlib import contextmanager

import pytest
import torch

from interp import probes

HOOK_POST = "blocks.0.mlp.hook_post"


def _zero_mlp(act, hook):
    return act * 0


def _mean_head_1(pattern, hook):
    pattern = pattern.clone()
    pattern[:, 1] = pattern[:, 1].mean(0, keepdim=True)
    return pattern


@pytest.fixture(scope="module")
def setting(probe_run):
    model, task = probe_run.load(), probe_run.task
    keys = probes.key_frequencies(model, task, threshold=0.5)
    assert keys
    tokens = task.tokens()
    corrupted = tokens.clone()
    corrupted[:, 1] = (corrupted[:, 1] + 1) % task.p  # b -> b + 1
    with torch.no_grad():
        _, source = model.run_with_cache(corrupted, names_filter="blocks.0.hook_resid_mid")
    patched_mid = source["blocks.0.hook_resid_mid"][:, -1].clone()

    def patch_resid_mid(resid, hook):  # activation patching: the last position's mid-residual from (a, b+1)
        resid = resid.clone()
        resid[:, -1] = patched_mid
        return resid

    hooks = {
        "zero-ablate MLP": [(HOOK_POST, _zero_mlp)],
        "mean-ablate head 1 pattern": [("blocks.0.attn.hook_pattern", _mean_head_1)],
        "patch resid_mid": [("blocks.0.hook_resid_mid", patch_resid_mid)],
    }
    return model, task, keys, hooks


def _direct(model, task, fwd_hooks):
    """Logits (p*p, p) float64 and last-position neuron activations, straight from model.run_with_hooks."""
    store = {}

    def capture(act, hook):
        store["acts"] = act[:, -1].detach().clone()

    with torch.no_grad():
        logits = model.run_with_hooks(task.tokens(), fwd_hooks=[*fwd_hooks, (HOOK_POST, capture)])
    return logits[:, -1].double(), store["acts"]


def _ce(L, labels):
    return -(L.log_softmax(-1).gather(1, labels[:, None])).mean().item()


def _key_projection(L, task, keys):
    """P_S L + mean, by an explicit orthonormal basis of {const, cos w_k(a+b), sin w_k(a+b)}."""
    a, b = task.pairs().double().unbind(1)
    cols = [torch.ones(task.n_pairs, dtype=torch.float64)]
    for k in keys:
        w = 2 * math.pi * k / task.p
        cols += [torch.cos(w * (a + b)), torch.sin(w * (a + b))]
    B = torch.linalg.qr(torch.stack(cols, 1)).Q
    return B @ (B.T @ L), B[:, 1:] @ (B[:, 1:].T @ L)


@contextmanager
def _attached(model, fwd_hooks, how):
    if how == "add_hook":
        for name, fn in fwd_hooks:
            model.add_hook(name, fn)
        try:
            yield
        finally:
            model.reset_hooks()
    else:
        with model.hooks(fwd_hooks=fwd_hooks):
            yield


@pytest.mark.parametrize("how", ["add_hook", "hooks context"])
@pytest.mark.parametrize("name", ["zero-ablate MLP", "mean-ablate head 1 pattern", "patch resid_mid"])
def test_every_probe_measures_the_hooked_model(setting, name, how):
    model, task, keys, hooks = setting
    fwd = hooks[name]
    L, acts = _direct(model, task, fwd)
    clean, _ = _direct(model, task, [])
    assert (L - clean).abs().max() > 1e-3, "the hook must change the logits, or this test proves nothing"
    labels = task.labels()
    restricted_L, projected = _key_projection(L, task, keys)
    excluded_L = L - projected
    train, test = task.train_idx, task.test_idx
    tol = dict(rel=1e-9, abs=1e-12)
    with _attached(model, fwd, how):
        for split, idx in (("all", torch.arange(task.n_pairs)), ("train", train), ("test", test)):
            loss, acc = probes.loss_and_accuracy(model, task, split)
            assert loss == pytest.approx(_ce(L[idx], labels[idx]), **tol)
            assert acc == pytest.approx((L[idx].argmax(-1) == labels[idx]).double().mean().item())
        metrics = probes.train_test_metrics(model, task)
        assert metrics["test_loss"] == pytest.approx(_ce(L[test], labels[test]), **tol)
        probs = L[test].softmax(-1)
        assert metrics["test_prob_correct"] == pytest.approx(probs.gather(1, labels[test, None]).mean().item(), **tol)
        r = probes.restricted(model, task, keys)
        assert r.loss == pytest.approx(_ce(restricted_L, labels), **tol)
        assert r.accuracy == pytest.approx((restricted_L.argmax(-1) == labels).double().mean().item())
        e = probes.excluded(model, task, keys)
        assert e.loss == pytest.approx(_ce(excluded_L[train], labels[train]), **tol)
        per_k = probes.excluded_loss_per_frequency(model, task, keys)
        assert per_k == pytest.approx(probes.excluded_loss_per_frequency(L, task, keys), **tol)
        assert probes.cos_coefficients(model, task, keys).explained_fraction == pytest.approx(
            probes.cos_coefficients(L, task, keys).explained_fraction, **tol)
        clusters = probes.neuron_clusters(model, task, threshold=0.5)
        assert clusters.equals(probes.neuron_clusters(acts, task, threshold=0.5))
        assert probes.key_frequencies(model, task, threshold=0.5) == probes.key_frequencies(acts, task, threshold=0.5)
        m = probes.measure_model(model, task, keys)
        assert m["restricted_loss"] == pytest.approx(r.loss, **tol)
        assert m["excluded_loss"] == pytest.approx(e.loss, **tol)
        assert m["train_loss"] == pytest.approx(_ce(L[train], labels[train]), **tol)
        assert m["frac_neurons_clustered"] == pytest.approx(probes.neuron_clusters(acts, task)["clustered"].mean())
    # and once the hooks are gone, the probes measure the clean model again
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())
    assert probes.loss_and_accuracy(model, task, "all").loss == pytest.approx(_ce(clean, labels), **tol)


@pytest.mark.parametrize("name", ["zero-ablate MLP", "mean-ablate head 1 pattern", "patch resid_mid"])
def test_probes_on_the_cache_of_a_hooked_run(setting, name):
    """Measuring the logits and activations cached from a hooked run gives the hooked model's numbers."""
    model, task, keys, hooks = setting
    L, acts = _direct(model, task, hooks[name])
    with model.hooks(fwd_hooks=hooks[name]), torch.no_grad():
        logits, cache = model.run_with_cache(task.tokens())
    cached_L, cached_acts = logits[:, -1], cache[HOOK_POST][:, -1]
    assert torch.equal(cached_L.double(), L) and torch.equal(cached_acts, acts)
    assert probes.restricted(cached_L, task, keys) == probes.restricted(L, task, keys)
    assert probes.key_frequencies(cached_acts, task, threshold=0.5) == probes.key_frequencies(acts, task, threshold=0.5)
    with model.hooks(fwd_hooks=hooks[name]):
        assert probes.restricted(model, task, keys) == probes.restricted(cached_L, task, keys)


def test_zero_ablated_mlp_is_measured_as_such(setting):
    """The issue's example: with the MLP zero-ablated the model is far from its clean loss, and every probe says so."""
    model, task, _keys, hooks = setting
    clean_loss = probes.loss_and_accuracy(model, task, "train").loss
    with model.hooks(fwd_hooks=hooks["zero-ablate MLP"]):
        ablated = probes.loss_and_accuracy(model, task, "train").loss
        clusters = probes.neuron_clusters(model, task)
    assert ablated > 10 * clean_loss and ablated > 1.0
    assert not clusters["clustered"].any() and (clusters["variance"] == 0).all()  # every neuron is dead
