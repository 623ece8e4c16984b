"""The code's shape, checked: small modules in metarl/, and no import hidden inside a function to break a cycle."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 365  # "about 350"
LOCAL_PROJECT_IMPORT = re.compile(r"^[ \t]+(from|import) (metarl|agents|envs)\b", re.MULTILINE)


def test_no_module_in_metarl_is_long():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in (ROOT / "metarl").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_project_modules_import_each_other_at_the_top():
    """A function-local import of a project module is how an import cycle hides; there are none."""
    found = {
        p.relative_to(ROOT).as_posix(): LOCAL_PROJECT_IMPORT.findall(p.read_text())
        for package in ("metarl", "agents", "envs")
        for p in (ROOT / package).rglob("*.py")
    }
    assert {name: hits for name, hits in found.items() if hits} == {}
