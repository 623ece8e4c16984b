"""What a training run carries between iterations and sessions, and restoring it from a checkpoint.

:class:`MetaLearner` is what the loop needs of a learner; :class:`RunState` the iteration,
generators and step count written into every checkpoint; :func:`restore_run` loads a run
folder's latest checkpoint for ``--resume`` (after :func:`check_resumable` has refused a
resume with nothing to resume); :func:`initialise_learner` loads only a learner's state for
``init_from``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from metarl.config import ConfigError, TrainConfig, config_from_dict, excerpt
from metarl.runs.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    restore_torch_rng,
    rng_state,
    torch_rng_state,
)
from metarl.runs.folder import (
    METRICS_FILE,
    RunFolderError,
    describe_differences,
    incompatible_fields,
    saved_config_with_predated,
)
from metarl.runs.logs import read_metrics
from metarl.tasks.protocol import Task

log = logging.getLogger("metarl")


class MetaLearner(Protocol):
    """What the loop needs of a meta-learner."""

    def train_iteration(self, tasks: Sequence[Task], rng: np.random.Generator) -> dict[str, float]:
        """Sample, adapt and meta-update on ``tasks``; return the iteration's metrics."""

    def state_dict(self) -> dict[str, Any]:
        """The learner's state (tensors and plain data)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""

    def close(self) -> None:
        """Release what the learner holds beyond the env (its sampler's workers)."""

    def arithmetic(self) -> dict[str, str]:
        """The precision each part of its update computes in on this CPU (``auto`` resolved), for the session
        record: ``{"products": "bf16", "inner_step": "fp32"}``, say.
        """


@dataclass
class RunState:
    """Everything that moves between iterations: restored from and written to checkpoints."""

    iteration: int  # the next iteration to run
    task_rng: np.random.Generator
    env_rng: np.random.Generator
    total_env_steps: int = 0

    def snapshot(self, learner: MetaLearner, cfg_dict: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint of this state with ``learner`'s parameters and the config ``cfg_dict``."""
        return {
            "iteration": self.iteration,
            "total_env_steps": self.total_env_steps,
            "config": cfg_dict,
            "learner": copy.deepcopy(learner.state_dict()),
            "rng": {
                "tasks": rng_state(self.task_rng),
                "env": rng_state(self.env_rng),
                "torch": torch_rng_state(),
            },
        }


def load_learner(path: Path, cfg: TrainConfig, learner: MetaLearner, *, resume: bool) -> dict[str, Any]:
    """Load checkpoint ``path`` into ``learner`` after checking its config against ``cfg``; the checkpoint's state.

    The one load-compare-restore sequence of a resume (``resume``: every field but the resumable
    ones must match) and of ``init_from`` (only the policy's architecture must match). Any
    problem (corrupt or truncated file, another config, another model shape, missing entries)
    is a :class:`CheckpointError` naming the file.

    Args:
        path: the checkpoint.
        cfg: the config of the run loading it.
        learner: the learner to load its state into.
        resume: whether this is a resume (else ``init_from``).
    """
    what = "checkpoint" if resume else "init_from checkpoint"
    saved = load_checkpoint(path)  # a corrupt one's error names the previous checkpoint to fall back to
    try:
        saved_cfg = config_from_dict(saved_config_with_predated(saved["config"]), source=str(path))
        changed = incompatible_fields(saved_cfg, cfg, resume=resume)
        if changed:
            diffs = describe_differences(saved_cfg, cfg, changed)
            problem = "was written with a different config" if resume else "has another policy architecture"
            raise CheckpointError(f"{what} {path} {problem} ({diffs})")
        try:
            learner.load_state_dict(saved["learner"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise CheckpointError(f"{what} {path} does not fit this model: {detail}") from exc
    except CheckpointError:
        raise
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} {path} is not a usable metarl checkpoint: {type(exc).__name__}: {exc}") from exc
    return saved


def restore_run(run_dir: Path, cfg: TrainConfig, learner: MetaLearner, state: RunState) -> Path | None:
    """Load the latest checkpoint of ``run_dir`` into ``learner`` and ``state``; its path (or None).

    Any problem (corrupt or truncated file, another config, another model shape,
    missing entries) is a :class:`CheckpointError` naming the file.

    Args:
        run_dir: The run folder.
        cfg: The run's config (the checkpoint's must agree).
        learner: Receives the checkpoint's parameters and optimiser state.
        state: Receives the loop's counters, RNGs and metrics.
    """
    found = list_checkpoints(run_dir)
    if not found:
        return None
    path = found[-1][1]
    saved = load_learner(path, cfg, learner, resume=True)
    try:
        iteration, total_env_steps = int(saved["iteration"]), int(saved["total_env_steps"])
        restore_rng(saved["rng"]["tasks"], into=state.task_rng)
        restore_rng(saved["rng"]["env"], into=state.env_rng)
        restore_torch_rng(saved["rng"]["torch"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a usable metarl training checkpoint: {type(exc).__name__}: {exc}"
        ) from exc
    state.iteration, state.total_env_steps = iteration, total_env_steps
    return path


def check_resumable(run_dir: Path, restored: Path | None, iteration: int) -> None:
    """Refuse, before anything in ``run_dir`` changes, a resume with no checkpoint or an unreadable ``metrics.csv``.

    Metrics rows missing below the checkpoint's iteration (deleted by hand) are logged as a
    warning: the run resumes from its checkpoint, those iterations' metrics are gone.

    Args:
        run_dir: The run folder.
        restored: The checkpoint restored, or ``None``.
        iteration: The restored iteration.
    """
    try:
        rows = read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else []
    except ValueError as exc:
        raise RunFolderError(
            f"cannot resume {run_dir}: {METRICS_FILE} is damaged ({excerpt(str(exc), 200)}); nothing was changed"
        ) from None
    if restored is None:
        recorded = f"; its {METRICS_FILE} records {len(rows)} iterations, which a restart would lose" if rows else ""
        raise RunFolderError(
            f"cannot resume {run_dir}: it holds no checkpoint{recorded}. To train it again from iteration 0, "
            "move the folder away or choose another --run_name; nothing was changed"
        )
    missing = sorted(set(range(iteration)) - {int(r["iteration"]) for r in rows})
    if missing:
        log.warning(
            "%s lacks the rows of %d iterations below the checkpoint's %d (first: %d); their metrics are lost",
            run_dir / METRICS_FILE,
            len(missing),
            iteration,
            missing[0],
        )


def initialise_learner(cfg: TrainConfig, learner: MetaLearner) -> Path:
    """Load the learner state of ``cfg.init_from`` (a checkpoint or a run folder's latest) into ``learner``.

    Only the learner's state is taken: the run's iteration, generators and metrics start
    afresh. A missing or unusable checkpoint, or another architecture, is a :class:`CheckpointError`.
    """
    source = Path(cfg.init_from)
    path = latest_checkpoint(source) if source.is_dir() else source
    if path is None:
        raise CheckpointError(f"init_from {str(source)!r}: the run folder holds no checkpoint")
    load_learner(path, cfg, learner, resume=False)
    return path


__all__ = ["MetaLearner", "RunState", "check_resumable", "initialise_learner", "load_learner", "restore_run"]
