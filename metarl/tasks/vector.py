"""The generic batched fallback: ``N`` single task envs stepped one after another.

:func:`metarl.make_batched` uses :class:`SyncBatchedTaskEnv` for a task environment
registered without a natively batched implementation, so one Gymnasium env class and
one :func:`metarl.register_task_env` call are all a new task family needs. Each
sub-environment is ``gymnasium.make(id, **kwargs)`` with its own task and its own
reset seed; stepping is a Python loop in this process (no process pool).

Making it fast: a natively batched version
-------------------------------------------
The loop costs a few microseconds of Python per sub-environment and step. To step all
sub-environments in one numpy (or ``mujoco.batch``) call, subclass
:class:`metarl.BatchedTaskEnv` and register it as ``batched_entry_point``:

* ``__init__(self, num_envs, max_episode_steps, **kwargs)``: call
  ``super().__init__(num_envs, max_episode_steps)`` and
  ``self._init_spaces(single_obs_space, single_action_space)``;
* ``sample_tasks(n, rng)``: ``n`` tasks drawn with the generator ``rng``, of the same
  type the single env's ``set_task`` takes (ideally the same draws as the single env's
  ``sample_tasks(n)`` with ``np_random = rng``);
* ``_apply_tasks(tasks)``: store one task per sub-environment in arrays;
* ``_reset_subenvs(indices, seeds)``: reset the sub-environments ``indices``, each from
  its own seed (``None``: continue its stream), leave the others untouched, and return
  the observations of *all* sub-environments, shape ``(num_envs, obs_dim)``;
* ``_step_all(actions)``: step every sub-environment, returning ``(obs, reward,
  terminated, info)`` with leading dimension ``num_envs``; truncation at
  ``max_episode_steps`` is added by the base class. Sub-environments whose episode has
  ended may keep being stepped; their outputs are ignored, but must stay finite.

It should equal ``N`` single envs step for step under the same seeds, tasks and
actions; compare it with this class (see ``tests/metarl/test_custom_env.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks.checks import TaskEnvError, check_tasks
from metarl.tasks.protocol import (
    DIVERGED_INFO_KEY,
    HELDOUT_SAMPLER,
    SUCCESS_INFO_KEY,
    TASK_GROUP,
    BatchedTaskEnv,
    EnvFaultError,
    Task,
)


class SyncBatchedTaskEnv(BatchedTaskEnv):
    """``num_envs`` single task envs made with ``gymnasium.make(id, **kwargs)``, stepped in a loop.

    Sub-environment ``i`` gets its own task (``set_tasks``) and its own reset seed.
    A sub-environment whose episode has ended (terminated, truncated or
    ``info["diverged"]``) is not stepped again until it is reset: it repeats its last
    observation with reward 0. The step's info holds ``"diverged"``, one bool each, and
    ``"success"`` likewise when the single envs report it (``SUCCESS_INFO_KEY``).
    ``sample_tasks(n, rng)`` calls a separate sampling env's ``sample_tasks(n)`` with
    its ``np_random`` set to ``rng``, so it draws exactly what the single env draws.
    If the single env has ``task_features(task)`` (for the oracle baseline), so does this;
    likewise ``sample_heldout_tasks`` and ``task_group`` (:mod:`metarl.tasks.protocol`).
    """

    def __init__(self, id: str, num_envs: int, max_episode_steps: int, **kwargs: Any) -> None:
        super().__init__(num_envs, max_episode_steps)
        self.env_id = id
        make_kwargs = {"max_episode_steps": max_episode_steps, "disable_env_checker": True, **kwargs}
        self.envs: list[gym.Env] = [gym.make(id, **make_kwargs) for _ in range(num_envs)]
        self._task_sampler = gym.make(id, **make_kwargs)
        first = self.envs[0]
        self._init_spaces(first.observation_space, first.action_space)
        self._set_task: list[Callable[[Task], None]] = [e.get_wrapper_attr("set_task") for e in self.envs]
        obs_shape = tuple(first.observation_space.shape or ())
        self._obs = np.zeros((num_envs, *obs_shape), dtype=first.observation_space.dtype)
        self._reward = np.zeros(num_envs, dtype=np.float64)
        self._terminated = np.zeros(num_envs, dtype=bool)
        self._ended = np.zeros(num_envs, dtype=bool)
        features = getattr(self._task_sampler.unwrapped, "task_features", None)
        if callable(features):
            self.task_features = features
        if callable(getattr(self._task_sampler.unwrapped, HELDOUT_SAMPLER, None)):
            self.sample_heldout_tasks = self._sample_heldout_tasks
        group = getattr(self._task_sampler.unwrapped, TASK_GROUP, None)
        if callable(group):
            self.task_group = group

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` tasks with the single env's ``sample_tasks(n)``, its generator set to ``rng``."""
        sampler = self._task_sampler.unwrapped
        sampler.np_random = rng
        return check_tasks(self.env_id, sampler.sample_tasks(n), n)  # type: ignore[attr-defined]

    def _sample_heldout_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` of the family's held-out tasks with the single env's ``sample_heldout_tasks(n)``."""
        sampler = self._task_sampler.unwrapped
        sampler.np_random = rng
        return check_tasks(self.env_id, getattr(sampler, HELDOUT_SAMPLER)(n), n, where=HELDOUT_SAMPLER)

    def _apply_tasks(self, tasks: list[Task]) -> None:
        for i, (set_task, task) in enumerate(zip(self._set_task, tasks, strict=True)):
            try:
                set_task(task)
            except Exception as exc:
                raise TaskEnvError(
                    f"{self.env_id}: set_task rejected the task of sub-environment {i} ({task!r}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def _fault(self, i: int, what: str, problem: str) -> EnvFaultError:
        task = self._tasks[i] if self._tasks is not None else None
        return EnvFaultError(f"{self.env_id}: sub-environment {i} (task {task!r:.80}) {what}: {problem}")

    def _observation(self, i: int, what: str, value: Any) -> np.ndarray:
        """``value`` as sub-environment ``i``'s observation, or an :class:`EnvFaultError` saying what it is."""
        try:
            obs = np.asarray(value, dtype=self._obs.dtype)
        except (TypeError, ValueError):
            raise self._fault(i, what, f"returned an observation that is not numbers: {value!r:.80}") from None
        if obs.shape != self._obs.shape[1:]:
            raise self._fault(
                i,
                what,
                f"returned an observation of shape {obs.shape}, the observation space's is {self._obs.shape[1:]}",
            )
        return obs

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        for i, seed in zip(indices.tolist(), seeds, strict=True):
            try:
                value, _ = self.envs[i].reset(seed=seed)
            except Exception as exc:
                raise self._fault(i, "reset", f"raised {type(exc).__name__}: {exc}") from exc
            self._obs[i] = self._observation(i, "reset", value)
        self._ended[indices] = False
        self._terminated[indices] = False
        return self._obs.copy()

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, ended, envs = self._obs, self._reward, self._terminated, self._ended, self.envs
        reward[:] = 0.0
        diverged = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        reports_success = False
        for i in np.flatnonzero(~ended).tolist():
            try:
                value, r, term, trunc, info = envs[i].step(actions[i])
            except Exception as exc:
                raise self._fault(i, "step", f"raised {type(exc).__name__}: {exc}") from exc
            obs[i] = self._observation(i, "step", value)
            value_r = np.asarray(r)
            if value_r.ndim != 0 or not isinstance(value_r.item(), int | float):
                raise self._fault(i, "step", f"returned a reward that is not one number: {r!r:.80}")
            reward[i] = r
            terminated[i] = term
            diverged[i] = bool(info.get(DIVERGED_INFO_KEY, False))
            if SUCCESS_INFO_KEY in info:
                reports_success = True
                success[i] = bool(info[SUCCESS_INFO_KEY])
            ended[i] = term or trunc or diverged[i]
        info_out = {DIVERGED_INFO_KEY: diverged, **({SUCCESS_INFO_KEY: success} if reports_success else {})}
        return obs.copy(), reward.copy(), terminated.copy(), info_out

    def close_extras(self, **kwargs: Any) -> None:
        """Close every sub-environment and the sampling env."""
        for env in (*self.envs, self._task_sampler):
            env.close()
