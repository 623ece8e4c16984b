"""The training loop: tasks → meta-learner → metrics, checkpoints, plot; resumable.

The loop knows nothing of a particular algorithm: it asks a :class:`MetaLearner`
(built by a callback, e.g. ``agents.build_maml_trpo``) for one meta-iteration on a
meta-batch of tasks and records what comes back.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
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
import yaml
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
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    load_yaml,
    parse_overrides,
    predated_fields,
    save_config,
)
from metarl.registry import TaskEnvError, check_env_id, check_trusted_env_id, make_batched
from metarl.runlock import hold_run_folder
from metarl.runlog import RunLogger, setup_logging
from metarl.sampling import envs_per_task
from metarl.tasks import BatchedTaskEnv, Task
from metarl.training_curve import plot_training_curve
from metarl.wandb_log import WandbLogger

log = logging.getLogger("metarl")

CONFIG_FILE = "config.yaml"
CURVE_FILE = "training_curve.png"
KEEP_CHECKPOINTS = 3
# Fields that may change when a run is resumed; any other difference is an error.
# (the sampling backend changes where episodes are sampled, not which.)
RESUMABLE_FIELDS = {
    "num_iterations", "checkpoint_every", "tensorboard", "num_threads", "sampler", "num_workers", "ray_address",
    "wandb", "wandb_project", "wandb_mode",
}
# Where the run folder is: taken from the folder being resumed, not compared. ``init_from``
# names where the policy came from when the run started; a resumed run loads its own
# checkpoint, so that path may have moved too.
LOCATION_FIELDS = {"out_dir", "run_name", "init_from"}
# Environment keyword arguments that may change on resume: they set how fast, not what, is
# simulated (``nthread``: the mujoco.batch thread count; each simulation is stepped alone).
RESUMABLE_ENV_KWARGS = {"nthread"}


def resume_changes(saved: TrainConfig, cfg: TrainConfig) -> list[str]:
    """The fields of ``cfg`` that differ from ``saved`` and may not change on resume."""
    changed = set(config_diff(saved, cfg)) - RESUMABLE_FIELDS

    def fixed_kwargs(c: TrainConfig) -> dict[str, Any]:
        return {k: v for k, v in c.env_kwargs.items() if k not in RESUMABLE_ENV_KWARGS}

    if "env_kwargs" in changed and fixed_kwargs(saved) == fixed_kwargs(cfg):
        changed.discard("env_kwargs")
    return sorted(changed)


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


def load_run_config(
    run_dir: Path, overrides: Sequence[str] = (), trust_env_modules: Sequence[str] = ()
) -> TrainConfig:
    """The config saved in ``run_dir``, with ``overrides`` applied (only resumable fields).

    ``out_dir`` and ``run_name`` are set to where ``run_dir`` is now, so a run folder
    that was moved or renamed resumes in place. An env id naming a module that is not
    imported yet is refused unless the module is in ``trust_env_modules`` (or the
    overrides name the same ``--env_id``): the folder may not be the user's.

    Args:
        run_dir: the run folder.
        overrides: command-line tokens (``--num_iterations 800`` ...).
        trust_env_modules: modules the user vouches for, which the run's env id may import.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a metarl run folder (no {CONFIG_FILE})")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError:
        raw = None  # load_config below names the file and the line
    predated = [f"--{name}={value}" for name, value in predated_fields(raw if isinstance(raw, dict) else {}).items()]
    saved = load_config(path, predated)
    cfg = load_config(path, [*predated, *overrides])
    changed = resume_changes(saved, cfg)
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(changed)} when resuming {run_dir}; "
            f"only {', '.join(sorted(RESUMABLE_FIELDS))} and env_kwargs' {', '.join(sorted(RESUMABLE_ENV_KWARGS))} "
            "may change",
            field=changed[0],
        )
    named = parse_overrides(overrides).get("env_id", "")
    trusted = [*trust_env_modules, *([named.partition(":")[0]] if ":" in named else [])]
    check_trusted_env_id(cfg.env_id, trusted, f"run folder {run_dir}")
    return dataclasses.replace(cfg, out_dir=str(run_dir.parent), run_name=run_dir.name)


# What a run folder holds; a folder with nothing else and no completed iteration (no checkpoint,
# no metrics row: a run that failed at its first iteration) may be started afresh.
RUN_FOLDER_ENTRIES = {CONFIG_FILE, CURVE_FILE, "train.log", "metrics.csv", "tb", "checkpoints", ".lock"}


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run with a completed iteration, or anything that is not a run's (or is a file)."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - RUN_FOLDER_ENTRIES:
        return True
    metrics = run_dir / "metrics.csv"
    return bool(list_checkpoints(run_dir)) or (metrics.is_file() and metrics.stat().st_size > 0)


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before anything is written, a folder holding another run (or, resuming, none)."""
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"cannot resume {run_dir}: no such run folder")
    elif holds_a_run(run_dir):
        raise FileExistsError(
            f"run folder {run_dir} already holds a run (or is not a folder); resume it with "
            f"--resume {run_dir} or choose another --run_name / --out_dir"
        )


def check_memory(cfg: TrainConfig, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a batch whose learner cannot fit in this machine's memory.

    A lower bound: the meta-update keeps every hidden layer's activations of all the
    steps of an iteration's sampling phases (fp32). A run this refuses could never run
    here; one it passes may still need several times more (BENCHMARKS.md has real peaks).

    Args:
        cfg: the run's settings.
        available: bytes of memory to compare against (default: this machine's RAM).
    """
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    steps = cfg.meta_batch_size * cfg.episodes_per_task * cfg.horizon
    needed = steps * (cfg.num_inner_steps + 1) * max(sum(cfg.hidden_sizes), 1) * 4
    if needed > available:
        raise ConfigError(
            f"config fields 'meta_batch_size', 'episodes_per_task', 'horizon': {cfg.meta_batch_size} x "
            f"{cfg.episodes_per_task} x {cfg.horizon} = {steps:,} steps per sampling phase need at least "
            f"{needed / 2**30:,.1f} GiB for the meta-update's activations; this machine has "
            f"{available / 2**30:,.1f} GiB. Make the batch smaller",
            field="meta_batch_size",
        )


def build_env(cfg: TrainConfig) -> BatchedTaskEnv:
    """The batched env of ``cfg``, one sub-env per task × ``envs_per_task``.

    An ``env_kwargs`` the env rejects is a :class:`ConfigError`.
    """
    num_envs = cfg.meta_batch_size * envs_per_task(cfg.episodes_per_task, cfg.step_budget, cfg.budget_lanes)
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
        saved_cfg = config_from_dict({**predated_fields(saved["config"]), **saved["config"]}, source=str(path))
        changed = [n for n in resume_changes(saved_cfg, cfg) if n not in LOCATION_FIELDS]
        if changed:
            diffs = ", ".join(f"{n}: {getattr(saved_cfg, n)!r} there, {getattr(cfg, n)!r} here" for n in changed)
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


# Fields of the policy's architecture that a run started ``init_from`` a checkpoint must share.
MODEL_FIELDS = ("hidden_sizes", "nonlinearity")


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
        changed = [name for name in MODEL_FIELDS if getattr(saved_cfg, name) != getattr(cfg, name)]
        if changed:
            diffs = ", ".join(f"{n}: {getattr(saved_cfg, n)!r} there, {getattr(cfg, n)!r} here" for n in changed)
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
    _check_run_dir(run_dir, resume)
    with hold_run_folder(run_dir):
        _check_run_dir(run_dir, resume)  # again, now that no other run can change it
        return _train_in(run_dir, cfg, build_learner, resume=resume, progress=progress)


def _train_in(run_dir: Path, cfg: TrainConfig, build_learner: LearnerFactory, *, resume: bool, progress: bool) -> Path:
    """:func:`train` in ``run_dir``, whose lock the caller holds."""
    torch.set_num_threads(cfg.num_threads)

    task_seed, env_seed, torch_seed = np.random.SeedSequence(cfg.seed).spawn(3)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    state = _RunState(0, np.random.default_rng(task_seed), np.random.default_rng(env_seed))
    env = build_env(cfg)
    learner: MetaLearner | None = None
    try:
        learner = build_learner(cfg, env)
        restored = _restore(run_dir, cfg, learner, state) if resume else None
        initialised = _initialise(cfg, learner) if restored is None and cfg.init_from else None
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG_FILE)
        setup_logging(run_dir)
        for orphan in remove_orphaned_temp_files(run_dir):
            log.info("removed %s, left by an interrupted checkpoint write", orphan.name)
        wandb = (
            WandbLogger(run_dir, config_to_dict(cfg), cfg.wandb_project, cfg.wandb_mode, cfg.run_name, resume)
            if cfg.wandb
            else None
        )
        logger = RunLogger(run_dir, tensorboard=cfg.tensorboard, resume_iteration=state.iteration if resume else None,
                           wandb=wandb)
    except BaseException:
        _close(env, learner)
        raise
    if resume:
        if restored is None:
            log.info("no checkpoint in %s: starting from iteration 0", run_dir)
        else:
            log.info("resumed %s at iteration %d from %s", run_dir, state.iteration, restored)
    if initialised is not None:
        log.info("learner initialised from %s", initialised)
    cfg_dict = config_to_dict(cfg)
    last_good = state.snapshot(learner, cfg_dict)
    started_at = state.iteration
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
        _close(env, learner)
        sys.exit(130)
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
        logger.close()
        _close(env, learner)
        raise
    bar.close()
    logger.close()
    _close(env, learner)
    plot_training_curve(run_dir, run_dir / CURVE_FILE, title=f"{cfg.algorithm} on {cfg.env_id}")
    return run_dir


def _close(env: BatchedTaskEnv, learner: MetaLearner | None) -> None:
    """Close the learner's sampler (e.g. stop Ray workers), if it has one, and the env."""
    close = getattr(getattr(learner, "sampler", None), "close", None)
    try:
        if callable(close):
            close()
    finally:
        env.close()


def _write_checkpoint(run_dir: Path, snapshot: dict[str, Any]) -> Path:
    path = save_checkpoint(checkpoint_path(run_dir, snapshot["iteration"]), snapshot)
    prune_checkpoints(run_dir, KEEP_CHECKPOINTS)
    return path
