"""Optional Weights & Biases logging of a run: its config once, then every iteration's metrics.

Used by :class:`metarl.runs.logs.RunLogger` when a run sets ``wandb: true``; needs the ``wandb``
extra (``pip install -c constraints.txt -e ".[wandb]"``). The W&B run's files go in
``<run>/wandb/``; its id is kept in ``<run>/wandb_run_id`` so that ``--resume`` continues
the same W&B run. ``wandb_mode: offline`` needs no network or account (``wandb sync``
uploads the folder later); it is what the tests use.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from metarl.config import ConfigError
from metarl.runs.folder import WANDB_ID_FILE
from metarl.system.files import write_atomic

INSTALL_HINT = "wandb: true needs the wandb extra: pip install -c constraints.txt -e '.[wandb]'"


class WandbUnavailableError(ConfigError):
    """``wandb: true`` but the ``wandb`` package is not installed."""


def _run_id(run_dir: Path, resume: bool) -> str:
    """The run folder's W&B id: the saved one on resume, else a new one (saved atomically)."""
    path = run_dir / WANDB_ID_FILE
    if resume and path.is_file():
        saved = path.read_text(encoding="utf-8").strip()
        if saved.isalnum():
            return saved
    run_id = secrets.token_hex(6)  # W&B ids: letters and digits
    write_atomic(path, run_id + "\n")
    return run_id


class WandbLogger:
    """One W&B run mirroring a metarl run.

    Args:
        run_dir: The run folder (W&B writes ``<run_dir>/wandb/``).
        config: The run's config as plain data; logged as the W&B run's config.
        project: W&B project name.
        mode: ``online`` or ``offline``.
        name: Display name of the W&B run (the metarl run name).
        resume: Continue the W&B run whose id the folder holds.
    """

    def __init__(
        self, run_dir: str | Path, config: Mapping[str, Any], project: str, mode: str, name: str, resume: bool
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise WandbUnavailableError(INSTALL_HINT, field="wandb") from exc
        run_dir = Path(run_dir)
        run_id = _run_id(run_dir, resume)
        self._run: Any = wandb.init(
            project=project,
            name=name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            mode=cast(Any, mode),  # online | offline, checked by the config
            config=dict(config),
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Log one iteration's finite metrics at step ``iteration``."""
        row = {k: float(v) for k, v in metrics.items() if k != "iteration" and math.isfinite(float(v))}
        self._run.log(row, step=int(iteration))

    def close(self) -> None:
        """Finish the W&B run (idempotent)."""
        if self._run is not None:
            self._run.finish()
            self._run = None
