"""TrainConfig: presets, overrides parsed to field types, validation errors, YAML round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from metarl.config import (
    ConfigError,
    TrainConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    field_docs,
    list_presets,
    load_config,
    save_config,
)


def test_defaults_and_field_docs():
    cfg = TrainConfig()
    assert cfg.meta_batch_size == 20 and cfg.hidden_sizes == (64, 64) and cfg.cg_damping == 1e-5
    assert cfg.env_kwargs == {} and cfg.run_name == ""
    docs = field_docs()
    assert set(docs) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert "Inner-loop" in docs["fast_lr"]


def test_reference_preset_matches_reference_settings():
    assert "2d-navigation" in list_presets()
    cfg = load_config("2d-navigation", [])
    expected = TrainConfig(run_name="2d-navigation_seed1")
    assert cfg == expected  # the dataclass defaults are the reference settings
    assert (cfg.env_id, cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon) == (
        "metarl/Navigation2D-v1",
        20,
        20,
        100,
    )
    assert (cfg.hidden_sizes, cfg.nonlinearity, cfg.fast_lr, cfg.num_inner_steps, cfg.first_order) == (
        (64, 64),
        "tanh",
        0.1,
        1,
        False,
    )
    assert (cfg.max_kl, cfg.cg_iters, cfg.cg_damping, cfg.ls_max_steps, cfg.ls_backtrack_ratio) == (
        0.01,
        10,
        1e-5,
        15,
        0.8,
    )
    assert (cfg.gamma, cfg.gae_lambda, cfg.num_iterations) == (0.99, 1.0, 100)


def test_overrides_parse_to_field_types():
    cfg = load_config(
        "2d-navigation",
        [
            "--fast_lr",
            "0.05",
            "--first_order",
            "true",
            "--hidden_sizes",
            "100,100",
            "--seed=7",
            "--env_kwargs",
            '{"goal_range": 0.5, "name": "x"}',
            "--gae-lambda",
            "0.95",
            "--normalize_advantages",
            "no",
            "--tensorboard",
            "0",
            "--run_name",
            "abc",
            "--cg_damping",
            "-0",
            "--bootstrap_truncated",
        ],
    )
    assert cfg.fast_lr == 0.05 and isinstance(cfg.fast_lr, float)
    assert cfg.first_order is True
    assert cfg.hidden_sizes == (100, 100)
    assert cfg.seed == 7 and isinstance(cfg.seed, int)
    assert cfg.env_kwargs == {"goal_range": 0.5, "name": "x"}
    assert cfg.gae_lambda == 0.95
    assert cfg.normalize_advantages is False and cfg.tensorboard is False
    assert cfg.run_name == "abc"
    assert cfg.cg_damping == 0.0
    assert cfg.bootstrap_truncated is True  # a bare flag means true


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("64", (64,)), ("[32, 16]", (32, 16)), ("(8,4,2)", (8, 4, 2)), ("", ()), ("[]", ()), (" 64 , 64 ", (64, 64))],
)
def test_tuple_forms(raw, expected):
    assert load_config(None, ["--hidden_sizes", raw]).hidden_sizes == expected


@pytest.mark.parametrize("raw", ["[64,", "[64,,64]", "((64]", ",", "64,", "[64]x", "(64]", "[[64]]"])
def test_malformed_lists_are_errors_naming_the_field(raw):
    with pytest.raises(ConfigError, match="config field 'hidden_sizes': expected a comma-separated list") as info:
        load_config(None, ["--hidden_sizes", raw])
    assert info.value.field == "hidden_sizes"


def test_a_yaml_key_given_twice_is_an_error(tmp_path: Path):
    path = tmp_path / "twice.yaml"
    path.write_text("fast_lr: 0.1\nseed: 2\nfast_lr: 0.5\n")
    with pytest.raises(ConfigError, match=r"key 'fast_lr' given twice \(lines 1 and 3\)") as info:
        load_config(path)
    assert info.value.field == "fast_lr" and str(path) in str(info.value)
    path.write_text("env_kwargs: {nthread: 1, nthread: 2}\n")
    with pytest.raises(ConfigError, match="key 'nthread' given twice"):
        load_config(path)
    with pytest.raises(ConfigError, match="config field 'env_kwargs'.*key 'nthread' given twice") as info:
        load_config(None, ["--env_kwargs", "{nthread: 1, nthread: 2}"])
    assert info.value.field == "env_kwargs"


@pytest.mark.parametrize("raw", ["True", "YES", "1", "on"])
def test_bool_true_forms(raw):
    assert load_config(None, ["--first_order", raw]).first_order is True


def test_negative_number_is_a_value_not_a_flag():
    with pytest.raises(ConfigError, match="fast_lr.*> 0") as info:
        load_config(None, ["--fast_lr", "-0.1"])
    assert info.value.field == "fast_lr"


def test_no_config_gives_defaults_with_derived_run_name():
    cfg = load_config(None, ["--seed", "3"])
    assert cfg.run_name == "default_seed3"
    assert dataclasses.replace(cfg, run_name="", seed=1) == TrainConfig()


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        (["--fast_lr", "-0.1"], "fast_lr", "> 0"),
        (["--fast_lr", "abc"], "fast_lr", "expected a number"),
        (["--meta_batch_size", "0"], "meta_batch_size", ">= 1"),
        (["--meta_batch_size", "2.5"], "meta_batch_size", "expected an integer"),
        (["--horizon", "0"], "horizon", ">= 1"),
        (["--episodes_per_task", "-3"], "episodes_per_task", ">= 1"),
        (["--num_iterations", "0"], "num_iterations", ">= 1"),
        (["--max_kl", "0"], "max_kl", "> 0"),
        (["--gamma", "1.5"], "gamma", "(0, 1]"),
        (["--gamma", "nan"], "gamma", "finite"),
        (["--gae_lambda", "-0.1"], "gae_lambda", "[0, 1]"),
        (["--ls_backtrack_ratio", "1"], "ls_backtrack_ratio", "(0, 1)"),
        (["--fvp_task_fraction", "0"], "fvp_task_fraction", "(0, 1]"),
        (["--fvp_task_fraction", "1.1"], "fvp_task_fraction", "(0, 1]"),
        (["--cg_damping", "-1e-3"], "cg_damping", ">= 0"),
        (["--nonlinearity", "sigmoid"], "nonlinearity", "tanh, relu"),
        (["--hidden_sizes", "64,0"], "hidden_sizes", ">= 1"),
        (["--hidden_sizes", "64,a"], "hidden_sizes", "comma-separated"),
        (["--first_order", "maybe"], "first_order", "true/false"),
        (["--env_kwargs", "[1, 2]"], "env_kwargs", "mapping"),
        (["--seed", "-1"], "seed", ">= 0"),
        (["--num_threads", "0"], "num_threads", ">= 1"),
        (["--run_name", "a/b"], "run_name", "folder name"),
        (["--horizon"], "horizon", "needs a value"),
    ],
)
def test_bad_values_name_the_field(overrides, field, fragment):
    with pytest.raises(ConfigError) as info:
        load_config("2d-navigation", overrides)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)
    assert fragment in str(info.value)


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'fast_lrr'.*did you mean fast_lr") as info:
        load_config("2d-navigation", ["--fast_lrr", "0.1"])
    assert info.value.field == "fast_lrr"


def test_unknown_key_in_yaml_names_file(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("meta_bach_size: 10\n")
    with pytest.raises(ConfigError, match=r"unknown key 'meta_bach_size' \(in .*mine.yaml\).*meta_batch_size"):
        load_config(path, [])


def test_unknown_preset_lists_presets_closest_first():
    with pytest.raises(ConfigError, match=r"unknown preset '2d-nav'.*2d-navigation") as info:
        load_config("2d-nav", [])
    assert info.value.field == "config"


def test_yaml_that_does_not_parse_names_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("seed: 3\nfast_lr: 0.1\nhidden_sizes: [64, 64\nhorizon: 5\n")
    with pytest.raises(ConfigError, match=r"broken.yaml.*line \d+") as info:
        load_config(path, [])
    line = int(str(info.value).split("line ")[1].split(",")[0])
    assert 3 <= line <= 5  # the error is located at or just after the unclosed list


def test_yaml_not_a_mapping_and_missing_file(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path, [])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", [])


def test_wrong_type_in_yaml(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("first_order: sometimes\n")
    with pytest.raises(ConfigError, match=r"'first_order'.*c.yaml"):
        load_config(path, [])
    path.write_text("meta_batch_size: ten\n")
    with pytest.raises(ConfigError, match="'meta_batch_size'"):
        load_config(path, [])


def test_yaml_file_values_and_override_precedence(tmp_path: Path):
    path = tmp_path / "exp.yaml"
    path.write_text("fast_lr: 0.3\ncg_damping: 1e-4\nhidden_sizes: 32,32\nnum_iterations: 1e3\n")
    cfg = load_config(path, ["--fast_lr", "0.2"])
    assert cfg.fast_lr == 0.2  # command line wins over the file
    assert cfg.cg_damping == 1e-4  # PyYAML reads 1e-4 as a string; it is parsed anyway
    assert cfg.hidden_sizes == (32, 32)
    assert cfg.num_iterations == 1000
    assert cfg.run_name == "exp_seed1"


def test_save_load_round_trip(tmp_path: Path):
    cfg = load_config(
        "2d-navigation",
        [
            "--hidden_sizes",
            "100,50",
            "--env_kwargs",
            "{a: 1, b: [1, 2]}",
            "--first_order",
            "yes",
            "--cg_damping",
            "1e-7",
        ],
    )
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path, [])
    assert again == cfg
    assert config_diff(again, cfg) == {}
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_to_dict(cfg)["hidden_sizes"] == [100, 50]


def test_config_diff():
    a, b = TrainConfig(), TrainConfig(fast_lr=0.5, seed=2)
    assert config_diff(a, b) == {"fast_lr": (0.1, 0.5), "seed": (1, 2)}


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("inner_estimator", "reinforce2", "reinforce, lvc, dice"),
        ("meta_update", "fastest", "fast, exact"),
        ("fisher_precision", "fp16", "auto, bf16, fp32"),
        ("fvp_transition_fraction", "0", "(0, 1]"),
        ("fvp_inner_fraction", "1.5", "(0, 1]"),
    ],
)
def test_meta_update_settings_are_checked(field, value, fragment):
    with pytest.raises(ConfigError, match=f"config field '{field}'") as info:
        load_config(None, [f"--{field}", value])
    assert fragment in str(info.value) and info.value.field == field


def test_renamed_fields_keep_their_earlier_names(tmp_path):
    """Run folders and checkpoints written before a rename still load (docs/training.md, "Words")."""
    path = tmp_path / "old.yaml"
    path.write_text("hvp_subsample: 0.5\nfvp_step_subsample: 0.2\nfvp-inner-subsample: 0.3\n")
    cfg = load_config(path, ["--hvp_subsample", "0.25"])
    assert (cfg.fvp_task_fraction, cfg.fvp_transition_fraction, cfg.fvp_inner_fraction) == (0.25, 0.2, 0.3)
    assert config_from_dict({"fvp_step_subsample": 0.4}).fvp_transition_fraction == 0.4
    path.write_text("hvp_subsample: 0.5\nfvp_task_fraction: 0.5\n")
    with pytest.raises(ConfigError, match="'fvp_task_fraction' is given twice"):
        load_config(path)
