"""interp on TransformerLens 3.9 (HookedTransformer) and 4.x (TransformerBridge) through one seam, interp/tl.py.

Marked ``tl_other``: CI runs this file under the other major version too (.ci/tl4.sh). Each test of a "silently
wrong without the seam" item says which item; on 3.9 they hold trivially, on 4.x they fail without the seam.
Cross-version tests run the other version's interpreter (``INTERP_OTHER_TL_PYTHON``) and are skipped without it.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interp import Run, probes, tl
from interp.errors import ProbeError
from interp.config import preset
from interp.files import read_safetensors
from interp.model import build_model, frozen_parameter_names, has_hooks, model_from_kwargs, training_logits
from interp.tasks import Task
from interp.train import train

pytestmark = pytest.mark.tl_other

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "checkpoints" / "nanda2023-p113-seed0"
MEASURES = ROOT / "probes" / "nanda2023-p113-seed0"
OTHER = os.environ.get("INTERP_OTHER_TL_PYTHON")

# HookedTransformer 3.9's named_parameters() of the shipped config: names, order, shapes
HT_PARAMETERS = [("embed.W_E", (114, 128)), ("pos_embed.W_pos", (3, 128)), ("blocks.0.attn.W_Q", (4, 128, 32)),
                 ("blocks.0.attn.W_O", (4, 32, 128)), ("blocks.0.attn.b_Q", (4, 32)), ("blocks.0.attn.b_O", (128,)),
                 ("blocks.0.attn.W_K", (4, 128, 32)), ("blocks.0.attn.W_V", (4, 128, 32)),
                 ("blocks.0.attn.b_K", (4, 32)), ("blocks.0.attn.b_V", (4, 32)), ("blocks.0.mlp.W_in", (128, 512)),
                 ("blocks.0.mlp.b_in", (512,)), ("blocks.0.mlp.W_out", (512, 128)), ("blocks.0.mlp.b_out", (128,)),
                 ("unembed.W_U", (128, 113)), ("unembed.b_U", (113,))]


@pytest.fixture(scope="module")
def run():
    return Run(RUN)


@pytest.fixture(scope="module")
def kwargs(run):
    return run.meta["hooked_transformer_config"]


def tokens(p: int) -> torch.Tensor:
    a, b = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)
    return torch.stack([a, b, torch.full_like(a, p)], 1)


# -- construction, init, names, layout ---------------------------------------------------------------------------------

def test_init_rebuilds_the_shipped_step_0_bit_for_bit(kwargs):
    """Seeded init is interp's own (seed, then N(0, 0.8/sqrt(d_model)) per W_* in HookedTransformer order)."""
    shipped, _ = read_safetensors(RUN / "step_000000.safetensors")
    built = tl.state_dict(model_from_kwargs(kwargs))
    assert set(built) == set(shipped)
    for k, v in shipped.items():
        assert built[k].dtype == v.dtype and torch.equal(built[k], v), k


def test_parameter_names_and_shapes_are_the_hookedtransformer_ones(run):
    """Silent-wrong item: bridge names (layers.0._original_component...) would make freeze_biases freeze nothing."""
    model = build_model(run.config)
    params = tl.parameters(model)
    assert [(n, tuple(p.shape)) for n, p in params.items()] == HT_PARAMETERS
    assert frozen_parameter_names(model) == run.meta["frozen_parameters"]
    trainable = [n for n, p in params.items() if p.requires_grad]
    assert trainable == [n for n, _ in HT_PARAMETERS if n not in run.meta["frozen_parameters"]]
    # the optimiser sees exactly the model's trainable leaves: nothing else of the model can move
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(params[n].numel() for n in trainable)
    for n in run.meta["frozen_parameters"]:
        assert not params[n].requires_grad and not params[n].any()


@pytest.mark.parametrize("extra", [{"normalization_type": "LN"}, {"normalization_type": None},
                                   {"normalization_type": "LN", "attn_only": True}, {"attn_only": True}])
def test_the_layout_of_other_architectures_is_the_hookedtransformer_one(extra):
    """2 layers, LayerNorm, attention-only: the seam's parameter list is HookedTransformer 3.9's (names, shapes,
    order: the init and SGLD order)."""
    kw = dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=24, d_vocab_out=23, n_ctx=3,
              act_fn="relu", positional_embedding_type="standard", normalization_type=None, seed=0, device="cpu")
    model = model_from_kwargs({**kw, **extra})
    got = [(n, tuple(p.shape)) for n, p in tl.parameters(model).items()]
    assert got == list(tl.ht_layout(model.cfg).items())
    if tl.TL_MAJOR < 4:
        assert got == [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    assert set(tl.state_dict(model)) == set(got_n for got_n, _ in got) | {
        f"blocks.{i}.attn.{b}" for i in range(2) for b in ("mask", "IGNORE")}


def test_state_dict_is_the_hookedtransformer_layout_and_round_trips(run):
    """Silent-wrong item: the bridge's own layout (blocks.0.attn.q.weight (128, 128)) is not the files' layout."""
    shipped, _ = read_safetensors(RUN / "step_020000.safetensors")
    model = run.load(20000)
    sd = tl.state_dict(model)
    assert list(sd) == list(tl.state_dict(model_from_kwargs(run.meta["hooked_transformer_config"])))
    assert all(torch.equal(sd[k], v) for k, v in shipped.items())
    assert tuple(sd["blocks.0.attn.W_Q"].shape) == (4, 128, 32)
    # the forward reads the loaded weights: W_Q of the (view) API equals the file's
    assert torch.equal(model.blocks[0].attn.W_Q.detach(), shipped["blocks.0.attn.W_Q"])
    assert torch.equal(model.W_U.detach(), shipped["unembed.W_U"])


def test_attn_scale_is_sqrt_d_head_and_the_fast_path_is_exact(run):
    """attn_scale (a bridge has no attn.attn_scale); the training forward equals the model's on every input."""
    model = run.load(20000)
    assert tl.attn_scale(model, 0) == math.sqrt(32)
    x = tokens(113)[::7]
    with torch.no_grad():
        assert torch.allclose(training_logits(model, x), model(x)[:, -1], atol=1e-4, rtol=1e-5)


# -- hooks and copies ----------------------------------------------------------------------------------------------

def test_tl_capture_hooks_are_not_user_hooks(run):
    """Silent-wrong item: after a forward a bridge keeps its own capture hooks; counting them as a user's would send
    training down the slow path for good."""
    model = run.load(20000)
    x = tokens(113)[:10]
    model(x)
    model.run_with_cache(x)
    assert not has_hooks(model)
    with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", lambda t, hook: t * 0)]):
        assert has_hooks(model)
        assert torch.equal(training_logits(model, x), model(x)[:, -1])  # the hook is seen by training
    assert not has_hooks(model)
    h = model.blocks[0].mlp.register_forward_hook(lambda *a: None)
    assert has_hooks(model)
    h.remove()


def test_deepcopy_is_independent_of_the_original(run):
    """Silent-wrong item (TL 4.3 defect): the copy's capture hooks point at the original; the copy must work alone."""
    model = run.load(1000)
    x = tokens(113)[:64]
    with torch.no_grad():
        want = model(x)
    twin = copy.deepcopy(model)
    del model
    gc.collect()
    with torch.no_grad():
        assert torch.equal(twin(x), want)
        tl.parameters(twin)["embed.W_E"].add_(1.0)
        again = copy.deepcopy(twin)
        again(x)  # a copy of a copy after a forward
        assert not torch.equal(twin(x), want)


# -- the measures ----------------------------------------------------------------------------------------------------

def test_logit_map_without_layernorm_is_plain_w_out_w_u(run):
    """Silent-wrong item: a bridge's ln_final wraps nn.Identity; taken for a LayerNorm it centres W_out (Gini W_L
    0.887887 instead of 0.887642)."""
    model = run.load(20000)
    assert tl.final_norm(model) is None
    W_out = model.blocks[0].mlp.W_out.detach().double()
    W_U = model.W_U.detach().double()
    assert torch.equal(probes.logit_map(model), W_out @ W_U)


def test_logit_map_folds_a_real_layernorm():
    """With normalization_type="LN" the final LayerNorm's centring and gain are folded in (constructed gain)."""
    cfg = preset("tiny").replace(layer_norm=True)
    model = build_model(cfg)
    with torch.no_grad():
        tl.parameters(model)["ln_final.w"].fill_(2.0)
    kind, gain = tl.final_norm(model)
    assert kind == "LN" and torch.equal(gain.detach(), torch.full((cfg.d_model,), 2.0))
    W_out = model.blocks[0].mlp.W_out.detach().double()
    want = (W_out - W_out.mean(1, keepdim=True)) * 2.0 @ model.W_U.detach().double()
    assert torch.allclose(probes.logit_map(model), want, atol=1e-12)


@pytest.mark.slow
def test_shipped_measures_recompute_to_1e_6(run):
    """`interp measure` on the shipped run reproduces the committed measures (three checkpoints, every column)."""
    import pandas as pd

    committed = pd.read_csv(MEASURES / "measures.csv").set_index("step")
    meta = json.loads((MEASURES / "measures.json").read_text())
    steps = [1000, 9400, 20000]
    got = probes.measure_run(run, key_freqs=meta["key_frequencies"], steps=steps, progress=False).df.set_index("step")
    cols = [c for c in got.columns if c in committed.columns and not c.startswith("llc")]
    assert len(cols) > 20
    for step in steps:
        for c in cols:
            a, b = float(got.loc[step, c]), float(committed.loc[step, c])
            assert abs(a - b) <= 1e-6 * max(abs(b), 1e-12) or (math.isnan(a) and math.isnan(b)), (step, c, a, b)


def test_llc_noise_is_drawn_in_the_hookedtransformer_layout(run):
    """Silent-wrong item: devinterp draws SGLD noise per parameter in the order and shape it is given; the LLC is
    the same number on both versions only in the 3.9 layout."""
    from interp.probes.learning_coefficient import _sampled_parameters

    model = run.load(20000)
    own = dict(model.named_parameters())
    sampled = [tuple(own[n].shape) for n in _sampled_parameters(model)]
    assert sampled == [s for n, s in HT_PARAMETERS if n not in run.meta["frozen_parameters"]]


LLC_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from interp import Run, probes, tl
run = Run(sys.argv[1])
r = probes.llc(run.load(run.final_step), run.task, chains=2, draws=10, batch_size=64, warn=False)
print(json.dumps({"llc": r.estimate, "tl": tl.TL_VERSION}))
"""


def _llc_with(python: str, run: Run) -> dict:
    out = subprocess.run([python, "-c", LLC_SCRIPT, str(run.path)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not OTHER, reason="INTERP_OTHER_TL_PYTHON (a Python with the other TransformerLens major) not set")
def test_llc_is_the_same_number_on_both_versions(straight):
    """The same checkpoint, settings and seed give the same LLC on 3.9 and 4.x (noise in the 3.9 layout; the
    bridge's full forward and backward agree with the HookedTransformer's to float rounding)."""
    pytest.importorskip("devinterp")
    here, there = _llc_with(sys.executable, straight), _llc_with(OTHER, straight)
    assert here["tl"].split(".")[0] != there["tl"].split(".")[0]
    assert here["llc"] == pytest.approx(there["llc"], rel=1e-6, abs=0)


# -- training and resume, across versions ---------------------------------------------------------------------------

def _tiny(n_steps: int):
    return preset("tiny", n_steps=n_steps, save_every=20, eval_every=10)


TRAIN_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
from interp.config import preset
from interp.train import train
class Stop(Exception):
    pass
def stop_at(step, row):
    if step == 45:
        raise Stop
try:
    if sys.argv[2] == "resume":
        train(None, sys.argv[1], progress=False, resume=True)
    else:
        train(preset("tiny", n_steps=60, save_every=20, eval_every=10), sys.argv[1], progress=False, on_step=stop_at)
except Stop:
    pass
"""


def _train(python: str, out: Path, mode: str) -> None:
    """Train the tiny preset 60 steps in ``out`` with ``python``: "interrupt" stops it at step 45 (resume state at
    40), "resume" finishes it."""
    proc = subprocess.run([python, "-c", TRAIN_SCRIPT, str(out), mode], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The tiny preset trained 60 steps here in one go."""
    return train(_tiny(60), tmp_path_factory.mktemp("tl") / "straight", progress=False)


def _same_run(a: Run, b: Run) -> None:
    assert a.steps == b.steps and a.state == b.state == "complete"
    for step in a.steps:
        sa, sb = a.state_dict(step), b.state_dict(step)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), step
    ma, mb = a.metrics, b.metrics
    assert list(ma.columns) == list(mb.columns)
    assert ma.fillna(-1).equals(mb.fillna(-1))


@pytest.mark.slow
def test_a_resumed_run_equals_an_uninterrupted_one(straight, tmp_path):
    _train(sys.executable, tmp_path / "r", "interrupt")
    assert Run(tmp_path / "r").state != "complete"
    _train(sys.executable, tmp_path / "r", "resume")
    _same_run(Run(tmp_path / "r"), straight)


@pytest.mark.slow
@pytest.mark.skipif(not OTHER, reason="INTERP_OTHER_TL_PYTHON (a Python with the other TransformerLens major) not set")
@pytest.mark.parametrize("first", ["here", "there"])
def test_a_run_resumes_on_the_other_version(straight, tmp_path, first):
    """Trained on one major version, resumed on the other: the same run, bit for bit, as one trained here in one go
    (both versions train on the same HookedTransformer-layout leaves)."""
    out = tmp_path / "r"
    here, there = sys.executable, OTHER
    _train(here if first == "here" else there, out, "interrupt")
    _train(there if first == "here" else here, out, "resume")
    _same_run(Run(out), straight)


# -- users' own models ----------------------------------------------------------------------------------------------

def test_probes_take_a_users_model_and_refuse_an_uncovered_architecture(run):
    """A model built by the user with TransformerLens itself is measured like interp's own; an architecture the
    measures do not cover is refused in one line naming what differs."""
    task = run.task
    ours = run.load(20000)
    user = _users_model(run.meta["hooked_transformer_config"], read_safetensors(RUN / "step_020000.safetensors")[0])
    # the same weights in another memory layout: the float64 products agree to rounding
    assert torch.allclose(probes.logit_map(user), probes.logit_map(ours), rtol=1e-12, atol=1e-15)
    assert torch.allclose(probes.fourier_norms(user, task)["W_L"], probes.fourier_norms(ours, task)["W_L"],
                          rtol=1e-12, atol=0)
    assert probes.restricted(user, task, [1, 21, 49]) == probes.restricted(ours, task, [1, 21, 49])
    assert probes.sum_squared_weights(user) == pytest.approx(probes.sum_squared_weights(ours), rel=1e-12)
    series = probes.measure_series([(20000, user)], task, key_freqs=[1, 21, 49]).df
    assert series.restricted_loss[0] == probes.restricted(ours, task, [1, 21, 49]).loss


@pytest.mark.skipif(tl.TL_MAJOR < 4, reason="a HookedTransformer of any architecture runs the measures' forward")
def test_a_bridge_the_measures_do_not_cover_is_refused_in_one_line(run):
    odd = _users_model({**run.meta["hooked_transformer_config"], "positional_embedding_type": "rotary",
                        "rotary_dim": 32}, None)
    with pytest.raises(ProbeError, match=r"^restricted: not measurable: positional_embedding_type='rotary'") as e:
        probes.restricted(odd, run.task, [1, 21, 49])
    assert "\n" not in str(e.value)
    processed = _users_model(run.meta["hooked_transformer_config"], None)
    processed.enable_compatibility_mode()  # the default: folds and centres W_U (Gini W_L 0.888113, not 0.887642)
    with pytest.raises(ProbeError, match=r"^fourier_norms: not measurable: its weights were processed"):
        probes.fourier_gini(processed, run.task)
    plain = _users_model(run.meta["hooked_transformer_config"], None)
    plain.enable_compatibility_mode(no_processing=True)  # exact: accepted
    probes.fourier_gini(plain, run.task)


def _users_model(kwargs: dict, state: dict | None):
    """What a researcher writes: HookedTransformer(cfg) on 3.9, TransformerBridge.boot_native + convert_tl_checkpoint
    on 4.x (and load_state_dict of the HookedTransformer file on 3.9)."""
    if tl.TL_MAJOR < 4:
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(**kwargs))
        if state is not None:
            model.load_state_dict(state, strict=False)
        return model.eval()
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = TransformerBridgeConfig(**kwargs)
    model = TransformerBridge.boot_native(cfg)
    if state is not None:
        model.load_state_dict(convert_tl_checkpoint(state, cfg), strict=False)
    return model.eval()


def test_task_of_users_model_is_checked(run):
    user = _users_model(run.meta["hooked_transformer_config"], None)
    with pytest.raises(ProbeError, match="d_vocab_out=113"):
        probes.restricted(user, Task(p=23), [1])


@pytest.mark.slow
def test_the_own_model_example_gives_the_committed_numbers():
    """examples/your_own_model.py, on whichever TransformerLens is installed: the committed final-step measures."""
    import pandas as pd

    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "your_own_model.py")], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = pd.read_csv(MEASURES / "measures.csv").iloc[-1]
    assert "key frequencies: [1, 21, 49]" in proc.stdout
    gini = float(proc.stdout.split("Gini of W_L: ")[1].split()[0])
    assert gini == pytest.approx(final.gini_W_L, rel=1e-6)
    assert ("HookedTransformer" if tl.TL_MAJOR < 4 else "TransformerBridge") in proc.stdout
