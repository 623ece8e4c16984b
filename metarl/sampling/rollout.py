"""The rollout: one batched step loop over a shard's sub-environments, feeding a collector.

The collector (:mod:`metarl.sampling.collectors`) keeps plain episodes or a step budget's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from metarl.sampling.collectors import (
    EpisodeCollector,
    PlainEpisodes,
    StepBudget,
    StepEnd,
    as_float32,
    warn_nonfinite,
)
from metarl.sampling.shards import Shard, ShardEpisodes
from metarl.sampling.streams import _EpisodeStreams
from metarl.tasks.protocol import DIVERGED_INFO_KEY, SUCCESS_INFO_KEY, BatchedTaskEnv


class PolicyLike(Protocol):
    """What the sampler needs of a policy: an episode's noise, and actions from observations, per-task parameters
    and that noise (:meth:`agents.policies.Policy.actions_from_noise`).
    """

    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray:
        """The action noise of one episode of ``num_steps`` steps, drawn from ``rng``."""

    def actions_from_noise(self, obs: Tensor, params: Mapping[str, Tensor], noise: Tensor) -> Tensor:
        """The actions for observations ``obs`` with per-task ``params`` and the drawn ``noise``.

        Args:
            obs: Observations ``[T, ..., obs_dim]``.
            params: Each task's parameters (leading task axis).
            noise: The drawn standard noise.
        """


def _successes(info: object, num_envs: int) -> np.ndarray | None:
    """The ``info["success"]`` flags of a step, or ``None`` if the env gives none."""
    flags = info.get(SUCCESS_INFO_KEY) if isinstance(info, Mapping) else None
    return None if flags is None else np.broadcast_to(np.asarray(flags, bool), (num_envs,))


def _diverged(info: object, num_envs: int) -> np.ndarray:
    """The ``info["diverged"]`` flags of a step (all false if the env gives none)."""
    flags = info.get(DIVERGED_INFO_KEY) if isinstance(info, Mapping) else None
    if flags is None:
        return np.zeros(num_envs, bool)
    return np.broadcast_to(np.asarray(flags, bool), (num_envs,))


@torch.no_grad()
def rollout(
    env: BatchedTaskEnv,
    policy: PolicyLike,
    params: Mapping[str, Tensor],
    envs_per_task: int,
    phase_key: int,
    start: int = 0,
    step_budget: bool = False,
    budget_horizons: int = 1,
) -> ShardEpisodes:
    """One episode in each sub-environment of ``env``, which holds sub-envs ``start, ...`` of the phase.

    ``params`` holds the parameters of every task of the phase (leading task dimension);
    ``env``'s tasks must already be set. Sub-environment ``k`` of ``env`` runs episode
    ``j`` of task ``i`` with ``start + k = i·E + j`` (``E = envs_per_task``); its reset
    seed and action noise come from :func:`episode_stream` ``(phase_key, i, j)``. The
    policy is evaluated on whole tasks (a shard's partial first or last task is padded
    with zero observations), so every action is computed exactly as a sampler holding
    all sub-environments would.

    ``step_budget``: every sub-environment steps for its whole budget of
    ``budget_horizons × H`` steps (:class:`~metarl.sampling.collectors.StepBudget`);
    a restarted episode continues the stream's noise. The result then holds one
    ``H``-long row per kept episode (:attr:`ShardEpisodes.lanes` names their
    sub-environments). Otherwise :class:`~metarl.sampling.collectors.PlainEpisodes`.

    Args:
        env: The sub-environments to step, their tasks set.
        policy: The policy.
        params: Every task's parameters of the phase (leading task axis).
        envs_per_task: Sub-environments per task, ``E``.
        phase_key: Keys the episodes' random streams.
        start: The phase index of ``env``'s first sub-environment.
        step_budget: Step every sub-environment for its whole budget.
        budget_horizons: With ``step_budget``: horizons of steps per sub-environment.
    """
    if budget_horizons < 1 or (budget_horizons > 1 and not step_budget):
        raise ValueError(f"rollout: budget_horizons {budget_horizons} needs step_budget and must be >= 1")
    n, E, H = env.num_envs, envs_per_task, env.max_episode_steps
    steps = H * budget_horizons
    first, last = start // E, (start + n - 1) // E
    blocks, offset = last - first + 1, start - first * E
    rows = blocks * E
    block_params = {name: p[first : last + 1].contiguous() for name, p in params.items()}
    collector: EpisodeCollector = StepBudget(n, steps, H, start) if step_budget else PlainEpisodes(n)

    seeds: list[int | None] = []
    streams = _EpisodeStreams(phase_key)
    noise: np.ndarray | None = None
    for k in range(n):
        stream = streams((start + k) // E, (start + k) % E)
        seeds.append(int(stream.integers(0, 2**31 - 1)))
        episode_noise = policy.draw_noise(stream, steps)
        if noise is None:
            noise = np.zeros((steps, rows, *episode_noise.shape[1:]), episode_noise.dtype)
        noise[:, offset + k] = episode_noise
        collector.draw_seeds(k, stream)
    assert noise is not None
    noise_shape = noise.shape[2:]
    noise_t = torch.from_numpy(noise)

    obs, _ = env.reset(seed=seeds)
    obs = as_float32(obs)
    obs_shape = obs.shape[1:]
    act_shape = env.single_action_space.shape or ()
    act_dtype = np.float32 if np.issubdtype(env.single_action_space.dtype, np.floating) else np.int64
    padded = np.zeros((rows, *obs_shape), np.float32) if rows != n else None

    observations = np.zeros((steps, n, *obs_shape), np.float32)
    actions = np.zeros((steps, n, *act_shape), act_dtype)
    rewards = np.zeros((steps, n), np.float32)
    mask = np.zeros((steps, n), np.float32)
    successes: np.ndarray | None = None  # allocated at the first step that reports success
    nonfinite = ~np.isfinite(obs.reshape(n, -1)).all(axis=1)  # a bad initial state: no step at all
    active = ~nonfinite
    obs[nonfinite] = 0.0
    warn_nonfinite(int(nonfinite.sum()), "at reset")
    collector.begin(obs_shape, nonfinite)

    for t in range(steps):
        if not active.any():
            break
        if padded is not None:
            padded[offset : offset + n] = obs
            obs_rows = torch.from_numpy(padded)
        else:
            obs_rows = torch.from_numpy(obs)
        action_rows = policy.actions_from_noise(
            obs_rows.view(blocks, E, *obs_shape), block_params, noise_t[t].view(blocks, E, *noise_shape)
        )
        action = action_rows.reshape(rows, *act_shape)[offset : offset + n].numpy().astype(act_dtype, copy=False)
        next_obs, reward, terminated, truncated, info = env.step(action)
        next_obs, reward = as_float32(next_obs), as_float32(reward)
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        finite_obs = np.isfinite(next_obs)
        finite = np.isfinite(reward) & finite_obs.reshape(n, -1).all(axis=1)
        finite &= ~_diverged(info, n)
        valid = active & finite
        if valid.all():  # the common case, without the masked copies
            observations[t], actions[t], rewards[t], mask[t] = obs, action, reward, 1.0
        else:
            observations[t, valid] = obs[valid]
            actions[t, valid] = action[valid]
            rewards[t, valid] = reward[valid]
            mask[t, valid] = 1.0
        success = _successes(info, n)
        if success is not None:
            if successes is None:
                successes = np.zeros((steps, n), np.float32)
            successes[t] = valid & success
        bad = active & ~finite
        warn_nonfinite(int(bad.sum()), f"at step {t}")
        truncated = collector.horizon_ends(t, terminated, truncated)
        ended = valid & (terminated | truncated | (t == steps - 1))
        collector.end(StepEnd(t, valid, ended, bad, terminated, truncated, obs, next_obs))
        active &= ~(ended | bad)
        # Ended sub-environments keep stepping; keep their garbage finite for the policy.
        obs = np.where(finite_obs, next_obs, np.float32(0.0))
        lanes, fresh, ok = collector.restart(env, ended | bad, t)
        if len(lanes):
            obs[lanes] = fresh
            active[lanes[ok]] = True

    step_arrays = {"observations": observations, "actions": actions, "rewards": rewards, "mask": mask}
    if successes is not None:
        step_arrays["successes"] = successes
    return collector.episodes(Shard(start, start + n), step_arrays)
