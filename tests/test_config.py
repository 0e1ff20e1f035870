import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp.config import PRESETS, RunConfig, is_prime, parse_steps, preset
from interp.errors import ConfigError


def test_nanda2023_preset_is_the_paper_run():
    cfg = preset("nanda2023")
    assert (cfg.op, cfg.p, cfg.frac_train) == ("add", 113, 0.3)
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.act_fn) == (1, 128, 4, 32, 512, "relu")
    assert (cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps, cfg.warmup_steps) == (1e-3, 1.0, (0.9, 0.98), 1e-8, 10)
    assert (cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx, cfg.n_train) == (114, 113, 3, 3830)


def test_vocab_follows_p_not_a_class_default():
    # The public code computed d_vocab from a default p once; ours must follow every p.
    assert RunConfig(p=97).d_vocab == 98
    assert preset("nanda2023", p=53).d_vocab_out == 53


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("p", 91, "prime"),
        ("p", 3, "at least 5"),
        ("p", -7, "at least 5"),
        ("frac_train", 0.0, "strictly between"),
        ("frac_train", 1.0, "strictly between"),
        ("frac_train", 0.00001, "empty train"),
        ("d_model", 0, "positive"),
        ("n_steps", -5, "positive"),
        ("lr", 0.0, "positive"),
        ("weight_decay", -1.0, ">= 0"),
        ("op", "pow", "one of"),
        ("act_fn", "tanh", "one of"),
        ("betas", (0.9, 1.5), "betas"),
        ("save_steps", (10, -1), "save_steps"),
        ("d_head", 2.5, "integer"),
    ],
)
def test_invalid_fields_are_named(field, value, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig(**{field: value})
    assert f"RunConfig.{field}" in str(err.value) and fragment in str(err.value)


def test_from_dict_names_unknown_fields_and_source():
    with pytest.raises(ConfigError, match=r"run.json: config: unknown field\(s\) \['d_modle'\]"):
        RunConfig.from_dict({"d_modle": 3}, where="run.json: config")
    with pytest.raises(ConfigError, match="run.json: RunConfig.p"):
        RunConfig.from_dict({"p": 100}, where="run.json")


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown preset 'nanda'.*nanda2023"):
        preset("nanda")


def test_parse_steps():
    assert parse_steps("0-300:100, 450,1000-2000:500") == (0, 100, 200, 300, 450, 1000, 1500, 2000)
    assert parse_steps("5,5,3") == (3, 5)
    for bad in ("x", "10-5:1", "0-10:0", "-3"):
        with pytest.raises(ConfigError, match="bad step list item"):
            parse_steps(bad)


@given(st.integers(min_value=-10, max_value=400))
def test_is_prime_matches_trial_division(n):
    assert is_prime(n) == (n >= 2 and all(n % d for d in range(2, n)))


@settings(max_examples=60, deadline=None)
@given(
    p=st.sampled_from([5, 7, 11, 13, 53, 97, 113]),
    frac=st.floats(min_value=0.05, max_value=0.95),
    d_model=st.integers(1, 256),
    seed=st.integers(0, 2**31),
    op=st.sampled_from(["add", "sub", "mul", "div", "a2+b2", "a2+ab+b2"]),
)
def test_any_valid_config_round_trips(p, frac, d_model, seed, op):
    cfg = RunConfig(p=p, frac_train=frac, d_model=d_model, data_seed=seed, model_seed=seed, op=op)
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.n_train == int(frac * p * p)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["p", "frac_train", "d_model", "lr", "betas", "op", "n_steps"]),
                       st.one_of(st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=3),
                                 st.none(), st.lists(st.integers(), max_size=3))))
def test_config_parsing_never_fails_with_anything_but_config_error(d):
    try:
        cfg = RunConfig.from_dict(d)
    except ConfigError:
        return
    assert is_prime(cfg.p) and 0 < cfg.frac_train < 1
