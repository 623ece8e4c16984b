"""What every locomotion task environment shares, single and batched.

* :class:`LocomotionTaskMixin` adds the task API and divergence-checked stepping to a
  Gymnasium MuJoCo environment.
* :class:`BatchedLocomotionEnv` runs ``num_envs`` copies of a robot on one
  ``mujoco.batch.Batch``, as metarl's base for MuJoCo task families
  (:class:`metarl.tasks.mujoco_family.BatchedMujocoTaskEnv`) does for any family:
  one call steps every sub-environment with the GIL released; observations, rewards and
  terminations are numpy on the batch's bound arrays. Robot subclasses only say how to
  read observations and rewards off those arrays.

A sub-environment reset with seed ``s`` starts from the same state as the single
environment reset with seed ``s``, and the two then agree step for step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import mujoco
import mujoco.batch
import numpy as np

from envs.locomotion.models import DIVERGENCE_WARNINGS, FRAME_SKIP
from envs.locomotion.tasks import TaskFamily
from metarl.tasks.mujoco_family import BatchedMujocoTaskEnv
from metarl.tasks.protocol import Task


class LocomotionTaskMixin:
    """Task API and divergence-checked stepping for a Gymnasium ``MujocoEnv``.

    Put it before the ``MujocoEnv`` subclass in the bases and set ``family``.
    """

    family: ClassVar[TaskFamily[Any]]
    """The task family: sampler, task type and task term of the reward."""

    model: mujoco.MjModel
    data: mujoco.MjData
    frame_skip: int
    np_random: np.random.Generator

    def _init_task(self, task: Any | None) -> None:
        if not hasattr(self, "family"):
            raise TypeError(f"{type(self).__name__} has no task family; use one of its family subclasses")
        self._task = self.family.check(task) if task is not None else self.family.default_task()
        self._params = self.family.encode([self._task])[0]
        self._diverged = False

    def sample_tasks(self, n: int) -> list[Task]:
        """Draw ``n`` tasks with the env's own ``np_random``."""
        return self.family.sample(n, self.np_random)

    def task_group(self, task: Task) -> str | None:
        """The family's group of ``task`` (the direction families: forward or backward; others: ``None``)."""
        return self.family.group(task)

    def set_task(self, task: Any) -> None:
        """Make ``task`` the current task (it applies from the next step on)."""
        self._task = self.family.check(task)
        self._params = self.family.encode([task])[0]

    def get_task(self) -> Any:
        """Return the current task."""
        return self._task

    def _simulate(self, action: np.ndarray) -> bool:
        """Run ``frame_skip`` physics steps with ``action``; return whether they diverged.

        MuJoCo resets a simulation whose state turns non-finite (and says so with a
        warning), so divergence shows as a rise of those warning counters, a MuJoCo
        error, or a non-finite state.
        """
        before = sum(self.data.warning[w].number for w in DIVERGENCE_WARNINGS)
        try:
            self.do_simulation(action, self.frame_skip)  # type: ignore[attr-defined]
        except mujoco.FatalError:
            self._diverged = True
            return True
        after = sum(self.data.warning[w].number for w in DIVERGENCE_WARNINGS)
        finite = np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all()
        self._diverged = bool(after != before or not finite)
        return self._diverged

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One control step: simulate, observe, reward (0 if the physics diverged), end if :meth:`_terminated`."""
        action = np.asarray(action, dtype=np.float64)
        x_before = self.data.qpos[0]
        diverged = self._simulate(action)
        x_velocity = (self.data.qpos[0] - x_before) / self.dt  # type: ignore[attr-defined]
        observation = self._get_obs()  # type: ignore[attr-defined]
        reward, info = self._get_rew(x_velocity, action)  # type: ignore[attr-defined]
        if diverged:
            reward = 0.0
        terminated = self._terminated(diverged)
        info.update(self._position_info(), x_velocity=float(x_velocity))
        if self.render_mode == "human":  # type: ignore[attr-defined]
            self.render()  # type: ignore[attr-defined]
        return observation, reward, terminated, False, info

    def _terminated(self, diverged: bool) -> bool:
        """Whether the episode ends after this step (the robot's hook: HalfCheetah only on divergence)."""
        return diverged

    def _position_info(self) -> dict[str, float]:
        """The torso's position entries of a step's ``info``."""
        return {"x_position": float(self.data.qpos[0])}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to the initial pose plus noise drawn with ``np_random``."""
        self._diverged = False
        return super().reset(seed=seed, options=options)  # type: ignore[misc]


class BatchedLocomotionEnv(BatchedMujocoTaskEnv[Task]):
    """``num_envs`` sub-environments of one robot on a ``mujoco.batch.Batch`` (:class:`BatchedMujocoTaskEnv`).

    The locomotion families' part: tasks come from ``family``; a step's torso velocity along x,
    ``(qpos[0] after − qpos[0] before) / dt``, goes to the robot's :meth:`locomotion_reward` and
    into ``info["x_velocity"]``. Robots implement :meth:`observe`, :meth:`locomotion_reward` and,
    if they end episodes, :meth:`terminated`.
    """

    family: ClassVar[TaskFamily[Any]]

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int,
        *,
        model: mujoco.MjModel,
        observation_size: int,
        reset_noise_scale: float,
        nthread: int | None = None,
        frame_skip: int = FRAME_SKIP,
        init_qpos: np.ndarray | None = None,
    ) -> None:
        super().__init__(
            num_envs,
            max_episode_steps,
            model=model,
            observation_size=observation_size,
            frame_skip=frame_skip,
            reset_noise_scale=reset_noise_scale,
            nthread=nthread,
            init_qpos=init_qpos,
        )
        self._x_velocity = np.zeros(num_envs)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` tasks with ``rng``."""
        return self.family.sample(n, rng)

    def default_task(self) -> Task:
        """The family's default task."""
        return self.family.default_task()

    def task_parameters(self, tasks: Sequence[Task]) -> np.ndarray:
        """The family's encoding of ``tasks``."""
        return self.family.encode(tasks)

    def task_features(self, task: Task) -> np.ndarray:
        """The task as the oracle sees it: the family's encoding (goal velocity, direction or goal)."""
        return self.family.encode([task])[0].astype(np.float32)

    def task_group(self, task: Task) -> str | None:
        """The family's group of ``task`` (the direction families: forward or backward; others: ``None``)."""
        return self.family.group(task)

    @abc.abstractmethod
    def locomotion_reward(
        self, x_velocity: np.ndarray, action: np.ndarray, diverged: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards of all sub-environments and their components, given the torso's x velocity.

        Args:
            x_velocity: The torso's x velocity ``[N]`` over the step.
            action: The actions ``[N, action_dim]``.
            diverged: Which sub-environments' physics diverged ``[N]``.
        """

    def reward(self, action: np.ndarray, diverged: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`locomotion_reward` of the step's torso velocity along x."""
        self._x_velocity = (self.qpos[:, 0] - self.qpos_before[:, 0]) / self.dt
        return self.locomotion_reward(self._x_velocity, action, diverged)

    def step_info(self) -> dict[str, np.ndarray]:
        """The torso's x velocity of the step."""
        return {"x_velocity": self._x_velocity}
