"""Registering task environments and making batched ones by id.

:func:`register_task_env` is the one registration call for a task environment: it
registers the single env with Gymnasium (so ``gymnasium.make(id)`` finds it) and, if
the family has one, its natively batched :class:`~metarl.tasks.BatchedTaskEnv` as
Gymnasium's ``vector_entry_point``. :func:`make_batched` builds the batched env the
trainer and the evaluator use; for a family without a batched implementation it
vectorises the single env itself (:class:`metarl.vector.SyncBatchedTaskEnv`).

What can be checked is checked at registration (id taken, protocol methods missing on
an entry-point class); the rest at first use, by :func:`check_task_env` and
:func:`make_batched` (``set_task`` rejecting what ``sample_tasks`` returns, spaces the
policies cannot handle, dict tasks). Every error is a :class:`TaskEnvError` naming the
env id and the problem.

Ids may name the module that registers them, Gymnasium style: ``"my_pkg.envs:Wind-v0"``
imports ``my_pkg.envs`` (from ``sys.path``, then the current directory) before
looking up ``Wind-v0``. Saved in a run's config, such an id tells ``--resume`` and
``scripts/evaluate.py`` which module registers the run's environment; since importing a
module runs its code, a module named only by a run folder or a checkpoint is imported
only when the user vouches for it (:func:`check_trusted_env_id`, ``--trust-env-module``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import gymnasium as gym
import numpy as np

from metarl.protocol_checks import (
    PROTOCOL_METHODS,
    TaskEnvError,
    check_batched_env,
    check_single_env,
)
from metarl.tasks import BatchedTaskEnv, return_bounds
from metarl.vector import SyncBatchedTaskEnv

_TASK_ENV_IDS: set[str] = set()
_EnvT = TypeVar("_EnvT", bound=type)
EntryPoint = str | Callable[..., Any]


# ----------------------------------------------------------------------------- registration


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


def _resolve_if_loaded(entry_point: EntryPoint) -> Any | None:
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
    cls = _resolve_if_loaded(entry_point)
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
    cls = _resolve_if_loaded(entry_point)
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


def import_env_modules(*modules: str) -> list[str]:
    """Import the modules that register task environments; return the ids they added.

    A module is searched on ``sys.path`` and then in the current directory (as
    ``python -m`` would), so ``my_envs.py`` beside the command works. Raises
    :class:`TaskEnvError` if a module cannot be found.
    """
    before = set(_TASK_ENV_IDS)
    for module in modules:
        _import_module(module)
    return sorted(_TASK_ENV_IDS - before)


_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
"""A dotted Python module name: no path, no relative import."""


def _import_module(module: str) -> None:
    if not _MODULE_NAME.match(module):
        raise TaskEnvError(
            f"{module[:60]!r} is not a Python module name (dotted identifiers such as my_pkg.my_envs; "
            "a file path or a relative name cannot be imported)"
        )
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise  # the module exists but imports something missing: the plain error says what
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path:
            raise TaskEnvError(f"cannot import module {module!r}: {exc}") from exc
    sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        sys.path.remove(cwd)
        raise TaskEnvError(
            f"cannot import module {module!r} (searched sys.path and the current directory {cwd}): {exc}"
        ) from exc


def check_trusted_env_id(id: str, trusted: Sequence[str], source: str) -> None:
    """Refuse ``id`` from ``source`` (a run folder or checkpoint) if using it would import an unvouched module.

    Nothing is imported. A registered id, an id without a module, or one whose module is
    already imported or in ``trusted`` (modules the user named) passes; otherwise a
    :class:`TaskEnvError` says how to opt in.

    Args:
        id: the env id the saved config names.
        trusted: module names the user vouches for.
        source: what the id came from, for the message.
    """
    if id in _TASK_ENV_IDS:
        return
    module, sep, bare = id.partition(":")
    if not (sep and module and bare) or module in sys.modules or module in trusted:
        return
    raise TaskEnvError(
        f"{source} names its environment {id!r}; using it would import module {module!r}, running its code. "
        f"A run folder or checkpoint runs no code of its own unless you say so: if you trust {module!r}, "
        f"pass --trust-env-module {module}"
    )


def check_env_id(id: str) -> str:
    """The registered task-env id that ``id`` names; imports ``module`` of a ``"module:Id"`` id.

    Raises :class:`TaskEnvError` naming the closest valid ids if there is no such task env.
    """
    if id in _TASK_ENV_IDS:
        return id
    module, sep, bare = id.partition(":")
    if sep and module and bare:
        added = import_env_modules(module)
        if bare in _TASK_ENV_IDS:
            return bare
        what = f"it registers {', '.join(added)}" if added else "it registered no new task environment"
        raise _unknown_id(bare, f" (module {module!r} was imported; {what})")
    raise _unknown_id(id, "")


def _unknown_id(id: str, note: str) -> TaskEnvError:
    known = task_env_ids()
    close = difflib.get_close_matches(id, known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    if id in gym.registry:
        hint += " It is a Gymnasium env but not a task environment: register it with metarl.register_task_env."
    else:
        hint += " For an env of your own, name its module: 'my_pkg.my_envs:MyEnv-v0'."
    return TaskEnvError(
        f"unknown task environment id {id!r}{note}.{hint} "
        f"Registered task environments: {', '.join(known) or 'none'}"
    )


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
    """:func:`metarl.tasks.return_bounds` of registered task env ``id``; unbounded if unknown.

    Reads the env class's ``metadata`` only if the class is already imported: it never
    imports a module (a results file or run folder may name any id).
    """
    entry_point = gym.spec(id).entry_point if id in _TASK_ENV_IDS else None
    if entry_point is None:
        return -np.inf, np.inf
    cls = _resolve_if_loaded(entry_point)
    return return_bounds(getattr(cls, "metadata", None), horizon)


def make_batched(
    id: str, num_envs: int, *, max_episode_steps: int | None = None, **kwargs: Any
) -> BatchedTaskEnv:
    """Build a batched environment of ``num_envs`` sub-environments of task env ``id``.

    Uses the registered natively batched implementation if there is one, and otherwise
    :class:`metarl.vector.SyncBatchedTaskEnv` over ``num_envs`` single envs. The env is
    checked first (:func:`check_task_env`, :func:`check_batched_env`).
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
