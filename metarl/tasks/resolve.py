"""Resolving a task-env id: ``module:Id`` imports the module that registers ``Id``, but never unvouched.

Ids may name the module that registers them, Gymnasium style: ``"my_pkg.envs:Wind-v0"``
imports ``my_pkg.envs`` (from ``sys.path``, then the current directory) before looking up
``Wind-v0``. Saved in a run's config, such an id tells ``--resume`` and ``metarl evaluate``
which module registers the run's environment; since importing a module runs its code, a
module named only by a run folder or a checkpoint is imported only when the user vouches for
it (:func:`check_trusted_env_id`, ``--trust-env-module``).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from collections.abc import Sequence

import gymnasium as gym

from metarl.tasks.checks import TaskEnvError
from metarl.tasks.registry import is_registered, task_env_ids


def import_env_modules(*modules: str) -> list[str]:
    """Import the modules that register task environments; return the ids they added.

    A module is searched on ``sys.path`` and then in the current directory (as
    ``python -m`` would), so ``my_envs.py`` beside the command works. Raises
    :class:`TaskEnvError` if a module cannot be found.
    """
    before = set(task_env_ids())
    for module in modules:
        _import_module(module)
    return sorted(set(task_env_ids()) - before)


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
    if is_registered(id):
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
    if is_registered(id):
        return id
    module, sep, bare = id.partition(":")
    if sep and module and bare:
        added = import_env_modules(module)
        if is_registered(bare):
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
        f"unknown task environment id {id!r}{note}.{hint} Registered task environments: {', '.join(known) or 'none'}"
    )


__all__ = ["check_env_id", "check_trusted_env_id", "import_env_modules"]
