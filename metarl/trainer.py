"""The training loop: tasks → meta-learner → metrics, checkpoints, plot; resumable.

The loop knows nothing of a particular algorithm: it asks a :class:`MetaLearner`
(built by a callback, e.g. ``agents.build_maml_trpo``) for one meta-iteration on a
meta-batch of tasks and records what comes back.
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
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
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    restore_torch_rng,
    rng_state,
    save_checkpoint,
    torch_rng_state,
)
from metarl.config import (
    ConfigError,
    TrainConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from metarl.plotting import plot_training_curve
from metarl.registry import check_env_id, make_batched
from metarl.runlog import RunLogger, setup_logging
from metarl.tasks import BatchedTaskEnv, Task

log = logging.getLogger("metarl")

CONFIG_FILE = "config.yaml"
CURVE_FILE = "training_curve.png"
KEEP_CHECKPOINTS = 3
# Fields that may change when a run is resumed; any other difference is an error.
RESUMABLE_FIELDS = {"num_iterations", "checkpoint_every", "tensorboard", "num_threads", "out_dir"}


class MetaLearner(Protocol):
    """What the loop needs of a meta-learner."""

    def train_iteration(self, tasks: Sequence[Task], rng: np.random.Generator) -> dict[str, float]:
        """Sample, adapt and meta-update on ``tasks``; return the iteration's metrics."""

    def state_dict(self) -> dict[str, Any]:
        """The learner's state (tensors and plain data)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""


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


def resolve_run_dir(cfg: TrainConfig) -> Path:
    """The run folder of ``cfg``: ``out_dir/run_name``."""
    return Path(cfg.out_dir) / cfg.run_name


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config saved in ``run_dir``, with ``overrides`` applied (only resumable fields)."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a metarl run folder (no {CONFIG_FILE})")
    saved = load_config(path)
    cfg = load_config(path, overrides)
    changed = set(config_diff(saved, cfg)) - RESUMABLE_FIELDS
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(sorted(changed))} when resuming {run_dir}; "
            f"only {', '.join(sorted(RESUMABLE_FIELDS))} may change"
        )
    return cfg


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path, resume: bool) -> None:
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"run folder {run_dir} already holds a run; resume it with --resume {run_dir} "
            "or choose another --run_name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)


def _restore(run_dir: Path, cfg: TrainConfig, learner: MetaLearner, state: _RunState) -> None:
    path = latest_checkpoint(run_dir)
    if path is None:
        log.info("no checkpoint in %s: starting from iteration 0", run_dir)
        return
    saved = load_checkpoint(path)
    saved_cfg = config_from_dict(saved["config"], source=str(path))
    changed = set(config_diff(saved_cfg, cfg)) - RESUMABLE_FIELDS
    if changed:
        raise CheckpointError(f"checkpoint {path} was written with a different config ({', '.join(sorted(changed))})")
    try:
        learner.load_state_dict(saved["learner"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {exc}") from exc
    state.iteration = int(saved["iteration"])
    state.total_env_steps = int(saved["total_env_steps"])
    restore_rng(saved["rng"]["tasks"], into=state.task_rng)
    restore_rng(saved["rng"]["env"], into=state.env_rng)
    restore_torch_rng(saved["rng"]["torch"])
    log.info("resumed %s at iteration %d from %s", run_dir, state.iteration, path)


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
    """
    check_env_id(cfg.env_id)
    run_dir = resolve_run_dir(cfg)
    _prepare_run_dir(cfg, run_dir, resume)
    setup_logging(run_dir)
    torch.set_num_threads(cfg.num_threads)

    task_seed, env_seed, torch_seed = np.random.SeedSequence(cfg.seed).spawn(3)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    state = _RunState(0, np.random.default_rng(task_seed), np.random.default_rng(env_seed))
    num_envs = cfg.meta_batch_size * cfg.episodes_per_task
    env = make_batched(cfg.env_id, num_envs, max_episode_steps=cfg.horizon, **cfg.env_kwargs)
    learner = build_learner(cfg, env)
    if resume:
        _restore(run_dir, cfg, learner, state)
    cfg_dict = config_to_dict(cfg)
    last_good = state.snapshot(learner, cfg_dict)

    logger = RunLogger(run_dir, tensorboard=cfg.tensorboard, resume_iteration=state.iteration if resume else None)
    log.info("training %s for %d iterations in %s", cfg.env_id, cfg.num_iterations, run_dir)
    bar = tqdm(
        total=cfg.num_iterations, initial=state.iteration, desc=cfg.run_name, unit="it",
        disable=not progress, dynamic_ncols=True,
    )
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
        logger.close()
        env.close()
        sys.exit(130)
    bar.close()
    logger.close()
    env.close()
    plot_training_curve(run_dir, run_dir / CURVE_FILE, title=f"{cfg.algorithm} on {cfg.env_id}")
    return run_dir


def _write_checkpoint(run_dir: Path, snapshot: dict[str, Any]) -> Path:
    path = save_checkpoint(checkpoint_path(run_dir, snapshot["iteration"]), snapshot)
    prune_checkpoints(run_dir, KEEP_CHECKPOINTS)
    return path
