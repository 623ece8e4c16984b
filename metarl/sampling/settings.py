"""Sampling settings: how many tasks and episodes an iteration samples, and on how many sub-environments."""

from __future__ import annotations

from dataclasses import dataclass

from metarl.config import TrainConfig
from metarl.config.rules import budget_lanes_problem


def envs_per_task(episodes_per_task: int, step_budget: bool = False, budget_lanes: int = 0) -> int:
    """How many sub-environments each task runs on: one per episode, or ``budget_lanes`` with a step budget.

    With ``step_budget`` and ``budget_lanes > 0``, a task's budget of
    ``episodes_per_task × horizon`` steps is shared by ``budget_lanes`` sub-environments,
    each running ``episodes_per_task / budget_lanes`` horizons of steps (``1``: one
    environment per task, the MAML paper code's sampler). ``budget_lanes = 0``: one per episode.

    Args:
        episodes_per_task: Episodes per task.
        step_budget: Whether each task samples a budget of steps.
        budget_lanes: Sub-environments sharing a task's budget (0: one per episode).
    """
    problem = budget_lanes_problem(episodes_per_task, step_budget, budget_lanes)
    if problem is not None:
        raise ValueError(f"budget_lanes {budget_lanes} {problem}")
    return budget_lanes or episodes_per_task


@dataclass(frozen=True)
class SamplingSettings:
    """What one sampling phase draws: ``episodes_per_task`` episodes of each of ``num_tasks`` tasks.

    Args:
        num_tasks: Tasks sampled together (the meta-batch, or the held-out tasks of an evaluation).
        episodes_per_task: Episodes per task, or with ``step_budget`` the task's budget in horizons of steps.
        step_budget: Run each sub-environment's episodes back to back for its budget
            (:class:`~metarl.sampling.collectors.StepBudget`), as the MAML paper's code did.
        budget_lanes: With ``step_budget``: sub-environments sharing a task's budget (0: one per episode).
    An invalid combination is a ``ValueError`` naming the rule it breaks.
    """

    num_tasks: int
    episodes_per_task: int
    step_budget: bool = False
    budget_lanes: int = 0

    def __post_init__(self) -> None:
        if self.num_tasks < 1 or self.episodes_per_task < 1:
            raise ValueError(
                f"sampling needs at least one task and one episode per task, got {self.num_tasks} × "
                f"{self.episodes_per_task}"
            )
        envs_per_task(self.episodes_per_task, self.step_budget, self.budget_lanes)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> SamplingSettings:
        """The training sampler's settings: ``cfg.meta_batch_size`` tasks × ``cfg.episodes_per_task``."""
        return cls(cfg.meta_batch_size, cfg.episodes_per_task, cfg.step_budget, cfg.budget_lanes)

    @property
    def envs_per_task(self) -> int:
        """Sub-environments per task (:func:`envs_per_task`)."""
        return envs_per_task(self.episodes_per_task, self.step_budget, self.budget_lanes)

    @property
    def num_envs(self) -> int:
        """Sub-environments the batched env must hold: ``num_tasks × envs_per_task``."""
        return self.num_tasks * self.envs_per_task

    @property
    def budget_horizons(self) -> int:
        """Horizons of steps each sub-environment runs (1 without a step budget)."""
        return self.episodes_per_task // self.envs_per_task if self.step_budget else 1
