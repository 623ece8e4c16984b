"""Runs this installation wrote may import the module that registers their environment without being asked.

A run folder whose env id names a module (``my_envs:Wind-v0``) imports that module, running
its code, only when the user vouches for it (``--trust-env-module``): the folder may come from
someone else. Runs the user trained here are recognised instead, the way Jupyter trusts the
notebooks its user wrote: when training starts with such an id, metarl records a keyed
signature (HMAC-SHA256 with a secret key kept in the user's config directory) of the run
folder's path, its env id and the path of the module's file. A later ``metarl evaluate RUN``
or ``metarl train --resume RUN`` recomputes it — finding the module's file on ``sys.path``
and in the current directory without importing anything — and imports the module only if it
matches. A folder copied or downloaded to another place, an edited env id, or a module file
found elsewhere matches no signature and runs no code.

The key and the signatures live in ``$METARL_TRUST_DIR``, else ``$XDG_CONFIG_HOME/metarl``, else
``~/.config/metarl``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from metarl.system.files import append_line, write_atomic

KEY_FILE = "trust_key"
SIGNATURES_FILE = "trusted_runs"


def trust_dir() -> Path:
    """The folder of the key and the signatures."""
    if os.environ.get("METARL_TRUST_DIR"):
        return Path(os.environ["METARL_TRUST_DIR"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "metarl"


def _key() -> bytes:
    path = trust_dir() / KEY_FILE
    if not path.is_file():
        write_atomic(path, secrets.token_hex(32), mode=0o600)
    return bytes.fromhex(path.read_text().strip())


def module_file(module: str) -> Path | None:
    """The file ``module`` would be imported from (``sys.path``, then the current directory), found without
    importing it or its packages; ``None`` if there is none.
    """
    parts = module.split(".")
    for base in [*sys.path, os.getcwd()]:
        root = Path(base or os.getcwd())
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate.resolve()
    return None


def _signature(run_dir: Path, env_id: str, module_path: Path) -> str:
    message = "\n".join((str(Path(run_dir).resolve()), env_id, str(module_path))).encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def trust_run(run_dir: Path, env_id: str) -> bool:
    """Record that this user trained ``run_dir`` with ``env_id``; whether there was a module file to sign."""
    module, sep, _ = env_id.partition(":")
    path = module_file(module) if sep else None
    if path is None:
        return False
    signature = _signature(run_dir, env_id, path)
    if signature not in _signatures():
        append_line(trust_dir() / SIGNATURES_FILE, signature)
    return True


def _signatures() -> set[str]:
    path = trust_dir() / SIGNATURES_FILE
    return set(path.read_text().split()) if path.is_file() else set()


def trusted_modules(run_dir: Path, env_id: str) -> list[str]:
    """``[module]`` if this user trained ``run_dir`` with ``env_id`` (``module:Id``) here, else ``[]``."""
    module, sep, _ = env_id.partition(":")
    path = module_file(module) if sep else None
    if path is None or not (trust_dir() / KEY_FILE).is_file():
        return []
    return [module] if _signature(run_dir, env_id, path) in _signatures() else []


__all__ = ["module_file", "trust_dir", "trust_run", "trusted_modules"]
