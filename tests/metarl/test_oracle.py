"""The oracle's observation: the wrapped env's observation followed by the task's features."""

from __future__ import annotations

import numpy as np
import pytest

import envs  # noqa: F401  (registers the task environments)
from envs.navigation import BatchedNavigation2D, NavigationTask
from metarl.tasks.build import make_batched
from metarl.tasks.oracle import TaskFeatureObservation, task_features_of
from metarl.tasks.registry import TaskEnvError


def test_observation_contains_the_task_after_reset_and_every_step():
    inner = BatchedNavigation2D(num_envs=4, max_episode_steps=5)
    env = TaskFeatureObservation(inner)
    assert env.single_observation_space.shape == (4,) and env.feature_dim == 2
    tasks = [NavigationTask(g) for g in ((0.1, -0.2), (0.3, 0.4), (-0.5, 0.0), (0.0, 0.5))]
    env.set_tasks(tasks)
    goals = np.array([t.goal for t in tasks], np.float32)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.concatenate([np.zeros((4, 2), np.float32), goals], axis=1))
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.uniform(-0.1, 0.1, size=(4, 2)).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(actions)
        np.testing.assert_array_equal(obs[:, 2:], goals)
        np.testing.assert_array_equal(obs[:, :2], inner._positions.astype(np.float32))
        np.testing.assert_allclose(reward, -np.linalg.norm(inner._positions - goals, axis=1), rtol=1e-6)
    assert truncated.all() and not terminated.any()
    assert env.get_tasks() == tasks and inner.get_tasks() == tasks
    assert env.observation_space.contains(obs)


def test_a_family_without_task_features_gets_a_clear_error():
    env = make_batched("metarl/Navigation2D-v0", 2)
    assert task_features_of(env)(NavigationTask((0.2, 0.3))).tolist() == pytest.approx([0.2, 0.3])
    no_hook = type("NoFeatures", (BatchedNavigation2D,), {"task_features": None})(num_envs=2)
    with pytest.raises(TaskEnvError, match="task_features"):
        TaskFeatureObservation(no_hook)


def test_explicit_feature_function_overrides_the_hook():
    env = TaskFeatureObservation(BatchedNavigation2D(2), features=lambda t: np.array([np.hypot(*t.goal)]))
    env.set_tasks([NavigationTask((0.3, 0.4)), NavigationTask((0.0, 0.0))])
    obs, _ = env.reset(seed=1)
    np.testing.assert_allclose(obs[:, 2], [0.5, 0.0], rtol=1e-6)
