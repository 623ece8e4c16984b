"""The training loop: tasks → meta-learner → metrics, checkpoints, plot; resumable.

The loop knows nothing of a particular algorithm: it asks a :class:`MetaLearner`
(built by a callback, e.g. ``agents.build_maml_trpo``) for one meta-iteration on a
meta-batch of tasks and records what comes back.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from metarl.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_orphaned_temp_files,
    restore_rng,
    restore_torch_rng,
    rng_state,
    save_checkpoint,
    torch_rng_state,
)
from metarl.config import (
    ConfigError,
    TrainConfig,
    check_memory,
    config_from_dict,
    config_to_dict,
    save_config,
)
from metarl.registry import TaskEnvError, check_env_id, make_batched
from metarl.run_folder import (
    CONFIG_FILE,
    CURVE_FILE,
    KEEP_CHECKPOINTS,
    check_run_dir,
    describe_differences,
    incompatible_fields,
    record_session,
    resolve_run_dir,
    saved_config_with_predated,
)
from metarl.runlock import hold_run_folder
from metarl.runlog import RunLogger, setup_logging
from metarl.sampling import SamplingSettings
from metarl.tasks import BatchedTaskEnv, Task
from metarl.training_curve import plot_training_curve
from metarl.wandb_log import WandbLogger

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


LearnerFactory = Callable[[TrainConfig, BatchedTaskEnv], MetaLearner]


class Interrupted(Exception):  # noqa: N818 (a signal, not an error)
    """Raised inside the loop when SIGINT or SIGTERM arrives."""


@contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class _RunState:
    """Everything that moves between iterations: restored from and written to checkpoints."""

    iteration: int  # the next iteration to run
    task_rng: np.random.Generator
    env_rng: np.random.Generator
    total_env_steps: int = 0

    def snapshot(self, learner: MetaLearner, cfg_dict: dict[str, Any]) -> dict[str, Any]:
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


def build_env(cfg: TrainConfig) -> BatchedTaskEnv:
    """The batched env of ``cfg``, one sub-env per task × ``envs_per_task``.

    An ``env_kwargs`` the env rejects is a :class:`ConfigError`.
    """
    num_envs = SamplingSettings.from_config(cfg).num_envs
    try:
        return make_batched(cfg.env_id, num_envs, max_episode_steps=cfg.horizon, **cfg.env_kwargs)
    except TaskEnvError:
        raise
    except (TypeError, ValueError) as exc:
        if not cfg.env_kwargs:
            raise
        raise ConfigError(
            f"config field 'env_kwargs': {cfg.env_id} rejects {cfg.env_kwargs!r}: {type(exc).__name__}: {exc}",
            field="env_kwargs",
        ) from exc


def _restore(run_dir: Path, cfg: TrainConfig, learner: MetaLearner, state: _RunState) -> Path | None:
    """Load the latest checkpoint of ``run_dir`` into ``learner`` and ``state``; its path (or None).

    Any problem (corrupt or truncated file, another config, another model shape,
    missing entries) is a :class:`CheckpointError` naming the file.
    """
    found = list_checkpoints(run_dir)
    if not found:
        return None
    path = found[-1][1]
    saved = load_checkpoint(path)  # a corrupt one's error names the previous checkpoint to fall back to
    try:
        saved_cfg = config_from_dict(saved_config_with_predated(saved["config"]), source=str(path))
        changed = incompatible_fields(saved_cfg, cfg, resume=True)
        if changed:
            diffs = describe_differences(saved_cfg, cfg, changed)
            raise CheckpointError(f"checkpoint {path} was written with a different config ({diffs})")
        try:
            learner.load_state_dict(saved["learner"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise CheckpointError(f"checkpoint {path} does not fit this model: {detail}") from exc
        iteration, total_env_steps = int(saved["iteration"]), int(saved["total_env_steps"])
        restore_rng(saved["rng"]["tasks"], into=state.task_rng)
        restore_rng(saved["rng"]["env"], into=state.env_rng)
        restore_torch_rng(saved["rng"]["torch"])
    except CheckpointError:
        raise
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a usable metarl training checkpoint: {type(exc).__name__}: {exc}"
        ) from exc
    state.iteration, state.total_env_steps = iteration, total_env_steps
    return path


def _initialise(cfg: TrainConfig, learner: MetaLearner) -> Path:
    """Load the learner state of ``cfg.init_from`` (a checkpoint or a run folder's latest) into ``learner``.

    Only the learner's state is taken: the run's iteration, generators and metrics start
    afresh. A missing or unusable checkpoint, or another architecture, is a :class:`CheckpointError`.
    """
    source = Path(cfg.init_from)
    path = latest_checkpoint(source) if source.is_dir() else source
    if path is None:
        raise CheckpointError(f"init_from {str(source)!r}: the run folder holds no checkpoint")
    saved = load_checkpoint(path)
    try:
        saved_cfg = config_from_dict(saved["config"], source=str(path))
        changed = incompatible_fields(saved_cfg, cfg, resume=False)
        if changed:
            diffs = describe_differences(saved_cfg, cfg, changed)
            raise CheckpointError(f"init_from checkpoint {path} has another policy architecture ({diffs})")
        learner.load_state_dict(saved["learner"])
    except CheckpointError:
        raise
    except (ConfigError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise CheckpointError(f"init_from checkpoint {path} does not fit this model: {detail}") from exc
    return path


def train(
    cfg: TrainConfig,
    build_learner: LearnerFactory,
    *,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train ``cfg.num_iterations`` meta-iterations into ``out_dir/run_name``; return the folder.

    With ``resume`` the run continues from its latest checkpoint, with the same
    parameters, random-number generators and metrics as if it had never stopped.
    Bad input (unknown env id, env_kwargs the env rejects, a folder holding another
    run, an unusable checkpoint) raises before anything is written. SIGINT/SIGTERM
    checkpoint the last completed iteration and exit with status 130; any other error
    in the loop checkpoints it too, then propagates.
    """
    check_env_id(cfg.env_id)
    check_memory(cfg)
    run_dir = resolve_run_dir(cfg)
    check_run_dir(run_dir, resume)
    with hold_run_folder(run_dir):
        check_run_dir(run_dir, resume)  # again, now that no other run can change it
        return _train_in(run_dir, cfg, build_learner, resume=resume, progress=progress)


def _train_in(run_dir: Path, cfg: TrainConfig, build_learner: LearnerFactory, *, resume: bool, progress: bool) -> Path:
    """:func:`train` in ``run_dir``, whose lock the caller holds: set up, run the loop, close everything once."""
    torch.set_num_threads(cfg.num_threads)
    task_seed, env_seed, torch_seed = np.random.SeedSequence(cfg.seed).spawn(3)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    state = _RunState(0, np.random.default_rng(task_seed), np.random.default_rng(env_seed))
    with contextlib.ExitStack() as resources:  # closed in reverse order, whatever happens
        env = build_env(cfg)
        resources.callback(env.close)
        learner = build_learner(cfg, env)
        resources.callback(learner.close)  # e.g. stops Ray workers
        restored = _restore(run_dir, cfg, learner, state) if resume else None
        initialised = _initialise(cfg, learner) if restored is None and cfg.init_from else None
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG_FILE)
        setup_logging(run_dir)
        for orphan in remove_orphaned_temp_files(run_dir):
            log.info("removed %s, left by an interrupted checkpoint write", orphan.name)
        wandb = None
        if cfg.wandb:
            wandb = WandbLogger(run_dir, config_to_dict(cfg), cfg.wandb_project, cfg.wandb_mode, cfg.run_name, resume)
            resources.callback(wandb.close)
        logger = resources.enter_context(
            RunLogger(run_dir, tensorboard=cfg.tensorboard, resume_iteration=state.iteration if resume else None,
                      wandb=wandb)
        )
        if resume:
            if restored is None:
                log.info("no checkpoint in %s: starting from iteration 0", run_dir)
            else:
                log.info("resumed %s at iteration %d from %s", run_dir, state.iteration, restored)
        if initialised is not None:
            log.info("learner initialised from %s", initialised)
        log.info("training %s for %d iterations in %s", cfg.env_id, cfg.num_iterations, run_dir)
        session = record_session(run_dir, state.iteration, cfg)
        log.info("machine: %s, %d cores; torch %s, mujoco %s; %d torch threads",
                 session["cpu"], session["cores"], session["torch"], session["mujoco"], cfg.num_threads)
        bar = resources.enter_context(tqdm(
            total=cfg.num_iterations, initial=state.iteration, desc=cfg.run_name, unit="it",
            disable=not progress, dynamic_ncols=True,
        ))
        _run_iterations(run_dir, cfg, env, learner, logger, bar, state)
    plot_training_curve(run_dir, run_dir / CURVE_FILE, title=f"{cfg.algorithm} on {cfg.env_id}")
    return run_dir


def _run_iterations(
    run_dir: Path, cfg: TrainConfig, env: BatchedTaskEnv, learner: MetaLearner, logger: RunLogger, bar: tqdm,
    state: _RunState,
) -> None:
    """The loop: one meta-iteration after another, a checkpoint every ``checkpoint_every``.

    SIGINT/SIGTERM checkpoint the last completed iteration and exit with status 130; any
    other error checkpoints it too (if one was completed here), then propagates.
    """
    cfg_dict = config_to_dict(cfg)
    last_good = state.snapshot(learner, cfg_dict)
    started_at = state.iteration
    try:
        with _interrupt_on_signals():
            while state.iteration < cfg.num_iterations:
                start = time.perf_counter()
                tasks = env.sample_tasks(cfg.meta_batch_size, state.task_rng)
                metrics = learner.train_iteration(tasks, state.env_rng)
                state.total_env_steps += int(metrics.get("env_steps", 0))
                metrics["total_env_steps"] = float(state.total_env_steps)
                metrics["seconds_per_iteration"] = time.perf_counter() - start
                logger.log(state.iteration, metrics)
                state.iteration += 1
                last_good = state.snapshot(learner, cfg_dict)
                if state.iteration % cfg.checkpoint_every == 0 or state.iteration == cfg.num_iterations:
                    _write_checkpoint(run_dir, last_good)
                bar.update(1)
                returns = {k: f"{metrics[k]:.1f}" for k in ("return_before", "return_after") if k in metrics}
                bar.set_postfix(**returns, s_it=f"{metrics['seconds_per_iteration']:.1f}")
    except Interrupted as exc:
        bar.close()
        path = _write_checkpoint(run_dir, last_good)
        log.warning("%s received: wrote %s (iteration %d); resume with --resume %s",
                    exc, path, last_good["iteration"], run_dir)
        raise SystemExit(130) from None
    except Exception:
        bar.close()
        if last_good["iteration"] == started_at:
            log.exception("training failed at iteration %d, before completing it; no checkpoint written", started_at)
        else:
            try:
                path = _write_checkpoint(run_dir, last_good)
                log.exception("training failed; wrote %s (iteration %d, the last completed one)",
                              path, last_good["iteration"])
            except Exception:
                log.exception("training failed, and so did writing a checkpoint of the last completed iteration")
        raise


def _write_checkpoint(run_dir: Path, snapshot: dict[str, Any]) -> Path:
    path = save_checkpoint(checkpoint_path(run_dir, snapshot["iteration"]), snapshot)
    prune_checkpoints(run_dir, KEEP_CHECKPOINTS)
    return path
