"""The oracle's view of a task: observations with the task's features appended.

A task family opts in by giving its batched environment a method
``task_features(task) -> np.ndarray`` (a flat float vector of fixed length, e.g. the
goal position of 2D navigation); a family registered without a batched env gives the
method to its single env, which the generic batched fallback passes on.
:class:`TaskFeatureObservation` wraps any batched environment and appends
``task_features(task of sub-env i)`` to every observation of sub-environment ``i``,
so a policy trained on it sees the task it is solving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from metarl.tasks.protocol import BatchedTaskEnv, Task, heldout_sampler, task_groups
from metarl.tasks.registry import TaskEnvError

TaskFeatures = Callable[[Task], np.ndarray]
"""Maps a task to a flat float vector of fixed length."""


@runtime_checkable
class HasTaskFeatures(Protocol):
    """A batched environment whose family describes its tasks as feature vectors."""

    def task_features(self, task: Task) -> np.ndarray:
        """The task as a flat float vector (same length for every task of the family)."""


def task_features_of(env: BatchedTaskEnv) -> TaskFeatures:
    """``env.task_features``, or a :class:`TaskEnvError` saying how a task family adds it."""
    features = getattr(env, "task_features", None)
    if not callable(features):
        spec = getattr(env, "spec", None)
        name = getattr(env, "env_id", None) or getattr(spec, "id", None) or type(env).__name__
        raise TaskEnvError(
            f"{name} has no task_features(task) method, so --algorithm oracle cannot show the policy its tasks; "
            "give the task environment (its class, or its batched class if it has one) a method "
            "`task_features(self, task) -> np.ndarray` returning the task as a flat float vector, "
            "or train another --algorithm"
        )
    return features


class TaskFeatureObservation(BatchedTaskEnv):
    """A batched env whose observations are ``[obs, task_features(task)]``.

    Everything else (tasks, rewards, termination, truncation) is the wrapped env's.
    ``features`` defaults to the wrapped env's ``task_features`` method.
    """

    def __init__(self, env: BatchedTaskEnv, features: TaskFeatures | None = None) -> None:
        super().__init__(env.num_envs, env.max_episode_steps)
        self.env = env
        self.features = features if features is not None else task_features_of(env)
        obs_space = env.single_observation_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise TypeError(f"TaskFeatureObservation needs a flat Box observation space, got {obs_space}")
        probe = self._vector(env.sample_tasks(1, np.random.default_rng(0))[0])
        self.feature_dim = probe.shape[0]
        low = np.concatenate([obs_space.low, np.full(self.feature_dim, -np.inf)]).astype(np.float32)
        high = np.concatenate([obs_space.high, np.full(self.feature_dim, np.inf)]).astype(np.float32)
        self._init_spaces(gym.spaces.Box(low, high, dtype=np.float32), env.single_action_space)
        self._task_features = np.zeros((self.num_envs, self.feature_dim), np.float32)

    def _vector(self, task: Task) -> np.ndarray:
        vector = np.asarray(self.features(task), dtype=np.float32)
        if vector.ndim != 1:
            raise ValueError(f"task_features must return a flat vector, got shape {vector.shape}")
        return vector

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` tasks of the wrapped family with ``rng``."""
        return self.env.sample_tasks(n, rng)

    def task_group(self, task: Task) -> str | None:
        """The wrapped family's group of ``task`` (``None`` if it has no groups)."""
        groups = task_groups(self.env, [task])
        return groups[0] if groups else None

    def sample_heldout_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` of the wrapped family's held-out tasks (:func:`metarl.tasks.protocol.heldout_sampler`)."""
        return heldout_sampler(self.env)(n, rng)

    def _apply_tasks(self, tasks: list[Task]) -> None:
        features = np.stack([self._vector(task) for task in tasks])
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"task_features returned {features.shape[1]} values, expected {self.feature_dim}")
        self.env.set_tasks(tasks)
        self._task_features = features

    def _augment(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, np.float32), self._task_features], axis=1)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the wrapped env; observations carry the task features."""
        if self._tasks is None:
            raise RuntimeError("TaskFeatureObservation: call set_tasks before reset")
        obs, info = self.env.reset(seed=seed, options=options)
        return self._augment(obs), info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step the wrapped env; observations carry the task features."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return self._augment(obs), reward, terminated, truncated, info

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError("TaskFeatureObservation resets through the wrapped env")

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:  # pragma: no cover
        raise NotImplementedError("TaskFeatureObservation steps through the wrapped env")

    def close(self, **kwargs: Any) -> None:
        """Close the wrapped env."""
        self.env.close(**kwargs)


__all__ = ["HasTaskFeatures", "TaskFeatureObservation", "TaskFeatures", "task_features_of"]
