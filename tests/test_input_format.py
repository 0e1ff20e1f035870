"""Zhong et al.'s model B input and attention: ``eq_sign`` false (the input [a, b], no '=' token, logits read at b)
and ``constant_attention = "sum"`` (what attention_rate < 1 mixes in is weight 1 on every position, as the paper's
code, not their mean). Both default to what every run before them used, so old runs keep their identities."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from interp import RunConfig, Task, tl
from interp.errors import ConfigError, ProbeError
from interp.model import _fast_last_position_logits, _supports_fast_forward, build_model, training_logits
from interp.probes import clock_pizza as cp
from interp.runs import Run, weights_identity
from interp.viz import mechanism
from interp.viz.attention import attention
from tests.cli_helpers import interp_cli
from tests.helpers import perturbed_model

pytestmark = pytest.mark.tl_other  # CI runs this file under TransformerLens 4 too (.ci/tl4.sh)

TINY = dict(p=11, d_model=16, n_heads=2, d_head=8, d_mlp=32)


def test_defaults_are_the_input_and_attention_every_earlier_run_used():
    cfg = RunConfig(**TINY)
    assert cfg.eq_sign is True and cfg.constant_attention == "average"
    assert (cfg.n_ctx, cfg.d_vocab, cfg.d_vocab_out) == (3, 12, 11)
    assert Task.from_config(cfg).tokens()[5].tolist() == [0, 5, 11]
    # left out of the weights identity at their defaults: the hash an interp without them computed
    train = Task.from_config(cfg).train_idx.tolist()
    not_weights = ("name", "eval_every", "save_every", "save_steps", "stop_test_loss", "stop_test_acc",
                   "stop_after_steps", "n_steps", "eq_sign", "constant_attention")
    lean = {k: v for k, v in cfg.to_dict().items() if k not in not_weights}
    blob = json.dumps({"config": lean, "train": train}, sort_keys=True)
    assert weights_identity(cfg, train) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert weights_identity(cfg.replace(eq_sign=False), train) != weights_identity(cfg, train)
    assert weights_identity(cfg.replace(constant_attention="sum"), train) != weights_identity(cfg, train)
    # a run written before the fields reads back with the defaults: 3 positions, averaged constant attention
    shipped = Run(Path("checkpoints/constant-attention-p59"))
    assert "eq_sign" not in json.loads((shipped.path / "run.json").read_text())["config"]
    assert shipped.config.constant_attention == "average" and shipped.load(shipped.final_step).cfg.n_ctx == 3


def test_bad_values_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match="constant_attention.*'average', 'sum'"):
        RunConfig(constant_attention="mean")
    with pytest.raises(ConfigError, match="eq_sign.*true or false"):
        RunConfig(eq_sign="no")
    with pytest.raises(ConfigError, match="eq_sign"):
        Task(p=11, eq_sign=0)


def test_without_the_eq_sign_the_input_is_a_b_and_the_model_has_two_positions():
    cfg = RunConfig(**TINY, eq_sign=False)
    assert (cfg.n_ctx, cfg.d_vocab, cfg.d_vocab_out) == (2, 11, 11)
    task = Task.from_config(cfg)
    tokens = task.tokens()
    assert tokens.shape == (121, 2) and task.eq_token is None
    assert torch.equal(tokens, task.pairs())  # [a, b] in pair order, a * p + b
    assert torch.equal(task.labels(), Task(p=11).labels())  # the same task, another input
    model = build_model(cfg)
    assert (model.cfg.n_ctx, model.cfg.d_vocab, model.cfg.d_vocab_out) == (2, 11, 11)
    assert model(tokens).shape == (121, 2, 11)
    # a model of the other input is refused by every measure, with the way to say which input it reads
    with pytest.raises(ProbeError, match=r"n_ctx=2 but .*\[a, b, =\].*eq_sign=False"):
        cp.gradient_symmetricity(model, Task(p=11))


def test_fast_training_forward_is_exact_on_two_positions():
    cfg = RunConfig(**TINY, eq_sign=False)
    model, task = perturbed_model(cfg, 0.3, seed=2)
    model = model.to(torch.float64)
    tokens = task.tokens()
    with torch.no_grad():
        assert _supports_fast_forward(model)
        ref = model(tokens)[:, -1]
        assert ref.abs().max() > 1
        assert (_fast_last_position_logits(model, tokens) - ref).abs().max().item() < 1e-12
        assert torch.equal(training_logits(model, tokens), _fast_last_position_logits(model, tokens))


@pytest.mark.parametrize("eq_sign", [True, False])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_summed_constant_attention_puts_weight_one_on_every_position(rate, eq_sign):
    cfg = RunConfig(**TINY, attention_rate=rate, constant_attention="sum", eq_sign=eq_sign)
    model, ref = build_model(cfg), build_model(cfg.replace(attention_rate=1.0))  # same seed, same weights
    tokens = Task.from_config(cfg).tokens()[:40]
    _, cache = model.run_with_cache(tokens)
    _, ref_cache = ref.run_with_cache(tokens)
    n = cfg.n_ctx
    pattern, soft = cache["blocks.0.attn.hook_pattern"], ref_cache["blocks.0.attn.hook_pattern"]
    ones = torch.ones(n, n).tril()
    assert torch.allclose(pattern, rate * soft + (1 - rate) * ones, atol=1e-6)
    # the last row sums to rate + (1 - rate) n: the summed values are n times the averaged ones at rate 0
    assert torch.allclose(pattern[:, :, -1].sum(-1), torch.full((40, 2), rate + (1 - rate) * n), atol=1e-6)
    if rate == 0:
        z, v = cache["blocks.0.attn.hook_z"], cache["blocks.0.attn.hook_v"]
        assert torch.allclose(z[:, -1], v.sum(1), atol=1e-5)  # the last position reads the sum of the values
        averaged = build_model(cfg.replace(constant_attention="average"))
        _, avg_cache = averaged.run_with_cache(tokens)
        assert torch.allclose(avg_cache["blocks.0.attn.hook_z"][:, -1] * n, z[:, -1], atol=1e-5)


def test_a_b_run_trains_reloads_measures_and_reports(tmp_path):
    """The paper's model B settings end to end on a tiny task: train, reload, diagnose, draw."""
    sets = ["p=11", "frac_train=0.8", "d_model=16", "n_heads=2", "d_head=8", "d_mlp=32", "eq_sign=false",
            "attention_rate=0", "constant_attention=sum", "n_steps=30", "save_every=10", "weight_decay=2"]
    r = interp_cli("train", "--preset", "small", *[a for s in sets for a in ("--set", s)], "--out", "runs/ab",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = Run(tmp_path / "runs/ab")
    assert run.config.eq_sign is False and run.config.constant_attention == "sum"
    assert run.task.n_ctx == 2 and run.task.input_format == "[a, b] (no '=' token)"
    assert "no '=' token" in run.meta["protocol"]["input"]
    assert run.meta["protocol"]["attention"].startswith("pattern = 0 softmax(scores) + 1 x 1 on each position")
    model = run.load(run.final_step)
    assert tl.state_dict(model)["pos_embed.W_pos"].shape == (2, 16)
    _, cache = model.run_with_cache(run.task.tokens()[:5])
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"][0, 0], torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert 0 <= cp.distance_irrelevance(model, run.task) <= 1
    assert -1 <= cp.gradient_symmetricity(model, run.task) <= 1
    # the mechanism figures read the last position, b, and know there is no '=' to attend to
    assert mechanism.model_format(model) == (11, False)
    assert mechanism.attention_grid(model, source="b").shape == (2, 11, 11)
    with pytest.raises(ConfigError, match=r"source must be one of \['a', 'b'\]"):
        mechanism.attention_grid(model, source="=")
    view = attention(model, [(3, 4)])
    assert view.tokens == [["3", "4"]] and len(view.block_pattern()[0]) == 2
    r = interp_cli("report", "runs/ab", "--out", "report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "report/index.html").read_text()
    assert "Attention paid by b to a" in page and "Attention paid by '=' to a" not in page


def test_a_folder_of_two_position_models_is_read_as_a_b(tmp_path):
    """Checkpoints trained elsewhere with n_ctx 2 and no '=' in the vocabulary get the [a, b] task, and measure."""
    from interp.folder import CheckpointFolder, folder_task
    from safetensors.torch import save_file

    cfg = RunConfig(**TINY, eq_sign=False)
    model, _ = perturbed_model(cfg, 0.3, seed=1)
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_layers": 1, "d_model": 16, "n_ctx": 2, "d_head": 8, "n_heads": 2, "d_mlp": 32, "d_vocab": 11,
         "d_vocab_out": 11, "act_fn": "relu", "normalization_type": None}))
    save_file({k: v.contiguous() for k, v in tl.state_dict(model).items()}, str(tmp_path / "model_100.safetensors"))
    task = folder_task(tmp_path, "add")
    assert (task.p, task.n_ctx, task.d_vocab, task.eq_token) == (11, 2, 11, None)
    loaded = CheckpointFolder(tmp_path, task).load(100)
    assert cp.distance_irrelevance(loaded, task) == pytest.approx(cp.distance_irrelevance(model, task), abs=1e-6)
