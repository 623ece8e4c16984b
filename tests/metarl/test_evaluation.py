"""Evaluation: results equal the sampled episodes' returns, seeds reproduce, CIs are Student-t."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import agents
import envs  # noqa: F401  (registers the task environments)
from agents.written_out_step import WrittenOutStep
from metarl.config import load_config
from metarl.evaluation.protocol import (
    AdaptationResults,
    EvaluationSettings,
    evaluation_streams,
    heldout_tasks,
    student_t_ppf,
    t_interval,
)
from metarl.runs.checkpoint import latest_checkpoint, load_checkpoint
from metarl.sampling.episodes import Episodes
from metarl.tasks.build import make_batched
from metarl.training.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"metarl_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(tmp: Path, algorithm: str = "maml-trpo", iterations: int = 2):
    return load_config(
        "2d-navigation",
        [
            "--algorithm",
            algorithm,
            "--num_iterations",
            str(iterations),
            "--meta_batch_size",
            "3",
            "--episodes_per_task",
            "4",
            "--horizon",
            "15",
            "--hidden_sizes",
            "8",
            "--num_threads",
            "1",
            "--tensorboard",
            "false",
            "--out_dir",
            str(tmp),
            "--run_name",
            algorithm,
        ],
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-iteration MAML-TRPO run on short 2D-navigation episodes."""
    return train(tiny_config(tmp_path_factory.mktemp("runs")), agents.build_learner, progress=False)


SETTINGS = EvaluationSettings(num_tasks=5, num_steps=2, episodes_per_step=3, lrs=(0.1, 0.05), seed=3)


# ------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("df", "expected"),  # two-sided 95% critical values from a t table
    [(1, 12.7062047), (2, 4.3026527), (4, 2.7764451), (9, 2.2621572), (39, 2.0226909), (10**7, 1.959964)],
)
def test_student_t_quantile_matches_table(df: int, expected: float):
    assert student_t_ppf(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert student_t_ppf(0.025, df) == pytest.approx(-expected, abs=1e-6)


def test_t_interval_by_hand():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [4.0, 13.0]])
    mean, half = t_interval(values)
    np.testing.assert_allclose(mean, [7 / 3, 11.0])
    sd = np.array([math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2), math.sqrt(3.0)])
    np.testing.assert_allclose(half, 4.3026527 * sd / math.sqrt(3), rtol=1e-6)
    assert np.isnan(t_interval(values[:1])[1]).all()


def test_settings_repeat_the_last_learning_rate_and_reject_bad_values():
    assert SETTINGS.step_lrs() == [0.1, 0.05]
    assert EvaluationSettings(num_steps=4, lrs=(0.1, 0.05)).step_lrs() == [0.1, 0.05, 0.05, 0.05]
    with pytest.raises(ValueError, match="num_tasks"):
        EvaluationSettings(num_tasks=0)
    with pytest.raises(ValueError, match="lrs"):
        EvaluationSettings(lrs=(0.1, -1.0))


def test_heldout_tasks_depend_on_the_evaluation_seed_only():
    env = make_batched("metarl/Navigation2D-v0", 1)
    a = heldout_tasks(env.sample_tasks, 40, seed=0)
    assert a == heldout_tasks(env.sample_tasks, 40, seed=0)
    assert a != heldout_tasks(env.sample_tasks, 40, seed=1)
    # training with seed 0 draws its tasks from SeedSequence(0).spawn(3)[0]: a different stream
    training = env.sample_tasks(40, np.random.default_rng(np.random.SeedSequence(0).spawn(3)[0]))
    assert not set(a) & set(training)


# ------------------------------------------------------------------------- evaluation


def test_results_equal_the_returns_of_the_sampled_episodes(tiny_run: Path, tmp_path: Path):
    evaluate = load_script("evaluate")
    cfg = load_config(tiny_run / "config.yaml")
    state = load_checkpoint(latest_checkpoint(tiny_run))
    captured: list[list[Episodes]] = []
    results = evaluate.evaluate(cfg, state, SETTINGS, source="tiny", on_episodes=captured.append)
    path = results.save(tmp_path / "results.json")
    data = json.loads(path.read_text())

    (episodes,) = captured
    assert len(episodes) == SETTINGS.num_steps + 1
    assert all(e.num_tasks == 5 and e.episodes_per_task == 3 and e.horizon == 15 for e in episodes)
    # each step's episodes were sampled anew, with the parameters after that step
    assert not torch.equal(episodes[0].actions, episodes[1].actions)
    expected = np.stack([e.returns().double().mean(dim=1).numpy() for e in episodes], axis=1)  # [task, step]
    by_hand = np.array([[float((e.rewards[:, i] * e.mask[:, i]).sum()) / 3 for e in episodes] for i in range(5)])
    np.testing.assert_allclose(expected, by_hand, rtol=1e-5)

    assert data["format"] == "metarl-adaptation-results" and data["method"] == "maml-trpo"
    assert data["steps"] == [0, 1, 2]
    assert np.array([row["returns"] for row in data["per_task"]]).tolist() == expected.tolist()
    np.testing.assert_allclose(data["mean"], expected.mean(axis=0))
    half = student_t_ppf(0.975, 4) * expected.std(axis=0, ddof=1) / math.sqrt(5)
    np.testing.assert_allclose(np.array(data["ci_high"]) - data["mean"], half)
    np.testing.assert_allclose(np.array(data["mean"]) - data["ci_low"], half)
    assert data["settings"]["step_lrs"] == [0.1, 0.05] and data["settings"]["episodes_per_step"] == 3
    assert data["settings"]["seed"] == 3 and data["settings"]["horizon"] == 15
    assert data["env_steps"] == sum(e.num_steps for e in episodes)
    tasks = heldout_tasks(make_batched(cfg.env_id, 1).sample_tasks, 5, seed=3)
    assert [tuple(row["task"]["goal"]) for row in data["per_task"]] == [t.goal for t in tasks]
    # the file reads back to the same results
    again = AdaptationResults.load(path)
    assert again.returns.tolist() == expected.tolist() and again.method == "maml-trpo"


def test_the_same_seed_gives_the_same_curve(tiny_run: Path):
    evaluate = load_script("evaluate")
    cfg = load_config(tiny_run / "config.yaml")
    state = load_checkpoint(latest_checkpoint(tiny_run))
    first = evaluate.evaluate(cfg, state, SETTINGS).to_json()
    torch.manual_seed(12345)  # whatever happened before must not matter
    np.random.default_rng().random()
    second = evaluate.evaluate(cfg, state, SETTINGS).to_json()
    assert first == second
    other = evaluate.evaluate(cfg, state, EvaluationSettings(**{**SETTINGS.__dict__, "seed": 4})).to_json()
    assert other["mean"] != first["mean"]


def test_evaluation_adapts_with_the_runs_inner_step(tiny_run: Path, monkeypatch):
    evaluate = load_script("evaluate")
    cfg = dataclasses.replace(load_config(tiny_run / "config.yaml"), adaptation_precision="bf16")
    state = load_checkpoint(latest_checkpoint(tiny_run))
    steps, real = [], agents.builders.sample_adaptation
    monkeypatch.setattr(agents.builders, "sample_adaptation", lambda *a, **k: steps.append(k["step"]) or real(*a, **k))
    evaluate.evaluate(cfg, state, SETTINGS)
    assert steps and all(step == WrittenOutStep("reinforce", torch.bfloat16) for step in steps)


@pytest.mark.slow
def test_cli_writes_results_and_figure_for_run_checkpoint_and_random(tiny_run: Path, tmp_path: Path, capsys):
    evaluate = load_script("evaluate")
    common = ["--num-tasks", "4", "--num-steps", "1", "--episodes-per-step", "2", "--lrs", "0.2", "--threads", "1"]
    assert evaluate.main([str(tiny_run), *common]) == 0
    assert "95% CI" in capsys.readouterr().out
    run_json = tiny_run / "eval" / "adaptation_maml-trpo.json"
    assert run_json.is_file() and (tiny_run / "eval" / "adaptation_maml-trpo.png").stat().st_size > 10_000
    ckpt = latest_checkpoint(tiny_run)
    assert evaluate.main([str(ckpt), *common, "--out", str(tmp_path / "ck")]) == 0
    assert (
        json.loads((tmp_path / "ck" / "adaptation_maml-trpo.json").read_text())["mean"]
        == json.loads(run_json.read_text())["mean"]
    )
    assert evaluate.main([str(tiny_run), "--random", *common, "--out", str(tmp_path / "rnd")]) == 0
    data = json.loads((tmp_path / "rnd" / "adaptation_random.json").read_text())
    assert data["method"] == "random" and data["settings"]["training_seed"] is None
    assert data["mean"] != json.loads(run_json.read_text())["mean"]
    assert evaluate.main([str(tmp_path / "nowhere"), *common]) == 2
    assert "neither a run folder nor a checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_step_budget_samples_back_to_back_episodes_and_records_it(tmp_path: Path, capsys):
    """On an ant, whose fresh policy's episodes end early, ``--step-budget`` gathers more steps per task."""
    evaluate = load_script("evaluate")
    common = [
        "ant-vel",
        "--random",
        "--num-tasks",
        "2",
        "--num-steps",
        "1",
        "--episodes-per-step",
        "3",
        "--threads",
        "1",
    ]
    results = {}
    for name, extra in (
        ("plain", []),
        ("budget", ["--step-budget"]),
        ("one-lane", ["--step-budget", "--budget-lanes", "1"]),
    ):
        assert evaluate.main([*common, *extra, "--out", str(tmp_path / name)]) == 0
        results[name] = json.loads((tmp_path / name / "adaptation_random.json").read_text())
    plain, budget, one_lane = results["plain"], results["budget"], results["one-lane"]
    assert plain["settings"]["step_budget"] is False and budget["settings"]["step_budget"] is True
    assert budget["settings"]["budget_lanes"] == 0 and one_lane["settings"]["budget_lanes"] == 1
    assert plain["env_steps"] < budget["env_steps"] <= 2 * 2 * 3 * 200  # 2 phases × 2 tasks × 3 sub-envs × H
    # one sub-environment per task drops only its last, unfinished episode (shorter than H) of 3 × H steps
    assert 2 * 2 * (3 - 1) * 200 < one_lane["env_steps"] <= 2 * 2 * 3 * 200
    assert [t["task"] for t in plain["per_task"]] == [t["task"] for t in one_lane["per_task"]]
    assert evaluate.main([*common, "--budget-lanes", "1", "--out", str(tmp_path / "bad")]) == 2
    assert "needs step_budget" in capsys.readouterr().err


def test_oracle_is_evaluated_without_adaptation(tmp_path: Path):
    evaluate = load_script("evaluate")
    run = train(tiny_config(tmp_path, "oracle", iterations=1), agents.build_learner, progress=False)
    cfg = load_config(run / "config.yaml")
    captured: list[list[Episodes]] = []
    results = evaluate.evaluate(cfg, load_checkpoint(latest_checkpoint(run)), SETTINGS, on_episodes=captured.append)
    assert results.flat and results.returns.shape == (5, 1) and results.method == "oracle"
    (episodes,) = captured
    assert len(episodes) == 1 and episodes[0].observations.shape[-1] == 4  # position + goal
    goals = torch.tensor([t["goal"] for t in results.tasks], dtype=torch.float32)
    valid = episodes[0].mask.bool()  # [H, T, E]
    seen = episodes[0].observations[..., 2:]  # [H, T, E, 2]
    expected = goals.view(1, 5, 1, 2).expand_as(seen)
    assert torch.equal(seen[valid], expected[valid])


def test_streams_are_reproducible():
    a, b = evaluation_streams(7), evaluation_streams(7)
    assert a.torch_seed == b.torch_seed
    assert a.env_rng.integers(1 << 30) == b.env_rng.integers(1 << 30)


@pytest.mark.slow
def test_cli_default_episodes_per_step_is_the_runs_episodes_per_task(tiny_run: Path, tmp_path: Path):
    """Without ``--episodes-per-step`` a run is evaluated with the episodes per task it trained with (4 here)."""
    evaluate = load_script("evaluate")
    args = [str(tiny_run), "--num_tasks", "2", "--num_steps", "1", "--threads", "1"]  # underscores work too
    assert evaluate.main([*args, "--out", str(tmp_path / "default")]) == 0
    data = json.loads((tmp_path / "default" / "adaptation_maml-trpo.json").read_text())
    assert data["settings"]["episodes_per_step"] == 4
    assert data["settings"]["return_bounds"] == [None, 0.0]  # navigation's reward is minus a distance
    # 2 phases × 2 tasks × 4 episodes of at most 15 steps; an episode that reaches its goal ends early
    assert 2 * 2 * 3 * 15 < data["env_steps"] <= 2 * 2 * 4 * 15
    assert evaluate.main([*args, "--episodes_per_step", "6", "--out", str(tmp_path / "six")]) == 0
    assert (
        json.loads((tmp_path / "six" / "adaptation_maml-trpo.json").read_text())["settings"]["episodes_per_step"] == 6
    )
    assert "the run's episodes_per_task" in " ".join(evaluate.parser().format_help().split())


def test_the_inner_step_size_is_chosen_on_validation_tasks_apart_from_the_held_out_ones(tiny_run: Path, monkeypatch):
    import metarl.evaluation.protocol as protocol

    evaluate = load_script("evaluate")
    cfg = load_config(tiny_run / "config.yaml")
    state = load_checkpoint(latest_checkpoint(tiny_run))
    settings = EvaluationSettings(num_tasks=4, num_steps=2, episodes_per_step=4, lr_grid=(0.001, 0.1, 5.0), seed=2)
    seen, real = [], protocol.evaluate_adaptation
    monkeypatch.setattr(
        protocol,
        "evaluate_adaptation",
        lambda s, tasks, *a, **k: seen.append((list(tasks), a[1])) or real(s, tasks, *a, **k),
    )
    results = evaluate.evaluate(cfg, state, settings).to_json()
    heldout = [t for t in seen[-1][0]]
    assert [lrs for _, lrs in seen] == [[0.001], [0.1], [5.0], [results["settings"]["step_lrs"][0]] * 2]
    assert all(
        not any(np.allclose(np.asarray(v.goal), np.asarray(h.goal)) for v in tasks for h in heldout)
        for tasks, _ in seen[:3]
    )  # no validation task is a held-out task
    choice = results["settings"]["lr_choice"]
    scores = choice["mean_return_after_one_step"]
    assert choice["grid"] == [0.001, 0.1, 5.0] and choice["validation_tasks"] == 4
    assert choice["chosen"] == max((0.001, 0.1, 5.0), key=lambda lr: scores[f"{lr:g}"])
    assert results["settings"]["step_lrs"] == [choice["chosen"]] * 2


def test_cli_choose_lr_and_lrs_exclude_each_other(tiny_run: Path, capsys):
    evaluate = load_script("evaluate")
    assert evaluate.main([str(tiny_run), "--choose-lr", "0.1,1", "--lrs", "0.1"]) == 2
    assert "give one of them" in capsys.readouterr().err
