import argparse
import os
import subprocess
import sys

import pytest

from interp.cli import main
from tests.cli_helpers import interp_cli


_cli = interp_cli


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["nanda2023", "small", "tiny"]
    assert all("CPU" in line for line in out)


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse-level errors
        return e.code


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
    (["train", "--preset", "tiny", "--out", "x", "--steps", "0"], "--steps must be positive"),
    (["train", "--preset", "tiny", "--out", "x", "--steps", "-3"], "--steps must be positive"),
    (["train", "--preset", "tiny", "--out", "x", "--save-steps", "1-0:5"], "bad step list item"),
    (["train", "--preset", "tiny", "--out", "x", "--device", "tpu"], "--device must be"),
    (["train", "--out", "x"], "--preset is required"),
    (["train", "--preset", "tiny"], "--out"),
])
def test_bad_train_arguments_are_one_line_errors(tmp_path, capsys, argv, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) not in (0, None)
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "run.json").exists()  # nothing was written


def test_train_then_resume_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    r = _cli("train", "--preset", "tiny", "--out", str(out), "--steps", "60", "--save-every", "20", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "4 checkpoints" in r.stdout and (out / "step_000060.safetensors").exists()
    again = _cli("train", "--preset", "tiny", "--out", str(out), "--quiet")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    more = _cli("train", "--out", str(out), "--resume", "--steps", "80", "--quiet")
    assert more.returncode == 0, more.stderr
    assert "step 80" in more.stdout


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert main(["train", "--preset", "tiny", "--out", str(blocked / "run")]) == 1
    err = capsys.readouterr().err
    assert "cannot create directory" in err and str(blocked) in err


def test_console_script_has_help():
    exe = os.path.join(os.path.dirname(sys.executable), "interp")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "interp.cli"]
    for sub in ([], ["train"], ["presets"], ["measure"], ["report"], ["attention"]):
        r = subprocess.run([*cmd, *sub, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: interp" in r.stdout


def test_version_and_help_for_every_positional_argument(capsys):
    import interp
    from interp.cli import build_parser

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"interp {interp.__version__}"
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not action.option_strings:  # a positional argument
                assert action.help, f"interp {name}: positional {action.dest} has no help text"


@pytest.mark.parametrize("argv, message", [
    (["--stop-test-loss", "-3"], "interp train: error: --stop-test-loss must be positive or null, got -3.0"),
    (["--device", "tpu"], "interp train: error: --device must be 'cpu' or 'cuda', got 'tpu'"),
])
def test_library_errors_are_restated_with_the_flag(tmp_path, capsys, argv, message):
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "r"), *argv]) == 1
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "r").exists()


def test_an_output_directory_that_cannot_be_made_is_named_by_its_flag(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    for out, fault in (("/proc/nope", "cannot create directory"), (str(tmp_path / "file"), "is not a directory")):
        assert main(["train", "--preset", "tiny", "--quiet", "--out", out]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"interp train: error: --out {out}: ") and fault in err and "out_dir" not in err


def test_library_errors_name_library_parameters(tmp_path):
    from interp.config import RunConfig, preset
    from interp.errors import ConfigError
    from interp.train import train

    with pytest.raises(ConfigError, match=r"^RunConfig.stop_test_loss must be positive") as e:
        preset("tiny", stop_test_loss=-3)
    assert e.value.field == "stop_test_loss"
    with pytest.raises(ConfigError, match="^device must be 'cpu' or 'cuda'") as e:
        train(preset("tiny"), tmp_path / "r", device="tpu")
    assert "--" not in str(e.value)
    with pytest.raises(ConfigError, match=r"no field\(s\) \['n_step'\]"):
        RunConfig(n_step=10)


@pytest.mark.parametrize("sets, message", [
    (["p=91"], "--set p must be prime (Z_p must be a field), got 91"),
    (["lr=fast"], "--set lr must be a number, got 'fast'"),
    (["optimiser=rmsprop"], "--set optimiser must be one of ('adamw', 'adam', 'sgd'), got 'rmsprop'"),
    (["batch_size=1000"], "--set batch_size must be between 1 and the 317 training pairs (null: full batch), got 1000"),
    (["layer_norm=maybe"], "--set layer_norm must be true or false, got 'maybe'"),
    (["grad_filter_alpha=1"], "--set grad_filter_alpha must be in [0, 1), got 1.0"),
    (["lr=1e-3", "lr=2e-3"], "--set lr is given twice; give it once"),
    (["model_seed=3"], "--set model_seed=3 and --seed both set model_seed; give it once"),
    (["optimiser"], "--set 'optimiser': expected FIELD=VALUE, e.g. --set optimiser=sgd"),
])
def test_set_errors_name_the_field_and_value(tmp_path, capsys, sets, message):
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path / "r"), "--seed", "1"]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 1
    assert capsys.readouterr().err.strip() == f"interp train: error: {message}"
    assert not (tmp_path / "r").exists()


def test_set_unknown_field_suggests_the_field(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "r"), "--set", "d_modle=3"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp train: error: --set d_modle is not a RunConfig field (did you mean d_model?)")
    assert len(err.splitlines()) == 1 and "grad_filter_window" in err


def test_set_any_field_from_the_command_line_and_resume(tmp_path, capsys):
    from interp import Run

    out = tmp_path / "run"
    sets = ["op=mul", "n_layers=2", "optimiser=sgd", "momentum=0.5", "lr_schedule=linear", "batch_size=32",
            "layer_norm=true", "grad_filter=ma", "grad_filter_window=2", "betas=0.8,0.9", "n_steps=4"]
    assert main(["train", "--preset", "tiny", "--out", str(out), "--quiet", *(a for s in sets
                                                                                for a in ("--set", s))]) == 0
    run = Run(out)
    cfg = run.config
    assert (cfg.op, cfg.n_layers, cfg.optimiser, cfg.momentum, cfg.lr_schedule, cfg.batch_size, cfg.layer_norm,
            cfg.grad_filter, cfg.grad_filter_window, cfg.betas, cfg.n_steps) == (
        "mul", 2, "sgd", 0.5, "linear", 32, True, "ma", 2, (0.8, 0.9), 4)
    assert run.hooked_config_kwargs["normalization_type"] == "LN" and run.final_step == 4
    assert "SGD" in run.meta["protocol"]["step"] and "window 2" in run.meta["protocol"]["grad_filter"]
    capsys.readouterr()
    # resume continues the recorded config; a --set that changes it is refused
    assert main(["train", "--preset", "tiny", "--out", str(out), "--resume", "--set", "optimiser=adam"]) == 1
    err = capsys.readouterr().err
    assert "recorded with different" in err and "optimiser" in err
