"""Ant task families: a goal velocity, a direction, or a goal position.

The MAML paper's Ant tasks on Gymnasium's Ant-v5 (its model, reset, observation
and healthy range), each as a single Gymnasium environment and as a batched
environment on ``mujoco.batch`` that agrees with it step for step. The reward
constants are those of the MAML reference implementations.

Two simulations of the same model (``paper_dynamics``):

* ``-v0`` (Ant-v5's): a control step is 5 physics steps of 0.01 s (``dt = 0.05``
  s, an episode of 200 steps lasts 10 s), starting from the model's default pose;
* ``-v1`` (the MAML paper's, whose rllab Ant stepped its 0.02 s physics once per
  control step): ``dt = 0.02`` s (an episode lasts 4 s), starting from the crouched
  pose ``ant.xml`` stores as ``init_qpos``. An env step is one physics step
  instead of five.

Versions (Gymnasium style):

* ``metarl/AntVel-v0``, ``AntDir-v0``, ``AntGoal-v0``: Ant-v5's simulation, above.
* ``metarl/AntVel-v1``, ``AntDir-v1``, ``AntGoal-v1``: the same tasks and rewards on the
  MAML paper's simulation (``paper_dynamics=True``); the presets use these.
* Both: rendering follows the torso with a tracking camera (no change to what is simulated).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.utils import EzPickle

from envs.locomotion.base import BatchedLocomotionEnv, LocomotionTaskMixin
from envs.locomotion.models import TRACKING_CAMERA, ant_initial_qpos, ant_model, control_frame_skip, gym_asset
from envs.locomotion.tasks import DirectionFamily, GoalPositionFamily, GoalVelocityFamily
from metarl.tasks.mujoco_family import finite_float32

CTRL_COST_WEIGHT = 0.005
"""Weight of ``||a||^2`` in the reward (MAML's ``0.5 * 1e-2``)."""
CONTACT_COST_WEIGHT = 5e-4
"""Weight of ``||clip(cfrc_ext, -1, 1)||^2`` in the reward (MAML's ``0.5 * 1e-3``)."""
SURVIVE_REWARD = 0.05
"""Reward for every step the ant is healthy (MAML's survive reward)."""
HEALTHY_Z_RANGE = (0.2, 1.0)
"""The torso height range outside which an episode terminates."""


@dataclass(frozen=True)
class AntSettings:
    """The keyword arguments of every Ant task env, single and batched (written out once).

    ``exclude_current_positions_from_observation=None`` means the family's default
    (``include_positions_by_default``: AntGoal observes its x, y; the others do not).
    """

    ctrl_cost_weight: float = CTRL_COST_WEIGHT
    contact_cost_weight: float = CONTACT_COST_WEIGHT
    healthy_reward: float = SURVIVE_REWARD
    healthy_z_range: tuple[float, float] = HEALTHY_Z_RANGE
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    reset_noise_scale: float = 0.1
    exclude_current_positions_from_observation: bool | None = None
    paper_dynamics: bool = False

    @classmethod
    def split(cls, kwargs: dict[str, Any]) -> tuple[AntSettings, dict[str, Any]]:
        """The Ant settings among ``kwargs``, and the rest (e.g. MujocoEnv's rendering arguments)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names}), {
            k: v for k, v in kwargs.items() if k not in names
        }

    def excludes_positions(self, include_by_default: bool) -> bool:
        """Whether the observation leaves out the torso's x, y."""
        if self.exclude_current_positions_from_observation is None:
            return not include_by_default
        return bool(self.exclude_current_positions_from_observation)


def ant_reward(
    task_reward: np.ndarray, healthy: np.ndarray, action: np.ndarray, contact_forces: np.ndarray, settings: AntSettings
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The Ant's reward and its components, for a batch of ``n`` steps (the single env passes ``n = 1``).

    ``task_reward + survive_reward - ctrl_cost - contact_cost``, with the survive reward on
    healthy steps only, ``ctrl_cost = ctrl_cost_weight · ||a||²`` and ``contact_cost =
    contact_cost_weight · ||clip(cfrc_ext)||²``.

    Args:
        task_reward: the family's task term ``[n]``.
        healthy: whether each step's ant is healthy ``[n]``.
        action: the actions ``[n, 8]``.
        contact_forces: the clipped contact wrenches ``[n, bodies, 6]``.
        settings: the weights.
    """
    survive_reward = healthy * settings.healthy_reward
    ctrl_cost = settings.ctrl_cost_weight * np.sum(np.square(action), axis=-1)
    contact_cost = settings.contact_cost_weight * np.sum(np.square(contact_forces).reshape(len(action), -1), axis=-1)
    reward = task_reward + survive_reward - ctrl_cost - contact_cost
    return reward, {
        "reward_task": task_reward,
        "reward_survive": survive_reward,
        "reward_ctrl": -ctrl_cost,
        "reward_contact": -contact_cost,
    }


_SPACES_DOC = """
    ## Action space

    ``Box(-1, 1, (8,), float32)``: torques on the eight hinges (motor gear 150).

    | index | action                                     | range   |
    |-------|--------------------------------------------|---------|
    | 0, 1  | hip, ankle torque of the back right leg    | [-1, 1] |
    | 2, 3  | hip, ankle torque of the front left leg    | [-1, 1] |
    | 4, 5  | hip, ankle torque of the front right leg   | [-1, 1] |
    | 6, 7  | hip, ankle torque of the back left leg     | [-1, 1] |

    ## Observation space

    ``Box(-inf, inf, (105,), float32)``, Ant-v5's observation; with
    ``exclude_current_positions_from_observation=False`` (the default of AntGoal,
    whose policy must know where it is) the torso's x and y are prepended and the
    shape is ``(107,)``:

    | index  | observation                                        | unit   |
    |--------|----------------------------------------------------|--------|
    | 0      | z of the torso                                     | m      |
    | 1-4    | orientation of the torso (quaternion w, x, y, z)   |        |
    | 5-12   | hip and ankle angles of legs 1-4                   | rad    |
    | 13-15  | x, y, z velocity of the torso                      | m/s    |
    | 16-18  | angular velocity of the torso                      | rad/s  |
    | 19-26  | hip and ankle angular velocities of legs 1-4       | rad/s  |
    | 27-104 | contact wrenches ``cfrc_ext`` of the 13 bodies     | N m, N |

    Legs 1-4 are the front left, front right, back left and back right legs. The
    contact wrenches (6 per body: torque, then force) are clipped to
    ``contact_force_range``.

    The contact forces are computed: the model carries an accelerometer so that
    MuJoCo fills ``cfrc_ext`` (see :func:`envs.locomotion.models.ant_model`).

    ## Starting state

    Ant-v5's: the default pose (torso at z = 0.75) plus ``U[-0.1, 0.1]`` noise on
    every position coordinate and ``0.1 * N(0, 1)`` noise on every velocity, drawn
    with ``np_random``. With ``paper_dynamics`` the pose is the crouched
    ``init_qpos`` of ``ant.xml`` (torso at z = 0.55, ankles at ±1 rad), with the
    same noise.

    ## Episode end

    * Termination: the ant is unhealthy, i.e. its state is not finite, the
      simulation diverged, or the torso height ``z`` leaves ``[0.2, 1.0]``. A
      diverged step's reward is 0; the batched env also sets ``info["diverged"]``
      for it, so the sampler drops and counts that episode.
    * Truncation: after ``max_episode_steps`` (200 when made with ``gymnasium.make``).

    ## Arguments

    ``task`` (the initial task), ``ctrl_cost_weight`` (0.005),
    ``contact_cost_weight`` (5e-4), ``healthy_reward`` (the survive reward, 0.05),
    ``healthy_z_range`` ((0.2, 1.0)), ``contact_force_range`` ((-1, 1)),
    ``reset_noise_scale`` (0.1), ``exclude_current_positions_from_observation``,
    ``paper_dynamics`` (False for ``-v0``, True for ``-v1``: see the module) and
    Ant-v5's rendering arguments.
"""


class AntTaskEnv(LocomotionTaskMixin, AntEnv):  # type: ignore[misc]  # the mixin's step: a float reward
    """Ant-v5 whose reward depends on a task; the families subclass it.

    The reward is ``task_term(v, xy) + survive - ctrl_cost - contact_cost``:

    * ``v``: the torso's x velocity over the control step, the change of ``qpos[0]``
      over ``dt`` (0.05 s: 5 physics steps of 0.01 s; 0.02 s, one physics step,
      with ``paper_dynamics``); ``xy``: the torso's x, y
      after the step;
    * ``survive = healthy_reward`` (0.05) while the ant is healthy, else 0;
    * ``ctrl_cost = ctrl_cost_weight * ||a||^2``;
    * ``contact_cost = contact_cost_weight * ||clip(cfrc_ext, -1, 1)||^2`` over all bodies.

    Override :meth:`_get_rew` to change it.
    """

    include_positions_by_default: ClassVar[bool] = False
    """Whether the observation includes the torso's x, y unless told otherwise."""

    def __init__(self, task: Any | None = None, **kwargs: Any) -> None:
        """Parameters: ``task``, the :class:`AntSettings` fields, and MujocoEnv's rendering arguments."""
        settings, rest = AntSettings.split(kwargs)
        self._settings = settings
        self.paper_dynamics = bool(settings.paper_dynamics)  # read by _initialize_simulation
        rest.setdefault("default_camera_config", TRACKING_CAMERA)
        super().__init__(
            xml_file=gym_asset("ant.xml"),
            frame_skip=control_frame_skip(self.paper_dynamics),
            ctrl_cost_weight=settings.ctrl_cost_weight,
            contact_cost_weight=settings.contact_cost_weight,
            healthy_reward=settings.healthy_reward,
            healthy_z_range=settings.healthy_z_range,
            contact_force_range=settings.contact_force_range,
            reset_noise_scale=settings.reset_noise_scale,
            exclude_current_positions_from_observation=settings.excludes_positions(self.include_positions_by_default),
            include_cfrc_ext_in_observation=True,
            terminate_when_unhealthy=True,
            **rest,
        )
        EzPickle.__init__(self, task, **kwargs)
        self.init_qpos = ant_initial_qpos(self.model, self.paper_dynamics)
        assert self.observation_space.shape is not None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=self.observation_space.shape, dtype=np.float32)
        self._init_task(task)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = ant_model(self.paper_dynamics)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        # no mj_rnePostConstraint afterwards: the model's accelerometer has the physics
        # steps compute cfrc_ext, as they do in the batched environment
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    @property
    def is_healthy(self) -> bool:
        """Finite state, no divergence, torso height within ``healthy_z_range``."""
        return bool(super().is_healthy) and not self._diverged

    def _get_obs(self) -> np.ndarray:
        return finite_float32(super()._get_obs())

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        """Reward of a step and its components (:func:`ant_reward`, as the batched env computes them)."""
        velocity = np.asarray([x_velocity], dtype=np.float64)
        task_reward = np.asarray(self.family.reward(self._params, velocity, self.data.qpos[None, :2]), np.float64)
        healthy = np.asarray([self.is_healthy])
        reward, info = ant_reward(
            task_reward.reshape(1), healthy, action[None], self.contact_forces[None], self._settings
        )
        return float(reward[0]), {key: float(value[0]) for key, value in info.items()}

    def _terminated(self, diverged: bool) -> bool:
        """The ant ends its episode when it is unhealthy (divergence included)."""
        return not self.is_healthy

    def _position_info(self) -> dict[str, float]:
        return {"x_position": float(self.data.qpos[0]), "y_position": float(self.data.qpos[1])}


class AntVelEnv(AntTaskEnv):
    """Ant that must run forwards at a goal velocity (MAML's ant-vel).

    ## Tasks

    :class:`~envs.locomotion.tasks.VelocityTask`: a goal velocity ``v_goal ~ U[0, 3]``
    m/s. ``sample_tasks(n)`` draws with the env's ``np_random``; ``set_task`` and
    ``get_task`` set and read the current one (default ``v_goal = 1.5``).

    ## Rewards

    ``reward = -|v - v_goal| + 1 + survive - ctrl_cost - contact_cost`` (see
    :class:`AntTaskEnv`), with ``v`` the torso's x velocity over the control step.
    """

    family = GoalVelocityFamily(low=0.0, high=3.0, offset=1.0)


class AntDirEnv(AntTaskEnv):
    """Ant that must run forwards or backwards along x (MAML's ant-dir).

    ## Tasks

    :class:`~envs.locomotion.tasks.DirectionTask`: ``direction`` is ``+1``
    (forwards) or ``-1`` (backwards) with probability 1/2 each. ``sample_tasks(n)``
    draws with the env's ``np_random``; ``set_task`` and ``get_task`` set and read
    the current one (default ``+1``).

    ## Rewards

    ``reward = direction * v + survive - ctrl_cost - contact_cost`` (see
    :class:`AntTaskEnv`), with ``v`` the torso's x velocity over the control step.
    """

    family = DirectionFamily()


class AntGoalEnv(AntTaskEnv):
    """Ant that must walk to a goal position in the plane (MAML's ant-goal).

    ## Tasks

    :class:`~envs.locomotion.tasks.GoalTask`: a goal ``(x, y) ~ U[-3, 3]^2``.
    ``sample_tasks(n)`` draws with the env's ``np_random``; ``set_task`` and
    ``get_task`` set and read the current one (default the origin).

    ## Rewards

    ``reward = -(|x - x_goal| + |y - y_goal|) + 4 + survive - ctrl_cost - contact_cost``
    (see :class:`AntTaskEnv`), with ``x, y`` the torso's position after the step.
    The goal bonus 4 (the MAML reference implementations') keeps the reward of
    staying alive near the goal positive, so that falling over early never pays.

    The observation includes the torso's x and y by default (shape ``(107,)``).
    """

    family = GoalPositionFamily(low=-3.0, high=3.0, offset=4.0)
    include_positions_by_default = True


for _cls in (AntTaskEnv, AntVelEnv, AntDirEnv, AntGoalEnv):
    _cls.__doc__ = (_cls.__doc__ or "") + _SPACES_DOC


class BatchedAnt(BatchedLocomotionEnv):
    """``num_envs`` Ant task sub-environments stepped in one ``mujoco.batch`` call.

    Observations, actions, rewards and terminations are those of the single env of
    the same family (:class:`AntTaskEnv`), which it matches step for step.
    """

    include_positions_by_default: ClassVar[bool] = False

    def __init__(
        self, num_envs: int, max_episode_steps: int = 200, *, nthread: int | None = None, **kwargs: Any
    ) -> None:
        """Parameters: sizes, ``nthread`` (mujoco.batch threads) and the :class:`AntSettings` fields."""
        settings = AntSettings(**kwargs)  # an unknown keyword is a TypeError naming it
        self._settings = settings
        self.paper_dynamics = bool(settings.paper_dynamics)
        model = ant_model(self.paper_dynamics)
        self.healthy_z_range = (float(settings.healthy_z_range[0]), float(settings.healthy_z_range[1]))
        self.contact_force_range = (float(settings.contact_force_range[0]), float(settings.contact_force_range[1]))
        self._skip = 2 if settings.excludes_positions(self.include_positions_by_default) else 0
        super().__init__(
            num_envs,
            max_episode_steps,
            model=model,
            observation_size=model.nq - self._skip + model.nv + 6 * (model.nbody - 1),
            reset_noise_scale=settings.reset_noise_scale,
            nthread=nthread,
            frame_skip=control_frame_skip(self.paper_dynamics),
            init_qpos=ant_initial_qpos(model, self.paper_dynamics),
        )

    def bind_fields(self) -> None:
        """Bind the contact wrenches ``cfrc_ext``."""
        self._cfrc_ext = self.bind("cfrc_ext")

    def contact_forces(self) -> np.ndarray:
        """The contact wrenches, clipped to ``contact_force_range``."""
        return np.clip(self._cfrc_ext, *self.contact_force_range)

    def healthy(self, diverged: np.ndarray) -> np.ndarray:
        """Whether each ant is healthy: not diverged, torso height within ``healthy_z_range``."""
        z = self.qpos[:, 2]
        low, high = self.healthy_z_range
        return ~diverged & (z >= low) & (z <= high)

    def observe(self) -> np.ndarray:
        """Positions (without x, y unless observed), velocities and clipped contact wrenches of every ant."""
        forces = self.contact_forces()[:, 1:].reshape(self.num_envs, -1)
        return np.concatenate((self.qpos[:, self._skip :], self.qvel, forces), axis=1)

    def locomotion_reward(
        self, x_velocity: np.ndarray, action: np.ndarray, diverged: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The Ant reward (:func:`ant_reward`) of every sub-environment.

        Args:
            x_velocity: The torso's x velocity ``[N]`` over the step.
            action: The actions ``[N, 8]``.
            diverged: Which sub-environments' physics diverged ``[N]`` (the family sets their reward to 0 after).
        """
        task_reward = self.family.reward(self.task_params, x_velocity, self.qpos[:, :2])
        return ant_reward(task_reward, self.healthy(diverged), action, self.contact_forces(), self._settings)

    def terminated(self, diverged: np.ndarray) -> np.ndarray:
        """Unhealthy ants end their episode."""
        return ~self.healthy(diverged)


class BatchedAntVel(BatchedAnt):
    """Batched :class:`AntVelEnv`: goal velocity ``~ U[0, 3]``."""

    family = AntVelEnv.family


class BatchedAntDir(BatchedAnt):
    """Batched :class:`AntDirEnv`: direction ``±1`` along x."""

    family = AntDirEnv.family


class BatchedAntGoal(BatchedAnt):
    """Batched :class:`AntGoalEnv`: goal position ``~ U[-3, 3]^2``; x, y observed."""

    family = AntGoalEnv.family
    include_positions_by_default = True
