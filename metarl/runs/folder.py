"""The run folder: its file names, which settings may change on resume, and reading its config back.

A run folder (``<out_dir>/<run_name>``) holds:

=====================  ==========================================================
``config.yaml``        the run's full config (:data:`CONFIG_FILE`)
``metrics.csv``        one row per meta-iteration (:data:`METRICS_FILE`)
``checkpoints/``       ``iter_NNNNNN.pt``, the newest :data:`KEEP_CHECKPOINTS` kept
``training_curve.png`` return before and after adaptation (:data:`CURVE_FILE`)
``train.log``          log messages (:data:`LOG_FILE`)
``tb/``                TensorBoard events (:data:`TB_DIR`)
``wandb/``             Weights & Biases files, with ``wandb: true`` (:data:`WANDB_DIR`)
``wandb_run_id``       the W&B run's id, so a resumed run continues it
``.lock``              held while a process trains in the folder (:mod:`metarl.runs.lock`)
``sessions.jsonl``     one line per training session: first iteration, machine, threads
``eval/``              ``metarl evaluate``'s default output (:data:`EVAL_DIR`)
=====================  ==========================================================

The other modules take these names from here. :func:`incompatible_fields` is the one
check of a saved config against a new one, for ``--resume`` (only
:data:`RESUMABLE_FIELDS` may change) and for ``init_from`` (the policy's architecture,
:data:`MODEL_FIELDS`, must match).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from metarl.config import (
    ConfigError,
    TrainConfig,
    config_diff,
    load_config,
    load_yaml,
    parse_overrides,
    predated_fields,
)
from metarl.runs.trust import trusted_modules
from metarl.system.files import append_line
from metarl.system.machine import machine_record
from metarl.tasks.resolve import check_trusted_env_id

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^iter_(\d+)\.pt$")
"""A checkpoint file's name, ``iter_<iteration>.pt`` (6 digits as written)."""
CURVE_FILE = "training_curve.png"
LOG_FILE = "train.log"
TB_DIR = "tb"
WANDB_DIR = "wandb"
WANDB_ID_FILE = "wandb_run_id"
LOCK_FILE = ".lock"
SESSIONS_FILE = "sessions.jsonl"
EVAL_DIR = "eval"
KEEP_CHECKPOINTS = 3
"""Checkpoints a run folder keeps (the newest)."""

RUN_FOLDER_ENTRIES = frozenset(
    {
        CONFIG_FILE,
        METRICS_FILE,
        CHECKPOINT_DIR,
        CURVE_FILE,
        LOG_FILE,
        TB_DIR,
        WANDB_DIR,
        WANDB_ID_FILE,
        LOCK_FILE,
        SESSIONS_FILE,
    }
)
"""What training writes into a run folder; a folder holding nothing else and no completed
iteration (a run that failed at its first iteration) may be started afresh."""

RESUMABLE_FIELDS = frozenset(
    {
        "num_iterations",
        "checkpoint_every",
        "tensorboard",
        "num_threads",
        "sampler",
        "num_workers",
        "ray_address",
        "step_timeout",
        "wandb",
        "wandb_project",
        "wandb_mode",
    }
)
"""Fields that may change when a run is resumed (the sampling backend changes where episodes
are sampled, not which); any other difference is an error."""
LOCATION_FIELDS = frozenset({"out_dir", "run_name", "init_from"})
"""Where the run folder is: taken from the folder being resumed, not compared. ``init_from``
names where the policy came from when the run started; a resumed run loads its own
checkpoint, so that path may have moved too."""
RESUMABLE_ENV_KWARGS = frozenset({"nthread"})
"""Environment keyword arguments that may change on resume: they set how fast, not what, is
simulated (``nthread``: the mujoco.batch thread count; each simulation is stepped alone)."""
MODEL_FIELDS = ("hidden_sizes", "nonlinearity")
"""Fields of the policy's architecture that a run started ``init_from`` a checkpoint must share."""


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (nothing to resume, a damaged metrics file)."""


def resume_changes(saved: TrainConfig, cfg: TrainConfig) -> list[str]:
    """The fields of ``cfg`` that differ from ``saved`` and may not change on resume."""
    changed = set(config_diff(saved, cfg)) - RESUMABLE_FIELDS

    def fixed_kwargs(c: TrainConfig) -> dict[str, Any]:
        return {k: v for k, v in c.env_kwargs.items() if k not in RESUMABLE_ENV_KWARGS}

    if "env_kwargs" in changed and fixed_kwargs(saved) == fixed_kwargs(cfg):
        changed.discard("env_kwargs")
    return sorted(changed)


def incompatible_fields(saved: TrainConfig, cfg: TrainConfig, *, resume: bool) -> list[str]:
    """Fields in which ``cfg`` may not differ from the ``saved`` config of a checkpoint it loads.

    Args:
        saved: The config the checkpoint was written with.
        cfg: The config of the run loading it.
        resume: True for ``--resume`` (every field but the resumable and location ones must match); False for
            ``init_from`` (only the policy's architecture must match).
    """
    if resume:
        return [name for name in resume_changes(saved, cfg) if name not in LOCATION_FIELDS]
    return [name for name in MODEL_FIELDS if getattr(saved, name) != getattr(cfg, name)]


def describe_differences(saved: TrainConfig, cfg: TrainConfig, names: Sequence[str]) -> str:
    """``"name: <saved> there, <cfg> here, ..."`` for error messages.

    Args:
        saved: The run folder's config.
        cfg: The config asked for.
        names: The fields that differ.
    """
    return ", ".join(f"{n}: {getattr(saved, n)!r} there, {getattr(cfg, n)!r} here" for n in names)


def saved_config_with_predated(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config mapping with the values a field it predates meant (:func:`metarl.config.predated_fields`)."""
    return {**predated_fields(saved), **saved}


def resolve_run_dir(cfg: TrainConfig) -> Path:
    """The run folder of ``cfg``: ``out_dir/run_name``."""
    return Path(cfg.out_dir) / cfg.run_name


def load_run_config(run_dir: Path, overrides: Sequence[str] = (), trust_env_modules: Sequence[str] = ()) -> TrainConfig:
    """The config saved in ``run_dir``, with ``overrides`` applied (only resumable fields).

    ``out_dir`` and ``run_name`` are set to where ``run_dir`` is now, so a run folder
    that was moved or renamed resumes in place. An env id naming a module that is not
    imported yet is refused unless the module is in ``trust_env_modules`` (or the
    overrides name the same ``--env_id``): the folder may not be the user's.

    Args:
        run_dir: The run folder.
        overrides: Command-line tokens (``--num_iterations 800`` ...).
        trust_env_modules: Modules the user vouches for, which the run's env id may import.
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
    trusted += trusted_modules(run_dir, cfg.env_id)  # a run this user trained here (metarl.runs.trust)
    check_trusted_env_id(cfg.env_id, trusted, f"run folder {run_dir}")
    # As the user named it (a relative path stays relative in the saved config); through a
    # symbolic link, the folder's own name.
    real = run_dir.resolve() if run_dir.is_symlink() else run_dir
    return dataclasses.replace(cfg, out_dir=str(real.parent), run_name=real.name)


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run with a completed iteration, or anything that is not a run's (or is a file)."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - RUN_FOLDER_ENTRIES:
        return True
    metrics = run_dir / METRICS_FILE
    folder = run_dir / CHECKPOINT_DIR
    has_checkpoint = folder.is_dir() and any(CHECKPOINT_NAME.match(p.name) and p.is_file() for p in folder.iterdir())
    return has_checkpoint or (metrics.is_file() and metrics.stat().st_size > 0)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before anything is written, a folder holding another run (or, resuming, none)."""
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"cannot resume {run_dir}: no such run folder")
    elif holds_a_run(run_dir):
        raise FileExistsError(
            f"run folder {run_dir} already holds a run (or is not a folder); resume it with "
            f"--resume {run_dir} or choose another --run_name / --out_dir"
        )


def record_session(
    run_dir: Path, first_iteration: int, cfg: TrainConfig, arithmetic: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Append this training session to ``run_dir/sessions.jsonl``; returns the record.

    A record holds the first iteration the session runs, when it started, the machine
    (:func:`metarl.system.machine.machine_record`), the thread counts and the learner's arithmetic,
    so that the seconds in ``metrics.csv`` can be attributed to the CPU that spent them and each
    iteration to the precision it was computed in.

    Args:
        run_dir: the run folder.
        first_iteration: the iteration the session starts at (0, or where it resumed).
        cfg: the session's config (its thread counts are recorded).
        arithmetic: the precision of each part of the learner's update on this CPU
            (:meth:`~metarl.training.run_state.MetaLearner.arithmetic`), if known.
    """
    record = {
        "first_iteration": int(first_iteration),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **machine_record(),
        "num_threads": cfg.num_threads,
        "env_nthread": cfg.env_kwargs.get("nthread"),
    }
    if arithmetic:
        record["arithmetic"] = dict(arithmetic)
    append_line(Path(run_dir) / SESSIONS_FILE, json.dumps(record))
    return record


def read_sessions(run_dir: Path) -> list[dict[str, Any]]:
    """The records of :func:`record_session` in ``run_dir`` (empty if it has none); a torn last line is skipped."""
    path = Path(run_dir) / SESSIONS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("first_iteration"), int):
            records.append(record)
    return records
