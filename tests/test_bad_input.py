"""Damaged runs and bad parameters: one clear error naming the file and the fault, from the library and
from every CLI command (one line, non-zero exit, no traceback). Nothing is ever unpickled."""

import json
import os
import shutil

import pytest

from interp.runs import Run
from interp.config import preset
from interp.errors import CheckpointError, InterpError, RunFormatError
from interp.train import train
from tests.cli_helpers import interp_cli


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return train(preset("tiny", n_steps=40, save_every=20), tmp_path_factory.mktemp("good") / "run", progress=False)


@pytest.fixture()
def run_copy(good_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(good_run.path, dst)
    return dst


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path):
    path.write_bytes(os.urandom(4096))


def _wrong_shapes(path):
    other = train(preset("tiny", d_mlp=32, n_steps=1, save_every=1), path.parent.parent / "other", progress=False)
    shutil.copy(other.checkpoint_path(0), path)


def _pickle(path):
    import pickle

    path.write_bytes(pickle.dumps({"embed.W_E": [1, 2, 3]}))


# (what to damage, how, the exception, a fragment of its message)
CHECKPOINT_DAMAGE = [
    ("truncated", _truncate, CheckpointError, "truncated or corrupt"),
    ("random bytes", _random_bytes, CheckpointError, "not a valid safetensors file"),
    ("pickle file", _pickle, CheckpointError, "safetensors"),
    ("wrong shapes", _wrong_shapes, CheckpointError, "has shape"),
]


@pytest.mark.parametrize("label, damage, exc, fragment", CHECKPOINT_DAMAGE, ids=[c[0] for c in CHECKPOINT_DAMAGE])
def test_damaged_checkpoints(run_copy, label, damage, exc, fragment):
    path = run_copy / "step_000020.safetensors"
    damage(path)
    run = Run(run_copy)
    with pytest.raises(exc, match=fragment) as err:
        run.load(20)
    assert str(path) in str(err.value)
    run.load(40)  # the other checkpoints are unaffected


def _edit_json(name, fn):
    def damage(run_dir):
        path = run_dir / name
        path.write_text(fn(path.read_text()))
    return damage


RUN_DAMAGE = [
    ("missing run.json", lambda d: (d / "run.json").unlink(), "no run.json"),
    ("malformed run.json", _edit_json("run.json", lambda t: t[: len(t) // 2]), "run.json: malformed JSON"),
    ("run.json not ours", _edit_json("run.json", lambda t: json.dumps({"hello": 1})), "not an interp run file"),
    ("bad config in run.json", _edit_json("run.json", lambda t: t.replace('"p": 23', '"p": 24')),
     "run.json: config: RunConfig.p must be prime"),
    ("unknown field", _edit_json("run.json", lambda t: t.replace('"p": 23', '"p": 23, "q": 1')),
     "unknown field"),
]


@pytest.mark.parametrize("label, damage, fragment", RUN_DAMAGE, ids=[c[0] for c in RUN_DAMAGE])
def test_damaged_run_json(run_copy, label, damage, fragment):
    damage(run_copy)
    with pytest.raises(RunFormatError, match=fragment):
        Run(run_copy)


def test_metrics_with_missing_rows(run_copy):
    path = run_copy / "metrics.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10] + lines[15:]) + "\n")
    with pytest.raises(RunFormatError, match=r"metrics.csv: line 11: step 14 follows step 8; rows are missing"):
        Run(run_copy).metrics


def test_metrics_with_garbage(run_copy):
    path = run_copy / "metrics.csv"
    path.write_text(path.read_text().replace("\n3,", "\n3,abc", 1))
    with pytest.raises(RunFormatError, match="metrics.csv: line 5 is not numeric"):
        Run(run_copy).metrics


def test_split_json_damage(run_copy):
    (run_copy / "split.json").write_text(json.dumps({"train": [0, 0, 1]}))
    with pytest.raises(RunFormatError, match="split.json: Task.explicit_train must be 317 distinct pair indices"):
        Run(run_copy).task


def test_not_a_run_and_missing_step(tmp_path, good_run):
    with pytest.raises(RunFormatError, match="not a run directory"):
        Run(tmp_path)
    with pytest.raises(RunFormatError, match="not a directory"):
        Run(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 25; available steps: \[0, 20, 40\]"):
        good_run.load(25)


def test_errors_share_one_family():
    for exc in (CheckpointError, RunFormatError):
        assert issubclass(exc, InterpError)


# ---- the same faults through every CLI command -------------------------------------------------------

_cli = interp_cli


def _assert_clean_error(result, *fragments):
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_every_command_reports_a_damaged_run_in_one_line(run_copy, tmp_path):
    _truncate(run_copy / "step_000040.safetensors")
    ckpt = str(run_copy / "step_000040.safetensors")
    _assert_clean_error(_cli("measure", str(run_copy), "--out", str(tmp_path / "m"), "--quiet"), ckpt, "truncated")
    _assert_clean_error(_cli("report", str(run_copy), "--out", str(tmp_path / "r"), "--recompute"), ckpt)
    _assert_clean_error(_cli("attention", str(run_copy), "--out", str(tmp_path / "a.html")), ckpt)
    (run_copy / "resume.safetensors").write_bytes(b"garbage!" * 3)
    _assert_clean_error(_cli("train", "--out", str(run_copy), "--resume", "--quiet"), "resume.safetensors")
    assert not (tmp_path / "a.html").exists() and not (tmp_path / "r" / "index.html").exists()


def test_every_command_reports_a_non_run_in_one_line(tmp_path):
    for args in (["measure", str(tmp_path)], ["report", str(tmp_path)],
                 ["attention", str(tmp_path), "--out", str(tmp_path / "a.html")]):
        _assert_clean_error(_cli(*args), str(tmp_path), "not a run directory")
    _assert_clean_error(_cli("train", "--out", str(tmp_path), "--resume"), str(tmp_path), "no run to resume")


def test_bad_parameters_fail_before_any_work(good_run, tmp_path):
    run = str(good_run.path)
    _assert_clean_error(_cli("attention", run, "--pairs", "1,2;23,0", "--out", str(tmp_path / "a.html")),
                        "(23, 0)", "[0, 23)")
    _assert_clean_error(_cli("attention", run, "--pairs", "1;2", "--out", str(tmp_path / "a.html")), "'1'")
    _assert_clean_error(_cli("attention", run, "--step", "7", "--out", str(tmp_path / "a.html")),
                        "no checkpoint for step 7")
    _assert_clean_error(_cli("measure", run, "--key-freqs", "", "--out", str(tmp_path / "m")), "--key-freqs is empty")
    _assert_clean_error(_cli("measure", run, "--key-freqs", "3,40", "--out", str(tmp_path / "m")), "1..11")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_clean_error(_cli("report", run, "--out", str(blocker / "r")), "--out", "is not a directory")
    assert not (tmp_path / "a.html").exists() and not (tmp_path / "m").exists()


def test_python_api_misuse_says_what_it_wanted(good_run):
    """A model where a run is expected, or one frequency where a list is expected: a one-line ProbeError that names
    what to pass instead (before: a raw AttributeError 'snapshot'; "must be integers, got 21")."""
    from interp import probes
    from interp.errors import ProbeError

    model = good_run.load(good_run.final_step)
    with pytest.raises(ProbeError, match=r"expected a run .* got (HookedTransformer|TransformerBridge).*measure_model"):
        probes.measure_run(model)
    with pytest.raises(ProbeError, match=r"must be a list of frequencies .* got 3; for one frequency write \[3\]"):
        probes.restricted(model, good_run.task, 3)
    assert probes.restricted(model, good_run.task, [3]).loss > 0  # the list form of the same request works
