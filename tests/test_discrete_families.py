"""Discrete families end to end: MAML-TRPO learns to adapt on bandits and tabular MDPs, and
evaluation records the analytic references (best arm, UCB1, Thompson; value iteration,
uniform random) on the very held-out tasks it evaluates on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the task environments)
from envs import references
from metarl.config import list_presets, load_config
from metarl.evaluation.protocol import (
    AdaptationResults,
    EvaluationSettings,
    heldout_tasks,
    reference_returns,
    reference_rng,
)
from metarl.plots.figures import plot_adaptation, reference_levels
from metarl.runs.logs import read_metrics
from metarl.tasks.build import make_batched
from metarl.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
DISCRETE_PRESETS = {  # preset: (actions, episode length of the env)
    "bandit-k5-n10": (5, 10),
    "bandit-k10-n100": (10, 100),
    "bandit-k50-n500": (50, 500),
    "tabular-mdp": (5, 10),
}


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"metarl_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def short_run(tmp: Path, preset: str, *overrides: str) -> Path:
    cfg = load_config(
        preset,
        [
            "--num_iterations",
            "10",
            "--meta_batch_size",
            "10",
            "--seed",
            "1",
            "--num_threads",
            "1",
            "--tensorboard",
            "false",
            "--out_dir",
            str(tmp),
            "--run_name",
            preset,
            "--max_kl",
            "0.01",  # the presets' 0.002 keeps long runs stable; a 10-iteration run needs speed
            *overrides,
        ],
    )
    return train(cfg, agents.build_learner, progress=False)


# ------------------------------------------------------------------------- presets


@pytest.mark.parametrize(("preset", "actions", "length"), [(k, *v) for k, v in DISCRETE_PRESETS.items()])
def test_discrete_presets_load_and_match_their_env(preset: str, actions: int, length: int) -> None:
    assert preset in list_presets()
    cfg = load_config(preset)
    env = make_batched(cfg.env_id, 2, max_episode_steps=cfg.horizon, **cfg.env_kwargs)
    assert env.single_action_space.n == actions
    # the trainer truncates at cfg.horizon: it must be the env's own episode length
    assert cfg.horizon == length == gym.spec(cfg.env_id).max_episode_steps
    assert isinstance(agents.policy_for(cfg, env), agents.CategoricalMLPPolicy)


# ------------------------------------------------------------------------ training


@pytest.mark.slow
def test_short_bandit_run_adapts(tmp_path: Path) -> None:
    rows = read_metrics(short_run(tmp_path, "bandit-k5-n10"))
    before = np.array([r["return_before"] for r in rows])
    after = np.array([r["return_after"] for r in rows])
    # unadapted, a policy earns n·E[p] = 5; one inner step on the task's pulls moves it to better arms ...
    assert np.all(np.abs(before - 5.0) < 1.0)
    assert np.all(after > before + 0.3)  # seeds 1-4: the smallest gain is 0.54
    # ... and meta-training makes that step count: the gain grows (seeds 1-4: by 0.82 to 1.71)
    assert (after - before)[-3:].mean() > (after - before)[:3].mean() + 0.5
    assert after[-3:].mean() > 6.5  # seeds 1-4: 6.9 to 7.6; the best arm pays 8.33


@pytest.mark.slow
def test_short_tabular_mdp_run_adapts(tmp_path: Path) -> None:
    rows = read_metrics(short_run(tmp_path, "tabular-mdp", "--episodes_per_task", "20"))
    before = np.array([r["return_before"] for r in rows])
    after = np.array([r["return_after"] for r in rows])
    assert np.all(np.abs(before - 10.0) < 2.0)  # unadapted: ~10, the uniform-random return (mean reward 1)
    gain = after - before
    # within 5 meta-iterations one inner step on 20 episodes of the task reliably pays (seeds 1-4: >= 1.08) ...
    assert np.all(gain[5:] > 0.5)
    # ... and more so as meta-training goes on
    assert gain[-3:].mean() > 1.5 and gain[-3:].mean() > gain[:3].mean() + 0.3
    assert all(r["step_accepted"] == 1.0 for r in rows)


# ---------------------------------------------------------------------- evaluation

SETTINGS = EvaluationSettings(num_tasks=6, num_steps=1, episodes_per_step=4, lrs=(0.5,), seed=2)


@pytest.mark.parametrize("preset", ["bandit-k5-n10", "tabular-mdp"])
def test_results_file_holds_the_references_of_the_heldout_tasks(preset: str, tmp_path: Path) -> None:
    evaluate = load_script("evaluate")
    cfg = load_config(preset, ["--hidden_sizes", "8"])
    results = evaluate.evaluate(cfg, None, SETTINGS, random=True)
    data = json.loads(results.save(tmp_path / "results.json").read_text())

    tasks = heldout_tasks(make_batched(cfg.env_id, 1).sample_tasks, SETTINGS.num_tasks, SETTINGS.seed)
    if preset.startswith("bandit"):
        probs = np.array([t.probs for t in tasks])
        assert [row["task"]["probs"] for row in data["per_task"]] == probs.tolist()
        ucb_rng, thompson_rng = reference_rng(SETTINGS.seed).spawn(2)
        expected = {
            "best arm": 10 * probs.max(axis=1),
            "UCB1": references.ucb1_return(tasks, 10, ucb_rng),
            "Thompson sampling": references.thompson_return(tasks, 10, thompson_rng),
            "uniform random arm": 10 * probs.mean(axis=1),
        }
    else:
        assert [row["task"]["fingerprint"] for row in data["per_task"]] == [t.fingerprint() for t in tasks]
        assert data["per_task"][0]["task"]["mean_rewards"] == np.round(tasks[0].mean_rewards, 4).tolist()
        assert len(json.dumps(data["per_task"][0])) < 1_000  # not the 500 transition probabilities
        expected = {
            "optimal (value iteration)": references.mdp_optimal_return(tasks, 10),
            "uniform random": references.mdp_random_return(tasks, 10),
        }
    assert list(data["references"]) == list(expected)
    for name, values in expected.items():
        per_task = [row["references"][name] for row in data["per_task"]]
        assert per_task == values.tolist()
        assert data["references"][name]["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert data["references"][name]["ci_low"] < values.mean() < data["references"][name]["ci_high"]
    # they read back, and the figure draws them at their means
    again = AdaptationResults.load(tmp_path / "results.json")
    assert {k: v.tolist() for k, v in again.references.items()} == {k: v.tolist() for k, v in expected.items()}
    assert reference_levels([again, again]) == pytest.approx({k: v.mean() for k, v in expected.items()})
    assert plot_adaptation([again], tmp_path / "fig.png").stat().st_size > 10_000


def test_references_are_the_same_for_every_method_and_absent_without_a_hook() -> None:
    env = make_batched("metarl/Bandit-K10-N100-v0", 1)
    tasks = heldout_tasks(env.sample_tasks, 5, seed=0)
    first, second = (reference_returns(env, tasks, 100, seed=0) for _ in range(2))
    assert {k: v.tolist() for k, v in first.items()} == {k: v.tolist() for k, v in second.items()}
    assert first["best arm"].tolist() == references.bandit_oracle_return(tasks, 100).tolist()
    assert reference_returns(env, tasks, 100, seed=1)["UCB1"].tolist() != first["UCB1"].tolist()
    assert reference_returns(make_batched("metarl/Navigation2D-v0", 1), [], 100, seed=0) == {}


def test_a_bad_reference_hook_is_reported() -> None:
    class Broken:
        def reference_returns(self, tasks: list, horizon: int, rng: np.random.Generator) -> dict:
            return {"too short": np.zeros(len(tasks) - 1)}

    with pytest.raises(ValueError, match="'too short' must name 3 finite per-task returns"):
        reference_returns(Broken(), [0, 1, 2], 10, seed=0)


def test_task_features_for_the_oracle() -> None:
    bandit = make_batched("metarl/Bandit-K5-N10-v0", 1)
    (task,) = bandit.sample_tasks(1, np.random.default_rng(0))
    np.testing.assert_array_equal(bandit.task_features(task), np.array(task.probs, np.float32))
    mdp = make_batched("metarl/TabularMDP-v0", 1)
    (task,) = mdp.sample_tasks(1, np.random.default_rng(0))
    features = mdp.task_features(task)
    assert features.shape == (10 * 5 * 10 + 10 * 5,) and features.dtype == np.float32
    np.testing.assert_allclose(features[:500].reshape(10, 5, 10), task.transitions, rtol=1e-6)
    np.testing.assert_allclose(features[500:].reshape(10, 5), task.mean_rewards, rtol=1e-6)
