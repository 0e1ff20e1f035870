import json

import pytest
import torch
from safetensors.torch import load_file


from interp.config import preset
from interp.errors import ConfigError, RunFormatError
from interp.model import build_model
from interp.model import float64_cross_entropy
from interp.train import checkpoint_steps, train


class _Interrupt(Exception):
    pass


def _interrupt_at(step):
    def hook(t, row):
        if t == step:
            raise _Interrupt
    return hook


def _files(path):
    return {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.name.startswith("step_")}


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "uninterrupted"
    return train(preset("tiny", n_steps=250), out, progress=False)


def test_run_directory_layout(tiny_reference):
    run = tiny_reference
    names = {f.name for f in run.path.iterdir()}
    assert {"run.json", "split.json", "metrics.csv", "resume.safetensors"} <= names
    assert run.steps == [0, 50, 100, 150, 200, 250]
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["seeds"] == {"data_seed": 0, "model_seed": 0}
    assert meta["hooked_transformer_config"]["d_vocab"] == 24 and meta["status"]["state"] == "complete"
    assert meta["versions"]["torch"].startswith("2.")
    split = json.loads((run.path / "split.json").read_text())  # readable without interp
    assert split["train"] == run.task.train_idx.tolist() and len(split["train"]) == run.config.n_train
    # metrics: one row per step, test every eval_every steps and at the end
    m = run.metrics
    assert list(m.step) == list(range(251))
    assert m.test_loss.notna().sum() == 26 and m.test_loss.notna()[250]
    # checkpoints are plain TransformerLens state dicts, fp32, loadable without interp
    sd = load_file(run.checkpoint_path(250))
    model = build_model(run.config)
    model.load_state_dict(sd)
    assert all(t.dtype == torch.float32 for t in sd.values() if t.is_floating_point())
    # and the recorded train loss is the loss of the saved weights
    task = run.task
    with torch.no_grad():
        logits = model(task.tokens()[task.train_idx])[:, -1]
    assert float64_cross_entropy(logits, task.labels()[task.train_idx]).item() == pytest.approx(
        m.train_loss[250], rel=1e-5)


@pytest.mark.parametrize("stop_at", [37, 100, 149])
def test_resume_is_bit_identical(tmp_path, tiny_reference, stop_at):
    out = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train(preset("tiny", n_steps=250), out, progress=False, on_step=_interrupt_at(stop_at))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(preset("tiny", n_steps=250), out, progress=False)  # never overwrite a run
    run = train(None, out, resume=True, progress=False)
    assert _files(out) == _files(tiny_reference.path)
    assert (out / "metrics.csv").read_bytes() == (tiny_reference.path / "metrics.csv").read_bytes()
    assert run.steps == tiny_reference.steps


def test_resume_can_extend_a_finished_run(tmp_path, tiny_reference):
    out = tmp_path / "run"
    train(preset("tiny", n_steps=150), out, progress=False)
    run = train(None, out, resume=True, n_steps=250, progress=False)
    # The lr schedule has no end, so a run extended from 150 to 250 equals one trained to 250.
    assert _files(out) == _files(tiny_reference.path)
    assert run.config.n_steps == 250


def test_resume_needs_resume_state(tmp_path):
    out = tmp_path / "run"
    train(preset("tiny", n_steps=20), out, progress=False)
    (out / "resume.safetensors").unlink()
    with pytest.raises(RunFormatError, match="no resume state"):
        train(None, out, resume=True, progress=False)


def test_checkpoint_schedule_and_early_stop(tmp_path, tiny_reference):
    cfg = preset("tiny", n_steps=100, save_every=0, save_steps=(7, 30, 500))
    assert checkpoint_steps(cfg) == {0, 7, 30, 100}
    # tiny's test loss starts near log(23) = 3.14 and only rises while it memorises: a threshold just above
    # the initial loss stops at step 0, one below it is never reached and the run completes.
    evals = tiny_reference.metrics.dropna()
    initial = float(evals.test_loss.iloc[0])
    run = train(preset("tiny", n_steps=250, stop_test_loss=initial * 1.001), tmp_path / "early", progress=False)
    assert run.steps == [0] and list(run.metrics.step) == [0]
    assert json.loads((run.path / "run.json").read_text())["status"] == {"state": "stopped_early", "step": 0,
                                                                               "n_steps": 250}
    assert evals.test_loss.min() > initial * 0.99
    run = train(preset("tiny", n_steps=60, stop_test_loss=initial * 0.99), tmp_path / "never", progress=False)
    assert run.final_step == 60
    assert json.loads((run.path / "run.json").read_text())["status"] == {"state": "complete", "step": 60, "n_steps": 60}


def test_stop_after_test_accuracy_is_reached_and_resumes_identically(tmp_path, tiny_reference):
    """stop_test_acc / stop_after_steps: the run stops that many steps after the first eval at or above the level,
    its rows are the uninterrupted run's, and a run killed in between and resumed stops at the same step."""
    evals = tiny_reference.metrics.dropna()
    rising = evals[evals.test_acc > evals.test_acc.iloc[0]]
    level = float(rising.test_acc.iloc[0])            # tiny's test accuracy climbs above its start early on
    first = int(evals[evals.test_acc >= level].step.iloc[0])
    assert 0 < first < 200
    cfg = preset("tiny", n_steps=250, stop_test_acc=level, stop_after_steps=25)
    run = train(cfg, tmp_path / "stop", progress=False)
    assert run.final_step == first + 25
    assert json.loads((run.path / "run.json").read_text())["status"]["state"] == "stopped_early"
    ref = tiny_reference.metrics[tiny_reference.metrics.step <= first + 25].reset_index(drop=True)
    assert run.metrics.reset_index(drop=True).equals(ref)
    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "killed", progress=False, on_step=_interrupt_at(first + 10))
    train(None, tmp_path / "killed", resume=True, progress=False)
    assert _files(tmp_path / "killed") == _files(run.path)
    with pytest.raises(ConfigError, match="stop_test_acc"):
        preset("tiny", stop_test_acc=1.5)


def test_small_preset_groks(grokked_run):
    """The `small` preset memorises first and generalises much later: real grokking, in the suite."""
    m = grokked_run.metrics.dropna()
    memorised = m[(m.train_acc == 1.0) & (m.test_acc < 0.5)]
    assert len(memorised) > 0, "train accuracy should reach 1 long before test accuracy"
    first_memorised = int(memorised.step.iloc[0])
    generalised = m[m.test_acc >= 0.99]
    assert len(generalised) > 0 and m.test_acc.iloc[-1] >= 0.99
    assert int(generalised.step.iloc[0]) > 3 * first_memorised
    assert m.test_loss.max() > 5 and m.test_loss.iloc[-1] < 0.05


def test_from_interp_import_train_trains(tmp_path):
    import inspect

    import interp
    from interp import train as train_from_package

    run = train_from_package(preset("tiny", n_steps=3), tmp_path / "r", progress=False)  # as people write it
    assert run.state == "complete" and run.steps == [0, 3]
    assert "cfg" in inspect.signature(train_from_package).parameters
    assert interp.train.train is train and interp.train.checkpoint_steps is checkpoint_steps  # the module still
