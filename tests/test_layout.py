"""The code's shape, checked: the import contract between metarl's layers, and no import hidden in a function."""

from __future__ import annotations

import os
import re
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
