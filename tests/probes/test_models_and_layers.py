"""Probes on the models people build: any depth, LayerNorm, attention-only, other input formats, elsewhere-trained
checkpoints; every mismatch between model and task is one line naming both."""

import math

import pandas as pd
import pytest
import torch

from interp import probes
from interp.config import preset
from interp.sweep.tables import SweepTables
from interp.emergence.tables import run_transitions
from interp.errors import ConfigError, ProbeError, RunFormatError
from interp.files import save_tensors
from interp.model import build_model, model_from_kwargs
from interp.tasks import Task

P = 23


def tl_model(**over):
    kw = dict(n_layers=1, d_model=16, n_ctx=3, d_head=8, n_heads=2, d_mlp=32, d_vocab=P + 1, d_vocab_out=P,
              act_fn="relu", normalization_type=None, seed=0)
    kw.update(over)
    return model_from_kwargs(kw, device="cpu"), kw


TASK = Task(op="add", p=P, frac_train=0.5)


@pytest.mark.parametrize("over, says", [
    (dict(n_ctx=4), "the model has n_ctx=4 but the task add mod 23 feeds [a, b, =] with '=' = token 23 (n_ctx=3"),
    (dict(d_vocab=P + 2), "the model has d_vocab=25 (so its '=' token is not id 23) but the task add mod 23"),
    (dict(d_vocab_out=P + 1), "the model predicts d_vocab_out=24 classes but the task add mod 23"),
])
def test_a_model_that_does_not_read_the_tasks_inputs_is_refused_in_one_line(over, says):
    model, _ = tl_model(**over)
    for fn in (lambda: probes.loss_and_accuracy(model, TASK), lambda: probes.key_frequencies(model, TASK),
               lambda: probes.fourier_norms(model, TASK)):
        with pytest.raises(ProbeError) as e:
            fn()
        assert says in str(e.value) and "\n" not in str(e.value)


def test_a_users_own_tokens_and_labels_are_measured():
    # [a, +, b, =] with '+' = 23 and '=' = 24: four positions, a vocabulary of p + 2
    model, _ = tl_model(n_ctx=4, d_vocab=P + 2)
    base = Task(op="add", p=P)
    a, b = base.pairs().unbind(1)
    tokens = torch.stack([a, torch.full_like(a, P), b, torch.full_like(a, P + 1)], 1)
    labels = (a + b + 1) % P  # not our label set: a + b + 1
    task = Task.custom("add", P, tokens=tokens, labels=labels, frac_train=0.5)
    assert task.n_ctx == 4 and task.d_vocab == P + 2
    with torch.no_grad():
        L = model(tokens)[:, -1].double()
    assert probes.loss_and_accuracy(model, task).loss == pytest.approx(
        float(torch.nn.functional.cross_entropy(L, labels)), rel=1e-6)
    assert probes.measure_series([(0, model)], task).df["train_loss"].notna().all()


def test_every_layer_is_measured_and_the_layer_is_named():
    model, _ = tl_model(n_layers=2)
    m = probes.measure_model(model, TASK, [1, 2])
    for lay in (0, 1):
        nc = probes.neuron_clusters(model, TASK, layer=lay)
        assert m[f"frac_neurons_clustered_l{lay}"] == pytest.approx(nc.clustered.mean())
        assert m[f"gini_W_L_l{lay}"] == pytest.approx(probes.fourier_gini(model, TASK, layer=lay)["W_L"])
    assert m["gini_W_L"] == m["gini_W_L_l1"]  # the default is the last layer
    assert probes.measure_model(model, TASK, [1, 2], layer=0)["gini_W_L"] == m["gini_W_L_l0"]
    assert m["gini_W_L_l0"] != m["gini_W_L_l1"]
    ms = probes.measure_series([(0, model), (10, model)], TASK, [1, 2])
    assert ms.layer == 1 and "layer 1 of 2" in ms.protocol["layer"]
    with pytest.raises(ProbeError, match=r"layer must be an integer in \[0, 2\) for this 2-layer model, got 2"):
        probes.neuron_clusters(model, TASK, layer=2)


def test_layernorm_model_sum_of_squares_and_logit_map_say_what_they_hold():
    model, _ = tl_model(normalization_type="LN")
    with torch.no_grad():
        model.ln_final.w.copy_(torch.linspace(0.5, 2.0, 16))
    per_tensor = probes.sum_squared_weights(model, per_tensor=True)
    assert not [n for n in per_tensor if ".ln" in n or n.startswith("ln")]
    with_norm = probes.sum_squared_weights(model, include_norm=True)
    ln = sum(float(p.double().square().sum()) for n, p in model.named_parameters() if "ln" in n)
    assert with_norm == pytest.approx(probes.sum_squared_weights(model) + ln)
    # W_L folds the final LayerNorm's centring and gain in: W_out (I - 11^T/d) diag(w) W_U
    W_out, W_U = model.blocks[0].mlp.W_out.double(), model.W_U.double()
    centre = torch.eye(16, dtype=torch.float64) - 1 / 16
    want = W_out @ centre @ torch.diag(model.ln_final.w.double()) @ W_U
    assert torch.allclose(probes.logit_map(model), want.detach(), atol=1e-10)
    proto = probes.measure_series([(0, model)], TASK).protocol
    assert any("LN normalisation" in a for a in proto["approximations"])
    assert "normalisation gains" in proto["sum_sq_weights"]


def test_attention_only_models_refuse_neuron_measures_and_tables_mark_them_not_applicable():
    model, _ = tl_model(attn_only=True)
    with pytest.raises(ProbeError, match="not applicable to an attention-only model"):
        probes.neuron_clusters(model, TASK)
    assert set(probes.fourier_norms(model, TASK)) == {"W_E"}
    m = probes.measure_series([(0, model)], TASK)
    assert {"frac_neurons_clustered", "gini_W_L"} <= set(m.not_applicable)
    assert "gini_W_L" not in m.df.columns and "gini_W_E" in m.df.columns


def test_quadratic_task_columns_are_not_applicable_and_survive_csv(tmp_path):
    cfg = preset("tiny", op="a2+ab+b2")
    model, task = build_model(cfg), Task.from_config(cfg)
    m = probes.measure_series([(0, model), (5, model)], task)
    assert "restricted_loss" in m.not_applicable and "restricted_loss" not in m.df.columns
    assert "gini_W_E" not in m.df.columns and "test_loss" in m.df.columns
    probes.save_measures(m, tmp_path)
    back = probes.load_measures(tmp_path)
    assert back.not_applicable.keys() == m.not_applicable.keys()
    with pytest.raises(ProbeError, match=r"key_frequencies: not applicable to task 'a2\+ab\+b2'"):
        probes.key_frequencies(model, task)


def test_emergence_says_not_applicable_never_flat():
    steps = list(range(0, 1000, 100))
    acc = [0.0] * 5 + [1.0] * 5
    gini = [0.1 + 0.08 * i for i in range(10)]
    results = pd.DataFrame({"run": ["add"] * 10 + ["quad"] * 10, "step": steps * 2, "test_acc": acc * 2,
                            "gini_W_E": gini + [math.nan] * 10})
    summary = pd.DataFrame({"run": ["add", "quad"], "not_applicable": ["", "gini_W_E restricted_loss"]})
    tr = run_transitions(SweepTables(results, summary, []), metrics=["test_acc", "gini_W_E"])
    quad = tr[(tr.run == "quad") & (tr.metric == "gini_W_E")].iloc[0]
    assert not quad.found and quad.reason.startswith("not applicable")
    add = tr[(tr.run == "add") & (tr.metric == "gini_W_E")].iloc[0]
    assert add.found and not str(add.reason).startswith("not applicable")


def test_a_folder_of_state_dicts_is_measured_like_a_run(tmp_path):
    import json

    model, kw = tl_model()
    models = []
    for step in (0, 20):
        with torch.no_grad():
            for prm in model.parameters():
                prm.add_(0.01 * step)
        save_tensors(tmp_path / f"ckpt_{step}.safetensors", {k: v.clone() for k, v in model.state_dict().items()})
        models.append((step, model_from_kwargs(kw, device="cpu")))
        models[-1][1].load_state_dict(model.state_dict())
    (tmp_path / "config.json").write_text(json.dumps(kw))
    from_folder = probes.measure_series(tmp_path, TASK, [1, 3])
    from_pairs = probes.measure_series(models, TASK, [1, 3])
    assert from_folder.steps == [0, 20]
    pd.testing.assert_frame_equal(from_folder.df, from_pairs.df)
    (tmp_path / "config.json").write_text(json.dumps({**kw, "tokenizer_name": "gpt2"}))
    with pytest.raises(RunFormatError, match=r"config.json: field\(s\) \['tokenizer_name'\] would load"):
        probes.measure_series(tmp_path, TASK)  # refused before TransformerLens could reach a model hub
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(RunFormatError, match="config.json: malformed JSON"):
        probes.measure_series(tmp_path, TASK)
    (tmp_path / "config.json").unlink()
    with pytest.raises(Exception, match="config.json"):
        probes.measure_series(tmp_path, TASK)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_loading_on_cuda_without_cuda_is_one_line(probe_run):
    from interp import Run

    with pytest.raises(ConfigError, match=r"^device 'cuda': CUDA is not available on this machine; use 'cpu'$"):
        Run(probe_run.path).load(device="cuda")


def test_measures_of_one_layer_are_not_kept_for_a_request_of_another(tmp_path, capsys):
    """`interp measure --layer 0` over measures of the default (last) layer computes them again; the same layer
    twice keeps them."""
    from interp.cli import main
    from interp.train import train

    run = train(preset("tiny", n_steps=40, save_every=20, n_layers=2), tmp_path / "run", progress=False)
    out = ["--quiet", "--out", str(tmp_path / "m")]
    assert main(["measure", str(run.path), *out]) == 0
    first = probes.load_measures(tmp_path / "m")
    assert first.layer == 1 and first.same_measurement(run) and first.same_measurement(run, layer=1)
    assert not first.same_measurement(run, layer=0)
    capsys.readouterr()
    assert main(["measure", str(run.path), "--layer", "0", *out]) == 0
    assert "already there" not in capsys.readouterr().out
    again = probes.load_measures(tmp_path / "m")
    assert again.layer == 0
    assert list(again.df.frac_neurons_clustered) == list(again.df.frac_neurons_clustered_l0)
    assert main(["measure", str(run.path), "--layer", "0", *out]) == 0
    assert "already there" in capsys.readouterr().out
