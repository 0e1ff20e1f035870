"""Damaged or hostile files are refused with one line naming the file and the fault, never measured; inputs are
bounded (sizes, p, grids, steps, seeds, threads); a full disk is one line too."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from interp.cli import main
from interp.config import RunConfig, preset
from interp.sweep.tables import load_sweep
from interp.errors import CheckpointError, ConfigError, RunFormatError
from interp.files import read_safetensors
from interp.runs import Run
from interp.sweep.spec import SweepSpec
from interp.train import train
from tests.reliability_helpers import cli, one_line_error

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return train(preset("tiny", n_steps=40, save_every=20), tmp_path_factory.mktemp("hostile") / "run",
                 progress=False)


@pytest.fixture
def run_dir(base_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(base_run.path, d)
    return d


def _edit_json(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _edit_tensors(path, change):
    tensors, meta = read_safetensors(path)
    change(tensors)
    save_file(tensors, str(path), metadata=meta or None)


def _measure_fails(run_dir, capsys, *needles):
    assert main(["measure", str(run_dir), "--out", str(run_dir.parent / "m"), "--key-freqs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


# -- checkpoints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, needle", [
    (lambda t: t["blocks.0.mlp.W_in"][:, :7].fill_(float("nan")), "'blocks.0.mlp.W_in' has 224 NaN value(s)"),
    (lambda t: t["unembed.W_U"].__setitem__((0, 0), float("inf")), "'unembed.W_U' has 1 infinite value(s)"),
    (lambda t: t.__setitem__("embed.W_E", t["embed.W_E"].to(torch.int32)), "'embed.W_E' is torch.int32"),
    (lambda t: t.__setitem__("embed.W_E", t["embed.W_E"] > 0), "'embed.W_E' is torch.bool"),
    (lambda t: t.__setitem__("blocks.0.mlp.W_in", t["blocks.0.mlp.W_in"].to(torch.float64)), "is torch.float64"),
])
def test_a_damaged_checkpoint_is_an_error_naming_file_and_tensor(run_dir, capsys, change, needle):
    _edit_tensors(run_dir / "step_000020.safetensors", change)
    _measure_fails(run_dir, capsys, "step_000020.safetensors", needle)


def test_a_diverged_but_finite_checkpoint_is_measured(run_dir):
    _edit_tensors(run_dir / "step_000040.safetensors", lambda t: t["blocks.0.mlp.W_in"].mul_(1e6))
    assert Run(run_dir).load(40) is not None


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "directory", "too_large"])
def test_a_checkpoint_that_is_not_a_bounded_regular_file_is_refused_at_once(run_dir, kind, monkeypatch):
    path = run_dir / "step_000020.safetensors"
    path.unlink()
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        import interp.files

        monkeypatch.setattr(interp.files, "MAX_TENSOR_BYTES", 1000)
        shutil.copy(run_dir / "step_000040.safetensors", path)
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match="not a regular file|is a directory|more than the 1,000|symbolic link"):
        Run(run_dir).load(20)
    assert time.monotonic() - t0 < 60  # not read until memory runs out, nor blocked on the FIFO (90 s before)


# -- run.json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, needle", [
    (lambda m: m["hooked_transformer_config"].update(act_fn="gelu"), "act_fn is 'gelu' but the run's config gives"),
    (lambda m: m["hooked_transformer_config"].update(tokenizer_name="gpt2"), "tokenizer_name is not a key"),
    (lambda m: m["hooked_transformer_config"].update(n_ctx=10**9), "n_ctx is 1000000000"),
    (lambda m: m["config"].pop("lr"), "config lacks field(s) ['lr']"),
    (lambda m: m["config"].update(lr="fast"), "RunConfig.lr must be a finite number"),
    (lambda m: m.pop("status"), "field 'status' is missing"),
    (lambda m: m.update(status="complete"), "field 'status' is missing or not an object"),
    (lambda m: m["status"].update(state="done"), "status.state must be one of"),
    (lambda m: m["seeds"].update(model_seed=7), "seeds"),
    (lambda m: m["config"].update(p=2**61 - 1), "must be at most 2003"),
])
def test_run_json_copies_must_agree_and_be_complete(run_dir, capsys, change, needle):
    _edit_json(run_dir / "run.json", change)
    t0 = time.monotonic()
    _measure_fails(run_dir, capsys, "run.json", needle)
    assert time.monotonic() - t0 < 30  # no model hub reached for (50 s before), no 60 s primality test


@pytest.mark.parametrize("text, needle", [
    ("[" * 5000 + "]" * 5000, "nested more than 64 levels"),
    ('{"format": "interp-run", "format_version": ' + "9" * 5000 + "}", "malformed JSON"),
])
def test_hostile_json_is_one_line(run_dir, capsys, text, needle):
    (run_dir / "run.json").write_text(text)
    _measure_fails(run_dir, capsys, "run.json", needle)


# -- the resume file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("change, needle", [
    (lambda t: [t.pop(k) for k in [k for k in t if k.startswith("optim.")]], "no optimiser state at step 40"),
    (lambda t: t.pop("optim.blocks.0.mlp.W_in.exp_avg_sq"), "'optim.blocks.0.mlp.W_in.exp_avg_sq' is missing"),
    (lambda t: t["optim.embed.W_E.step"].fill_(7.0), "counts 7 updates, but the file is at step 40"),
    (lambda t: t.__setitem__("model.embed.W_E", t["model.embed.W_E"].to(torch.int32)), "is torch.int32"),
    (lambda t: t.__setitem__("optim.embed.W_E.exp_avg", t["optim.embed.W_E.exp_avg"][:3]), "has shape (3, 32)"),
    (lambda t: t["optim.unembed.W_U.exp_avg"].fill_(float("nan")), "NaN"),
])
def test_resume_needs_the_full_optimiser_state_at_its_step(run_dir, change, needle):
    _edit_tensors(run_dir / "resume.safetensors", change)
    before = (run_dir / "step_000040.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="resume.safetensors") as e:
        train(None, run_dir, resume=True, n_steps=60, progress=False)
    assert needle in str(e.value)
    assert (run_dir / "step_000040.safetensors").read_bytes() == before  # nothing rewritten


# -- tables --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step, column, value, needle", [
    (20, 4, "7.5", "test_acc is 7.5; it must be in [0, 1]"),
    (5, 1, "inf", "train_loss is inf; it must be finite and >= 0"),
    (5, 2, "nan", "train_acc is nan; it must be in [0, 1]"),
    (6, 1, "-0.5", "train_loss is -0.5"),
])
def test_metrics_csv_is_range_checked(run_dir, step, column, value, needle):
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    fields = lines[step + 1].split(",")
    fields[column] = value
    lines[step + 1] = ",".join(fields)
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFormatError, match=f"metrics.csv: line {step + 2}") as e:
        Run(run_dir).metrics
    assert needle in str(e.value)


def test_sweep_tables_are_range_checked(tmp_path):
    for name, edit, needle in [
        ("nan", lambda df: df.assign(test_acc=float("nan")), "column 'test_acc' holds no numbers"),
        ("text", lambda df: df.assign(test_acc=df["test_acc"].astype(object).where(df.index != 3, "high")),
         "row 5 holds 'high'"),
        ("range", lambda df: df.assign(test_loss=-df["test_loss"] - 1), "it must be finite and >= 0"),
    ]:
        d = tmp_path / name
        shutil.copytree(ROOT / "sweeps" / "emergence-small", d)
        edit(pd.read_csv(d / "results.csv")).to_csv(d / "results.csv", index=False)
        with pytest.raises(RunFormatError, match="results.csv") as e:
            load_sweep(d)
        assert needle in str(e.value)


# -- bounds and the command line -----------------------------------------------------------------------


def test_sizes_are_bounded_before_any_work():
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="p must be at most 2003"):
        RunConfig(p=2**61 - 1)
    with pytest.raises(ConfigError, match="d_mlp must be at most"):
        RunConfig(d_mlp=10**9)
    with pytest.raises(ConfigError, match="1,000,000 runs, more than the 10,000"):
        SweepSpec.from_dict({"sweep": {"preset": "tiny"}, "seeds": {"both": 1000}, "grid": {"d_mlp": list(range(1, 1001))}}
                            ).expand()
    assert time.monotonic() - t0 < 30  # 120 s and nothing started, before


@pytest.mark.parametrize("argv, needle", [
    (["train", "--preset", "tiny", "--p", "4", "--out", "x"], "unrecognized arguments: --p 4"),
    (["train", "--preset", "tiny", "--steps", "100000000000000000000", "--out", "x"], "--steps must be at most"),
    (["train", "--preset", "tiny", "--seed", "100000000000000000000", "--out", "x"], "--seed must be at most"),
    (["train", "--preset", "tiny", "--threads", "100000", "--out", "x"], "--threads must be at most 256"),
    (["train", "--preset", "tiny", "--save-steps", "0-1000000000:1", "--out", "x"], "more than 100,000 checkpoints"),
    (["train", "--preset", "tiny", "--steps", "1" + "0" * 5000, "--out", "x"], "at most 30 digits"),
    (["sweep", "s.toml", "--out", "x", "--workers", "100000"], "--workers must be at most 256"),
])
def test_bad_arguments_are_one_line(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors (exit 2)
        rc = e.code
    err = capsys.readouterr().err
    assert rc in (1, 2) and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("text, needle", [
    ("", "the sweep spec is empty"),
    ("[sweep]\nname = " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
    ("[sweep]\nn_steps = " + "9" * 5000 + "\n", "not valid TOML"),
    ('[sweep]\npreset = "tiny"\n[grid]\nlr = ["fast"]\n', "RunConfig.lr must be a finite number"),
])
def test_bad_sweep_specs_are_one_line(text, needle, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_ray_address_fails_within_its_timeout(tmp_path):
    pytest.importorskip("ray")
    from interp.sweep.ray_backend import CONNECT_TIMEOUT_S

    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\npreset = "tiny"\nn_steps = 20\n[seeds]\nboth = 1\n')
    t0 = time.monotonic()
    line = one_line_error(cli("sweep", spec, "--out", tmp_path / "out", "--backend", "ray", "--address",
                              "127.0.0.1:1", "--quiet"))
    assert "--address 127.0.0.1:1: no Ray cluster reachable there within 10 s" in line
    assert time.monotonic() - t0 < CONNECT_TIMEOUT_S + 120  # start-up included; 413 s of warnings before


# -- a full disk ---------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (skipped where one cannot be mounted)."""
    d = tmp_path / "disk"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_full_disk_is_one_line_naming_the_file(small_disk, base_run, capsys):
    assert main(["train", "--preset", "small", "--steps", "20", "--out", str(small_disk / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and len(err.strip().splitlines()) == 1, err
    for f in small_disk.iterdir():
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    with open(small_disk / "filler", "wb") as f:  # fill it up
        try:
            f.write(b"\0" * (300 * 1024))
        except OSError:
            pass
    m = small_disk / "m"
    assert main(["measure", str(base_run.path), "--out", str(m), "--key-freqs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert not (m / "measures.json").exists()
    assert main(["report", str(base_run.path), "--out", str(small_disk / "r"), "--recompute"]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err.splitlines()[-1] and "Traceback" not in err, err
    assert not (small_disk / "r").exists()


# -- sizes checked before anything is allocated ----------------------------------------------------------


def test_a_model_too_large_for_one_machine_is_refused_by_arithmetic():
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="would have 103,093,469,297 weights .*, more than the 268,435,456"):
        RunConfig(n_layers=64, d_model=16_384, n_heads=128, d_head=128, d_mlp=16_384)  # each size allowed alone
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("change, needle", [
    ({"n_layers": 2000, "d_mlp": 65536}, "n_layers must be an integer in 1..64, got 2000"),
    ({"d_mlp": 65536}, "d_mlp must be an integer in 1..16,384, got 65536"),
    ({"n_layers": 64, "d_model": 16384, "d_head": 128, "n_heads": 128, "d_mlp": 16384}, "more than the 268,435,456"),
])
def test_a_folders_config_json_is_bounded_before_a_model_is_built(base_run, tmp_path, capsys, change, needle):
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(base_run.path / "step_000040.safetensors", folder / "step_000040.safetensors")
    (folder / "config.json").write_text(json.dumps({**base_run.hooked_config_kwargs, **change}))
    t0 = time.monotonic()
    assert main(["measure", str(folder), "--task", "add", "--out", str(tmp_path / "m"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 30


def test_a_checkpoint_is_checked_against_its_header_before_a_model_is_built(run_dir, tmp_path, monkeypatch):
    """A folder's config.json (or a run's config) that does not fit the checkpoints is refused from the safetensors
    header: no model of the claimed sizes is ever built (here: building one at all fails the test)."""
    import interp.folder
    import interp.runs

    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(run_dir / "step_000040.safetensors", folder / "step_000040.safetensors")
    (folder / "config.json").write_text(json.dumps({**Run(run_dir).hooked_config_kwargs, "d_mlp": 4096}))

    def no_model(*a, **k):
        raise AssertionError("a model was built before the file was checked")

    monkeypatch.setattr(interp.folder, "model_from_kwargs", no_model)
    from interp.folder import CheckpointFolder
    from interp.tasks import Task

    with pytest.raises(CheckpointError, match=r"'blocks.0.mlp.W_in' has shape \(32, 64\), .* needs \(32, 4096\)"):
        CheckpointFolder(folder, Task(op="add", p=23)).load(40)
    _edit_tensors(run_dir / "step_000020.safetensors",
                  lambda t: t.__setitem__("blocks.0.mlp.W_in", t["blocks.0.mlp.W_in"][:, :8].contiguous()))
    monkeypatch.setattr(interp.runs, "model_from_kwargs", no_model)
    with pytest.raises(CheckpointError, match=r"'blocks.0.mlp.W_in' has shape \(32, 8\)"):
        Run(run_dir).load(20)


# -- sweep specs: costs bounded before the run limit -------------------------------------------------------


@pytest.mark.parametrize("seeds, needle", [
    ({"both": 10**9}, "[seeds] both has 1,000,000,000 values, more than the 10,000"),
    ({"data": list(range(140_000))}, "[seeds] data has 140,000 values, more than the 10,000"),
])
def test_a_sweep_axis_longer_than_a_sweep_is_refused_at_once(seeds, needle):
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        SweepSpec.from_dict({"sweep": {"preset": "tiny"}, "seeds": seeds}).expand()
    assert needle in str(e.value)
    assert time.monotonic() - t0 < 10  # no answer in 150 s / a MemoryError before


def test_the_duplicate_check_of_an_axis_is_linear():
    class Counted(float):  # counts the comparisons the duplicate check makes
        calls = 0

        def __eq__(self, other):
            Counted.calls += 1
            return float(self) == float(other)

        __hash__ = float.__hash__

    n = 3000
    axes = SweepSpec.from_dict({"sweep": {"preset": "tiny"}, "grid": {"lr": [Counted(1e-3 + i * 1e-7) for i in range(n)]}}
                               ).axes()
    assert len(axes[0][1]) == n and Counted.calls < 4 * n  # n^2 / 2 = 4.5 million before
    with pytest.raises(ConfigError, match=r"\[grid\] lr lists 0.001 twice"):
        SweepSpec.from_dict({"sweep": {"preset": "tiny"}, "grid": {"lr": [1e-3, 2e-3, 1e-3]}}).axes()
    with pytest.raises(ConfigError, match=r"lists 1.0 twice"):
        SweepSpec.from_dict({"sweep": {"preset": "tiny"}, "seeds": {"data": [1, 2, 1.0]}}).axes()


# -- a port that is not Ray --------------------------------------------------------------------------------


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 whose server answers every connection with ``reply`` (None: says nothing)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    state = {"reply": None, "open": []}

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            state["open"].append(conn)
            if state["reply"] is not None:
                conn.sendall(state["reply"])

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], state
    server.close()
    for c in state["open"]:
        c.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"-ERR unknown command\r\n"])
def test_an_address_that_is_not_ray_is_told_in_one_line_within_seconds(listener, reply):
    from interp.sweep.ray_backend import check_reachable

    port, state = listener
    state["reply"] = reply
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"--address 127.0.0.1:{port}: not a Ray cluster"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10  # 200 s and 15 lines of Ray warnings before


def test_a_grpc_server_passes_the_handshake(listener):
    """What a Ray GCS (or Ray Client server) answers first: an HTTP/2 SETTINGS frame."""
    from interp.sweep.ray_backend import check_reachable

    port, state = listener
    state["reply"] = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes([0, 3, 0, 0, 0, 100])
    check_reachable(f"127.0.0.1:{port}")
    check_reachable(f"ray://127.0.0.1:{port}")


# -- a tampered sweep.json -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../elsewhere", "..", "/tmp/x", "a/b"])
def test_sweep_run_names_cannot_lead_outside_the_sweep(tmp_path, name):
    from interp.sweep import load

    sweep = tmp_path / "sweep"
    shutil.copytree(ROOT / "sweeps" / "emergence-small", sweep)
    data = json.loads((sweep / "sweep.json").read_text())
    first = next(iter(data["runs"]))
    data["runs"] = {name: data["runs"][first], **{k: v for k, v in data["runs"].items() if k != first}}
    (sweep / "sweep.json").write_text(json.dumps(data))
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(RunFormatError, match=f"run name {name!r} is not a plain directory name"):
        load(sweep)
