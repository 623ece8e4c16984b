"""The code's shape, checked: the import contract between metarl's layers, no import hidden in a function,
public functions that list their parameters."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

from importlinter import cli as import_linter

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PROJECT_IMPORT = re.compile(r"^[ \t]+(from|import) (metarl|agents|envs)\b", re.MULTILINE)


def test_the_import_contract_holds(capsys):
    """pyproject.toml's [tool.importlinter] contracts (docs/architecture.md): metarl's layers, no cycles,
    metarl importing neither envs nor agents."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = import_linter.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out


def test_project_modules_import_each_other_at_the_top():
    """A function-local import of a project module is how an import cycle hides; there are none."""
    found = {
        p.relative_to(ROOT).as_posix(): LOCAL_PROJECT_IMPORT.findall(p.read_text())
        for package in ("metarl", "agents", "envs")
        for p in (ROOT / package).rglob("*.py")
    }
    assert {name: hits for name, hits in found.items() if hits} == {}


def _public_functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level functions and methods of public classes whose names do not start with ``_``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield from _public_functions(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            if not any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list):
                yield node


def test_public_functions_of_three_parameters_or_more_list_them():
    """A public function or method with three parameters or more has a Google ``Args:`` section naming each
    (ruff's D417 then checks the entries stay complete)."""
    missing = []
    for package in ("metarl", "agents", "envs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for fn in _public_functions(ast.parse(path.read_text())):
                a = fn.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
                doc = ast.get_docstring(fn) or ""
                if len(names) >= 3 and ("Args:" not in doc or any(f"{n}:" not in doc for n in names)):
                    missing.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}")
    assert not missing, "no Args: section naming every parameter:\n" + "\n".join(missing)


def test_a_task_has_a_type_the_families_declare():
    import typing

    import numpy as np

    from envs.locomotion.half_cheetah import BatchedHalfCheetahVel
    from envs.locomotion.tasks import VelocityTask
    from envs.navigation import BatchedNavigation2D, NavigationTask
    from metarl.tasks.protocol import BatchedTaskEnv, DataclassTask, Task

    assert set(typing.get_args(Task)) == {DataclassTask, np.ndarray, float}
    assert typing.get_args(BatchedNavigation2D.__orig_bases__[0]) == (NavigationTask,)
    env = BatchedHalfCheetahVel(num_envs=2, max_episode_steps=5)
    tasks = env.sample_tasks(2, np.random.default_rng(0))
    assert all(isinstance(t, VelocityTask) for t in tasks) and isinstance(env, BatchedTaskEnv)
    env.set_tasks(tasks)
    assert env.get_tasks() == tasks
