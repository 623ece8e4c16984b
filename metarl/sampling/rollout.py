"""The rollout: one batched step loop over a shard's sub-environments, plain episodes or a step budget."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.sampling.shards import Shard, ShardEpisodes
from metarl.sampling.streams import _EpisodeStreams
from metarl.tasks import DIVERGED_INFO_KEY, BatchedTaskEnv

log = logging.getLogger("metarl")


class PolicyLike(Protocol):
    """What the sampler needs of a policy: a distribution from per-task parameters, and noise → actions."""

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Distribution: ...

    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray: ...

    def sample_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor: ...


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


class _StepBudget:
    """A step-budget rollout's episodes: where each sub-environment's current one began, and those ended."""

    def __init__(self, num_envs: int, obs_shape: tuple[int, ...]) -> None:
        self.begin = np.zeros(num_envs, np.int64)  # step at which the current episode began
        self.resets = np.zeros(num_envs, np.int64)  # reset seeds used so far
        self.obs_shape = obs_shape
        self.ends: list[dict[str, np.ndarray]] = []

    def close(
        self,
        lanes: np.ndarray,
        stop: int,
        final_observations: np.ndarray,
        terminated: np.ndarray | None = None,
        nonfinite: bool = False,
    ) -> None:
        """Keep the episodes of ``lanes``, whose last kept step was ``stop - 1``.

        ``terminated`` (all sub-environments' flags): the episodes ended (terminated, or
        else truncated); ``nonfinite``: they were cut short by a numerical fault.
        """
        if len(lanes) == 0:
            return
        ended = np.zeros(len(lanes), bool) if terminated is None else terminated[lanes]
        self.ends.append({
            "lane": lanes,
            "begin": self.begin[lanes].copy(),
            "length": stop - self.begin[lanes],
            "terminated": ended & (not nonfinite),
            "truncated": ~ended & (not nonfinite),
            "nonfinite": np.full(len(lanes), nonfinite),
            "final_observations": np.asarray(final_observations[lanes], np.float32),
        })

    def restart(
        self, env: BatchedTaskEnv, which: np.ndarray, seeds: np.ndarray | None, begin: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reset the sub-environments ``which`` for a new episode from step ``begin``.

        Returns their indices, fresh observations (zeros where non-finite) and which reset
        well; one that did not keeps an empty episode marked non-finite and stays idle.
        """
        assert seeds is not None
        lanes = np.flatnonzero(which)
        reset_seeds: list[int | None] = [None] * len(which)
        for lane in lanes.tolist():
            reset_seeds[lane] = int(seeds[lane, self.resets[lane]])
        self.resets[lanes] += 1
        obs, _ = env.reset(seed=reset_seeds, options={"reset_mask": which})
        fresh = _as_float32(obs)[lanes]
        ok = np.isfinite(fresh.reshape(len(lanes), -1)).all(axis=1)
        self.begin[lanes] = begin
        fresh[~ok] = 0.0
        self.close(lanes[~ok], begin, np.zeros((len(which), *self.obs_shape), np.float32), nonfinite=True)
        _warn_nonfinite(int((~ok).sum()), "at a reset")
        return lanes, fresh, ok


def _episode_rows(
    lane_data: dict[str, np.ndarray], ends: list[dict[str, np.ndarray]], start: int, horizon: int
) -> dict:
    """Cut sub-environment-major ``[steps, n]`` step arrays into one ``horizon``-long padded row per kept episode."""
    merged = {key: np.concatenate([end[key] for end in ends]) for key in ends[0]}
    order = np.lexsort((merged["begin"], merged["lane"]))
    merged = {key: value[order] for key, value in merged.items()}
    lane, begin, length = merged["lane"], merged["begin"], merged["length"]
    steps = lane_data["mask"].shape[0]
    offset = np.arange(horizon)[:, None]
    valid = offset < length[None, :]
    source = np.minimum(begin[None, :] + offset, steps - 1)
    rows = {}
    for name, array in lane_data.items():
        picked = array[source, lane[None, :]]
        keep = valid.reshape(valid.shape + (1,) * (picked.ndim - 2))
        rows[name] = np.where(keep, picked, np.zeros((), picked.dtype))
    rows["mask"] = valid.astype(np.float32)
    return {
        **rows,
        "lengths": length,
        "terminated": merged["terminated"],
        "truncated": merged["truncated"],
        "nonfinite": merged["nonfinite"],
        "final_observations": merged["final_observations"],
        "lanes": lane + start,
    }


def _warn_nonfinite(count: int, when: str) -> None:
    if count:
        log.warning(
            "sampler: %d episode(s) ended %s on non-finite observations/rewards or unstable physics; "
            "their remaining steps are dropped (metric nonfinite_episodes)", count, when,
        )


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
    ``budget_horizons × H`` steps. When an episode ends (early, or at the horizon ``H``)
    the sub-environment is reset, with the next of the reset seeds its stream draws
    after the noise, and starts another episode, which continues the stream's noise;
    the episode still running when the budget is spent is dropped (never the first,
    which the horizon ends in time). The result then holds one ``H``-long row per kept
    episode (:attr:`ShardEpisodes.lanes` names their sub-environments).
    """
    if budget_horizons < 1 or (budget_horizons > 1 and not step_budget):
        raise ValueError(f"rollout: budget_horizons {budget_horizons} needs step_budget and must be >= 1")
    n, E, H = env.num_envs, envs_per_task, env.max_episode_steps
    steps = H * budget_horizons
    first, last = start // E, (start + n - 1) // E
    blocks, offset = last - first + 1, start - first * E
    rows = blocks * E
    block_params = {name: p[first : last + 1].contiguous() for name, p in params.items()}

    seeds: list[int | None] = []
    refill_seeds = np.zeros((n, steps), np.int64) if step_budget else None
    streams = _EpisodeStreams(phase_key)
    noise: np.ndarray | None = None
    for k in range(n):
        stream = streams((start + k) // E, (start + k) % E)
        seeds.append(int(stream.integers(0, 2**31 - 1)))
        episode_noise = policy.draw_noise(stream, steps)
        if noise is None:
            noise = np.zeros((steps, rows, *episode_noise.shape[1:]), episode_noise.dtype)
        noise[:, offset + k] = episode_noise
        if refill_seeds is not None:
            refill_seeds[k] = stream.integers(0, 2**31 - 1, size=steps)
    assert noise is not None
    noise_shape = noise.shape[2:]
    noise_t = torch.from_numpy(noise)

    obs, _ = env.reset(seed=seeds)
    obs = _as_float32(obs)
    obs_shape = obs.shape[1:]
    act_shape = env.single_action_space.shape or ()
    act_dtype = np.float32 if np.issubdtype(env.single_action_space.dtype, np.floating) else np.int64
    padded = np.zeros((rows, *obs_shape), np.float32) if rows != n else None

    observations = np.zeros((steps, n, *obs_shape), np.float32)
    actions = np.zeros((steps, n, *act_shape), act_dtype)
    rewards = np.zeros((steps, n), np.float32)
    mask = np.zeros((steps, n), np.float32)
    final_obs = np.zeros((n, *obs_shape), np.float32)
    terminated_ep = np.zeros(n, bool)
    truncated_ep = np.zeros(n, bool)
    lengths = np.zeros(n, np.int64)
    nonfinite_ep = ~np.isfinite(obs.reshape(n, -1)).all(axis=1)  # a bad initial state: no step at all
    active = ~nonfinite_ep
    obs[nonfinite_ep] = 0.0
    _warn_nonfinite(int(nonfinite_ep.sum()), "at reset")
    budget = _StepBudget(n, obs_shape) if step_budget else None
    if budget is not None:
        budget.close(np.flatnonzero(nonfinite_ep), 0, final_obs, nonfinite=True)

    for t in range(steps):
        if not active.any():
            break
        if padded is not None:
            padded[offset : offset + n] = obs
            obs_rows = torch.from_numpy(padded)
        else:
            obs_rows = torch.from_numpy(obs)
        dist = policy.distribution(obs_rows.view(blocks, E, *obs_shape), block_params)
        action_rows = policy.sample_from_noise(dist, noise_t[t].view(blocks, E, *noise_shape))
        action = action_rows.reshape(rows, *act_shape)[offset : offset + n].numpy().astype(act_dtype, copy=False)
        next_obs, reward, terminated, truncated, info = env.step(action)
        next_obs, reward = _as_float32(next_obs), _as_float32(reward)
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        finite = np.isfinite(reward) & np.isfinite(next_obs.reshape(n, -1)).all(axis=1)
        finite &= ~_diverged(info, n)
        valid = active & finite
        observations[t, valid] = obs[valid]
        actions[t, valid] = action[valid]
        rewards[t, valid] = reward[valid]
        mask[t, valid] = 1.0
        lengths += valid
        bad = active & ~finite
        nonfinite_ep |= bad
        _warn_nonfinite(int(bad.sum()), f"at step {t}")
        if budget is not None:  # within a lane, the horizon ends an episode whether or not the env truncates it
            truncated = truncated | ((t + 1 - budget.begin >= H) & ~terminated)
        ended = valid & (terminated | truncated | (t == steps - 1))
        terminated_ep |= ended & terminated
        truncated_ep |= ended & ~terminated
        final_obs[ended] = next_obs[ended]
        final_obs[bad] = obs[bad]
        active &= ~(ended | bad)
        if budget is not None:
            cut = ended & ~terminated & ~truncated  # ran out of budget before its horizon: dropped
            budget.close(np.flatnonzero(ended & ~cut), t + 1, next_obs, terminated=terminated)
            budget.close(np.flatnonzero(bad), t, obs, nonfinite=True)
        # Ended sub-environments keep stepping; keep their garbage finite for the policy.
        obs = np.where(np.isfinite(next_obs), next_obs, np.float32(0.0))
        if budget is not None and t < steps - 1 and (ended | bad).any():
            lanes, fresh, ok = budget.restart(env, ended | bad, refill_seeds, t + 1)
            obs[lanes] = fresh
            active[lanes[ok]] = True

    if budget is not None:
        lane_data = {"observations": observations, "actions": actions, "rewards": rewards, "mask": mask}
        return ShardEpisodes(shard=Shard(start, start + n), **_episode_rows(lane_data, budget.ends, start, H))
    return ShardEpisodes(
        shard=Shard(start, start + n),
        observations=observations,
        actions=actions,
        rewards=rewards,
        mask=mask,
        lengths=lengths,
        terminated=terminated_ep,
        truncated=truncated_ep,
        nonfinite=nonfinite_ep,
        final_observations=final_obs,
    )
