"""Every file belongs to its run: checkpoints and resume files carry the run's identity and step, run.json's run_id is
recomputed, the recorded state never lags the files, and a stray or linked file is refused, not measured."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interp.cli import main
from interp.config import preset
from interp.errors import CheckpointError, RunFormatError
from interp.files import read_safetensors
from interp.runs import Run
from interp.train import train
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "nanda2023-p113-seed0"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs of one config but for the seeds (a: 0, b: 1), 60 steps, checkpoints every 20."""
    root = tmp_path_factory.mktemp("identity")
    return {name: train(preset("tiny", n_steps=60, save_every=20, data_seed=seed, model_seed=seed), root / name,
                        progress=False) for name, seed in (("a", 0), ("b", 1))}


@pytest.fixture
def run_a(runs, tmp_path):
    d = tmp_path / "a"
    shutil.copytree(runs["a"].path, d)
    return d


def _files(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in d.iterdir() if f.is_file() and f.name != ".lock"}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- 1: a resume file from another run ----------------------------------------------------------------


def test_a_resume_file_from_another_run_is_refused_and_destroys_nothing(runs, run_a, capsys):
    shutil.copy(runs["b"].path / "resume.safetensors", run_a / "resume.safetensors")
    before = _files(run_a)
    assert main(["train", "--out", str(run_a), "--resume", "--steps", "80", "--quiet"]) == 1
    err = _one_line(capsys)
    assert "resume.safetensors: belongs to another run" in err and Run(run_a).weights_id in err
    assert {k: v for k, v in _files(run_a).items() if k != "run.json"} == \
        {k: v for k, v in before.items() if k != "run.json"}  # no checkpoint, no metrics row rewritten


def test_a_resume_file_without_identity_is_checked_against_the_runs_own_checkpoint(runs, run_a):
    """A run written before files carried identity (no file_identity in run.json) still refuses another run's resume
    file: its model must equal the run's own checkpoint at that step."""
    tensors, meta = read_safetensors(runs["b"].path / "resume.safetensors")
    legacy = {k: v for k, v in meta.items() if k not in ("weights_id",)}
    save_file(tensors, str(run_a / "resume.safetensors"), metadata=legacy)
    for f in run_a.glob("step_*.safetensors"):  # the run's own files, as an older interp wrote them
        t, _ = read_safetensors(f)
        save_file(t, str(f))
    meta_a = json.loads((run_a / "run.json").read_text())
    meta_a.pop("file_identity", None)
    (run_a / "run.json").write_text(json.dumps(meta_a))
    before = (run_a / "step_000060.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="differs from this run's checkpoint step_000060"):
        train(None, run_a, resume=True, n_steps=80, progress=False)
    assert (run_a / "step_000060.safetensors").read_bytes() == before


def test_a_checkpoint_is_never_overwritten_with_other_weights(runs, run_a):
    run = Run(run_a)
    other, _ = read_safetensors(runs["b"].path / "step_000020.safetensors")
    before = (run_a / "step_000020.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="holds different weights at step 20.*refused to overwrite"):
        run.save_checkpoint(20, other)
    assert (run_a / "step_000020.safetensors").read_bytes() == before


# -- 2: run.json's run_id is recomputed ---------------------------------------------------------------


def test_an_edited_run_json_is_refused_even_when_both_copies_agree(run_a, capsys):
    meta = json.loads((run_a / "run.json").read_text())
    meta["config"]["act_fn"] = meta["hooked_transformer_config"]["act_fn"] = "gelu"
    (run_a / "run.json").write_text(json.dumps(meta, indent=2))
    assert main(["measure", str(run_a), "--out", str(run_a.parent / "m"), "--key-freqs", "1", "--quiet"]) == 1
    err = _one_line(capsys)
    assert f"run_id {meta['run_id']!r} does not match its config" in err
    assert not (run_a.parent / "m").exists()


def test_a_split_json_from_another_run_is_refused(runs, run_a):
    shutil.copy(runs["b"].path / "split.json", run_a / "split.json")
    with pytest.raises(RunFormatError, match="does not match its config, split.json"):
        Run(run_a)


def test_the_run_id_survives_an_extension_and_the_shipped_run_opens(run_a):
    run = train(None, run_a, resume=True, n_steps=80, progress=False)
    assert Run(run_a).run_id == run.run_id and run.meta["identity_n_steps"] == 60
    shipped = Run(SHIPPED)  # written before files carried identity: its files are read as they are
    assert "file_identity" not in shipped.meta and shipped.state_dict(100)


# -- 3: the recorded state never lags the files -------------------------------------------------------


def test_ctrl_c_right_after_the_resume_file_is_written_records_its_step(tmp_path, monkeypatch):
    original = Run.save_resume

    def save_then_interrupt(self, step, tensors, metadata=None):
        original(self, step, tensors, metadata)
        if step == 40:
            raise KeyboardInterrupt  # between writing resume.safetensors and noting its step in run.json

    monkeypatch.setattr(Run, "save_resume", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(preset("tiny", n_steps=60, save_every=20), tmp_path / "run", progress=False)
    run = Run(tmp_path / "run")
    status = json.loads((tmp_path / "run" / "run.json").read_text())["status"]
    assert status == {"state": "interrupted", "step": 40, "n_steps": 60}
    assert run.saved_step == 40 and "interrupted at step 40 of 60" in run.describe_state()


# -- 10: bounded status, stray and linked checkpoints, reproducible bytes -----------------------------


def test_status_step_is_bounded(run_a, capsys):
    meta = json.loads((run_a / "run.json").read_text())
    meta["status"]["step"] = 10**30
    (run_a / "run.json").write_text(json.dumps(meta))
    assert main(["measure", str(run_a), "--out", str(run_a.parent / "m"), "--key-freqs", "1", "--quiet"]) == 1
    assert "status.step must be an integer in 0..100,000,000, got 1000000000000000000000000000000" in \
        _one_line(capsys)


def test_a_stray_checkpoint_past_n_steps_is_refused_not_measured(run_a, capsys):
    shutil.copy(run_a / "step_000060.safetensors", run_a / "step_999999999999.safetensors")
    assert main(["measure", str(run_a), "--out", str(run_a.parent / "m"), "--key-freqs", "1", "--quiet"]) == 1
    assert "step_999999999999.safetensors: step 999999999999 is past the run's n_steps 60" in _one_line(capsys)


def test_a_checkpoint_of_another_run_is_refused_copied_or_linked(runs, run_a):
    target = run_a / "step_000020.safetensors"
    shutil.copy(runs["b"].path / "step_000020.safetensors", target)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        Run(run_a).load(20)
    target.unlink()
    t, _ = read_safetensors(runs["b"].path / "step_000020.safetensors")
    legacy = run_a.parent / "legacy_b_20.safetensors"
    save_file(t, str(legacy))  # no identity at all: a link out of the run is refused for what it is
    target.symlink_to(legacy)
    with pytest.raises(CheckpointError, match="symbolic link .* outside the run directory"):
        Run(run_a).load(20)


def test_a_checkpoint_records_its_step_and_a_renamed_one_is_refused(run_a):
    os.replace(run_a / "step_000040.safetensors", run_a / "step_000020.safetensors")
    with pytest.raises(CheckpointError, match="records step '40', its place .* says 20"):
        Run(run_a).load(20)
    from interp.files import read_safetensors_header

    assert read_safetensors_header(run_a / "step_000060.safetensors")[1]["step"] == "60"


def test_files_are_byte_reproducible_across_processes(tmp_path):
    """safetensors orders its metadata differently in each process; interp writes it sorted."""
    code = ("import sys, torch; from interp.files import save_tensors; "
            "save_tensors(sys.argv[1], {'w': torch.ones(2)}, metadata={k: k for k in 'zyxwvutsrq'})")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("one", "two"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], env=env, check=True)
    data = (tmp_path / "one").read_bytes()
    assert data == (tmp_path / "two").read_bytes()
    assert data.index(b'"q":"q"') < data.index(b'"z":"z"')  # sorted keys
