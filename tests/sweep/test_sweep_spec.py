"""Sweep specs: expansion (counts, names, seeds, order) and every validation error, before any training."""


import pytest

from interp import preset
from interp.errors import ConfigError
from interp.sweep import SweepSpec, as_spec
from interp.sweep.spec import select_measures
from tests.sweep.sweep_helpers import ROOT, TINY_NAMES, TINY_SPEC, TINY_TOML, cli


def test_grid_zip_and_seeds_cross_in_axis_order():
    spec = SweepSpec(preset="tiny", grid={"frac_train": [0.4, 0.6], "lr": [1e-3, 3e-3]},
                     zip=[{"d_model": [32, 64], "d_head": [16, 32]}], seeds={"both": 3}, n_steps=50)
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2 * 3
    names = [n for n, _ in runs]
    assert len(set(names)) == len(names)
    assert names[0] == "frac_train=0.4,lr=0.001,d_model=32,d_head=16,seed=0"
    assert names[1] == "frac_train=0.4,lr=0.001,d_model=32,d_head=16,seed=1"  # the last axis varies fastest
    assert names[-1] == "frac_train=0.6,lr=0.003,d_model=64,d_head=32,seed=2"
    assert spec.varied_fields() == ["frac_train", "lr", "d_model", "d_head", "data_seed", "model_seed"]
    base = preset("tiny")
    for name, cfg in runs:
        assert cfg.name == name
        assert cfg.data_seed == cfg.model_seed and f"seed={cfg.data_seed}" in name
        assert (cfg.d_model, cfg.d_head) in ((32, 16), (64, 32))  # zipped, never crossed
        assert f"frac_train={cfg.frac_train:g}" in name and f"lr={cfg.lr:g}" in name
        assert cfg.n_steps == 50
        # every field not varied is the preset's
        assert cfg.replace(frac_train=base.frac_train, lr=base.lr, d_model=base.d_model, d_head=base.d_head,
                           data_seed=0, model_seed=0, name=base.name, n_steps=base.n_steps) == base
    combos = {(c.frac_train, c.lr, c.d_model, c.data_seed) for _, c in runs}
    assert len(combos) == 24


def test_data_and_model_seeds_cross_and_counts_expand():
    runs = SweepSpec(preset="tiny", seeds={"data": 2, "model": [5, 7]}).expand()
    assert [(c.data_seed, c.model_seed) for _, c in runs] == [(0, 5), (0, 7), (1, 5), (1, 7)]
    assert runs[0][0] == "data_seed=0,model_seed=5"


def test_single_run_and_schedule():
    spec = SweepSpec(preset="tiny", n_steps=120, save_every=0, save_steps="0-60:20", eval_every=5)
    [(name, cfg)] = spec.expand()
    assert name == "tiny"
    assert (cfg.n_steps, cfg.save_every, cfg.save_steps, cfg.eval_every) == (120, 0, (0, 20, 40, 60), 5)


def test_floats_that_look_alike_are_named_exactly():
    names = [n for n, _ in SweepSpec(preset="tiny", grid={"lr": [0.0010000001, 0.001]}).expand()]
    assert names == ["lr=0.0010000001", "lr=0.001"]


def test_toml_and_dict_agree_and_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY_TOML)
    spec = SweepSpec.from_toml(path)
    assert spec == as_spec(TINY_SPEC) == as_spec(path)
    assert [n for n, _ in spec.expand()] == TINY_NAMES
    assert SweepSpec.from_dict(spec.to_dict()) == spec


def test_shipped_example_spec_expands():
    spec = SweepSpec.from_toml(ROOT / "examples" / "sweeps" / "small_grid.toml")
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 3
    assert {(c.d_model, c.d_mlp) for _, c in runs} == {(64, 256), (96, 384)}
    assert all(c.n_steps == 1500 and 25 in c.save_steps and c.p == 53 for _, c in runs)


def test_measure_selection_keeps_training_metrics_and_per_key_columns():
    cols = ["step", "train_loss", "train_acc", "test_loss", "test_acc", "restricted_loss", "excluded_loss",
            "excluded_loss_k3", "excluded_loss_k17", "gini_W_E", "test_brier"]
    assert select_measures("all", cols) == cols
    assert select_measures("none", cols) == cols[:5]
    assert select_measures(["gini_W_E", "excluded_loss_k"], cols) == cols[:5] + cols[7:10]


@pytest.mark.parametrize("spec, words", [
    ({"grid": {"p": [23, 21]}}, ["p=21", "RunConfig.p must be prime", "21"]),
    ({"grid": {"frac_train": [0.5, 1.5]}}, ["frac_train=1.5", "RunConfig.frac_train", "1.5"]),
    ({"grid": {"lr": [0.001, "fast"]}}, ["lr=fast", "lr"]),
    ({"grid": {"width": [1, 2]}}, ["[grid]", "'width' is not a RunConfig field"]),
    ({"grid": {"d_mlp": []}}, ["[grid] d_mlp", "non-empty list"]),
    ({"grid": {"d_mlp": 64}}, ["[grid] d_mlp", "non-empty list", "64"]),
    ({"grid": {"d_mlp": [64, 64]}}, ["[grid] d_mlp", "64 twice"]),
    ({"grid": {"name": ["a", "b"]}}, ["[grid] name", "run names are made from the varied fields"]),
    ({"zip": [{"d_model": [32, 64], "d_head": [16]}]}, ["[[zip]] #1", "d_model: 2", "d_head: 1"]),
    ({"zip": [{"d_model": [32, 32], "d_head": [16, 16]}]}, ["[[zip]] #1 (d_model, d_head)", "[32, 16] twice"]),
    ({"grid": {"lr": [0.1, 0.2]}, "zip": [{"lr": [0.3, 0.4]}]}, ["lr is varied twice", "[grid]", "[[zip]] #1"]),
    ({"base": {"lr": 0.1}, "grid": {"lr": [0.3, 0.4]}}, ["lr is both fixed", "varied"]),
    ({"grid": {"data_seed": [0, 1]}, "seeds": {"data": 2}}, ["data_seed is varied twice"]),
    ({"seeds": {"both": 2, "data": 2}}, ["[seeds] both", "data"]),
    ({"seeds": {"init": 2}}, ["[seeds]", "'init'"]),
    ({"seeds": {"data": [0, -1]}}, ["[seeds] data", "-1"]),
    ({"seeds": {"model": 0}}, ["[seeds] model = 0", ">= 1"]),
    ({"sweep": {"preset": "huge"}}, ["[sweep] preset", "'huge'"]),
    ({"sweep": {"lr": 0.1}}, ["[sweep] has unknown key(s) ['lr']", "[base]"]),
    ({"sweep": {"n_steps": 0}}, ["RunConfig.n_steps must be positive", "0"]),
    ({"sweep": {"n_steps": 10}, "base": {"n_steps": 20}}, ["n_steps is given both"]),
    ({"sweep": {"save_steps": "0-x"}}, ["'0-x'"]),
    ({"sweep": {"measures": "some"}}, ["measures = 'some'"]),
    ({"sweep": {"measures": ["test_loss", "gini"]}}, ["unknown column(s) ['gini']"]),
    ({"grid": {"op": ["add", "a/b"]}}, ["'a/b'"]),
    ({"grids": {"lr": [1]}}, ["unknown table(s) ['grids']"]),
])
def test_bad_specs_name_the_field_and_value(spec, words):
    spec = {"sweep": {"preset": "tiny", **spec.pop("sweep", {})}, **spec}
    with pytest.raises(ConfigError) as e:
        SweepSpec.from_dict(spec, source="s.toml").expand()
    msg = str(e.value)
    assert msg.startswith("s.toml")
    for w in words:
        assert w in msg, (w, msg)


def test_invalid_spec_fails_before_any_work(tmp_path):
    from interp import sweep

    out = tmp_path / "never"
    bad = {"sweep": {"preset": "tiny"}, "grid": {"p": [23, 29, 33]}}
    with pytest.raises(ConfigError, match="p=33"):
        sweep.run(bad, out, progress=False)
    assert not out.exists()


def test_cli_reports_bad_spec_in_one_line(tmp_path, capsys):
    from interp.cli import main

    (tmp_path / "bad.toml").write_text('[sweep]\npreset = "tiny"\n[grid]\nd_mlp = [64, -3]\n')
    (tmp_path / "broken.toml").write_text('[sweep\npreset = "tiny"\n')
    for name, word in (("bad.toml", "RunConfig.d_mlp must be positive"), ("broken.toml", "not valid TOML"),
                       ("missing.toml", "missing.toml: file not found")):
        assert main(["sweep", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("interp sweep: error:") and word in lines[0], lines
        assert name in lines[0]
    assert not (tmp_path / "out").exists()
    r = cli("sweep", "--out", str(tmp_path / "out"), "--workers", "0")  # the real command line
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--workers must be positive" in r.stderr


def test_the_example_specs_commands_write_to_a_new_directory():
    """Each `interp sweep SPEC --out DIR` in a shipped spec's header works as written: DIR is not a shipped sweep
    (the command refuses a directory that already holds one)."""
    commands = [line for spec in sorted((ROOT / "examples" / "sweeps").glob("*.toml"))
                for line in spec.read_text().splitlines() if line.startswith("#") and "interp sweep " in line]
    outs = [line.split("--out", 1)[1].split()[0] for line in commands if "--out" in line and "--resume" not in line]
    assert len(outs) >= 2
    for out in outs:
        assert not (ROOT / out / "sweep.json").exists(), f"{out} already holds a sweep"
