"""Episodes that succeed: an env's ``info["success"]`` through the sampler into evaluation's success rates."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents.policies import GaussianMLPPolicy
from metarl import make_batched
from metarl.evaluation.protocol import EvaluationSettings, run_evaluation
from metarl.evaluation.results import AdaptationResults
from metarl.sampling import Sampler
from metarl.tasks.registry import register_task_env

T, E = 2, 3


class CountdownEnv(gym.Env):
    """A task is a step count ``k``: the episode succeeds at step ``k`` (if it gets there)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.k, self.t = 1.0, 0

    def sample_tasks(self, n: int) -> list[float]:
        return [float(k) for k in self.np_random.integers(1, 4, n)]

    def set_task(self, task: float) -> None:
        self.k = task

    def get_task(self) -> float:
        return self.k

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t, np.float32), 0.0, False, False, {"success": self.t == self.k}


register_task_env("metarl-test/Countdown-v0", CountdownEnv, max_episode_steps=5)


@pytest.mark.parametrize("step_budget", [False, True])
def test_an_episode_succeeds_when_any_step_does(step_budget):
    torch.manual_seed(0)
    env = make_batched("metarl-test/Countdown-v0", T * E, max_episode_steps=5)
    policy = GaussianMLPPolicy(1, 1, hidden_sizes=(4,))
    sampler = Sampler(env, policy, T, E, step_budget=step_budget)
    sampler.set_tasks([3.0, 9.0])  # task 0 succeeds at step 3 (and only there); task 1 never within 5 steps
    episodes = sampler.sample(policy.task_params(T), np.random.default_rng(0))
    assert episodes.successes is not None and episodes.successes.shape == episodes.mask.shape
    present = episodes.present
    assert episodes.succeeded()[0][present[0]].all() and not episodes.succeeded()[1].any()
    assert episodes.success_rates().tolist() == [1.0, 0.0]
    assert float(episodes.successes[:, 0].sum()) == float(present[0].sum())  # one successful step per episode
    no_success = make_batched("metarl/Navigation2D-v1", T * E, max_episode_steps=5)
    nav_policy = GaussianMLPPolicy(2, 2, hidden_sizes=(4,))
    other = Sampler(no_success, nav_policy, T, E)
    other.set_tasks(no_success.sample_tasks(T, np.random.default_rng(0)))
    plain = other.sample(nav_policy.task_params(T), np.random.default_rng(0))
    assert plain.successes is None and plain.success_rates() is None


def test_evaluation_reports_success_rates_and_keeps_them_in_the_results_file(tmp_path):
    torch.manual_seed(0)
    env = make_batched("metarl-test/Countdown-v0", T * E, max_episode_steps=5)
    policy = GaussianMLPPolicy(1, 1, hidden_sizes=(4,))
    sampler = Sampler(env, policy, T, E)

    def adapt(sampler, rng, lrs):
        params = policy.task_params(T)
        return [sampler.sample(params, rng) for _ in range(len(lrs) + 1)]

    settings = EvaluationSettings(num_tasks=T, num_steps=2, episodes_per_step=E, lrs=(0.1,), seed=0)
    results = run_evaluation(
        sampler, [2.0, 7.0], adapt, settings, method="maml-trpo", env_id="metarl-test/Countdown-v0"
    )
    np.testing.assert_array_equal(results.success, [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    summary = results.to_json()["success_rate"]
    assert summary["mean"] == [0.5, 0.5, 0.5]
    loaded = AdaptationResults.load(results.save(tmp_path / "r.json"))
    np.testing.assert_array_equal(loaded.success, results.success)
    assert loaded.groups == [] and "by_group" not in results.to_json()


def test_results_are_reported_per_task_group(tmp_path):
    returns = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 8.0]])
    success = np.array([[0.0, 1.0], [0.0, 0.5], [1.0, 1.0]])
    groups = ["reach-v3", "reach-v3", "push-v3"]
    results = AdaptationResults("maml-trpo", "x/Y-v0", returns, {}, success=success, groups=groups)
    by_group = results.to_json()["by_group"]
    assert list(by_group) == ["reach-v3", "push-v3"]
    assert by_group["reach-v3"]["tasks"] == 2 and by_group["reach-v3"]["mean"] == [2.0, 3.0]
    assert by_group["reach-v3"]["success_rate"] == [0.0, 0.75] and by_group["push-v3"]["success_rate"] == [1.0, 1.0]
    assert AdaptationResults.load(results.save(tmp_path / "g.json")).groups == groups


def test_the_adaptation_figure_draws_success_rates_beside_returns(tmp_path):
    from metarl.plots.figures import adaptation_figure, plot_adaptation

    returns = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 5.0]])
    with_success = AdaptationResults("maml-trpo", "x/Y-v0", returns, {}, success=np.array([[0, 0.5, 1], [0, 1, 1.0]]))
    without = AdaptationResults("random", "x/Y-v0", returns - 1, {})
    fig = adaptation_figure([with_success, without])
    returns_axes, success_axes = fig.axes
    assert (
        success_axes.get_ylabel().startswith("success rate") and returns_axes.get_ylabel() == "mean return per episode"
    )
    np.testing.assert_allclose(success_axes.lines[0].get_ydata(), [0.0, 0.75, 1.0])
    curves = [line for line in success_axes.lines if not line.get_label().startswith("_")]
    assert len(curves) == 1  # only the method that has success rates (the rest: the dotted 0 and 1 bounds)
    assert len(adaptation_figure([without]).axes) == 1
    assert plot_adaptation([with_success], tmp_path / "a.png").stat().st_size > 0


def _countdown_episodes(tasks_before: list[float], tasks_after: list[float]):
    """Episodes of a small policy on the countdown env's tasks, before and "after" (a second sampling)."""
    torch.manual_seed(0)
    env = make_batched("metarl-test/Countdown-v0", T * E, max_episode_steps=5)
    policy = GaussianMLPPolicy(1, 1, hidden_sizes=(4,))
    sampler = Sampler(env, policy, T, E)
    sampler.set_tasks(tasks_before)
    before = sampler.sample(policy.task_params(T), np.random.default_rng(0))
    sampler.set_tasks(tasks_after)
    return before, sampler.sample(policy.task_params(T), np.random.default_rng(1))


def test_training_metrics_carry_success_rates_only_for_envs_that_report_them():
    from agents.maml import AdaptationBatch, adaptation_metrics

    before, after = _countdown_episodes([2.0, 9.0], [2.0, 3.0])
    metrics = adaptation_metrics(AdaptationBatch(episodes=[before, after], advantages=[], params=[]))
    assert (metrics["success_before"], metrics["success_after"]) == (0.5, 1.0)
    plain = dataclasses.replace(before, successes=None)
    without = adaptation_metrics(AdaptationBatch(episodes=[plain, plain], advantages=[], params=[]))
    assert "success_before" not in without and "success_after" not in without


def test_the_training_curve_draws_success_rates_when_logged(tmp_path):
    from matplotlib.image import imread

    from metarl.plots.training_curve import plot_training_curve

    rows = [{"iteration": i, "return_before": -i, "return_after": i, "success_after": i / 10} for i in range(5)]
    wide = imread(plot_training_curve(rows, tmp_path / "s.png"))
    narrow = imread(
        plot_training_curve([{k: v for k, v in r.items() if k != "success_after"} for r in rows], tmp_path / "n.png")
    )
    assert wide.shape[1] > 1.4 * narrow.shape[1]  # the success panel beside the returns


def test_the_group_figure_draws_each_group_of_tasks(tmp_path):
    from metarl.plots.figures import groups_figure, plot_groups

    returns = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 8.0], [6.0, 9.0]])
    success = np.array([[0.0, 1.0], [0.0, 0.5], [1.0, 1.0], [0.5, 1.0]])
    groups = ["reach-v3", "reach-v3", "push-v3", "push-v3"]
    result = AdaptationResults("maml-trpo", "metarl/ML10-v3", returns, {}, success=success, groups=groups)
    returns_axes, success_axes = groups_figure(result).axes
    drawn = [line for line in success_axes.lines if not line.get_label().startswith("_")]
    assert [line.get_label() for line in drawn] == ["reach-v3 (2 tasks)", "push-v3 (2 tasks)"]
    np.testing.assert_allclose(drawn[0].get_ydata(), [0.0, 0.75])
    assert plot_groups(result, tmp_path / "g.png").stat().st_size > 0
    with pytest.raises(ValueError, match="fewer than two"):
        groups_figure(AdaptationResults("maml-trpo", "x/Y-v0", returns, {}, groups=["a"] * 4))


def test_plot_draws_one_results_files_groups(tmp_path, capsys):
    from metarl.cli.plot import main

    returns = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 8.0], [6.0, 9.0]])
    groups = ["reach-v3", "reach-v3", "push-v3", "push-v3"]
    path = AdaptationResults("maml-trpo", "metarl/ML10-v3", returns, {}, groups=groups).save(tmp_path / "r.json")
    assert main(["adaptation", str(path), "--by-group", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert main(["adaptation", str(path), str(path), "--by-group", "--out", str(tmp_path / "h.png")]) == 2
    assert "one results file" in capsys.readouterr().err


def test_training_metrics_give_returns_per_task_group():
    from agents.maml import AdaptationBatch, adaptation_metrics

    before, after = _countdown_episodes([2.0, 9.0], [2.0, 9.0])
    batch = AdaptationBatch(episodes=[before, after], advantages=[], params=[])
    metrics = adaptation_metrics(batch, ["short", "long"])
    for key, episodes in (("return_before", before), ("return_after", after)):
        per_task = episodes.returns().double().mean(1)
        assert metrics[f"{key}@short"] == pytest.approx(float(per_task[0]))
        assert metrics[f"{key}@long"] == pytest.approx(float(per_task[1]))
        assert metrics[key] == pytest.approx(float(per_task.mean()))
    assert not any("@" in k for k in adaptation_metrics(batch))
    assert not any("@" in k for k in adaptation_metrics(batch, ["one", "one"]))  # a single group adds nothing
