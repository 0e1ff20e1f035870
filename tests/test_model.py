import pytest
import torch

from interp.config import RunConfig, preset
from interp.model import _fast_last_position_logits, _supports_fast_forward, build_model, frozen_parameter_names
from interp.model import has_hooks, training_logits
from interp.tasks import Task
from tests.helpers import perturbed_model


@pytest.mark.parametrize("act_fn", ["relu", "gelu"])
def test_fast_forward_equals_the_model_on_random_weights(act_fn):
    cfg = preset("nanda2023", act_fn=act_fn)
    model, task = perturbed_model(cfg, 0.05, seed=0)  # nonzero MLP biases too
    tokens = task.tokens()
    with torch.no_grad():
        assert _supports_fast_forward(model)
        ref = model(tokens)[:, -1]
        fast = _fast_last_position_logits(model, tokens)
    assert fast.shape == (113 * 113, 113)
    assert (fast - ref).abs().max().item() < 1e-5


def test_fast_forward_equals_the_model_on_trained_weights(grokked_run):
    model = grokked_run.load()
    tokens = grokked_run.task.tokens()
    with torch.no_grad():
        ref = model(tokens)[:, -1]
        fast = _fast_last_position_logits(model, tokens)
    scale = ref.abs().max().item()
    assert scale > 5  # a trained model with confident logits
    # Logits of ~50 are only resolved to ~4e-6 in float32, so the bound is 1e-5 relative to their scale.
    # The full model itself differs from itself by as much when the batch is split differently.
    assert (fast - ref).abs().max().item() < 1e-5 * scale
    with torch.no_grad():
        self_diff = (model(tokens[:1000])[:, -1] - ref[:1000]).abs().max().item()
    assert (fast - ref).abs().max().item() <= max(8 * self_diff, 1e-5 * scale)


def test_fast_forward_gradients_match():
    cfg = preset("tiny")
    model = build_model(cfg)
    tokens, labels = Task.from_config(cfg).tokens(), Task.from_config(cfg).labels()
    grads = []
    for fn in (lambda: model(tokens)[:, -1], lambda: _fast_last_position_logits(model, tokens)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(fn(), labels).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


@pytest.mark.parametrize("arch", [{"n_layers": 2}, {"layer_norm": True}, {"n_layers": 2, "layer_norm": True}])
def test_other_architectures_fall_back_to_the_model(arch):
    cfg = RunConfig(p=11, d_model=16, n_heads=2, d_head=8, d_mlp=32, **arch)
    model = build_model(cfg)
    assert not _supports_fast_forward(model)
    if cfg.layer_norm:
        assert model.cfg.normalization_type == "LN" and hasattr(model, "ln_final")
    tokens = Task.from_config(cfg).tokens()
    with torch.no_grad():
        assert torch.equal(training_logits(model, tokens), model(tokens)[:, -1])


@pytest.mark.parametrize("act_fn", ["relu", "gelu"])
def test_fast_forward_is_exact_in_float64(act_fn):
    """In float64 the fast forward and the model agree to rounding: it computes the same function, exactly."""
    cfg = preset("small", act_fn=act_fn)
    model, task = perturbed_model(cfg, 0.3, seed=3)
    model = model.to(torch.float64)
    tokens = task.tokens()
    with torch.no_grad():
        ref = model(tokens)[:, -1]
        fast = _fast_last_position_logits(model, tokens)
    assert ref.dtype == fast.dtype == torch.float64
    assert ref.abs().max() > 1  # not a trivially small comparison
    assert (fast - ref).abs().max().item() < 1e-12


def test_training_forward_sees_every_kind_of_hook():
    """The training forward falls back to the hooked model whenever a hook is attached, so training on a hooked
    model trains what the hooks define; without hooks it takes the fast path, which gives the same logits."""
    cfg = preset("tiny")
    model, task = perturbed_model(cfg, 0.3)
    tokens = task.tokens()
    with torch.no_grad():
        clean = model(tokens)[:, -1]
        assert not has_hooks(model)
        assert torch.allclose(training_logits(model, tokens), clean, atol=1e-5)

        def zero(act, hook):
            return act * 0

        model.blocks[0].mlp.hook_post.add_hook(zero)  # permanent TransformerLens hook
        assert has_hooks(model)
        ablated = training_logits(model, tokens)
        model.reset_hooks()
        with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", zero)]):  # context-managed hook
            assert torch.equal(training_logits(model, tokens), ablated)
        handle = model.blocks[0].mlp.register_forward_hook(lambda mod, inp, out: out * 0)  # plain torch hook
        assert torch.allclose(training_logits(model, tokens), model(tokens)[:, -1])
        handle.remove()
        assert not has_hooks(model)
        expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_post", zero)])[:, -1]
    assert torch.equal(ablated, expected)
    assert (ablated - clean).abs().max() > 0.1  # the ablation really changed the logits
    # gradients flow through the hooked forward too: a training step on the hooked model sees the ablation
    model.blocks[0].mlp.hook_post.add_hook(zero)
    loss = torch.nn.functional.cross_entropy(training_logits(model, tokens), task.labels())
    loss.backward()
    model.reset_hooks()
    assert model.blocks[0].mlp.W_in.grad is None or model.blocks[0].mlp.W_in.grad.abs().max() == 0


def test_init_is_seeded_and_biases_frozen():
    a, b = build_model(preset("tiny")), build_model(preset("tiny"))
    torch.manual_seed(1234)  # global RNG state must not matter
    c = build_model(preset("tiny"))
    d = build_model(preset("tiny", model_seed=1))
    for (n, x), y, z, w in zip(a.named_parameters(), b.parameters(), c.parameters(), d.parameters()):
        assert torch.equal(x, y) and torch.equal(x, z), n
    assert any(not torch.equal(x, w) for x, w in zip(a.parameters(), d.parameters()))
    frozen = frozen_parameter_names(a)
    assert sorted(frozen) == sorted(["blocks.0.attn.b_Q", "blocks.0.attn.b_K", "blocks.0.attn.b_V",
                                     "blocks.0.attn.b_O", "unembed.b_U"])
    params = dict(a.named_parameters())
    assert all(not params[n].requires_grad and params[n].abs().sum() == 0 for n in frozen)
    assert params["blocks.0.mlp.b_in"].requires_grad and params["blocks.0.mlp.b_out"].requires_grad
    # The model is a HookedTransformer: every activation can be cached under the usual names.
    _, cache = a.run_with_cache(Task(p=23, frac_train=0.6).tokens()[:4])
    assert cache["blocks.0.mlp.hook_post"].shape == (4, 3, 64)
    assert cache["blocks.0.attn.hook_pattern"].shape == (4, 2, 3, 3)
