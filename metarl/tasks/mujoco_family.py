"""A base for task families simulated by MuJoCo: every sub-environment stepped together on one ``mujoco.batch``.

A family of your own, batched, is a subclass of :class:`BatchedMujocoTaskEnv` that says:

* its **model** (passed to ``__init__``) and its control step (``frame_skip`` physics steps);
* its **tasks**: :meth:`~BatchedMujocoTaskEnv.sample_tasks` and :meth:`~BatchedMujocoTaskEnv.task_parameters`
  (each task as a row of floats, kept in ``self.task_params``); a task that changes the model
  itself (a mass, a friction, a goal site) writes it per simulation in
  :meth:`~BatchedMujocoTaskEnv.task_model_fields`;
* batched numpy functions of the simulations' state — ``self.qpos``, ``self.qvel``, and any
  other ``MjData`` field it binds with :meth:`~BatchedMujocoTaskEnv.bind` — for the
  **observation** (:meth:`~BatchedMujocoTaskEnv.observe`), the **reward**
  (:meth:`~BatchedMujocoTaskEnv.reward`, which also sees ``self.qpos_before``, the positions
  before the step) and **termination** (:meth:`~BatchedMujocoTaskEnv.terminated`);
* optionally its **reset** (:meth:`~BatchedMujocoTaskEnv.reset_state`; by default Gymnasium's
  MuJoCo convention: ``init_qpos + U[-s, s]`` and ``init_qvel + s·N(0, 1)`` with a generator per
  sub-environment seeded as ``Env.reset(seed=...)`` seeds ``np_random``).

The base does the rest, the same way for every family: one ``mujoco.batch`` call steps all
sub-environments with the GIL released; a simulation that diverges (MuJoCo's warnings, a
non-finite state, a simulation error) gets reward 0 and ``info["diverged"]``, so the sampler
drops and counts its episode; a sub-environment that terminated is not simulated again until
it is reset. Observations are float32, non-finite entries set to 0. It equals ``N`` single
environments of the same family step for step when those draw their reset noise the same way
(``docs/custom-envs.md`` has a worked example and the check).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
from gymnasium.utils import seeding

from metarl.tasks.protocol import DIVERGED_INFO_KEY, BatchedTaskEnv, TaskT

DIVERGENCE_WARNINGS = (
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
)
"""The MuJoCo warnings raised when a simulation diverges (MuJoCo then resets it, so only these tell)."""


def finite_float32(obs: np.ndarray) -> np.ndarray:
    """``obs`` as float32 with non-finite entries (of a diverged state) set to 0."""
    obs = np.asarray(obs, dtype=np.float32)
    if not np.isfinite(obs).all():
        obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
    return obs


class BatchedMujocoTaskEnv(BatchedTaskEnv[TaskT]):
    """``num_envs`` sub-environments of one MuJoCo model, each with its task, on one ``mujoco.batch.Batch``.

    Args:
        num_envs: sub-environments.
        max_episode_steps: the horizon (truncation).
        model: the compiled model every simulation runs (per-task fields: :meth:`task_model_fields`).
        observation_size: the length of :meth:`observe`'s rows.
        frame_skip: physics steps per control step.
        reset_noise_scale: ``s`` of the default :meth:`reset_state`.
        nthread: the batch's threads (default: all CPUs).
        init_qpos: the pose resets start from (default: the model's ``qpos0``).
        init_qvel: the velocities resets start from (default: zeros).
    """

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int,
        *,
        model: mujoco.MjModel,
        observation_size: int,
        frame_skip: int,
        reset_noise_scale: float = 0.0,
        nthread: int | None = None,
        init_qpos: np.ndarray | None = None,
        init_qvel: np.ndarray | None = None,
    ) -> None:
        super().__init__(num_envs, max_episode_steps)
        self.model = model
        self.frame_skip = int(frame_skip)
        self.dt = float(model.opt.timestep) * self.frame_skip
        self.reset_noise_scale = float(reset_noise_scale)
        self.nthread = int(nthread) if nthread is not None else (os.cpu_count() or 1)
        self._batch = mujoco.batch.Batch(model, num_envs, self.nthread)
        self.qpos = self._batch.bind("qpos")
        self.qvel = self._batch.bind("qvel")
        self.ctrl = self._batch.bind("ctrl")
        self.qpos_before = self.qpos.copy()
        self.bind_fields()
        self.init_qpos = model.qpos0.copy() if init_qpos is None else np.array(init_qpos, dtype=np.float64)
        self.init_qvel = np.zeros(model.nv) if init_qvel is None else np.array(init_qvel, dtype=np.float64)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self.task_params = np.repeat(self.task_parameters([self.default_task()]), num_envs, axis=0)
        self._batch.reset()
        self._divergence_counts = self._count_divergences()
        self._ended = np.zeros(num_envs, bool)  # terminated since their last reset: not simulated
        low, high = model.actuator_ctrlrange.astype(np.float32).T
        self._init_spaces(
            gym.spaces.Box(-np.inf, np.inf, shape=(observation_size,), dtype=np.float32),
            gym.spaces.Box(low=low, high=high, dtype=np.float32),
        )

    # -- what a family says ----------------------------------------------------------
    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[TaskT]:
        """Draw ``n`` tasks with ``rng``."""

    @abc.abstractmethod
    def default_task(self) -> TaskT:
        """The task of every sub-environment before ``set_tasks``."""

    @abc.abstractmethod
    def task_parameters(self, tasks: Sequence[TaskT]) -> np.ndarray:
        """The tasks as rows of floats, ``(len(tasks), k)`` (kept in ``self.task_params``)."""

    def task_model_fields(self, task_params: np.ndarray) -> Mapping[str, np.ndarray]:
        """Per-simulation values of model fields that depend on the task (``{MjModel field: (num_envs, ...)}``).

        Written into the batch (``mujoco.batch.Batch.expand``) when tasks are set, followed by
        ``mj_setConst`` per simulation where a field needs it. Default: none; the model is the
        same for every task.

        Args:
            task_params: ``self.task_params``, one row per sub-environment.
        """
        return {}

    def bind_fields(self) -> None:
        """Bind the ``MjData`` fields the family reads besides ``qpos``, ``qvel`` (with :meth:`bind`)."""

    def bind(self, name: str) -> np.ndarray:
        """A live ``(num_envs, ...)`` view of ``MjData`` field ``name`` (outputs are refreshed by every step)."""
        return self._batch.bind(name)

    @abc.abstractmethod
    def observe(self) -> np.ndarray:
        """Observations of all sub-environments, ``(num_envs, observation_size)``."""

    @abc.abstractmethod
    def reward(self, action: np.ndarray, diverged: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(num_envs,)`` of the step just taken and their components (``info`` entries).

        Args:
            action: the actions ``(num_envs, nu)`` (float64).
            diverged: which simulations diverged in this step (their reward is set to 0 after).
        """

    def terminated(self, diverged: np.ndarray) -> np.ndarray:
        """Which sub-environments terminated at this step (default: the diverged ones)."""
        return diverged.copy()

    def reset_state(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sub-environment ``index``'s initial ``(qpos, qvel)``, drawn with its generator.

        Default: Gymnasium's MuJoCo convention, ``init_qpos + U[-s, s]`` then ``init_qvel +
        s·N(0, 1)``, ``s`` = ``reset_noise_scale``.
        """
        scale = self.reset_noise_scale
        qpos = self.init_qpos + rng.uniform(low=-scale, high=scale, size=self.model.nq)
        qvel = self.init_qvel + scale * rng.standard_normal(self.model.nv)
        return qpos, qvel

    def step_info(self) -> dict[str, np.ndarray]:
        """Extra ``info`` entries of a step (default: none)."""
        return {}

    # -- the task API ------------------------------------------------------------------
    def _apply_tasks(self, tasks: Sequence[TaskT]) -> None:
        self.task_params = self.task_parameters(tasks)
        fields = self.task_model_fields(self.task_params)
        for name, values in fields.items():
            self._batch.expand(name)[:] = values
        if fields:
            self._batch.set_const()

    # -- stepping ------------------------------------------------------------------
    def _count_divergences(self) -> np.ndarray:
        return self._batch.warning[:, list(DIVERGENCE_WARNINGS), 1].sum(axis=1)

    def _rng(self, index: int, seed: int | None) -> np.random.Generator:
        """Sub-environment ``index``'s generator, reseeded as ``Env.reset`` does."""
        rng = self._rngs[index]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[index] = rng
        return rng

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        if len(indices):
            qpos = np.empty((len(indices), self.model.nq))
            qvel = np.empty((len(indices), self.model.nv))
            for k, (index, seed) in enumerate(zip(indices, seeds, strict=True)):
                qpos[k], qvel[k] = self.reset_state(self._rng(int(index), seed), int(index))
            self._batch.reset(indices, stage=mujoco.mjtStage.mjSTAGE_NONE)
            self.qpos[indices] = qpos
            self.qvel[indices] = qvel
            self._batch.forward(indices)
            self._divergence_counts[indices] = self._count_divergences()[indices]
            self._ended[indices] = False
        return finite_float32(self.observe())

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        action = actions.astype(np.float64)
        self.ctrl[:] = action
        self.qpos_before[:] = self.qpos
        failed: np.ndarray | None = None
        ended = self._ended.copy()
        # a terminated sub-environment stays as it ended until its reset (no physics spent
        # on it); its later steps report terminated again, with reward 0
        live = None if not ended.any() else np.flatnonzero(~ended)
        try:
            if live is None or len(live):
                self._batch.step(live, nstep=self.frame_skip)
        except mujoco.batch.SimulationError as error:  # those kept their previous state
            failed = error.ids
        counts = self._count_divergences()
        diverged = counts != self._divergence_counts
        self._divergence_counts = counts
        diverged |= ~(np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1))
        if failed is not None:
            diverged[failed] = True
        diverged &= ~ended
        reward, info = self.reward(action, diverged)
        reward[diverged | ended] = 0.0
        info.update(self.step_info())
        # the sampler ends and counts these episodes (metric nonfinite_episodes) instead of
        # feeding the learner a terminated step of reward 0
        info[DIVERGED_INFO_KEY] = diverged
        terminated = self.terminated(diverged) | ended
        self._ended |= terminated
        return finite_float32(self.observe()), reward, terminated, info


__all__ = ["DIVERGENCE_WARNINGS", "BatchedMujocoTaskEnv", "finite_float32"]
