r"""Example of a MuJoCo task family of your own, single and batched: a two-joint arm reaching a goal it does not see.

Each task is a goal position on the table, drawn as Gymnasium's Reacher draws its target (uniform
in the disk of radius 0.2). Unlike Reacher-v5 the policy does not observe the goal: it must find it
from its rewards, which is what adaptation is for. Two classes, one registration:

* :class:`ReacherGoalEnv`, the single environment: a subclass of Gymnasium's ``ReacherEnv`` with
  the task API; ``metarl check-env`` and the rendering of videos use it;
* :class:`BatchedReacherGoal`, the same family on one ``mujoco.batch`` (a
  :class:`metarl.tasks.mujoco_family.BatchedMujocoTaskEnv`): its observation, reward and reset
  are the single env's, written in numpy for all sub-environments at once.

From the repository root::

    metarl check-env scripts.examples.reacher_goal:examples/ReacherGoal-v0
    metarl train --config 2d-navigation --env_id scripts.examples.reacher_goal:examples/ReacherGoal-v0 \\
        --horizon 50 --hidden_sizes "[64, 64]"

docs/custom-envs.md walks through it; ``benchmarks/mujoco_family.py`` times both against the raw physics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

from metarl import register_task_env
from metarl.tasks.mujoco_family import BatchedMujocoTaskEnv

XML = str(Path(gym.__file__).parent / "envs" / "mujoco" / "assets" / "reacher.xml")
"""Gymnasium's Reacher model: two links, a fingertip, and a target on two slide joints (the last two qpos)."""
FRAME_SKIP = 2
"""Physics steps per control step, as Reacher-v5."""
GOAL_RADIUS = 0.2
TOP_DOWN_CAMERA: dict[str, float | int] = {"trackbodyid": 0, "distance": 0.55, "elevation": -90.0, "azimuth": 90.0}
"""Rendering: straight down on the table, the arm's reach (0.21 m) and the goal's disk in the frame."""


@dataclass(frozen=True)
class GoalTask:
    """Reach the point ``goal = (x, y)`` with the fingertip."""

    goal: tuple[float, float]


def sample_goals(n: int, rng: np.random.Generator) -> list[GoalTask]:
    """``n`` goals uniform in the disk of radius 0.2, drawn as Reacher-v5 draws its target."""
    goals = []
    while len(goals) < n:
        goal = rng.uniform(low=-GOAL_RADIUS, high=GOAL_RADIUS, size=2)
        if np.linalg.norm(goal) < GOAL_RADIUS:
            goals.append(GoalTask((float(goal[0]), float(goal[1]))))
    return goals


def reset_state(
    rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray, goal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reacher-v5's reset with the task's goal instead of a drawn one: the same draws from ``rng``, in order."""
    qpos = rng.uniform(low=-0.1, high=0.1, size=len(init_qpos)) + init_qpos
    qpos[-2:] = goal
    qvel = init_qvel + rng.uniform(low=-0.005, high=0.005, size=len(init_qvel))
    qvel[-2:] = 0.0
    return qpos, qvel


class ReacherGoalEnv(ReacherEnv):
    """Reacher-v5 with a task: a goal the policy does not observe.

    ## Observation space

    ``Box(-inf, inf, (8,), float32)``: the cosines and sines of the two joint angles, the two
    joint velocities, and the fingertip's x, y (Reacher-v5's observation without the target).

    ## Rewards

    Reacher-v5's: ``-||fingertip - goal|| - ||a||^2`` (``reward_dist_weight``,
    ``reward_control_weight`` as there).

    ## Starting state

    Reacher-v5's noise on the arm; the target at the task's goal.
    """

    def __init__(self, task: GoalTask | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("default_camera_config", TOP_DOWN_CAMERA)  # the arm and its goal fill the frame
        super().__init__(**kwargs)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float32)
        self._task = task or GoalTask((0.1, 0.1))

    def sample_tasks(self, n: int) -> list[GoalTask]:
        """Draw ``n`` goals with the env's ``np_random``."""
        return sample_goals(n, self.np_random)

    def set_task(self, task: GoalTask) -> None:
        """Reach ``task.goal`` from the next reset on."""
        self._task = task

    def get_task(self) -> GoalTask:
        """The current task."""
        return self._task

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Reacher-v5's step with the action in float64, as the batched env takes it."""
        return super().step(np.asarray(action, dtype=np.float64))

    def reset_model(self) -> np.ndarray:
        """Reacher-v5's reset with the task's goal as the target."""
        qpos, qvel = reset_state(self.np_random, self.init_qpos, self.init_qvel, np.asarray(self._task.goal))
        self.goal = qpos[-2:].copy()
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        theta = self.data.qpos[:2]
        fingertip = self.get_body_com("fingertip")[:2]
        return np.concatenate([np.cos(theta), np.sin(theta), self.data.qvel[:2], fingertip]).astype(np.float32)


class BatchedReacherGoal(BatchedMujocoTaskEnv[GoalTask]):
    """``num_envs`` :class:`ReacherGoalEnv` sub-environments on one ``mujoco.batch``, equal to them step for step.

    Args:
        num_envs: sub-environments.
        max_episode_steps: the horizon.
        nthread: the batch's threads (default: all CPUs).
        reward_dist_weight: the weight of the distance, as Reacher-v5's.
        reward_control_weight: the weight of ``||a||^2``, as Reacher-v5's.
    """

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int = 50,
        *,
        nthread: int | None = None,
        reward_dist_weight: float = 1.0,
        reward_control_weight: float = 1.0,
    ) -> None:
        model = mujoco.MjModel.from_xml_path(XML)
        self._fingertip, self._target = model.body("fingertip").id, model.body("target").id
        self.reward_dist_weight, self.reward_control_weight = float(reward_dist_weight), float(reward_control_weight)
        super().__init__(
            num_envs, max_episode_steps, model=model, observation_size=8, frame_skip=FRAME_SKIP, nthread=nthread
        )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        """Draw ``n`` goals with ``rng`` (the single env's draws)."""
        return sample_goals(n, rng)

    def default_task(self) -> GoalTask:
        """The single env's default goal."""
        return GoalTask((0.1, 0.1))

    def task_parameters(self, tasks: Sequence[GoalTask]) -> np.ndarray:
        """The goals, ``(n, 2)``."""
        return np.array([task.goal for task in tasks], dtype=np.float64).reshape(len(tasks), 2)

    def bind_fields(self) -> None:
        """The bodies' positions: the fingertip's and the target's."""
        self._xpos = self.bind("xpos")

    def reset_state(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The single env's reset, with sub-environment ``index``'s goal."""
        return reset_state(rng, self.init_qpos, self.init_qvel, self.task_params[index])

    def observe(self) -> np.ndarray:
        """Joint cosines and sines, joint velocities, fingertip x, y of every sub-environment."""
        theta = self.qpos[:, :2]
        fingertip = self._xpos[:, self._fingertip, :2]
        return np.concatenate([np.cos(theta), np.sin(theta), self.qvel[:, :2], fingertip], axis=1)

    def reward(self, action: np.ndarray, diverged: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``-||fingertip - target|| - ||a||^2`` of every sub-environment (weights as Reacher-v5's)."""
        distance = np.linalg.norm(self._xpos[:, self._fingertip] - self._xpos[:, self._target], axis=-1)
        reward_dist = -distance * self.reward_dist_weight
        reward_ctrl = -np.square(action).sum(axis=-1) * self.reward_control_weight
        return reward_dist + reward_ctrl, {"reward_dist": reward_dist, "reward_ctrl": reward_ctrl}


register_task_env(
    "examples/ReacherGoal-v0",
    entry_point=ReacherGoalEnv,
    batched_entry_point=BatchedReacherGoal,
    max_episode_steps=50,
)
