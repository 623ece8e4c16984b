"""Registering task environments and making batched ones by id.

A task environment is registered with Gymnasium (so ``gymnasium.make(id)`` finds it);
a natively batched implementation, if the family has one, is registered as
Gymnasium's ``vector_entry_point`` and is what :func:`make_batched` builds.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from metarl.tasks import BatchedTaskEnv

_TASK_ENV_IDS: set[str] = set()


def register_task_env(
    id: str,
    entry_point: str | Callable[..., gym.Env],
    *,
    batched_entry_point: str | Callable[..., BatchedTaskEnv] | None = None,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Register a task environment with Gymnasium under ``id``.

    ``entry_point`` builds the single env (``"module:Class"`` or a callable);
    ``batched_entry_point`` optionally builds a :class:`BatchedTaskEnv` and is called
    as ``batched_entry_point(num_envs=..., max_episode_steps=..., **kwargs)``.
    """
    if id in gym.registry:
        raise ValueError(f"task environment id {id!r} is already registered")
    gym.register(
        id=id,
        entry_point=entry_point,
        vector_entry_point=batched_entry_point,
        max_episode_steps=max_episode_steps,
        kwargs=dict(kwargs or {}),
    )
    _TASK_ENV_IDS.add(id)


def task_env_ids() -> list[str]:
    """Ids of all registered task environments, sorted."""
    return sorted(_TASK_ENV_IDS)


def check_env_id(id: str) -> None:
    """Raise a ``ValueError`` naming the closest valid ids if ``id`` is not a task env."""
    if id in _TASK_ENV_IDS:
        return
    known = task_env_ids()
    close = difflib.get_close_matches(id, known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown task environment id {id!r}.{hint} Registered task environments: {', '.join(known) or 'none'}"
    )


def make_batched(
    id: str, num_envs: int, *, max_episode_steps: int | None = None, **kwargs: Any
) -> BatchedTaskEnv:
    """Build a batched environment of ``num_envs`` sub-environments of task env ``id``."""
    check_env_id(id)
    spec = gym.spec(id)
    if spec.vector_entry_point is None:
        raise NotImplementedError(f"{id!r} has no batched implementation")
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    env = gym.make_vec(id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    if not isinstance(env, BatchedTaskEnv):
        raise TypeError(f"{id!r}: batched entry point built {type(env).__name__}, not a BatchedTaskEnv")
    return env
