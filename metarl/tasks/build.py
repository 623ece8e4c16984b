"""Building task environments by id: the single env, and the batched one the trainer and the evaluator use.

For a family without a natively batched implementation, :func:`make_batched` vectorises the
single env itself (:class:`metarl.tasks.vector.SyncBatchedTaskEnv`). Envs are checked at first
use (``set_task`` rejecting what ``sample_tasks`` returns, spaces the policies cannot handle,
dict tasks); every error is a :class:`TaskEnvError` naming the env id and the problem.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks.checks import TaskEnvError, check_batched_env, check_single_env
from metarl.tasks.protocol import BatchedTaskEnv, return_bounds
from metarl.tasks.registry import is_registered, resolve_if_loaded
from metarl.tasks.resolve import check_env_id
from metarl.tasks.vector import SyncBatchedTaskEnv


def make_single_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` of registered task env ``env_id``; any failure a :class:`TaskEnvError` naming it."""
    try:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except Exception as exc:
        raise TaskEnvError(f"{env_id}: gymnasium.make failed: {type(exc).__name__}: {exc}") from exc


def check_task_env(id: str, **kwargs: Any) -> None:
    """Make the single env ``id`` (with ``kwargs``) and check it with :func:`check_single_env`."""
    env_id = check_env_id(id)
    env = make_single_env(env_id, **kwargs)
    try:
        check_single_env(env_id, env)
    finally:
        env.close()


def registered_return_bounds(id: str, horizon: int) -> tuple[float, float]:
    """:func:`metarl.tasks.protocol.return_bounds` of registered task env ``id``; unbounded if unknown.

    Reads the env class's ``metadata`` only if the class is already imported: it never
    imports a module (a results file or run folder may name any id).
    """
    entry_point = gym.spec(id).entry_point if is_registered(id) else None
    if entry_point is None:
        return -np.inf, np.inf
    cls = resolve_if_loaded(entry_point)
    return return_bounds(getattr(cls, "metadata", None), horizon)


def make_batched(id: str, num_envs: int, *, max_episode_steps: int | None = None, **kwargs: Any) -> BatchedTaskEnv:
    """Build a batched environment of ``num_envs`` sub-environments of task env ``id``.

    Uses the registered natively batched implementation if there is one, and otherwise
    :class:`metarl.tasks.vector.SyncBatchedTaskEnv` over ``num_envs`` single envs. The env is
    checked first (:func:`check_task_env`, :func:`check_batched_env`).

    Args:
        id: The registered task env id (``module:Id`` imports ``module`` first).
        num_envs: Sub-environments.
        max_episode_steps: The horizon (default: the registered one).
        kwargs: Constructor arguments (over the registered defaults).
    """
    env_id = check_env_id(id)
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        check_task_env(env_id, **kwargs)
        horizon = max_episode_steps or spec.max_episode_steps
        if horizon is None:
            raise TaskEnvError(
                f"{env_id}: no episode length; pass max_episode_steps (the config's horizon) "
                "or register the env with max_episode_steps"
            )
        env: Any = SyncBatchedTaskEnv(env_id, num_envs, max_episode_steps=horizon, **kwargs)
    else:
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
        if not isinstance(env, BatchedTaskEnv):
            raise TaskEnvError(f"{env_id}: batched entry point built {type(env).__name__}, not a BatchedTaskEnv")
    check_batched_env(env_id, env)
    return env


__all__ = ["check_task_env", "make_batched", "make_single_env", "registered_return_bounds"]
