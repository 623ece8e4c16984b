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


class PolicyLike(Protocol):
    """What the sampler needs of a policy: a distribution from per-task parameters."""

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Distribution: ...


class Sampler:
    """Samples ``episodes_per_task`` episodes of each of ``num_tasks`` tasks in one batched env.

    Sub-environment ``i * E + j`` runs episode ``j`` of task ``i``. Every time step
    is one env call and one batched policy forward, in which task ``i`` uses its
    own parameters ``params[name][i]``.
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

    @torch.no_grad()
    def sample(self, params: Mapping[str, Tensor], rng: np.random.Generator) -> Episodes:
        """One episode per sub-environment with per-task ``params``; env seeds drawn from ``rng``."""
        if self._tasks is None:
            raise RuntimeError("Sampler.sample: call set_tasks first")
        T, E, H, N = self.num_tasks, self.episodes_per_task, self.horizon, self.env.num_envs
        seeds = rng.integers(0, 2**31 - 1, size=N).tolist()
        obs, _ = self.env.reset(seed=seeds)
        obs = np.asarray(obs, np.float32)
        obs_shape = obs.shape[1:]
        act_shape = self.env.single_action_space.shape or ()
        act_dtype = np.float32 if np.issubdtype(self.env.single_action_space.dtype, np.floating) else np.int64

        observations = np.zeros((H, N, *obs_shape), np.float32)
        actions = np.zeros((H, N, *act_shape), act_dtype)
        rewards = np.zeros((H, N), np.float32)
        mask = np.zeros((H, N), np.float32)
        final_obs = np.zeros((N, *obs_shape), np.float32)
        active = np.ones(N, bool)
        terminated_ep = np.zeros(N, bool)
        truncated_ep = np.zeros(N, bool)
        nonfinite_ep = np.zeros(N, bool)
        lengths = np.zeros(N, np.int64)

        for t in range(H):
            obs_t = torch.from_numpy(obs).view(T, E, *obs_shape)
            action = self.policy.distribution(obs_t, params).sample().reshape(N, *act_shape).numpy()
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            reward = np.asarray(reward, np.float64)
            next_obs = np.asarray(next_obs)
            finite = np.isfinite(reward) & np.isfinite(next_obs.reshape(N, -1)).all(axis=1)
            valid = active & finite
            observations[t, valid] = obs[valid]
            actions[t, valid] = action[valid]
            rewards[t, valid] = reward[valid]
            mask[t, valid] = 1.0
            lengths += valid
            bad = active & ~finite
            if bad.any():
                nonfinite_ep |= bad
                log.warning("sampler: %d episodes ended on non-finite observations or rewards", int(bad.sum()))
            ended = valid & (np.asarray(terminated) | np.asarray(truncated) | (t == H - 1))
            terminated_ep |= ended & np.asarray(terminated)
            truncated_ep |= ended & ~np.asarray(terminated)
            final_obs[ended] = next_obs[ended]
            final_obs[bad] = obs[bad]
            active &= ~(ended | bad)
            # Ended sub-environments keep stepping; keep their garbage finite for the policy.
            obs = np.where(np.isfinite(next_obs), next_obs, 0.0).astype(np.float32, copy=False)
            if not active.any():
                break

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
