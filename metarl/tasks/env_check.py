"""Check a task environment before training on it: ``metarl check-env ID``.

:func:`check_env` runs, in order, and reports each check it passed:

1. the id resolves to a registered task environment (a ``"module:Id"`` id imports its module);
2. metarl's protocol checks on the single env (:func:`metarl.tasks.registry.check_single_env`);
3. Gymnasium's own ``check_env`` on the unwrapped single env (its render check skipped when
   the env has no ``render_mode``), its warnings reported;
4. ``set_task`` then ``get_task`` gives back the task that was set;
5. the batched env the trainer uses (:func:`metarl.tasks.registry.make_batched`): a few steps of
   random actions on every sub-environment, each with its own task, with the shapes and
   finiteness of observations and rewards checked.

The first failing check raises :class:`~metarl.tasks.registry.TaskEnvError` naming the env and
the problem.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from metarl.tasks.build import make_batched, make_single_env
from metarl.tasks.checks import check_single_env
from metarl.tasks.registry import TaskEnvError
from metarl.tasks.resolve import check_env_id


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_env` checked: one line per passed check, and Gymnasium's warnings."""

    env_id: str
    passed: tuple[str, ...]
    warnings: tuple[str, ...]


def _same_task(a: Any, b: Any) -> bool:
    """Whether two tasks are equal: dataclasses field by field, arrays and sequences by value."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _same_task(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (ValueError, TypeError):
            return False
    return bool(a == b)


def _gymnasium_checks(env_id: str, env: gym.Env) -> list[str]:
    """Gymnasium's ``check_env``; its warnings, as plain lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gymnasium_check_env(env.unwrapped, skip_render_check=env.render_mode is None)
        except Exception as exc:
            raise TaskEnvError(f"{env_id}: Gymnasium's check_env failed: {type(exc).__name__}: {exc}") from exc
    lines = []
    for w in caught:
        text = " ".join(str(w.message).replace("\x1b[33m", "").replace("\x1b[0m", "").split())
        if text not in lines:
            lines.append(text)
    return lines


def _round_trip(env_id: str, env: gym.Env) -> None:
    base = env.unwrapped
    base.np_random = np.random.default_rng(1)
    for task in base.sample_tasks(3):  # type: ignore[attr-defined]
        env.get_wrapper_attr("set_task")(task)
        back = env.get_wrapper_attr("get_task")()
        if not _same_task(task, back):
            raise TaskEnvError(f"{env_id}: get_task() returned {back!r} after set_task({task!r})")


def _batched_rollout(env_id: str, num_envs: int, steps: int, horizon: int | None, kwargs: Mapping[str, Any]) -> None:
    env = make_batched(env_id, num_envs, max_episode_steps=horizon, **kwargs)
    try:
        rng = np.random.default_rng(0)
        env.set_tasks(env.sample_tasks(num_envs, rng))
        obs, _ = env.reset(seed=0)
        shape = (num_envs, *(env.single_observation_space.shape or ()))
        env.single_action_space.seed(0)
        for t in range(steps):
            if np.shape(obs) != shape or not np.all(np.isfinite(obs)):
                raise TaskEnvError(
                    f"{env_id}: batched observation at step {t} has shape {np.shape(obs)} "
                    f"(expected {shape}) or is not finite"
                )
            action = np.stack([env.single_action_space.sample() for _ in range(num_envs)])
            obs, reward, terminated, truncated, _ = env.step(action)
            for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
                if np.shape(value) != (num_envs,):
                    raise TaskEnvError(
                        f"{env_id}: batched {name} at step {t} has shape {np.shape(value)}, expected ({num_envs},)"
                    )
            if not np.all(np.isfinite(reward)):
                raise TaskEnvError(f"{env_id}: batched reward at step {t} is not finite: {reward}")
    finally:
        env.close()


def check_env(
    id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    num_envs: int = 4,
    steps: int = 20,
    horizon: int | None = None,
    on_pass: Callable[[str], None] | None = None,
) -> CheckReport:
    """Run every check on task env ``id``; raise :class:`TaskEnvError` at the first that fails.

    Args:
        id: Task-env id, or ``"module:Id"`` naming the module that registers it (imported).
        env_kwargs: Keyword arguments for the env constructor, as a config's ``env_kwargs``.
        num_envs: Sub-environments of the batched env, each given its own sampled task.
        steps: Steps of random actions on the batched env.
        horizon: Episode length for the batched env (default: the id's registered ``max_episode_steps``; an env
            registered without one needs it, as training needs the config's ``horizon``).
        on_pass: Called with each check's line as it passes (the CLI prints them as they come).
    """
    kwargs = dict(env_kwargs or {})
    passed: list[str] = []

    def ok(line: str) -> None:
        passed.append(line)
        if on_pass is not None:
            on_pass(line)

    env_id = check_env_id(id)
    ok(f"id resolves to the registered task environment {env_id}")
    env = make_single_env(env_id, **kwargs)
    try:
        check_single_env(env_id, env)
        ok("task protocol: sample_tasks, set_task, get_task; spaces the policies handle; reset and step")
        found = _gymnasium_checks(env_id, env)
        render = "render check skipped: no render_mode" if env.render_mode is None else "render checked"
        ok(f"Gymnasium's check_env ({render}; {len(found)} warning(s), listed below)")
        _round_trip(env_id, env)
        ok("get_task returns the task set_task was given (3 sampled tasks)")
    finally:
        env.close()
    _batched_rollout(env_id, num_envs, steps, horizon, kwargs)
    ok(
        f"batched env: {num_envs} sub-environments with their own tasks, {steps} steps of random actions, "
        "observation and reward shapes right and finite"
    )
    return CheckReport(env_id, tuple(passed), tuple(found))
