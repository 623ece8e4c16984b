"""The training loop: tasks → meta-learner → metrics, checkpoints, plot; resumable.

The loop knows nothing of a particular algorithm: it asks a :class:`MetaLearner`
(built by a callback, e.g. ``agents.build_maml_trpo``) for one meta-iteration on a
meta-batch of tasks and records what comes back.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from metarl.config import (
    ConfigError,
    TrainConfig,
    check_memory,
    config_to_dict,
    save_config,
)
from metarl.plots.training_curve import plot_training_curve
from metarl.runs.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    prune_checkpoints,
    remove_orphaned_temp_files,
    save_checkpoint,
)
from metarl.runs.folder import (
    CONFIG_FILE,
    CURVE_FILE,
    KEEP_CHECKPOINTS,
    check_run_dir,
    record_session,
    resolve_run_dir,
)
from metarl.runs.lock import hold_run_folder
from metarl.runs.logs import RunLogger, setup_logging
from metarl.runs.trust import trust_run
from metarl.runs.wandb_log import WandbLogger
from metarl.sampling import SamplingSettings
from metarl.system.files import os_error_message
from metarl.tasks.build import make_batched
from metarl.tasks.protocol import BatchedTaskEnv, EnvFaultError
from metarl.tasks.registry import TaskEnvError
from metarl.tasks.resolve import check_env_id
from metarl.training.run_state import MetaLearner, RunState, check_resumable, initialise_learner, restore_run

log = logging.getLogger("metarl")

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

    Args:
        cfg: The run's config.
        build_learner: Builds the meta-learner from the config and the env.
        resume: Continue the run in ``out_dir/run_name``.
        progress: Show a progress bar.
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
    state = RunState(0, np.random.default_rng(task_seed), np.random.default_rng(env_seed))
    with contextlib.ExitStack() as resources:  # closed in reverse order, whatever happens
        env = build_env(cfg)
        env.step_timeout = cfg.step_timeout
        resources.callback(env.close)
        learner = build_learner(cfg, env)
        resources.callback(learner.close)  # e.g. stops Ray workers
        restored = restore_run(run_dir, cfg, learner, state) if resume else None
        if resume:
            check_resumable(run_dir, restored, state.iteration)
        initialised = initialise_learner(cfg, learner) if restored is None and cfg.init_from else None
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
            RunLogger(
                run_dir, tensorboard=cfg.tensorboard, resume_iteration=state.iteration if resume else None, wandb=wandb
            )
        )
        if resume:
            log.info("resumed %s at iteration %d from %s", run_dir, state.iteration, restored)
        if initialised is not None:
            log.info("learner initialised from %s", initialised)
        log.info("training %s for %d iterations in %s", cfg.env_id, cfg.num_iterations, run_dir)
        session = record_session(run_dir, state.iteration, cfg, learner.arithmetic())
        trust_run(run_dir, cfg.env_id)  # the user named (or vouched for) its module: later commands need not ask
        log.info(
            "machine: %s, %d cores; torch %s, mujoco %s; %d torch threads",
            session["cpu"],
            session["cores"],
            session["torch"],
            session["mujoco"],
            cfg.num_threads,
        )
        bar = resources.enter_context(
            tqdm(
                total=cfg.num_iterations,
                initial=state.iteration,
                desc=cfg.run_name,
                unit="it",
                disable=not progress,
                dynamic_ncols=True,
            )
        )
        _run_iterations(run_dir, cfg, env, learner, logger, bar, state)
    env_name = cfg.env_id.partition(":")[2] or cfg.env_id  # 'my_pkg.envs:Wind-v0' is titled 'Wind-v0'
    plot_training_curve(run_dir, run_dir / CURVE_FILE, title=f"{cfg.algorithm} on {env_name}")
    return run_dir


def _run_iterations(
    run_dir: Path,
    cfg: TrainConfig,
    env: BatchedTaskEnv,
    learner: MetaLearner,
    logger: RunLogger,
    bar: tqdm,
    state: RunState,
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
                returns: dict[str, str] = {
                    k: f"{metrics[k]:.1f}" for k in ("return_before", "return_after") if k in metrics
                }
                returns.update({"success": f"{metrics['success_after']:.2f}"} if "success_after" in metrics else {})
                bar.set_postfix(**returns, s_it=f"{metrics['seconds_per_iteration']:.1f}")
    except Interrupted as exc:
        bar.close()
        path = _write_checkpoint(run_dir, last_good)
        log.warning(
            "%s received: wrote %s (iteration %d); resume with --resume %s", exc, path, last_good["iteration"], run_dir
        )
        raise SystemExit(130) from None
    except Exception as exc:
        bar.close()
        kept = latest_checkpoint(run_dir)
        if last_good["iteration"] == started_at:
            log.exception("training failed at iteration %d, before completing it; no checkpoint written", started_at)
        else:
            try:
                kept = _write_checkpoint(run_dir, last_good)
                log.exception(
                    "training failed; wrote %s (iteration %d, the last completed one)", kept, last_good["iteration"]
                )
            except Exception:
                log.exception("training failed, and so did writing a checkpoint of the last completed iteration")
        if isinstance(exc, EnvFaultError | OSError):  # the env's or the disk's fault: one line, not a traceback
            raise TrainingError(_failure_message(exc, run_dir, state.iteration, kept)) from exc
        raise


class TrainingError(RuntimeError):
    """Training stopped on a fault of the environment or of the disk; the message says which checkpoint is kept."""


def _failure_message(exc: BaseException, run_dir: Path, iteration: int, kept: Path | None) -> str:
    cause = os_error_message(exc) if isinstance(exc, OSError) else str(exc)
    where = f"training stopped in iteration {iteration}: {cause}"
    if kept is None:
        return f"{where}; no checkpoint was written"
    return f"{where}; the last checkpoint kept is {kept} (resume with --resume {run_dir})"


def _write_checkpoint(run_dir: Path, snapshot: dict[str, Any]) -> Path:
    path = save_checkpoint(checkpoint_path(run_dir, snapshot["iteration"]), snapshot)
    prune_checkpoints(run_dir, KEEP_CHECKPOINTS)
    return path
