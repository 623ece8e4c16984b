"""Adaptation curves: returns after 0, 1, ..., K gradient steps on fixed held-out tasks.

The evaluation of any method (MAML, a pretrained or random policy, an oracle) is the
same: draw a fixed, seeded set of held-out tasks, roll the policy out on all of them
at once, take K inner gradient steps (each on fresh episodes of the current
parameters) and record each task's mean return per episode after every step. The
adaptation itself is a callable (:data:`AdaptFn`), so this module needs nothing of
``agents`` or ``envs``.

Uncertainty: the 95% confidence interval of a step's mean is the Student-t interval
over tasks, ``mean ± t(0.975, n-1) · sd / sqrt(n)`` of the ``n`` per-task means (each
task a draw from the task distribution; the episodes' own noise is inside each task's
mean; :mod:`metarl.evaluation.statistics`). Results are written as JSON
(:mod:`metarl.evaluation.results`); both are re-exported here.

References: a task family whose environment has a method
``reference_returns(tasks, horizon, rng) -> {name: per-task expected return}`` (e.g. the
best bandit arm, UCB1, value iteration on a tabular MDP) gets those returns on the same
held-out tasks recorded beside the method's curve (:func:`reference_returns`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metarl.evaluation.results import AdaptationResults, task_to_json
from metarl.evaluation.statistics import student_t_cdf, student_t_ppf, t_interval
from metarl.sampling import Sampler, SamplingSettings
from metarl.sampling.episodes import Episodes
from metarl.tasks.protocol import Task

log = logging.getLogger("metarl")

EVAL_SEED_TAG = 0x6D65_7461_6576_616C  # "metaeval": keeps evaluation streams apart from training's
"""Mixed into the evaluation seed so held-out tasks never share a stream with training."""
VALIDATION_SEED_TAG = 0x6D65_7461_7661_6C69  # "metavali": validation tasks, apart from the held-out ones
"""Mixed into the evaluation seed for the validation tasks on which an inner step size is chosen."""

AdaptFn = Callable[[Sampler, np.random.Generator, Sequence[float]], Sequence[Episodes]]
"""``adapt(sampler, rng, lrs) -> episodes``: ``len(lrs) + 1`` batches; batch ``k`` sampled
on the sampler's tasks with the parameters after ``k`` inner steps (step ``k`` uses ``lrs[k]``)."""

ReferenceFn = Callable[[list[Task], int, np.random.Generator], Mapping[str, np.ndarray]]
"""A family's ``reference_returns(tasks, horizon, rng) -> {name: return per task, shape [T]}``."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvaluationSettings:
    """How an adaptation curve is measured."""

    num_tasks: int = 40
    """Held-out tasks."""
    num_steps: int = 3
    """Inner gradient steps K; returns are recorded after 0..K steps."""
    episodes_per_step: int = 20
    """Episodes per task sampled with each step's parameters (and used for the next step)."""
    step_budget: bool = False
    """Sample each step as the MAML paper's code did: ``episodes_per_step`` sub-environments per task,
    each running episodes back to back for the horizon (``TrainConfig.step_budget``)."""
    budget_lanes: int = 0
    """With ``step_budget``: sub-environments sharing each task's budget (``TrainConfig.budget_lanes``;
    0: ``episodes_per_step`` of them)."""
    lrs: tuple[float, ...] = (0.1, 0.05)
    """Inner learning rate of step 1, 2, ...; the last one repeats for later steps."""
    lr_grid: tuple[float, ...] = ()
    """If given, the inner learning rate is chosen from these instead of ``lrs``: the one with the
    highest mean return after one step on ``num_tasks`` validation tasks, drawn apart from the
    held-out ones (:func:`validation_tasks`); every step then uses it."""
    seed: int = 0
    """Evaluation seed: held-out tasks, env seeds, action noise, a random policy's init."""
    confidence: float = 0.95
    """Level of the confidence intervals."""

    def __post_init__(self) -> None:
        for name in ("num_tasks", "episodes_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluation setting {name!r} must be >= 1, got {getattr(self, name)}")
        if self.num_steps < 0:
            raise ValueError(f"evaluation setting 'num_steps' must be >= 0, got {self.num_steps}")
        for name in ("lrs", "lr_grid"):
            values = getattr(self, name)
            if (name == "lrs" and not values) or not all(math.isfinite(lr) and lr > 0 for lr in values):
                raise ValueError(f"evaluation setting {name!r} must be positive numbers, got {values}")
        if self.seed < 0:
            raise ValueError(f"evaluation setting 'seed' must be >= 0, got {self.seed}")
        try:
            self.sampling()
        except ValueError as exc:
            raise ValueError(f"evaluation setting 'budget_lanes': {exc}") from None
        if not 0 < self.confidence < 1:
            raise ValueError(f"evaluation setting 'confidence' must be in (0, 1), got {self.confidence}")

    def sampling(self) -> SamplingSettings:
        """The sampling settings of each step: ``num_tasks`` × ``episodes_per_step`` episodes."""
        return SamplingSettings(self.num_tasks, self.episodes_per_step, self.step_budget, self.budget_lanes)

    def step_lrs(self) -> list[float]:
        """The learning rate of each of the ``num_steps`` steps."""
        return [self.lrs[min(k, len(self.lrs) - 1)] for k in range(self.num_steps)]


@dataclass(frozen=True)
class EvaluationStreams:
    """The random streams of an evaluation, all split from its seed (never from training's)."""

    task_rng: np.random.Generator
    env_rng: np.random.Generator
    torch_seed: int


def evaluation_streams(seed: int) -> EvaluationStreams:
    """Independent generators for held-out tasks and rollouts, and a torch seed, from ``seed``."""
    tasks, env, torch_seq = np.random.SeedSequence([EVAL_SEED_TAG, seed]).spawn(3)
    return EvaluationStreams(
        np.random.default_rng(tasks), np.random.default_rng(env), int(torch_seq.generate_state(1)[0])
    )


def reference_rng(seed: int) -> np.random.Generator:
    """The generator an evaluation of ``seed`` hands to ``reference_returns`` (its own stream)."""
    return np.random.default_rng(np.random.SeedSequence([EVAL_SEED_TAG, seed]).spawn(4)[3])


def reference_returns(env: object, tasks: Sequence[Task], horizon: int, seed: int) -> dict[str, np.ndarray]:
    """``env.reference_returns(tasks, horizon, rng)``, checked; ``{}`` if ``env`` has no such method.

    ``rng`` is :func:`reference_rng` of the evaluation ``seed``, so the values depend
    only on the tasks, the horizon and the seed. Each value is a float64 array ``[T]``.

    Args:
        env: The batched task env (its ``reference_returns``, if it has one).
        tasks: The held-out tasks.
        horizon: Steps per episode.
        seed: The evaluation seed.
    """
    method: ReferenceFn | None = getattr(env, "reference_returns", None)
    if not callable(method):
        return {}
    refs: dict[str, np.ndarray] = {}
    for name, values in dict(method(list(tasks), horizon, reference_rng(seed))).items():
        array = np.asarray(values, dtype=np.float64)
        if not isinstance(name, str) or not name or array.shape != (len(tasks),) or not np.isfinite(array).all():
            raise ValueError(
                f"{type(env).__name__}.reference_returns: {name!r} must name {len(tasks)} finite "
                f"per-task returns, got shape {array.shape}"
            )
        refs[name] = array
    return refs


def heldout_tasks(
    sample_tasks: Callable[[int, np.random.Generator], list[Task]], num_tasks: int, seed: int
) -> list[Task]:
    """The fixed held-out task set of evaluation ``seed``: the same for every method and run.

    Args:
        sample_tasks: The task distribution's sampler ``(n, rng) -> tasks``.
        num_tasks: How many tasks.
        seed: The evaluation seed.
    """
    return list(sample_tasks(num_tasks, evaluation_streams(seed).task_rng))


def validation_tasks(
    sample_tasks: Callable[[int, np.random.Generator], list[Task]], num_tasks: int, seed: int
) -> list[Task]:
    """The validation tasks of evaluation ``seed``: drawn from a stream apart from the held-out tasks' and
    training's, for choosing settings (:func:`choose_lr`) without looking at the held-out tasks.

    Args:
        sample_tasks: The task distribution's sampler ``(n, rng) -> tasks``.
        num_tasks: How many tasks.
        seed: The evaluation seed.
    """
    tasks, _ = np.random.SeedSequence([VALIDATION_SEED_TAG, seed]).spawn(2)
    return list(sample_tasks(num_tasks, np.random.default_rng(tasks)))


def choose_lr(
    sampler: Sampler, validation: Sequence[Task], adapt: AdaptFn, grid: Sequence[float], seed: int
) -> tuple[float, dict[str, float]]:
    """The inner learning rate of ``grid`` with the highest mean return after one step on ``validation``.

    Every candidate adapts the same validation tasks with the same rollout stream (from
    ``seed``, apart from the held-out evaluation's), so they differ by their step only.

    Args:
        sampler: the evaluation's sampler (its tasks are set to ``validation``).
        validation: the validation tasks (:func:`validation_tasks`).
        adapt: the method's adaptation.
        grid: the candidate learning rates.
        seed: the evaluation seed.

    Returns:
        The chosen rate and each candidate's mean return after one step (keys: the rates as text).
    """
    scores = {}
    for i, lr in enumerate(grid):
        start = time.perf_counter()
        _, rollouts = np.random.SeedSequence([VALIDATION_SEED_TAG, seed]).spawn(2)
        returns, _ = evaluate_adaptation(sampler, validation, adapt, [lr], np.random.default_rng(rollouts))
        scores[f"{lr:g}"] = float(returns[:, 1].mean())
        log.info(
            "inner step size %d of %d, %g: mean return after one step %.2f on %d validation tasks (%.1f s)",
            i + 1,
            len(grid),
            lr,
            scores[f"{lr:g}"],
            len(validation),
            time.perf_counter() - start,
        )
    best = max(grid, key=lambda lr: scores[f"{lr:g}"])
    return float(best), scores


# -------------------------------------------------------------------------- evaluation


def per_task_returns(episodes: Episodes) -> np.ndarray:
    """Mean undiscounted return per episode of each task, ``[T]`` (float64)."""
    return episodes.mean_returns().numpy()


def per_task_success(batches: Sequence[Episodes]) -> np.ndarray | None:
    """Each task's success rate after each step, ``[T, K+1]``; ``None`` unless the env reports success."""
    rates = [batch.success_rates() for batch in batches]
    if not rates or any(r is None for r in rates):
        return None
    return np.stack([r.numpy() for r in rates if r is not None], axis=1)


def evaluate_adaptation(
    sampler: Sampler,
    tasks: Sequence[Task],
    adapt: AdaptFn,
    lrs: Sequence[float],
    rng: np.random.Generator,
    on_episodes: Callable[[list[Episodes]], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Adapt on ``tasks`` with ``len(lrs)`` steps; per-task mean returns ``[T, K+1]`` and env steps.

    ``on_episodes`` (if given) receives the sampled episodes, e.g. to inspect them.

    Args:
        sampler: The sampler of all tasks' episodes at once.
        tasks: The tasks to adapt to.
        adapt: Takes one inner step from the sampled episodes.
        lrs: The step size of each inner step.
        rng: Seeds the rollouts.
        on_episodes: Receives the sampled episodes.
    """
    sampler.set_tasks(tasks)
    episodes = list(adapt(sampler, rng, list(lrs)))
    if len(episodes) != len(lrs) + 1:
        raise ValueError(f"adapt returned {len(episodes)} episode batches for {len(lrs)} steps")
    for k, batch in enumerate(episodes):
        if batch.num_tasks != len(tasks):
            raise ValueError(f"adapt's batch {k} holds {batch.num_tasks} tasks, expected {len(tasks)}")
    if on_episodes is not None:
        on_episodes(episodes)
    returns = np.stack([per_task_returns(batch) for batch in episodes], axis=1)
    return returns, sum(batch.num_steps for batch in episodes)


def run_evaluation(
    sampler: Sampler,
    tasks: Sequence[Task],
    adapt: AdaptFn,
    settings: EvaluationSettings,
    *,
    method: str,
    env_id: str,
    flat: bool = False,
    label: str = "",
    source: str = "",
    extra_settings: Mapping[str, Any] | None = None,
    on_episodes: Callable[[list[Episodes]], None] | None = None,
    references: Mapping[str, np.ndarray] | None = None,
    validation: Sequence[Task] | None = None,
    groups: Sequence[str] = (),
) -> AdaptationResults:
    """Evaluate one method on ``tasks`` with ``settings`` (``flat``: no adaptation steps).

    ``references`` (per-task returns, e.g. from :func:`reference_returns`) are stored as given.
    With ``settings.lr_grid`` the inner learning rate is first chosen on the ``validation`` tasks
    (:func:`choose_lr`) and recorded in the results' settings (``lr_choice``).

    The rollouts (reset seeds and action noise, which the sampler derives per task and
    episode from its generator) come from ``settings.seed``, so the same seed gives the
    same curve; torch's global RNG is seeded too, for anything else that draws from it.

    Args:
        sampler: The sampler of all tasks' episodes at once.
        tasks: The held-out tasks.
        adapt: Takes one inner step from the sampled episodes.
        settings: The protocol: steps, episodes per step, step sizes, seed, confidence.
        method: The method's name, recorded in the results.
        env_id: The env id, recorded in the results.
        flat: No adaptation steps (an oracle).
        label: The legend name.
        source: What was evaluated (a checkpoint's path).
        extra_settings: More settings to record (the training run's).
        on_episodes: Receives the sampled episodes.
        references: Per-task reference returns to store.
        validation: The validation tasks on which ``settings.lr_grid`` is chosen.
        groups: Each task's group (:func:`metarl.tasks.protocol.task_groups`), to report per group; or none.
    """
    choice: dict[str, Any] = {}
    if settings.lr_grid and not flat and settings.num_steps:
        if validation is None:
            raise ValueError("run_evaluation: choosing the inner learning rate needs validation tasks")
        best, scores = choose_lr(sampler, validation, adapt, settings.lr_grid, settings.seed)
        choice = {
            "lr_choice": {
                "grid": list(settings.lr_grid),
                "chosen": best,
                "validation_tasks": len(validation),
                "mean_return_after_one_step": scores,
            }
        }
        settings = dataclasses.replace(settings, lrs=(best,))
    streams = evaluation_streams(settings.seed)
    torch.manual_seed(streams.torch_seed)
    lrs = [] if flat else settings.step_lrs()
    start = time.perf_counter()
    log.info(
        "adapting on %d held-out tasks: %d inner steps (%s)", len(tasks), len(lrs), ", ".join(f"{lr:g}" for lr in lrs)
    )
    batches: list[list[Episodes]] = []

    def keep(episodes: list[Episodes]) -> None:
        batches.append(episodes)
        if on_episodes is not None:
            on_episodes(episodes)

    returns, env_steps = evaluate_adaptation(sampler, tasks, adapt, lrs, streams.env_rng, keep)
    success = per_task_success(batches[0])
    batches.clear()
    log.info("held-out tasks done: %d env steps in %.1f s", env_steps, time.perf_counter() - start)
    recorded = {**dataclasses.asdict(settings), "step_lrs": lrs, **dict(extra_settings or {}), **choice}
    recorded["lrs"] = list(settings.lrs)
    recorded["lr_grid"] = list(settings.lr_grid)
    return AdaptationResults(
        method=method,
        env_id=env_id,
        returns=returns,
        settings=recorded,
        tasks=[task_to_json(t) for t in tasks],
        label=label,
        source=source,
        flat=flat,
        env_steps=env_steps,
        references={name: np.asarray(v, dtype=np.float64) for name, v in (references or {}).items()},
        success=success,
        groups=list(groups),
    )


__all__ = [
    "AdaptFn",
    "AdaptationResults",
    "EVAL_SEED_TAG",
    "EvaluationSettings",
    "EvaluationStreams",
    "ReferenceFn",
    "evaluate_adaptation",
    "evaluation_streams",
    "VALIDATION_SEED_TAG",
    "choose_lr",
    "heldout_tasks",
    "per_task_returns",
    "per_task_success",
    "reference_returns",
    "reference_rng",
    "run_evaluation",
    "student_t_cdf",
    "student_t_ppf",
    "t_interval",
    "task_to_json",
    "validation_tasks",
]
