"""Shared by the tests: the command-line scripts, loaded as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str) -> Any:
    """``scripts/<name>.py`` as a fresh module (its ``main(argv)`` runs the command line in this process)."""
    spec = importlib.util.spec_from_file_location(f"metarl_script_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

