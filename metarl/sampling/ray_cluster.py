"""Reaching Ray: the optional import, the one error type of the Ray backend, and joining a cluster."""

from __future__ import annotations

import importlib
import logging
import os
import socket
from types import ModuleType

from metarl.config import ConfigError

log = logging.getLogger("metarl")

RAY_INSTALL_HINT = 'pip install -c constraints.txt -e ".[ray]"  (or: pip install "metarl[ray]")'
"""How to install the Ray extra."""
WORKER_START_TIMEOUT_S = 300.0
"""How long start-up waits for every worker to hold its environment."""
CONNECT_TIMEOUT_S = 10.0
"""How long start-up waits for the cluster's head node to accept a connection."""
MAX_ATTEMPTS = 3
"""Times a shard is sampled before a phase gives up on a series of dead workers."""


class SamplerError(RuntimeError):
    """The Ray sampler cannot start or cannot complete a phase; the message says why."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`ConfigError` on field ``sampler`` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ConfigError(
            f"config field 'sampler': 'ray' needs the Ray package, which is not installed ({exc}); "
            f"install the extra: {RAY_INSTALL_HINT}",
            field="sampler",
        ) from exc


def _retriable_errors(ray: ModuleType) -> tuple[type[BaseException], ...]:
    """Errors that mean a worker or its results were lost, not that the rollout itself failed."""
    errors = ray.exceptions
    return (errors.RayActorError, errors.ObjectLostError, errors.WorkerCrashedError, errors.NodeDiedError)


def _probe(address: str) -> None:
    """Raise :class:`ConfigError` on ``ray_address`` unless ``host:port`` of ``address`` accepts a connection."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(
            f"config field 'ray_address': cannot reach a Ray cluster at {address!r} "
            f"({type(exc).__name__}: {exc}). Start the head node there with `ray start --head` and use the "
            "address it prints, or leave ray_address empty to start a local Ray instance",
            field="ray_address",
        ) from exc


def connect(address: str = "") -> bool:
    """Connect this process to Ray: the cluster at ``address``, or a new local instance if empty.

    Does nothing if Ray is already initialised. Returns whether this call connected
    (and so should disconnect). An unreachable cluster is a :class:`ConfigError`
    naming ``ray_address``, raised within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address and address != "auto":
        _probe(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(include_dashboard=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address!r}" if address else "locally"
        hint = (
            "; if the cluster authenticates with a token (Ray does by default for clusters started with "
            "`ray start`), set RAY_AUTH_MODE=token here too, with the cluster's ~/.ray/auth_token"
            if address and os.environ.get("RAY_AUTH_MODE", "") != "token"
            else ""
        )
        raise ConfigError(
            f"config field 'ray_address': cannot connect to a Ray cluster {where}: {type(exc).__name__}: {exc}{hint}",
            field="ray_address",
        ) from exc
    return True
