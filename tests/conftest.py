"""Shared by the tests: the command-line scripts loaded as modules, and the example task family."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metarl import import_env_modules, task_env_ids, unregister_task_env

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_MODULE = "scripts.examples.wind_point"
"""The example task family of the guide (docs/custom-envs.md), registering ``examples/WindPoint-v0``."""


def load_script(name: str) -> Any:
    """``scripts/<name>.py`` as a fresh module (its ``main(argv)`` runs the command line in this process)."""
    spec = importlib.util.spec_from_file_location(f"metarl_script_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="session")
def trust_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own key and signatures of trusted runs (metarl.runs.trust), never the user's: set before
    any other fixture trains a run."""
    folder = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METARL_TRUST_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def wind() -> Any:
    """The example module, imported by name from the repository root."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        import_env_modules(EXAMPLE_MODULE)
    finally:
        os.chdir(cwd)
    return sys.modules[EXAMPLE_MODULE]


@pytest.fixture
def ids() -> Iterator[list[str]]:
    """Ids registered by a test; unregistered afterwards."""
    registered: list[str] = []
    yield registered
    for id in registered:
        if id in task_env_ids():
            unregister_task_env(id)
