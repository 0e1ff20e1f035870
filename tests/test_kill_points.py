"""SIGKILL at every kill point between two writes (``INTERP_KILL_AT``), then check what a reader and the next command
find: training resumes bit-identically, a measures pair is never read mixed, a report is never half-replaced."""

import json
import shutil

import pytest

from interp import probes
from interp.cli import main
from interp.config import preset
from interp.errors import RunFormatError
from interp.killpoints import KILL_POINTS
from interp.runs import Run
from interp.train import train
from tests.reliability_helpers import cli, one_line_error

STEPS = 150
TRAIN = ["train", "--preset", "tiny", "--steps", str(STEPS), "--save-every", "50", "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train(preset("tiny", n_steps=STEPS, save_every=50), tmp_path_factory.mktemp("ref") / "run", progress=False)


def _status(out):
    return json.loads((out / "run.json").read_text())["status"]


def test_every_kill_point_is_named_and_described():
    assert len(KILL_POINTS) == 9 and all(KILL_POINTS.values())


@pytest.mark.ci
def test_training_killed_at_each_point_resumes_bit_identically(tmp_path, reference):
    out = tmp_path / "run"
    resume = ["train", "--out", out, "--resume", "--quiet"]
    # run.json written, nothing trained
    assert cli(*TRAIN, "--out", out, kill="train.created").returncode == -9
    assert Run(out).steps == [] and Run(out).state == "interrupted"
    # the step-0 checkpoint written, no resume state yet: this run must restart on --resume (it could not)
    assert cli(*resume, kill="train.checkpoint:1").returncode == -9
    assert Run(out).steps == [0] and not (out / "resume.safetensors").exists()
    # step 50's checkpoint and metrics written, its resume state not: status.step is still the last saved, 0
    assert cli(*resume, kill="train.metrics:2").returncode == -9
    assert Run(out).steps == [0, 50] and _status(out)["step"] == 0
    # resume state at step 100 written, run.json not yet updated: status.step says 50, but the run reports the step
    # of the resume file on disk, 100 (what --resume continues from)
    assert cli(*resume, kill="train.resume:3").returncode == -9
    assert _status(out)["step"] == 50 and Run(out).saved_step == 100
    assert "at step 100 of 150" in Run(out).describe_state()
    # the final checkpoint written, nothing after it
    assert cli(*resume, kill="train.checkpoint:2").returncode == -9
    done = cli(*resume)
    assert done.returncode == 0, done.stderr
    run = Run(out)
    assert run.state == "complete" and _status(out)["step"] == STEPS
    assert not [f.name for f in out.iterdir() if f.name.endswith(".tmp")]
    for step in reference.steps:
        name = f"step_{step:06d}.safetensors"
        assert (out / name).read_bytes() == (reference.path / name).read_bytes(), name
    assert (out / "metrics.csv").read_bytes() == (reference.path / "metrics.csv").read_bytes()


@pytest.mark.ci
def test_a_measures_pair_cut_between_its_two_files_is_refused_not_mixed(tmp_path, reference, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference.path, run)
    m = tmp_path / "m"
    assert main(["measure", str(run), "--out", str(m), "--key-freqs", "1,2", "--quiet"]) == 0
    killed = cli("measure", run, "--out", m, "--key-freqs", "3,4", "--recompute", "--quiet", kill="measure.csv")
    assert killed.returncode == -9
    # the new measures.csv (keys 3,4) beside the old measures.json (keys 1,2): a reader refuses the pair
    assert "excluded_loss_k3" in (m / "measures.csv").read_text()
    assert json.loads((m / "measures.json").read_text())["key_frequencies"] == [1, 2]
    with pytest.raises(RunFormatError, match="is not the table measures.json describes"):
        probes.load_measures(m)
    line = one_line_error(cli("report", run, "--measures", m, "--out", tmp_path / "r"))
    assert "--recompute" in line and not (tmp_path / "r").exists()
    # the run's own damaged pair is rewritten by the next `interp measure`, without --recompute
    capsys.readouterr()
    assert main(["measure", str(run), "--out", str(m), "--key-freqs", "3,4", "--quiet"]) == 0
    assert probes.load_measures(m).key_frequencies == [3, 4]


@pytest.mark.ci
def test_a_report_killed_while_rewritten_leaves_the_old_page_or_none(tmp_path, reference, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(reference.path, run)
    r = tmp_path / "r"
    assert main(["report", str(run), "--out", str(r), "--recompute"]) == 0
    before = {f.name: f.read_bytes() for f in r.iterdir()}
    assert "index.html" in before and sum(n.endswith(".png") for n in before) == 9
    train(None, run, resume=True, n_steps=STEPS + 50, progress=False)  # the run moves on: every figure changes
    # killed after its third new figure: the old page and all its figures are untouched
    assert cli("report", run, "--out", r, "--recompute", kill="report.figure:3", cwd=tmp_path).returncode == -9
    assert {f.name: f.read_bytes() for f in r.iterdir()} == before
    # killed between moving the old report aside and the new one in: no page rather than a mixed one
    assert cli("report", run, "--out", r, "--recompute", kill="staged.between_renames", cwd=tmp_path).returncode == -9
    assert not r.exists()
    assert main(["report", str(run), "--out", str(r), "--recompute"]) == 0
    after = {f.name: f.read_bytes() for f in r.iterdir()}
    assert set(after) == set(before) and after["index.html"] != before["index.html"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
