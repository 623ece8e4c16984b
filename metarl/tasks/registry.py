"""Registering task environments: one call for the single env and its natively batched version.

:func:`register_task_env` registers the single env with Gymnasium (so ``gymnasium.make(id)``
finds it) and, if the family has one, its natively batched
:class:`~metarl.tasks.protocol.BatchedTaskEnv` as Gymnasium's ``vector_entry_point``. What can
be checked at registration is (id taken, protocol methods missing on an entry-point class);
the rest at first use (:mod:`metarl.tasks.build`). :func:`load_task_families` imports the
modules that installed packages declare under the ``metarl.task_families`` entry-point group
(the shipped ``envs``, and any package of yours), so the command line finds their ids.
Every error is a :class:`TaskEnvError` naming the env id and the problem.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar, overload

import gymnasium as gym

from metarl.tasks.checks import PROTOCOL_METHODS, TaskEnvError
from metarl.tasks.protocol import BatchedTaskEnv

TASK_FAMILIES_GROUP = "metarl.task_families"
"""The entry-point group of modules that register task environments when imported."""

_TASK_ENV_IDS: set[str] = set()
_EnvT = TypeVar("_EnvT", bound=type)
EntryPoint = str | Callable[..., Any]


@overload
def register_task_env(
    id: str,
    entry_point: EntryPoint,
    *,
    batched_entry_point: EntryPoint | None = None,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None: ...


@overload
def register_task_env(
    id: str,
    entry_point: None = None,
    *,
    batched_entry_point: EntryPoint | None = None,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Callable[[_EnvT], _EnvT]: ...


def register_task_env(
    id: str,
    entry_point: EntryPoint | None = None,
    *,
    batched_entry_point: EntryPoint | None = None,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Callable[[_EnvT], _EnvT] | None:
    """Register a task environment under ``id`` (with Gymnasium); usable as a class decorator.

    ``entry_point`` builds the single env: a ``gymnasium.Env`` class with
    ``sample_tasks(n)``, ``set_task(task)`` and ``get_task()``, a factory, or a
    ``"module:Class"`` string. Without it, the call returns a decorator that registers
    the decorated class. ``batched_entry_point`` optionally builds a natively batched
    :class:`BatchedTaskEnv`, called as ``batched_entry_point(num_envs=...,
    max_episode_steps=..., **kwargs)``; without one, :func:`make_batched` vectorises the
    single env. ``max_episode_steps`` is the default horizon, ``kwargs`` the default
    constructor arguments of both.

    Raises :class:`TaskEnvError` if ``id`` is taken by another environment or an
    entry-point class misses a protocol method. Registering the same entry points
    again (a re-imported module, a re-run notebook cell) replaces the entry.

    Args:
        id: The env id.
        entry_point: The single env: a class, a factory or ``"module:Class"`` (``None``: return a decorator).
        batched_entry_point: A natively batched env, or ``None``.
        max_episode_steps: The default horizon.
        kwargs: Default constructor arguments of both.
    """
    if entry_point is None:

        def decorator(cls: _EnvT) -> _EnvT:
            register_task_env(
                id, cls, batched_entry_point=batched_entry_point, max_episode_steps=max_episode_steps, kwargs=kwargs
            )
            return cls

        return decorator

    _check_entry_point(id, entry_point)
    if batched_entry_point is not None:
        _check_batched_entry_point(id, batched_entry_point)
    if id in gym.registry:
        spec = gym.registry[id]
        same = (
            _entry_name(spec.entry_point) == _entry_name(entry_point)
            and _entry_name(spec.vector_entry_point) == _entry_name(batched_entry_point)
            and id in _TASK_ENV_IDS
        )
        if not same:
            raise TaskEnvError(
                f"task environment id {id!r} is already registered (entry point "
                f"{_entry_name(spec.entry_point)}); choose another id, e.g. with your own namespace "
                f"'my_namespace/{spec.name}-v{spec.version or 0}'"
            )
        del gym.registry[id]  # the same class re-imported: replace it quietly
    gym.register(
        id=id,
        entry_point=entry_point,
        vector_entry_point=batched_entry_point,
        max_episode_steps=max_episode_steps,
        kwargs=dict(kwargs or {}),
    )
    _TASK_ENV_IDS.add(id)
    return None


def unregister_task_env(id: str) -> None:
    """Remove the task environment ``id`` from the registry (and from Gymnasium's)."""
    if id not in _TASK_ENV_IDS:
        raise TaskEnvError(f"{id!r} is not a registered task environment")
    _TASK_ENV_IDS.discard(id)
    gym.registry.pop(id, None)


def task_env_ids() -> list[str]:
    """Ids of all registered task environments, sorted."""
    return sorted(_TASK_ENV_IDS)


def _entry_name(entry_point: EntryPoint | None) -> str | None:
    """``"module:qualname"`` of an entry point (strings as given)."""
    if entry_point is None or isinstance(entry_point, str):
        return entry_point
    module = getattr(entry_point, "__module__", "?")
    return f"{module}:{getattr(entry_point, '__qualname__', repr(entry_point))}"


def resolve_if_loaded(entry_point: EntryPoint) -> Any | None:
    """The object an entry point names, if it can be had without importing anything."""
    if not isinstance(entry_point, str):
        return entry_point
    module = sys.modules.get(entry_point.partition(":")[0])
    return getattr(module, entry_point.partition(":")[2], None) if module is not None else None


def _check_entry_point_string(id: str, entry_point: EntryPoint, what: str) -> None:
    if isinstance(entry_point, str):
        module, sep, attr = entry_point.partition(":")
        if not (sep and module and attr):
            raise TaskEnvError(f"{id}: {what} {entry_point!r} is not of the form 'module:Class'")
    elif not callable(entry_point):
        raise TaskEnvError(f"{id}: {what} must be a class, a factory or a 'module:Class' string, got {entry_point!r}")


def _check_entry_point(id: str, entry_point: EntryPoint) -> None:
    """Check the single-env class now if it is at hand (factories are checked at first use)."""
    _check_entry_point_string(id, entry_point, "entry point")
    cls = resolve_if_loaded(entry_point)
    if not inspect.isclass(cls):
        return
    if not issubclass(cls, gym.Env):
        raise TaskEnvError(f"{id}: entry point {cls.__qualname__} is not a gymnasium.Env subclass")
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise TaskEnvError(
            f"{id}: {cls.__qualname__} misses the task-protocol method(s) {', '.join(missing)} "
            f"(a task environment needs sample_tasks(n), set_task(task) and get_task())"
        )


def _check_batched_entry_point(id: str, entry_point: EntryPoint) -> None:
    """A batched entry-point class must be a concrete :class:`BatchedTaskEnv`."""
    _check_entry_point_string(id, entry_point, "batched entry point")
    cls = resolve_if_loaded(entry_point)
    if not inspect.isclass(cls):
        return
    if not issubclass(cls, BatchedTaskEnv):
        raise TaskEnvError(f"{id}: batched entry point {cls.__qualname__} is not a metarl.BatchedTaskEnv subclass")
    if inspect.isabstract(cls):
        raise TaskEnvError(
            f"{id}: batched entry point {cls.__qualname__} does not implement "
            f"{', '.join(sorted(cls.__abstractmethods__))}"
        )


# ----------------------------------------------------------------------------- ids and modules


def load_task_families() -> list[str]:
    """Import every module declared under :data:`TASK_FAMILIES_GROUP` by an installed package; their names.

    A package declares its families in its ``pyproject.toml``::

        [project.entry-points."metarl.task_families"]
        my_families = "my_pkg.envs"
    """
    names = []
    for entry in metadata.entry_points(group=TASK_FAMILIES_GROUP):
        try:
            importlib.import_module(entry.value)
        except Exception as exc:
            raise TaskEnvError(
                f"task families {entry.name!r} ({entry.value}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        names.append(entry.value)
    return names


def is_registered(id: str) -> bool:
    """Whether ``id`` is a registered task environment."""
    return id in _TASK_ENV_IDS


__all__ = [
    "TASK_FAMILIES_GROUP",
    "EntryPoint",
    "TaskEnvError",
    "is_registered",
    "load_task_families",
    "register_task_env",
    "resolve_if_loaded",
    "task_env_ids",
    "unregister_task_env",
]
