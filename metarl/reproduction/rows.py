"""The rows of the MAML paper's Figure 5 that metarl reproduces, and how each is evaluated.

Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017 (https://arxiv.org/abs/1703.03400), Figure 5: mean return per
episode on held-out tasks after 1, 2 and 3 inner gradient steps of a policy
meta-trained with one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Figure 5 and the protocol that reproduces it.

    Args:
        name: the row's name, also its results folder (``results/<name>``).
        title: the task family in words.
        preset: the shipped preset that trains it.
        paper: the paper's mean return after 1, 2 and 3 inner steps.
        seeds: the seeds whose results the pages report.
        episodes_per_step: evaluation episodes per task and inner step (``None``: the
            preset's ``episodes_per_task``).
        step_budget: evaluate with a step budget per task (the paper code's sampling).
        baseline_iterations: meta-iterations of the pretrained baseline (TRPO on all tasks).
        mujoco: the family simulates on ``mujoco.batch`` (its thread count is set per seed).
    """

    name: str
    title: str
    preset: str
    paper: tuple[float, float, float]
    seeds: tuple[int, ...]
    episodes_per_step: int | None = None
    step_budget: bool = False
    baseline_iterations: int = 200
    mujoco: bool = True

    def one_step_bound(self) -> float:
        """The weakest one-step return a seed may have and still count as reproducing the row.

        Within 25 % of the paper's number: at least 0.8× a positive one, at most 1.25× a negative one.
        """
        value = self.paper[0]
        return 0.8 * value if value > 0 else 1.25 * value


NUM_TASKS = 40
"""Held-out tasks per evaluation."""
EVAL_SEED = 0
"""The evaluation seed of the reported numbers (the held-out tasks)."""
NUM_STEPS = 3
"""Inner steps evaluated."""
BASELINE_LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""The inner learning rates among which each baseline's is chosen on validation tasks (``--choose-lr``): a fair
comparison, since a pretrained or random policy may want another step than MAML's ``fast_lr``."""

ROWS: tuple[PaperRow, ...] = (
    PaperRow(
        "2d-navigation",
        "2D navigation",
        "2d-navigation",
        (-11.7, -3.3, -3.2),
        seeds=(1, 2, 3, 4, 5),
        episodes_per_step=40,
        baseline_iterations=100,
        mujoco=False,
    ),
    PaperRow("halfcheetah-vel", "HalfCheetah goal velocity", "halfcheetah-vel", (-78.6, -66.6, -60.8), seeds=(1, 2, 3)),
    PaperRow(
        "halfcheetah-dir", "HalfCheetah forward/backward", "halfcheetah-dir", (293.2, 313.5, 315.7), seeds=(1, 2, 3)
    ),
    PaperRow("ant-vel", "Ant goal velocity", "ant-vel", (96.7, 100.1, 101.4), seeds=(1, 2, 3)),
    PaperRow(
        "ant-dir",
        "Ant forward/backward",
        "ant-dir",
        (499.2, 500.7, 499.1),
        seeds=(1, 2, 3),
        episodes_per_step=40,
        step_budget=True,
    ),
)
"""The paper's reinforcement-learning rows, in its order."""


def row_named(name: str) -> PaperRow:
    """The row called ``name``; a ``ValueError`` listing the rows otherwise."""
    for row in ROWS:
        if row.name == name:
            return row
    raise ValueError(f"unknown row {name!r}; the rows are {', '.join(r.name for r in ROWS)}")


__all__ = ["BASELINE_LR_GRID", "EVAL_SEED", "NUM_STEPS", "NUM_TASKS", "ROWS", "PaperRow", "row_named"]
