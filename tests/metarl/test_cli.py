"""One command-line convention: every long option with hyphens or underscores; ``--help`` lists the fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from metarl.cli.arguments import ArgumentParser, config_fields_help
from metarl.config import TrainConfig, field_docs, load_config
from tests.conftest import load_script


def _parser() -> ArgumentParser:
    p = ArgumentParser(add_help=False)
    p.add_argument("--num-tasks", type=int, default=1)
    p.add_argument("--episodes_per_step", type=int, default=1)
    p.add_argument("--out", type=Path)
    return p


@pytest.mark.parametrize(
    "argv",
    [
        ["--num-tasks", "7", "--episodes_per_step", "3"],
        ["--num_tasks", "7", "--episodes-per-step", "3"],
        ["--num_tasks=7", "--episodes-per-step=3"],
    ],
)
def test_either_spelling_parses_to_the_same_values(argv: list[str]):
    args = _parser().parse_args(argv)
    assert (args.num_tasks, args.episodes_per_step) == (7, 3)


def test_unknown_options_and_values_after_double_dash_pass_through_unchanged():
    args, rest = _parser().parse_known_args(["--out", "x", "--fast_lr", "0.2", "--", "--num_tasks", "5"])
    assert args.out == Path("x") and args.num_tasks == 1
    assert rest == ["--fast_lr", "0.2", "--", "--num_tasks", "5"]


def test_scripts_accept_both_spellings(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    evaluate, plot, train = load_script("evaluate"), load_script("plot"), load_script("train")
    hyphens = evaluate.parser().parse_args(["run", "--num-tasks", "3", "--episodes-per-step", "5", "--step-budget"])
    underscores = evaluate.parser().parse_args(["run", "--num_tasks", "3", "--episodes_per_step", "5", "--step_budget"])
    assert vars(hyphens) == vars(underscores)
    assert train.main(["--list_presets"]) == 0 and "2d-navigation" in capsys.readouterr().out.split()
    assert train.main(["--list-presets"]) == 0 and "ant-dir" in capsys.readouterr().out.split()
    assert plot.main(["training", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")]) == 2


def test_train_help_lists_every_field_with_its_value_and_docstring(capsys: pytest.CaptureFixture[str]):
    train = load_script("train")
    with pytest.raises(SystemExit):
        train.main(["--config", "halfcheetah-vel", "--help"])
    text = capsys.readouterr().out
    cfg = load_config("halfcheetah-vel")
    flat = " ".join(text.split())
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        shown = list(value) if isinstance(value, tuple) else value
        assert f"--{f.name} " in text and f"({shown!r})" in text, f.name
        assert " ".join(field_docs()[f.name].split())[:60] in flat, f.name
    assert "--meta_batch_size INT  (40)" in text  # the preset's value, not the default 20


def test_fields_help_of_the_defaults():
    text = config_fields_help(TrainConfig(), "TrainConfig's defaults")
    assert "--meta_batch_size INT  (20)" in text and "--hidden_sizes INTS  ([64, 64])" in text
