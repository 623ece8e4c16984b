"""What every locomotion task environment shares, single and batched.

* :class:`LocomotionTaskMixin` adds the task API and divergence-checked stepping to a
  Gymnasium MuJoCo environment.
* :class:`BatchedLocomotionEnv` runs ``num_envs`` copies of a robot on one
  ``mujoco.batch.Batch``: one call steps every sub-environment with the GIL released;
  observations, rewards and terminations are numpy on the batch's bound arrays.
  Robot subclasses only say how to read observations and rewards off those arrays.

A sub-environment reset with seed ``s`` starts from the same state as the single
environment reset with seed ``s``, and the two then agree step for step.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
from gymnasium.utils import seeding

from envs.locomotion.models import DIVERGENCE_WARNINGS, FRAME_SKIP
from envs.locomotion.tasks import TaskFamily
from metarl.tasks.protocol import DIVERGED_INFO_KEY, BatchedTaskEnv


class LocomotionTaskMixin:
    """Task API and divergence-checked stepping for a Gymnasium ``MujocoEnv``.

    Put it before the ``MujocoEnv`` subclass in the bases and set ``family``.
    """

    family: ClassVar[TaskFamily]
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

    def sample_tasks(self, n: int) -> list[Any]:
        """Draw ``n`` tasks with the env's own ``np_random``."""
        return self.family.sample(n, self.np_random)

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


def _finite_float32(obs: np.ndarray) -> np.ndarray:
    """``obs`` as float32 with non-finite entries (of a diverged state) set to 0."""
    obs = np.asarray(obs, dtype=np.float32)
    if not np.isfinite(obs).all():
        obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
    return obs


class BatchedLocomotionEnv(BatchedTaskEnv):
    """``num_envs`` sub-environments of one robot on a ``mujoco.batch.Batch``.

    Subclasses set ``family`` and implement :meth:`_observe`, :meth:`_get_rewards`
    and :meth:`_terminated`, reading the bound arrays ``self._qpos``, ``self._qvel``
    and any others they bind. ``nthread`` is the batch's thread count (default: all
    CPUs); its threads run with the GIL released. ``frame_skip`` is the number of
    physics steps per control step, ``init_qpos`` the pose resets start from (before
    the noise; default the model's ``qpos0``). A sub-environment that terminated is
    not simulated again until it is reset: later steps leave it as it ended and report
    it terminated with reward 0 (so a batch of fallen ants costs no physics).
    """

    family: ClassVar[TaskFamily]

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
        super().__init__(num_envs, max_episode_steps)
        self.model = model
        self.frame_skip = int(frame_skip)
        self.dt = float(model.opt.timestep) * self.frame_skip
        self.reset_noise_scale = float(reset_noise_scale)
        self.nthread = int(nthread) if nthread is not None else (os.cpu_count() or 1)
        self._batch = mujoco.batch.Batch(model, num_envs, self.nthread)
        self._qpos = self._batch.bind("qpos")
        self._qvel = self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        self._bind_outputs()
        self._init_qpos = model.qpos0.copy() if init_qpos is None else np.array(init_qpos, dtype=np.float64)
        self._init_qvel = np.zeros(model.nv)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._params = np.repeat(self.family.encode([self.family.default_task()]), num_envs, axis=0)
        self._batch.reset()
        self._divergence_counts = self._count_divergences()
        self._ended = np.zeros(num_envs, bool)  # terminated since their last reset: not simulated
        low, high = model.actuator_ctrlrange.astype(np.float32).T
        self._init_spaces(
            gym.spaces.Box(-np.inf, np.inf, shape=(observation_size,), dtype=np.float32),
            gym.spaces.Box(low=low, high=high, dtype=np.float32),
        )

    # -- robot specific ----------------------------------------------------------
    def _bind_outputs(self) -> None:
        """Bind the derived fields the robot reads (before any batch call)."""

    @abc.abstractmethod
    def _observe(self) -> np.ndarray:
        """Observations of all sub-environments, ``(num_envs, obs_size)`` float64."""

    @abc.abstractmethod
    def _get_rewards(
        self, x_velocity: np.ndarray, action: np.ndarray, diverged: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards of all sub-environments and their components."""

    @abc.abstractmethod
    def _terminated(self, diverged: np.ndarray) -> np.ndarray:
        """Which sub-environments terminated at this step."""

    # -- task API ------------------------------------------------------------------
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` tasks with ``rng``."""
        return self.family.sample(n, rng)

    def task_features(self, task: Any) -> np.ndarray:
        """The task as the oracle sees it: the family's encoding (goal velocity, direction or goal)."""
        return self.family.encode([task])[0].astype(np.float32)

    def _apply_tasks(self, tasks: Sequence[Any]) -> None:
        self._params = self.family.encode(tasks)

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
            nq, nv, scale = self.model.nq, self.model.nv, self.reset_noise_scale
            qpos = np.empty((len(indices), nq))
            qvel = np.empty((len(indices), nv))
            # per sub-environment generators: the same draws, in the same order, as the
            # single environment's reset_model
            for k, (index, seed) in enumerate(zip(indices, seeds, strict=True)):
                rng = self._rng(int(index), seed)
                qpos[k] = self._init_qpos + rng.uniform(low=-scale, high=scale, size=nq)
                qvel[k] = self._init_qvel + scale * rng.standard_normal(nv)
            self._batch.reset(indices, stage=mujoco.mjtStage.mjSTAGE_NONE)
            self._qpos[indices] = qpos
            self._qvel[indices] = qvel
            self._batch.forward(indices)
            self._divergence_counts[indices] = self._count_divergences()[indices]
            self._ended[indices] = False
        return _finite_float32(self._observe())

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        action = actions.astype(np.float64)
        self._ctrl[:] = action
        x_before = self._qpos[:, 0].copy()
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
        x_velocity = (self._qpos[:, 0] - x_before) / self.dt
        counts = self._count_divergences()
        diverged = counts != self._divergence_counts
        self._divergence_counts = counts
        diverged |= ~(np.isfinite(self._qpos).all(axis=1) & np.isfinite(self._qvel).all(axis=1))
        if failed is not None:
            diverged[failed] = True
        diverged &= ~ended
        reward, info = self._get_rewards(x_velocity, action, diverged)
        reward[diverged | ended] = 0.0
        info["x_velocity"] = x_velocity
        # the sampler ends and counts these episodes (metric nonfinite_episodes) instead of
        # feeding the learner a terminated step of reward 0
        info[DIVERGED_INFO_KEY] = diverged
        terminated = self._terminated(diverged) | ended
        self._ended |= terminated
        return _finite_float32(self._observe()), reward, terminated, info
