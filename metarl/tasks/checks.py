"""The task-protocol checks: does an env (single or batched) behave as metarl's learners need?

Each check raises :class:`TaskEnvError` naming the env and the problem. The registry runs
them at first use (:func:`metarl.tasks.registry.make_batched`, :func:`metarl.tasks.registry.check_task_env`),
the vectoriser on every ``sample_tasks`` (:mod:`metarl.tasks.vector`), and ``python -m metarl
check-env`` on request (:mod:`metarl.tasks.env_check`). This module imports neither of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks.protocol import BatchedTaskEnv, Task

PROTOCOL_METHODS: tuple[str, ...] = ("sample_tasks", "set_task", "get_task")
"""Methods a single task environment has on top of Gymnasium's ``reset`` and ``step``."""


class TaskEnvError(ValueError):
    """A task environment breaks the task protocol or cannot be registered; the message names it."""


def check_policy_spaces(name: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise :class:`TaskEnvError` unless the agents' MLP policies can handle these spaces.

    Observations: a flat (1-D) Box. Actions: a flat Box (Gaussian policy) or a
    ``Discrete(n)`` starting at 0 (categorical policy).

    Args:
        name: How the error names the env.
        observation_space: The single observation space.
        action_space: The single action space.
    """
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise TaskEnvError(
            f"{name}: observation space {observation_space} is not supported; the policies need a flat "
            "(1-D) Box (flatten it, e.g. with gymnasium.wrappers.FlattenObservation, or one-hot encode a Discrete)"
        )
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return
    if isinstance(action_space, gym.spaces.Discrete) and int(action_space.start) == 0:
        return
    raise TaskEnvError(
        f"{name}: action space {action_space} is not supported; the policies need a flat (1-D) Box "
        "or a Discrete(n) starting at 0"
    )


def check_tasks(name: str, tasks: Any, n: int, where: str = "sample_tasks") -> list[Task]:
    """``tasks`` as a list, after checking it holds ``n`` tasks and none is a dict.

    Args:
        name: How the error names the env.
        tasks: What ``sample_tasks`` returned.
        n: How many tasks were asked for.
        where: The method named in errors.
    """
    if isinstance(tasks, Mapping) or not isinstance(tasks, (Sequence, np.ndarray)):
        raise TaskEnvError(f"{name}: {where}({n}) must return a list of {n} tasks, got {type(tasks).__name__}")
    tasks = list(tasks)
    if len(tasks) != n:
        raise TaskEnvError(f"{name}: {where}({n}) returned {len(tasks)} tasks")
    for task in tasks:
        if isinstance(task, Mapping):
            raise TaskEnvError(
                f"{name}: {where} returned a dict task {task!r}; tasks must be frozen dataclasses "
                "or numpy arrays, never dicts"
            )
    return tasks


def check_single_env(name: str, env: gym.Env) -> None:
    """Check a single task env against the protocol; raise :class:`TaskEnvError` naming ``name``.

    Checks the protocol methods, the spaces, that ``sample_tasks(2)`` returns two
    non-dict tasks, that ``set_task`` accepts them, and one reset and step after it.
    """
    base = env.unwrapped
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(base, m, None))]
    if missing:
        raise TaskEnvError(
            f"{name}: {type(base).__qualname__} misses the task-protocol method(s) {', '.join(missing)} "
            "(a task environment needs sample_tasks(n), set_task(task) and get_task())"
        )
    check_policy_spaces(name, env.observation_space, env.action_space)
    base.np_random = np.random.default_rng(0)
    try:
        tasks = base.sample_tasks(2)  # type: ignore[attr-defined]
    except Exception as exc:
        raise TaskEnvError(f"{name}: sample_tasks(2) failed: {type(exc).__name__}: {exc}") from exc
    tasks = check_tasks(name, tasks, 2)
    for task in tasks:
        try:
            env.get_wrapper_attr("set_task")(task)
        except Exception as exc:
            raise TaskEnvError(
                f"{name}: set_task does not accept a task that sample_tasks returned ({task!r}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    try:
        env.get_wrapper_attr("get_task")()
        env.reset(seed=0)
        env.action_space.seed(0)
        env.step(env.action_space.sample())
    except Exception as exc:
        raise TaskEnvError(f"{name}: reset or step after set_task failed: {type(exc).__name__}: {exc}") from exc


def check_batched_env(name: str, env: BatchedTaskEnv) -> None:
    """Check a batched env's spaces and that ``set_tasks`` accepts what ``sample_tasks`` returns."""
    check_policy_spaces(name, env.single_observation_space, env.single_action_space)
    try:
        tasks = env.sample_tasks(1, np.random.default_rng(0))
    except Exception as exc:
        raise TaskEnvError(f"{name}: sample_tasks(1, rng) failed: {type(exc).__name__}: {exc}") from exc
    task = check_tasks(name, tasks, 1)[0]
    try:
        env.set_tasks([task] * env.num_envs)
    except Exception as exc:
        raise TaskEnvError(
            f"{name}: set_tasks does not accept a task that sample_tasks returned ({task!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
