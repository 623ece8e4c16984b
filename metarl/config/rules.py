"""The rules a config must keep: ranges, choices and combinations, each with its message; and fitting this machine."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

from metarl.config.schema import (
    ALGORITHMS,
    ESTIMATORS,
    META_UPDATES,
    NONLINEARITIES,
    PRECISIONS,
    SAMPLERS,
    WANDB_MODES,
    ConfigError,
    TrainConfig,
)

_AT_LEAST_ONE = (
    "num_iterations",
    "meta_batch_size",
    "episodes_per_task",
    "horizon",
    "num_inner_steps",
    "cg_iters",
    "ls_max_steps",
    "num_threads",
    "num_workers",
    "checkpoint_every",
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": ALGORITHMS,
    "sampler": SAMPLERS,
    "nonlinearity": NONLINEARITIES,
    "meta_update": META_UPDATES,
    "inner_estimator": ESTIMATORS,
    "fisher_precision": PRECISIONS,
    "adaptation_precision": PRECISIONS,
    "wandb_mode": WANDB_MODES,
}
_INTERVALS: dict[str, tuple[str, Any]] = {
    "init_std": ("must be > 0", lambda v: v > 0),
    "init_output_scale": ("must be > 0", lambda v: v > 0),
    "fast_lr": ("must be > 0", lambda v: v > 0),
    "max_kl": ("must be > 0", lambda v: v > 0),
    "cg_damping": ("must be >= 0", lambda v: v >= 0),
    "ls_backtrack_ratio": ("must be in (0, 1)", lambda v: 0 < v < 1),
    "gamma": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "gae_lambda": ("must be in [0, 1]", lambda v: 0 <= v <= 1),
    "fvp_task_fraction": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "fvp_transition_fraction": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "fvp_inner_fraction": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "step_timeout": ("must be >= 0 (0: no limit)", lambda v: v >= 0),
}
"""Float fields: the rule (besides being finite) and the message when it fails."""


def budget_lanes_problem(episodes_per_task: int, step_budget: bool, budget_lanes: int) -> str | None:
    """What is wrong with ``budget_lanes`` beside these settings, or None: the one place of its rules.

    Used by the config's checks, by :func:`metarl.sampling.shards.envs_per_task` and so by
    the sampler and the evaluation settings.

    Args:
        episodes_per_task: Episodes per task and meta-batch.
        step_budget: Whether each task samples a budget of steps rather than whole episodes.
        budget_lanes: Sub-environments sharing each task's budget (0: one per episode).
    """
    if budget_lanes < 0:
        return "must be >= 0 (0: one sub-environment per episode)"
    if budget_lanes and not step_budget:
        return "needs step_budget true (plain sampling runs one sub-environment per episode)"
    if budget_lanes and episodes_per_task % budget_lanes:
        return f"must divide episodes_per_task ({episodes_per_task})"
    return None


def _problems(cfg: TrainConfig) -> Iterator[tuple[str, str]]:
    """``(field, problem)`` of every rule ``cfg`` breaks, in a fixed order."""
    yield from ((name, "must be >= 1") for name in _AT_LEAST_ONE if getattr(cfg, name) < 1)
    if cfg.seed < 0:
        yield "seed", "must be >= 0"
    lanes = budget_lanes_problem(cfg.episodes_per_task, cfg.step_budget, cfg.budget_lanes)
    if lanes is not None:
        yield "budget_lanes", lanes
    if any(h < 1 for h in cfg.hidden_sizes):
        yield "hidden_sizes", "every layer width must be >= 1"
    yield from (
        (name, f"must be one of {', '.join(choices)}")
        for name, choices in _CHOICES.items()
        if getattr(cfg, name) not in choices
    )
    if cfg.adaptation_precision == "bf16" and (cfg.meta_update != "fast" or cfg.inner_estimator == "dice"):
        yield (
            "adaptation_precision",
            (
                "bf16 needs meta_update fast and inner_estimator reinforce or lvc (the exact "
                "path and dice differentiate autograd's fp32 inner step)"
            ),
        )
    if cfg.ray_address and not valid_ray_address(cfg.ray_address):
        yield "ray_address", "must be empty (a local Ray instance), 'auto', 'host:port' or 'ray://host:port'"
    for name, (problem, holds) in _INTERVALS.items():
        value = getattr(cfg, name)
        if not math.isfinite(value):
            yield name, "must be a finite number"
        elif not holds(value):
            yield name, problem
    if cfg.wandb and not cfg.wandb_project.strip():
        yield "wandb_project", "must not be empty with wandb: true"
    yield from ((name, "must not be empty") for name in ("env_id", "out_dir") if not getattr(cfg, name).strip())
    if any(c in cfg.run_name for c in "/\\") or cfg.run_name in (".", ".."):
        yield "run_name", "must be a plain folder name (no path separators)"


def check_config(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` naming the first rule ``cfg`` breaks."""
    for name, problem in _problems(cfg):
        raise ConfigError(f"config field {name!r}: {problem}, got {getattr(cfg, name)!r}", field=name)


def valid_ray_address(address: str) -> bool:
    """Whether ``address`` has the form ``auto``, ``host:port`` or ``ray://host:port``."""
    if address == "auto":
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return (
        bool(sep and host)
        and not any(c.isspace() or c == "/" for c in host)
        and port.isdigit()
        and (0 < int(port) < 65536)
    )


def check_memory(cfg: TrainConfig, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a batch whose learner cannot fit in this machine's memory.

    A lower bound: the meta-update keeps every hidden layer's activations of all the
    steps of an iteration's sampling phases (fp32). A run this refuses could never run
    here; one it passes may still need several times more (git show 7e49a18:BENCHMARKS.md has real peaks).

    Args:
        cfg: the run's settings.
        available: bytes of memory to compare against (default: this machine's RAM).
    """
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    widths = list(cfg.hidden_sizes)
    weights = sum(a * b for a, b in zip(widths, widths[1:], strict=False)) + sum(widths)
    copies = cfg.meta_batch_size * cfg.num_inner_steps + 4  # adapted parameters per task, θ, gradients, CG vectors
    if weights * copies * 4 > available:
        raise ConfigError(
            f"config field 'hidden_sizes': {list(widths)} has at least {weights:,} weights; the learner keeps "
            f"{copies} copies of them ({weights * copies * 4 / 2**30:,.1f} GiB), more than this machine's "
            f"{available / 2**30:,.1f} GiB",
            field="hidden_sizes",
        )
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
