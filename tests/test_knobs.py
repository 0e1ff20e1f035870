"""The training knobs: optimiser, learning-rate schedule, minibatches, LayerNorm and the Grokfast gradient filter.

Each is a RunConfig field, recorded in run.json, restored from the resume state bit for bit, and checked here
against an independent implementation (the Grokfast filters against values computed by hand).
"""

import json
import math
from pathlib import Path

import pytest
import torch

from interp import Run
from interp.config import RunConfig, parse_field, preset
from interp.errors import ConfigError, RunFormatError
from interp.files import read_safetensors, save_tensors
from interp.model import build_model, float64_cross_entropy, training_logits
from interp.optim import GradFilter, Minibatches, learning_rate, optimiser_state_keys
from interp.tasks import Task
from interp.train import PROTOCOL, train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "nanda2023-p113-seed0"
KNOB_FIELDS = ("optimiser", "momentum", "lr_schedule", "lr_min", "batch_size", "layer_norm", "grad_filter",
               "grad_filter_alpha", "grad_filter_lambda", "grad_filter_window")

# Every knob away from its default, in two runs (each resumes from the middle of its minibatch epoch, with a full
# MA queue, and mid-decay).
ADAM_EMA = dict(optimiser="adam", weight_decay=0.0, lr_schedule="cosine", lr_min=1e-4, warmup_steps=3,
                batch_size=64, layer_norm=True, grad_filter="ema", grad_filter_alpha=0.9, grad_filter_lambda=2.0)
SGD_MA = dict(optimiser="sgd", lr=0.3, momentum=0.8, weight_decay=1e-3, lr_schedule="linear", warmup_steps=3,
              batch_size=100, grad_filter="ma", grad_filter_window=4, grad_filter_lambda=1.5)


def _tiny(**knobs):
    return preset("tiny", n_steps=30, save_every=10, **knobs)


# -- Grokfast, against the published algorithm on gradients computed by hand -------------------------------


def test_ema_filter_matches_the_published_update_by_hand():
    # alpha 1/2, lambda 2, g = 1, -2, 3, 1/2 (binary fractions: every value below is exact in float32)
    # mu_0 = g_0 = 1            -> 1 + 2 * 1 = 3
    # mu_1 = (1 - 2) / 2 = -0.5  -> -2 + 2 * -0.5 = -3
    # mu_2 = (-0.5 + 3) / 2 = 1.25 -> 3 + 2.5 = 5.5
    # mu_3 = (1.25 + 0.5) / 2 = 0.875 -> 0.5 + 1.75 = 2.25
    f = GradFilter("ema", alpha=0.5, lamb=2.0)
    got = [f.filter({"w": torch.tensor([g, 2 * g])})["w"].tolist() for g in (1.0, -2.0, 3.0, 0.5)]
    assert got == [[3.0, 6.0], [-3.0, -6.0], [5.5, 11.0], [2.25, 4.5]]
    assert f.mu["w"].tolist() == [0.875, 1.75]


def test_ma_filter_matches_the_published_update_by_hand():
    # window 3, lambda 2, g = 1, 2, 3, 4, 5: nothing added until three gradients are queued (g_t included),
    # then g_t + 2 * mean(last three): 3 + 2*2 = 7, 4 + 2*3 = 10, 5 + 2*4 = 13
    f = GradFilter("ma", window=3, lamb=2.0)
    got = [f.filter({"w": torch.tensor([g])})["w"].item() for g in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert got == [1.0, 2.0, 7.0, 10.0, 13.0]
    assert [q.item() for q in f.queue["w"]] == [3.0, 4.0, 5.0]


def test_ema_filter_with_the_papers_defaults_follows_the_recurrence():
    g = [0.3, -1.0, 2.0, 0.7, -0.2, 1.1]
    mu, expected = None, []
    for x in g:  # mu_t = 0.98 mu_(t-1) + 0.02 g_t, mu_0 = g_0; step with g_t + 2 mu_t
        mu = x if mu is None else 0.98 * mu + 0.02 * x
        expected.append(x + 2 * mu)
    f = GradFilter.from_config(RunConfig(grad_filter="ema"))
    got = [f.filter({"w": torch.tensor([x], dtype=torch.float64)})["w"].item() for x in g]
    assert got == pytest.approx(expected, rel=1e-12)
    assert GradFilter.from_config(RunConfig()).filter({"w": torch.tensor([5.0])})["w"].item() == 5.0


# -- learning-rate schedule and minibatches ------------------------------------------------------------------


def test_learning_rate_schedules():
    base = dict(lr=1e-2, warmup_steps=10, n_steps=110)
    const = RunConfig(**base)
    assert [learning_rate(const, t) for t in (0, 5, 10, 109)] == [0.0, 5e-3, 1e-2, 1e-2]
    cos = RunConfig(**base, lr_schedule="cosine", lr_min=1e-3)
    lin = RunConfig(**base, lr_schedule="linear")
    assert learning_rate(cos, 5) == learning_rate(lin, 5) == 5e-3  # the warm-up is the paper's in every schedule
    assert learning_rate(cos, 10) == pytest.approx(1e-2) and learning_rate(cos, 110) == pytest.approx(1e-3)
    assert learning_rate(cos, 60) == pytest.approx(1e-3 + 9e-3 * 0.5)  # halfway: cos(pi/2) = 0
    assert learning_rate(lin, 35) == pytest.approx(0.75e-2) and learning_rate(lin, 110) == 0.0


def test_minibatches_cover_each_epoch_once_and_are_seeded():
    mb = Minibatches(10, 3, seed=4)
    epoch = [mb.next() for _ in range(3)]  # 9 of 10 pairs, each once; the 10th of this order is dropped
    assert len(set(torch.cat(epoch).tolist())) == 9
    first_order = mb.order.clone()
    assert len(mb.next()) == 3 and not torch.equal(mb.order, first_order)  # a new epoch, a new order
    again = Minibatches(10, 3, seed=4)
    assert all(torch.equal(again.next(), b) for b in epoch)
    assert not all(torch.equal(a, b) for a, b in zip((Minibatches(10, 3, seed=5).next() for _ in range(3)), epoch))


# -- the trainer applies each knob: checked against an independent loop -------------------------------------


def _published_ema(params, grads, alpha, lamb):
    """Grokfast's gradfilter_ema as published (state initialised from the first gradient)."""
    if grads is None:
        grads = {n: p.grad.detach() for n, p in params.items()}
    for n, p in params.items():
        grads[n] = grads[n] * alpha + p.grad.detach() * (1 - alpha)
        p.grad = p.grad + grads[n] * lamb
    return grads


def _published_ma(params, grads, window, lamb):
    """Grokfast's gradfilter_ma as published (mean filter, warm-up: nothing added until the window is full)."""
    if grads is None:
        grads = {n: [] for n in params}
    for n, p in params.items():
        grads[n] = (grads[n] + [p.grad.detach()])[-window:]
        if len(grads[n]) == window:
            p.grad = p.grad + sum(grads[n]) / len(grads[n]) * lamb
    return grads


def _reference_weights(cfg):
    """The weights after cfg.n_steps updates, written from the published definitions, not interp.optim."""
    model = build_model(cfg)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt_class = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[cfg.optimiser]
    extra = dict(momentum=cfg.momentum) if cfg.optimiser == "sgd" else dict(betas=cfg.betas, eps=cfg.eps)
    opt = opt_class(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    task = Task.from_config(cfg)
    x, y = task.tokens()[task.train_idx], task.labels()[task.train_idx]
    gen, order, pos, state = torch.Generator().manual_seed(cfg.data_seed), [], 0, None
    for t in range(cfg.n_steps):
        frac = min(max((t - cfg.warmup_steps) / (cfg.n_steps - cfg.warmup_steps), 0), 1)
        decay = {"constant": 1.0, "linear": 1 - frac, "cosine": (1 + math.cos(math.pi * frac)) / 2}[cfg.lr_schedule]
        lr = cfg.lr * (t / cfg.warmup_steps) if t < cfg.warmup_steps else cfg.lr_min + (cfg.lr - cfg.lr_min) * decay
        for group in opt.param_groups:
            group["lr"] = lr
        idx = slice(None)
        if cfg.batch_size:
            if pos + cfg.batch_size > len(order):
                order, pos = torch.randperm(len(y), generator=gen), 0
            idx, pos = order[pos:pos + cfg.batch_size], pos + cfg.batch_size
        opt.zero_grad()
        float64_cross_entropy(training_logits(model, x[idx]), y[idx]).backward()
        if cfg.grad_filter == "ema":
            state = _published_ema(params, state, cfg.grad_filter_alpha, cfg.grad_filter_lambda)
        elif cfg.grad_filter == "ma":
            state = _published_ma(params, state, cfg.grad_filter_window, cfg.grad_filter_lambda)
        opt.step()
    return model.state_dict()


@pytest.mark.parametrize("knobs", [ADAM_EMA, SGD_MA], ids=["adam-cosine-minibatch-ln-ema", "sgd-linear-ma"])
def test_trainer_applies_each_knob_as_defined(tmp_path, knobs):
    cfg = preset("tiny", n_steps=12, save_every=0, **knobs)
    run = train(cfg, tmp_path / "run", progress=False)
    trained, expected = run.load(12).state_dict(), _reference_weights(cfg)
    init = build_model(cfg)
    moved = sum((trained[n] - p).abs().sum().item() for n, p in init.named_parameters() if p.requires_grad)
    assert moved > 1.0  # the run really trained
    for k in expected:
        assert torch.allclose(trained[k], expected[k], rtol=1e-4, atol=1e-6), k
    # every knob is recorded: in the config, the protocol and (LayerNorm) the TransformerLens config
    meta = json.loads((run.path / "run.json").read_text())
    assert all(meta["config"][k] == cfg.to_dict()[k] for k in KNOB_FIELDS)
    assert cfg.optimiser.upper()[:3] in meta["protocol"]["step"].upper() and "minibatch" in meta["protocol"]["step"]
    assert "Grokfast" in meta["protocol"]["grad_filter"] and cfg.lr_schedule in meta["protocol"]["lr_schedule"]
    assert meta["hooked_transformer_config"]["normalization_type"] == ("LN" if cfg.layer_norm else None)


def test_the_default_config_is_the_papers_adamw_full_batch_run(tmp_path):
    cfg = preset("tiny", n_steps=12, save_every=0)
    run = train(cfg, tmp_path / "run", progress=False)
    for k, v in _reference_weights(cfg).items():
        assert torch.equal(run.load(12).state_dict()[k], v), k  # bit for bit: nothing in the loop changed
    assert run.meta["protocol"] == PROTOCOL and "grad_filter" not in PROTOCOL
    assert PROTOCOL["step"] == "step t = model after t full-batch AdamW updates; step 0 is the initialisation"


# -- resume: every knob's state is in resume.safetensors --------------------------------------------------


def _checkpoints(path):
    return {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.name.startswith("step_")}


class _Stop(Exception):
    pass


@pytest.mark.parametrize("knobs", [ADAM_EMA, SGD_MA], ids=["adam-cosine-minibatch-ln-ema", "sgd-linear-ma"])
def test_resume_with_every_knob_is_bit_identical(tmp_path, knobs):
    ref = train(_tiny(**knobs), tmp_path / "ref", progress=False)
    out = tmp_path / "run"

    def stop(t, row):
        if t == 25:
            raise _Stop

    with pytest.raises(_Stop):
        train(_tiny(**knobs), out, progress=False, on_step=stop)
    tensors, meta = read_safetensors(out / "resume.safetensors")
    assert meta["step"] == "20" and meta["optimiser"] == knobs["optimiser"]
    assert meta["optimiser_state"].split(",") == list(optimiser_state_keys(_tiny(**knobs)))
    assert meta["grad_filter"] == knobs["grad_filter"] and meta["batches"] == "minibatch"
    names = [n for n, p in build_model(_tiny(**knobs)).named_parameters() if p.requires_grad]
    for n in names:
        assert all(f"optim.{n}.{k}" in tensors for k in meta["optimiser_state"].split(","))
    key = "mu" if knobs["grad_filter"] == "ema" else "queue"
    assert all(f"filter.{n}.{key}" in tensors for n in names)
    if key == "queue":
        assert tensors[f"filter.{names[0]}.queue"].shape[0] == knobs["grad_filter_window"]
    assert 0 < int(tensors["batches.position"].item()) < ref.config.n_train  # mid-epoch
    train(None, out, resume=True, progress=False)
    assert _checkpoints(out) == _checkpoints(ref.path)
    assert (out / "metrics.csv").read_bytes() == (ref.path / "metrics.csv").read_bytes()
    # the filter state matters: without it the resumed run would not be the same run
    del_filter = {k: v for k, v in tensors.items() if not k.startswith("filter.")}
    save_tensors(out / "resume.safetensors", del_filter, metadata=meta)
    with pytest.raises(RunFormatError, match="gradient filter"):
        train(None, out, resume=True, progress=False)


def test_a_decaying_schedule_cannot_be_extended_on_resume(tmp_path):
    train(preset("tiny", n_steps=10, lr_schedule="cosine"), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="cosine learning-rate decay ends at its n_steps 10"):
        train(None, tmp_path / "run", resume=True, n_steps=20, progress=False)


# -- config: fields, validation, text values, old files ---------------------------------------------------


@pytest.mark.parametrize("field, value, fragment", [
    ("optimiser", "rmsprop", "one of"), ("momentum", 1.0, "[0, 1)"), ("lr_schedule", "step", "one of"),
    ("lr_min", 1.0, "[0, lr"), ("batch_size", 0, "between 1 and"), ("batch_size", 10**6, "training pairs"),
    ("batch_size", 2.5, "integer"), ("layer_norm", "yes", "true or false"), ("grad_filter", "sma", "one of"),
    ("grad_filter_alpha", 1.0, "[0, 1)"), ("grad_filter_lambda", -1.0, ">= 0"), ("grad_filter_window", 0, "positive"),
    ("lr", float("nan"), "finite"), ("grad_filter_lambda", "2", "finite number"),
])
def test_invalid_knobs_are_named(field, value, fragment):
    with pytest.raises(ConfigError) as err:
        preset("tiny", **{field: value})
    assert f"RunConfig.{field}" in str(err.value) and fragment in str(err.value) and err.value.field == field


def test_parse_field_reads_each_type():
    assert parse_field("op", "mul") == "mul" and parse_field("n_layers", "2") == 2
    assert parse_field("lr", "3e-3") == 3e-3 and parse_field("betas", "0.9,0.99") == (0.9, 0.99)
    assert parse_field("layer_norm", "True") is True and parse_field("layer_norm", "off") is False
    assert parse_field("batch_size", "null") is None and parse_field("stop_test_loss", "none") is None
    assert parse_field("save_steps", "0-20:10,35") == (0, 10, 20, 35)
    with pytest.raises(ConfigError, match="did you mean grad_filter"):
        parse_field("grad_filtr", "ema")
    with pytest.raises(ConfigError, match=r"RunConfig.batch_size must be an integer or null, got 'x'"):
        parse_field("batch_size", "x")


def test_old_run_json_without_the_knobs_loads_with_the_defaults():
    recorded = json.loads((SHIPPED / "run.json").read_text())["config"]
    assert not set(KNOB_FIELDS) & set(recorded)  # written before the knobs existed
    cfg = Run(SHIPPED).config
    assert all(getattr(cfg, k) == getattr(RunConfig(), k) for k in KNOB_FIELDS)
    assert cfg == RunConfig.from_dict({**recorded, **{k: getattr(RunConfig(), k) for k in KNOB_FIELDS}})


def test_sweep_grids_vary_the_knobs():
    from interp.sweep import SweepSpec

    spec = SweepSpec(preset="tiny", grid={"optimiser": ["adamw", "sgd"], "grad_filter_lambda": [0.5, 2.0]},
                     base={"grad_filter": "ema", "batch_size": 64, "layer_norm": True}, seeds={"both": 1})
    runs = spec.expand()
    assert [n for n, _ in runs][:2] == ["optimiser=adamw,grad_filter_lambda=0.5,seed=0",
                                        "optimiser=adamw,grad_filter_lambda=2,seed=0"]
    assert {(c.optimiser, c.grad_filter_lambda, c.grad_filter, c.batch_size) for _, c in runs} == {
        (o, lam, "ema", 64) for o in ("adamw", "sgd") for lam in (0.5, 2.0)}
    assert all(RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c for _, c in runs)  # as jobs carry them
    with pytest.raises(ConfigError, match=r"run 'grad_filter=emma,seed=0'.*RunConfig.grad_filter must be one of"):
        SweepSpec(preset="tiny", grid={"grad_filter": ["emma"]}, seeds={"both": 1}).expand()


def test_the_readme_knob_commands_run(tmp_path, capsys):
    """Every `interp train ... --set` command of the manual's tour (docs/tour.md) trains (2 steps here) and records
    what it sets."""
    import shlex

    from interp.cli import main

    text = (ROOT / "docs" / "tour.md").read_text().replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("interp train")
                and "--set" in line]
    assert len(commands) >= 3
    for i, command in enumerate(commands):
        argv = shlex.split(command.split("#")[0])[1:]
        argv[argv.index("--out") + 1] = str(tmp_path / f"run{i}")
        assert main([*argv, "--steps", "2", "--quiet"]) == 0, capsys.readouterr().err
        cfg = Run(tmp_path / f"run{i}").config
        for field, value in (a.split("=", 1) for a in argv[1:] if "=" in a):
            assert getattr(cfg, field) == parse_field(field, value), (command, field)
