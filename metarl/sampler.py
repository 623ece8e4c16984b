"""Roll a policy out on every (task, episode) pair of an iteration at once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.episodes import Episodes
from metarl.tasks import DIVERGED_INFO_KEY, BatchedTaskEnv, Task

if TYPE_CHECKING:
    pass

log = logging.getLogger("metarl")


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
    """What the sampler needs of a policy: a distribution from per-task parameters, and noise → actions."""

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Distribution: ...

    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray: ...

    def sample_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor: ...


# ------------------------------------------------------------------------------ randomness


def draw_phase_key(rng: np.random.Generator) -> int:
    """A sampling phase's key: the one draw a phase makes from the run's generator."""
    return int(rng.integers(0, 2**63 - 1))


def episode_stream(phase_key: int, task: int, episode: int) -> np.random.Generator:
    """The random stream of episode ``episode`` of task ``task`` in the phase ``phase_key``.

    A Philox (counter-based) generator keyed by all three numbers: the episode's reset
    seed and action noise depend on nothing else, in particular not on which process
    or shard of sub-environments samples it.
    """
    return np.random.Generator(np.random.Philox(key=_stream_key(phase_key, task, episode)))


def _stream_key(phase_key: int, task: int, episode: int) -> int:
    if not (0 <= task < 2**32 and 0 <= episode < 2**32):
        raise ValueError(f"episode_stream: task {task} and episode {episode} must be in [0, 2**32)")
    return (phase_key << 64) | (task << 32) | episode


class _EpisodeStreams:
    """:func:`episode_stream` for many episodes, fast: one Philox generator, re-keyed (2 µs instead of 20)."""

    def __init__(self, phase_key: int) -> None:
        self.phase_key = phase_key
        self._bit_generator = np.random.Philox(key=0)
        self._generator = np.random.Generator(self._bit_generator)

    def __call__(self, task: int, episode: int) -> np.random.Generator:
        """The generator in the state ``episode_stream(phase_key, task, episode)`` starts in."""
        key = _stream_key(self.phase_key, task, episode)
        self._bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": np.zeros(4, np.uint64), "key": np.array([key & (2**64 - 1), key >> 64], np.uint64)},
            "buffer": np.zeros(4, np.uint64),
            "buffer_pos": 4,
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self._generator


# ------------------------------------------------------------------------------ shards


def envs_per_task(episodes_per_task: int, step_budget: bool = False, budget_lanes: int = 0) -> int:
    """How many sub-environments each task runs on: one per episode, or ``budget_lanes`` with a step budget.

    With ``step_budget`` and ``budget_lanes > 0``, a task's budget of
    ``episodes_per_task × horizon`` steps is shared by ``budget_lanes`` sub-environments,
    each running ``episodes_per_task / budget_lanes`` horizons of steps (``1``: one
    environment per task, the MAML paper code's sampler). ``budget_lanes = 0``: one per episode.
    """
    if budget_lanes < 0:
        raise ValueError(f"budget_lanes must be >= 0, got {budget_lanes}")
    if budget_lanes == 0:
        return episodes_per_task
    if not step_budget:
        raise ValueError(f"budget_lanes {budget_lanes} needs step_budget (plain sampling runs one sub-env per episode)")
    if episodes_per_task % budget_lanes:
        raise ValueError(f"budget_lanes {budget_lanes} must divide episodes_per_task {episodes_per_task}")
    return budget_lanes


@dataclass(frozen=True)
class Shard:
    """The sub-environments ``start, ..., stop - 1`` of a phase (sub-env ``i·E + j``: the ``j``-th of task ``i``)."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        """Number of sub-environments."""
        return self.stop - self.start


def split_shards(num_envs: int, num_shards: int) -> list[Shard]:
    """``num_envs`` sub-environments cut into ``min(num_shards, num_envs)`` contiguous shards of near-equal size."""
    if num_envs < 1 or num_shards < 1:
        raise ValueError(f"split_shards: need num_envs >= 1 and num_shards >= 1, got {num_envs}, {num_shards}")
    bounds = np.linspace(0, num_envs, min(num_shards, num_envs) + 1).round().astype(int)
    return [Shard(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class ShardEpisodes:
    """The episodes of one shard, sub-environment major: ``[H, n, ...]`` and ``[n, ...]`` numpy arrays."""

    shard: Shard
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    nonfinite: np.ndarray
    final_observations: np.ndarray
    lanes: np.ndarray | None = None
    """With a step budget: the sub-environment (index in the phase) that ran each episode row;
    rows are in sub-environment, then time order. ``None``: row ``k`` is sub-environment ``start + k``."""


_TIME_MAJOR = ("observations", "actions", "rewards", "mask")
_PER_EPISODE = ("lengths", "terminated", "truncated", "nonfinite", "final_observations")


def assemble_episodes(parts: Sequence[ShardEpisodes], num_tasks: int, envs_per_task: int) -> Episodes:
    """The :class:`Episodes` batch ``[H, T, E]`` of shards that together cover every sub-environment once.

    ``envs_per_task``: sub-environments per task (``E`` in plain sampling; with a step
    budget the batch's width is instead the most episodes any task got).
    """
    parts = sorted(parts, key=lambda part: part.shard.start)
    covered = [(part.shard.start, part.shard.stop) for part in parts]
    expected_stops = [start for start, _ in covered[1:]] + [num_tasks * envs_per_task]
    if not parts or covered[0][0] != 0 or [stop for _, stop in covered] != expected_stops:
        raise ValueError(f"assemble_episodes: shards {covered} do not cover 0..{num_tasks * envs_per_task}")
    T, E = num_tasks, envs_per_task

    def joined(name: str, axis: int) -> np.ndarray:
        arrays = [getattr(part, name) for part in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)

    if any(part.lanes is not None for part in parts):
        if not all(part.lanes is not None for part in parts):
            raise ValueError("assemble_episodes: shards sampled with and without a step budget")
        return _assemble_rows(parts, joined, T, E)
    time_major = {}
    for name in _TIME_MAJOR:
        array = joined(name, 1)
        time_major[name] = torch.from_numpy(array).view(array.shape[0], T, E, *array.shape[2:])
    per_episode = {}
    for name in _PER_EPISODE:
        array = joined(name, 0)
        per_episode[name] = torch.from_numpy(array).view(T, E, *array.shape[1:])
    return Episodes(**time_major, **per_episode)


def _assemble_rows(
    parts: Sequence[ShardEpisodes], joined: Callable[[str, int], np.ndarray], T: int, E: int
) -> Episodes:
    """Episode rows of a step-budget phase as ``[H, T, E']``, ``E'`` the most episodes any task got.

    Task ``i`` fills its first ``count_i`` slots in sub-environment, then time order; the
    remaining slots are empty (mask 0, length 0: :attr:`Episodes.present` false).
    """
    lanes = joined("lanes", 0)
    tasks = lanes // E
    counts = np.bincount(tasks, minlength=T)
    slots = np.arange(len(lanes)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = max(int(counts.max()), 1)
    out: dict[str, Tensor] = {}
    for name in _TIME_MAJOR:
        rows = joined(name, 1)
        full = np.zeros((rows.shape[0], T, width, *rows.shape[2:]), rows.dtype)
        full[:, tasks, slots] = rows
        out[name] = torch.from_numpy(full)
    for name in _PER_EPISODE:
        rows = joined(name, 0)
        full = np.zeros((T, width, *rows.shape[1:]), rows.dtype)
        full[tasks, slots] = rows
        out[name] = torch.from_numpy(full)
    return Episodes(**out)


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


# ------------------------------------------------------------------------------ the sampler


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``num_threads`` torch intra-op threads (``None``: unchanged), then restore."""
    before = torch.get_num_threads()
    if num_threads is None or num_threads == before:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Sampler:
    """Samples ``episodes_per_task`` episodes of each of ``num_tasks`` tasks in one batched env.

    With ``step_budget`` each sub-environment instead runs episodes back to back for the
    horizon (:func:`rollout`), and the batch holds as many episode slots per task as the
    task with the most episodes needs. ``budget_lanes > 0`` shares each task's budget of
    ``E × H`` steps among that many sub-environments instead of ``E``
    (:func:`envs_per_task`); ``env`` must then hold ``num_tasks × budget_lanes`` of them.

    Sub-environment ``i * E + j`` runs episode ``j`` of task ``i``. Every time step
    is one env call and one batched policy forward, in which task ``i`` uses its
    own parameters ``params[name][i]``.

    Randomness: each call of :meth:`sample` draws one key from the generator it is
    given; episode ``j`` of task ``i`` takes its reset seed and its action noise from
    :func:`episode_stream` of that key, ``i`` and ``j``, and actions are sampled by
    reparameterisation from that noise (:meth:`PolicyLike.sample_from_noise`). So any
    subset of the sub-environments, sampled elsewhere (the Ray backend,
    :mod:`metarl.ray_sampler`), reproduces exactly its part of the batch.

    Numerical faults do not reach the learner: a sub-environment whose reset
    observation, step observation or reward is non-finite (or beyond float32), or
    whose step ``info["diverged"]`` flag is set, ends its episode there; the offending
    step is dropped (masked out), the episode is marked in ``Episodes.nonfinite`` and
    a warning is logged.

    Threads: the per-step policy forward is many small ops, which torch's intra-op threads
    slow down (they synchronise every op and spin against the env's own threads, e.g.
    ``mujoco.batch``'s); so rollouts run with ``policy_threads`` torch threads (default 1)
    and the previous setting is restored for the learner (BENCHMARKS.md, "Locomotion
    meta-iteration"). ``None`` leaves the thread count alone.
    """

    def __init__(
        self,
        env: BatchedTaskEnv,
        policy: PolicyLike,
        num_tasks: int,
        episodes_per_task: int,
        policy_threads: int | None = 1,
        step_budget: bool = False,
        budget_lanes: int = 0,
    ) -> None:
        self.envs_per_task = envs_per_task(episodes_per_task, step_budget, budget_lanes)
        if env.num_envs != num_tasks * self.envs_per_task:
            raise ValueError(
                f"Sampler: env has {env.num_envs} sub-environments, expected {num_tasks * self.envs_per_task} "
                f"({num_tasks} tasks × {self.envs_per_task} sub-environments per task)"
            )
        self.env = env
        self.policy = policy
        self.num_tasks = num_tasks
        self.episodes_per_task = episodes_per_task
        self.horizon = env.max_episode_steps
        self.policy_threads = policy_threads
        self.step_budget = step_budget
        self.budget_horizons = episodes_per_task // self.envs_per_task if step_budget else 1
        self._tasks: list[Task] | None = None

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Use ``tasks`` (one per task slot) for the following calls to :meth:`sample`."""
        if len(tasks) != self.num_tasks:
            raise ValueError(f"Sampler.set_tasks: got {len(tasks)} tasks, expected {self.num_tasks}")
        self.env.set_tasks([task for task in tasks for _ in range(self.envs_per_task)])
        self._tasks = list(tasks)

    def sample(self, params: Mapping[str, Tensor], rng: np.random.Generator) -> Episodes:
        """One episode per sub-environment with per-task ``params``; the phase's key drawn from ``rng``."""
        if self._tasks is None:
            raise RuntimeError("Sampler.sample: call set_tasks first")
        with torch_threads(self.policy_threads):
            part = rollout(
                self.env,
                self.policy,
                params,
                self.envs_per_task,
                draw_phase_key(rng),
                step_budget=self.step_budget,
                budget_horizons=self.budget_horizons,
            )
        return assemble_episodes([part], self.num_tasks, self.envs_per_task)

    def close(self) -> None:
        """Release what the sampler holds beyond its env (nothing, locally)."""
