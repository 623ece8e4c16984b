"""Locomotion tasks and the task families that sample and score them.

A task is a small frozen dataclass. A *task family* (:class:`TaskFamily`) knows its
task type, how to sample tasks, how to pack them into a float array (one row per
task), and the task-dependent part of the reward, written once in numpy for any
leading batch shape so that the single environment and the batched one compute the
same number.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, cast

import numpy as np

from metarl.tasks.protocol import TaskT


@dataclass(frozen=True)
class VelocityTask:
    """Run forwards (along +x) at ``goal_velocity`` metres per second."""

    goal_velocity: float


@dataclass(frozen=True)
class DirectionTask:
    """Run as fast as possible forwards (``direction=1``) or backwards (``-1``)."""

    direction: int

    def __post_init__(self) -> None:
        if self.direction not in (-1, 1):
            raise ValueError(f"DirectionTask.direction must be -1 or 1, got {self.direction!r}")


@dataclass(frozen=True)
class GoalTask:
    """Walk to the position ``goal = (x, y)`` in metres."""

    goal: tuple[float, float]


class TaskFamily(abc.ABC, Generic[TaskT]):
    """A distribution over tasks of one type and the task term of their reward."""

    task_type: ClassVar[type]
    """The dataclass of this family's tasks."""

    @abc.abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> list[TaskT]:
        """Draw ``n`` tasks with ``rng``."""

    @abc.abstractmethod
    def default_task(self) -> TaskT:
        """The task an environment has before ``set_task`` is called."""

    @abc.abstractmethod
    def encode(self, tasks: Sequence[TaskT]) -> np.ndarray:
        """Pack ``tasks`` into a float64 array of shape ``(len(tasks), k)``."""

    @abc.abstractmethod
    def reward(self, params: np.ndarray, x_velocity: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Task term of the reward for any leading shape ``...``.

        ``params`` is ``(..., k)`` from :meth:`encode`, ``x_velocity`` is ``(...)``
        and ``xy``, the torso position after the step, is ``(..., 2)``.

        Args:
            params: The tasks' parameters ``(..., k)``.
            x_velocity: The torso's x velocity ``(...)``.
            xy: The torso's position after the step ``(..., 2)``.
        """

    def group(self, task: TaskT) -> str | None:
        """The group evaluation reports ``task`` in (``None``: the family has no groups)."""
        return None

    def check(self, task: object) -> TaskT:
        """Return ``task`` if it has this family's type, else raise ``TypeError``."""
        if not isinstance(task, self.task_type):
            raise TypeError(f"{type(self).__name__}: expected a {self.task_type.__name__}, got {type(task).__name__}")
        return cast(TaskT, task)  # task_type is TaskT (a ClassVar cannot say so)


@dataclass(frozen=True)
class GoalVelocityFamily(TaskFamily[VelocityTask]):
    """Goal velocities ``~ U[low, high]``; task term ``-|v - v_goal| + offset``."""

    low: float
    high: float
    offset: float = 0.0
    task_type = VelocityTask

    def sample(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        """Draw ``n`` goal velocities uniformly from ``[low, high]``."""
        return [VelocityTask(goal_velocity=float(v)) for v in rng.uniform(self.low, self.high, size=n)]

    def default_task(self) -> VelocityTask:
        """The middle of the range."""
        return VelocityTask(goal_velocity=0.5 * (self.low + self.high))

    def encode(self, tasks: Sequence[VelocityTask]) -> np.ndarray:
        """``(n, 1)``: the goal velocities."""
        return np.array([[self.check(t).goal_velocity] for t in tasks], dtype=np.float64).reshape(-1, 1)

    def reward(self, params: np.ndarray, x_velocity: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``-|v - v_goal| + offset``.

        Args:
            params: The goal velocities ``(..., 1)``.
            x_velocity: The torso's x velocity ``(...)``.
            xy: Unused.
        """
        return -np.abs(x_velocity - params[..., 0]) + self.offset


@dataclass(frozen=True)
class DirectionFamily(TaskFamily[DirectionTask]):
    """Directions ``±1`` with probability 1/2 each; task term ``direction * v``."""

    task_type = DirectionTask

    def sample(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        """Draw ``n`` directions, each ``-1`` or ``1`` with probability 1/2."""
        return [DirectionTask(direction=int(d)) for d in 2 * rng.integers(0, 2, size=n) - 1]

    def default_task(self) -> DirectionTask:
        """Forwards."""
        return DirectionTask(direction=1)

    def group(self, task: DirectionTask) -> str:
        """``"forward"`` or ``"backward"``: evaluation reports the two directions apart as well."""
        return "forward" if self.check(task).direction > 0 else "backward"

    def encode(self, tasks: Sequence[DirectionTask]) -> np.ndarray:
        """``(n, 1)``: the directions."""
        return np.array([[self.check(t).direction] for t in tasks], dtype=np.float64).reshape(-1, 1)

    def reward(self, params: np.ndarray, x_velocity: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``direction * v``.

        Args:
            params: The directions ``(..., 1)``, +1 or −1.
            x_velocity: The torso's x velocity ``(...)``.
            xy: Unused.
        """
        return params[..., 0] * x_velocity


@dataclass(frozen=True)
class GoalPositionFamily(TaskFamily[GoalTask]):
    """Goals ``~ U[low, high]^2``; task term ``-||xy - goal||_1 + offset``."""

    low: float
    high: float
    offset: float = 0.0
    task_type = GoalTask

    def sample(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        """Draw ``n`` goals uniformly from the square ``[low, high]^2``."""
        return [GoalTask(goal=(float(x), float(y))) for x, y in rng.uniform(self.low, self.high, size=(n, 2))]

    def default_task(self) -> GoalTask:
        """The origin."""
        return GoalTask(goal=(0.0, 0.0))

    def encode(self, tasks: Sequence[GoalTask]) -> np.ndarray:
        """``(n, 2)``: the goal positions."""
        return np.array([self.check(t).goal for t in tasks], dtype=np.float64).reshape(-1, 2)

    def reward(self, params: np.ndarray, x_velocity: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``-||xy - goal||_1 + offset``.

        Args:
            params: The goal positions ``(..., 2)``.
            x_velocity: Unused.
            xy: The torso's position after the step ``(..., 2)``.
        """
        return -np.sum(np.abs(xy - params), axis=-1) + self.offset
