"""HalfCheetah task families: run at a goal velocity, or forwards/backwards.

The MAML paper's HalfCheetah tasks on Gymnasium's HalfCheetah-v5 (its model, reset
and observation), each as a single Gymnasium environment and as a batched
environment on ``mujoco.batch`` that agrees with it step for step.

Versions (Gymnasium style):

* ``metarl/HalfCheetahVel-v0``, ``metarl/HalfCheetahDir-v0``: HalfCheetah-v5's
  simulation, a control step of 5 physics steps of 0.01 s (``dt = 0.05`` s, 10 s
  episodes of 200 steps). Rendering (``render_mode="rgb_array"``) follows the torso
  with a tracking camera; that changes no observation, reward or dynamics.
* ``-v1`` (``paper_dynamics=True``): the MAML paper's simulation. Its rllab HalfCheetah
  (``half_cheetah.xml`` with a 0.01 s timestep and no ``frame_skip``) stepped the physics
  once per control step, so ``dt = 0.01`` s and a 200-step episode lasts 2 s. The same
  model, observation, reset and reward otherwise (rllab also clipped the action before its
  control cost, observed the torso's centre of mass, and rewarded its velocity).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import EzPickle

from envs.locomotion.base import BatchedLocomotionEnv, LocomotionTaskMixin
from envs.locomotion.models import TRACKING_CAMERA, control_frame_skip, gym_asset, half_cheetah_model
from envs.locomotion.tasks import DirectionFamily, GoalVelocityFamily
from metarl.tasks.mujoco_family import finite_float32

CTRL_COST_WEIGHT = 0.05
"""Weight of ``||a||^2`` in the reward (the MAML paper's ``0.5 * 0.1``)."""

_SPACES_DOC = """
    ## Action space

    ``Box(-1, 1, (6,), float32)``: torques on the six hinges, scaled by the motors'
    gears (bthigh 120, bshin 90, bfoot 60, fthigh 120, fshin 60, ffoot 30).

    | index | action                          | range   |
    |-------|---------------------------------|---------|
    | 0     | torque on the back thigh rotor  | [-1, 1] |
    | 1     | torque on the back shin rotor   | [-1, 1] |
    | 2     | torque on the back foot rotor   | [-1, 1] |
    | 3     | torque on the front thigh rotor | [-1, 1] |
    | 4     | torque on the front shin rotor  | [-1, 1] |
    | 5     | torque on the front foot rotor  | [-1, 1] |

    ## Observation space

    ``Box(-inf, inf, (17,), float32)``, HalfCheetah-v5's observation (with
    ``exclude_current_positions_from_observation=False`` the x position is
    prepended and the shape is ``(18,)``):

    | index | observation                              | unit  |
    |-------|------------------------------------------|-------|
    | 0     | z of the torso (rootz)                   | m     |
    | 1     | pitch angle of the torso (rooty)         | rad   |
    | 2-4   | back thigh, shin, foot angles            | rad   |
    | 5-7   | front thigh, shin, foot angles           | rad   |
    | 8     | x velocity of the torso (rootx)          | m/s   |
    | 9     | z velocity of the torso (rootz)          | m/s   |
    | 10    | pitch angular velocity (rooty)           | rad/s |
    | 11-13 | back thigh, shin, foot angular velocity  | rad/s |
    | 14-16 | front thigh, shin, foot angular velocity | rad/s |

    ## Starting state

    HalfCheetah-v5's: the default pose plus ``U[-0.1, 0.1]`` noise on every
    position and ``0.1 * N(0, 1)`` noise on every velocity, drawn with ``np_random``.

    ## Episode end

    * Termination: only if the simulation diverges (MuJoCo reports a non-finite
      state, which it then resets); the reward of that step is 0. The batched env
      also sets ``info["diverged"]`` for it, so the sampler drops and counts that episode.
    * Truncation: after ``max_episode_steps`` (200 when made with ``gymnasium.make``).

    ## Arguments

    ``task`` (the initial task), ``ctrl_cost_weight`` (0.05),
    ``reset_noise_scale`` (0.1), ``exclude_current_positions_from_observation``
    (True), ``paper_dynamics`` (False for ``-v0``, True for ``-v1``: one 0.01 s physics
    step per control step), ``clip_control_cost`` (False: the control cost of the action as
    given; True: of the action clipped to its bounds, as the paper's rllab HalfCheetah
    computed it — the physics clips it either way), and HalfCheetah-v5's rendering arguments.
"""


class HalfCheetahTaskEnv(LocomotionTaskMixin, HalfCheetahEnv):  # type: ignore[misc]  # the mixin's step: a float reward
    """HalfCheetah-v5 whose reward depends on a task; the families subclass it.

    The reward is ``task_term(v) - ctrl_cost_weight * ||a||^2``, where ``v`` is the
    torso's x velocity over the control step: the change of ``qpos[0]`` over
    ``dt = 0.05`` s (5 physics steps of 0.01 s; with ``paper_dynamics``, 0.01 s, one
    physics step). Override :meth:`_get_rew` to change it.
    """

    def __init__(
        self,
        task: Any | None = None,
        *,
        ctrl_cost_weight: float = CTRL_COST_WEIGHT,
        reset_noise_scale: float = 0.1,
        exclude_current_positions_from_observation: bool = True,
        paper_dynamics: bool = False,
        clip_control_cost: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("default_camera_config", TRACKING_CAMERA)
        self.paper_dynamics = bool(paper_dynamics)
        self.clip_control_cost = bool(clip_control_cost)
        super().__init__(
            xml_file=gym_asset("half_cheetah.xml"),
            frame_skip=control_frame_skip(self.paper_dynamics),
            ctrl_cost_weight=ctrl_cost_weight,
            reset_noise_scale=reset_noise_scale,
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
            **kwargs,
        )
        EzPickle.__init__(
            self,
            task,
            ctrl_cost_weight=ctrl_cost_weight,
            reset_noise_scale=reset_noise_scale,
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
            paper_dynamics=paper_dynamics,
            clip_control_cost=clip_control_cost,
            **kwargs,
        )
        assert self.observation_space.shape is not None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=self.observation_space.shape, dtype=np.float32)
        self._init_task(task)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = half_cheetah_model()  # the file's model, without its deprecated compiler attribute
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _get_obs(self) -> np.ndarray:
        return finite_float32(super()._get_obs())

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        """Reward of a step and its components."""
        # HalfCheetah moves in the x-z plane: its position in the ground plane is (x, 0)
        xy = np.array([self.data.qpos[0], 0.0])
        task_reward = float(self.family.reward(self._params, np.asarray(x_velocity, dtype=np.float64), xy))
        if self.clip_control_cost:
            action = np.clip(action, self.model.actuator_ctrlrange[:, 0], self.model.actuator_ctrlrange[:, 1])
        ctrl_cost = float(self.control_cost(action))
        return task_reward - ctrl_cost, {"reward_task": task_reward, "reward_ctrl": -ctrl_cost}


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """HalfCheetah that must run forwards at a goal velocity (MAML's cheetah-vel).

    ## Tasks

    :class:`~envs.locomotion.tasks.VelocityTask`: a goal velocity ``v_goal ~ U[0, 2]``
    m/s. ``sample_tasks(n)`` draws with the env's ``np_random``; ``set_task`` and
    ``get_task`` set and read the current one (default ``v_goal = 1``).

    ## Rewards

    ``reward = -|v - v_goal| - 0.05 * ||a||^2``, with ``v`` the torso's x velocity
    over the control step (change of ``qpos[0]`` divided by ``dt``: 0.05 s, or 0.01 s
    with ``paper_dynamics``).
    """

    family = GoalVelocityFamily(low=0.0, high=2.0)


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """HalfCheetah that must run forwards or backwards (MAML's cheetah-dir).

    ## Tasks

    :class:`~envs.locomotion.tasks.DirectionTask`: ``direction`` is ``+1``
    (forwards) or ``-1`` (backwards) with probability 1/2 each. ``sample_tasks(n)``
    draws with the env's ``np_random``; ``set_task`` and ``get_task`` set and read
    the current one (default ``+1``).

    ## Rewards

    ``reward = direction * v - 0.05 * ||a||^2``, with ``v`` the torso's x velocity
    over the control step (change of ``qpos[0]`` divided by ``dt``: 0.05 s, or 0.01 s
    with ``paper_dynamics``).
    """

    family = DirectionFamily()


for _cls in (HalfCheetahTaskEnv, HalfCheetahVelEnv, HalfCheetahDirEnv):
    _cls.__doc__ = (_cls.__doc__ or "") + _SPACES_DOC


class BatchedHalfCheetah(BatchedLocomotionEnv):
    """``num_envs`` HalfCheetah task sub-environments stepped in one ``mujoco.batch`` call.

    Observations, actions, rewards and terminations are those of the single env of
    the same family (:class:`HalfCheetahTaskEnv`), which it matches step for step.
    """

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int = 200,
        *,
        ctrl_cost_weight: float = CTRL_COST_WEIGHT,
        reset_noise_scale: float = 0.1,
        exclude_current_positions_from_observation: bool = True,
        paper_dynamics: bool = False,
        clip_control_cost: bool = False,
        nthread: int | None = None,
    ) -> None:
        model = half_cheetah_model()
        self.paper_dynamics = bool(paper_dynamics)
        self.clip_control_cost = bool(clip_control_cost)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self._skip = 1 if exclude_current_positions_from_observation else 0
        super().__init__(
            num_envs,
            max_episode_steps,
            model=model,
            observation_size=model.nq - self._skip + model.nv,
            reset_noise_scale=reset_noise_scale,
            frame_skip=control_frame_skip(self.paper_dynamics),
            nthread=nthread,
        )

    def observe(self) -> np.ndarray:
        """Positions (without x unless observed) and velocities of every cheetah."""
        return np.concatenate((self.qpos[:, self._skip :], self.qvel), axis=1)

    def locomotion_reward(
        self, x_velocity: np.ndarray, action: np.ndarray, diverged: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The task term of the torso's x velocity minus the control cost, for every sub-environment.

        Args:
            x_velocity: The torso's x velocity ``[N]`` over the step.
            action: The actions ``[N, 6]``.
            diverged: Which sub-environments' physics diverged ``[N]`` (the family sets their reward to 0 after).
        """
        xy = np.zeros((self.num_envs, 2))
        xy[:, 0] = self.qpos[:, 0]
        task_reward = self.family.reward(self.task_params, x_velocity, xy)
        if self.clip_control_cost:
            action = np.clip(action, self.model.actuator_ctrlrange[:, 0], self.model.actuator_ctrlrange[:, 1])
        ctrl_cost = self.ctrl_cost_weight * np.sum(np.square(action), axis=-1)
        return task_reward - ctrl_cost, {"reward_task": task_reward, "reward_ctrl": -ctrl_cost}

    def terminated(self, diverged: np.ndarray) -> np.ndarray:
        """A cheetah's episode ends only when its simulation diverges."""
        return diverged.copy()


class BatchedHalfCheetahVel(BatchedHalfCheetah):
    """Batched :class:`HalfCheetahVelEnv`: goal velocity ``~ U[0, 2]``."""

    family = HalfCheetahVelEnv.family


class BatchedHalfCheetahDir(BatchedHalfCheetah):
    """Batched :class:`HalfCheetahDirEnv`: direction ``±1``."""

    family = HalfCheetahDirEnv.family
