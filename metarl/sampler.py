"""Roll a policy out on every (task, episode) pair of an iteration at once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.episodes import Episodes
from metarl.tasks import BatchedTaskEnv, Task

log = logging.getLogger("metarl")


DIVERGED_INFO_KEY = "diverged"
"""Optional ``info`` entry of a batched env's step: a bool per sub-environment whose physics
became unstable this step; those episodes are ended and counted like non-finite ones."""


def _as_float32(values: object) -> np.ndarray:
    """``values`` as float32; finite values beyond float32's range become inf (and so are caught)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(values, dtype=np.float32)


def _diverged(info: object, num_envs: int) -> np.ndarray:
    """The ``info["diverged"]`` flags of a step (all false if the env gives none)."""
    flags = info.get(DIVERGED_INFO_KEY) if isinstance(info, Mapping) else None
    if flags is None:
        return np.zeros(num_envs, bool)
    return np.broadcast_to(np.asarray(flags, bool), (num_envs,))


class PolicyLike(Protocol):
    """What the sampler needs of a policy: a distribution from per-task parameters."""

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Distribution: ...


class Sampler:
    """Samples ``episodes_per_task`` episodes of each of ``num_tasks`` tasks in one batched env.

    Sub-environment ``i * E + j`` runs episode ``j`` of task ``i``. Every time step
    is one env call and one batched policy forward, in which task ``i`` uses its
    own parameters ``params[name][i]``.

    Numerical faults do not reach the learner: a sub-environment whose reset
    observation, step observation or reward is non-finite (or beyond float32), or
    whose step ``info["diverged"]`` flag is set, ends its episode there; the offending
    step is dropped (masked out), the episode is marked in ``Episodes.nonfinite`` and
    a warning is logged.
    """

    def __init__(
        self, env: BatchedTaskEnv, policy: PolicyLike, num_tasks: int, episodes_per_task: int
    ) -> None:
        if env.num_envs != num_tasks * episodes_per_task:
            raise ValueError(
                f"Sampler: env has {env.num_envs} sub-environments, "
                f"expected num_tasks * episodes_per_task = {num_tasks * episodes_per_task}"
            )
        self.env = env
        self.policy = policy
        self.num_tasks = num_tasks
        self.episodes_per_task = episodes_per_task
        self.horizon = env.max_episode_steps
        self._tasks: list[Task] | None = None

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Use ``tasks`` (one per task slot) for the following calls to :meth:`sample`."""
        if len(tasks) != self.num_tasks:
            raise ValueError(f"Sampler.set_tasks: got {len(tasks)} tasks, expected {self.num_tasks}")
        self.env.set_tasks([task for task in tasks for _ in range(self.episodes_per_task)])
        self._tasks = list(tasks)

    @staticmethod
    def _warn_nonfinite(count: int, when: str) -> None:
        if count:
            log.warning(
                "sampler: %d episode(s) ended %s on non-finite observations/rewards or unstable physics; "
                "their remaining steps are dropped (metric nonfinite_episodes)", count, when,
            )

    @torch.no_grad()
    def sample(self, params: Mapping[str, Tensor], rng: np.random.Generator) -> Episodes:
        """One episode per sub-environment with per-task ``params``; env seeds drawn from ``rng``."""
        if self._tasks is None:
            raise RuntimeError("Sampler.sample: call set_tasks first")
        T, E, H, N = self.num_tasks, self.episodes_per_task, self.horizon, self.env.num_envs
        seeds = rng.integers(0, 2**31 - 1, size=N).tolist()
        obs, _ = self.env.reset(seed=seeds)
        obs = _as_float32(obs)
        obs_shape = obs.shape[1:]
        act_shape = self.env.single_action_space.shape or ()
        act_dtype = np.float32 if np.issubdtype(self.env.single_action_space.dtype, np.floating) else np.int64

        observations = np.zeros((H, N, *obs_shape), np.float32)
        actions = np.zeros((H, N, *act_shape), act_dtype)
        rewards = np.zeros((H, N), np.float32)
        mask = np.zeros((H, N), np.float32)
        final_obs = np.zeros((N, *obs_shape), np.float32)
        terminated_ep = np.zeros(N, bool)
        truncated_ep = np.zeros(N, bool)
        lengths = np.zeros(N, np.int64)
        nonfinite_ep = ~np.isfinite(obs.reshape(N, -1)).all(axis=1)  # a bad initial state: no step at all
        active = ~nonfinite_ep
        obs[nonfinite_ep] = 0.0
        self._warn_nonfinite(int(nonfinite_ep.sum()), "at reset")

        for t in range(H):
            if not active.any():
                break
            obs_t = torch.from_numpy(obs).view(T, E, *obs_shape)
            action = self.policy.distribution(obs_t, params).sample().reshape(N, *act_shape).numpy()
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            next_obs, reward = _as_float32(next_obs), _as_float32(reward)
            terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
            finite = np.isfinite(reward) & np.isfinite(next_obs.reshape(N, -1)).all(axis=1)
            finite &= ~_diverged(info, N)
            valid = active & finite
            observations[t, valid] = obs[valid]
            actions[t, valid] = action[valid]
            rewards[t, valid] = reward[valid]
            mask[t, valid] = 1.0
            lengths += valid
            bad = active & ~finite
            nonfinite_ep |= bad
            self._warn_nonfinite(int(bad.sum()), f"at step {t}")
            ended = valid & (terminated | truncated | (t == H - 1))
            terminated_ep |= ended & terminated
            truncated_ep |= ended & ~terminated
            final_obs[ended] = next_obs[ended]
            final_obs[bad] = obs[bad]
            active &= ~(ended | bad)
            # Ended sub-environments keep stepping; keep their garbage finite for the policy.
            obs = np.where(np.isfinite(next_obs), next_obs, np.float32(0.0))

        def tm(array: np.ndarray) -> Tensor:  # [H, N, ...] -> [H, T, E, ...]
            return torch.from_numpy(array).view(H, T, E, *array.shape[2:])

        def te(array: np.ndarray) -> Tensor:  # [N, ...] -> [T, E, ...]
            return torch.from_numpy(array).view(T, E, *array.shape[1:])

        return Episodes(
            observations=tm(observations),
            actions=tm(actions),
            rewards=tm(rewards),
            mask=tm(mask),
            lengths=te(lengths),
            terminated=te(terminated_ep),
            truncated=te(truncated_ep),
            nonfinite=te(nonfinite_ep),
            final_observations=te(final_obs),
        )
