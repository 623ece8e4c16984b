"""Collectors: what the rollout's step loop keeps of its steps — plain episodes, or a step budget's.

The loop (:func:`metarl.sampling.rollout.rollout`) steps every sub-environment together
and records each step's observation, action, reward and mask. A collector decides the
rest through one interface (:class:`EpisodeCollector`): which reset seeds a sub-environment
draws, when the horizon ends an episode, what an ended episode keeps, whether an ended
sub-environment starts another episode, and how the steps become :class:`ShardEpisodes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from metarl.sampling.shards import Shard, ShardEpisodes
from metarl.tasks.protocol import BatchedTaskEnv

log = logging.getLogger("metarl")


def as_float32(values: object) -> np.ndarray:
    """``values`` as float32; finite values beyond float32's range become inf (and so are caught)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(values, dtype=np.float32)


def warn_nonfinite(count: int, when: str) -> None:
    """Log that ``count`` episodes were cut short by a numerical fault ``when`` (nothing if none)."""
    if count:
        log.warning(
            "sampler: %d episode(s) ended %s on non-finite observations/rewards or unstable physics; "
            "their remaining steps are dropped (metric nonfinite_episodes)",
            count,
            when,
        )


@dataclass(frozen=True)
class StepEnd:
    """What one step of the loop did, for the collector: flags over the ``n`` sub-environments.

    Args:
        t: The step's index.
        valid: Sub-environments whose step was kept.
        ended: Episodes that ended at this step (terminated, truncated, or out of steps).
        bad: Episodes cut short by a numerical fault at this step (the step is not kept).
        terminated, truncated: The step's flags (``truncated`` with the collector's horizon applied).
        obs, next_obs: The observations before and after the step.
    """

    t: int
    valid: np.ndarray
    ended: np.ndarray
    bad: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    obs: np.ndarray
    next_obs: np.ndarray


class EpisodeCollector(Protocol):
    """What the step loop asks of a collector; ``n`` sub-environments, ``steps`` steps at most."""

    def draw_seeds(self, lane: int, stream: np.random.Generator) -> None:
        """Draw sub-environment ``lane``'s further reset seeds from its stream (after its noise)."""

    def begin(self, obs_shape: tuple[int, ...], nonfinite: np.ndarray) -> None:
        """Start, given the observation shape and which sub-environments reset to a non-finite state."""

    def horizon_ends(self, t: int, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """The truncation flags of step ``t``, with episodes that reached the horizon added.

        Args:
            t: The step's index.
            terminated: Which sub-environments' episodes terminated ``[n]``.
            truncated: Which the env truncated ``[n]``.
        """

    def end(self, step: StepEnd) -> None:
        """Keep what ``step`` ended."""

    def restart(self, env: BatchedTaskEnv, which: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start new episodes in the ended sub-environments ``which`` after step ``t``.

        Returns the restarted indices, their fresh observations and which of them reset well.

        Args:
            env: The batched env.
            which: Indices of the sub-environments whose episodes ended.
            t: The step after which they restart.
        """

    def episodes(self, shard: Shard, steps: dict[str, np.ndarray]) -> ShardEpisodes:
        """The kept episodes, from the loop's ``[steps, n, ...]`` step arrays."""


_NOTHING = (np.zeros(0, np.int64), np.zeros((0,), np.float32), np.zeros(0, bool))


class PlainEpisodes:
    """One episode per sub-environment: it ends at termination, truncation or the horizon, and is not restarted."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs

    def draw_seeds(self, lane: int, stream: np.random.Generator) -> None:
        """Plain episodes reset once: nothing to draw."""

    def begin(self, obs_shape: tuple[int, ...], nonfinite: np.ndarray) -> None:
        """Start with every sub-environment's episode open (the non-finite ones empty)."""
        n = self.num_envs
        self.final_observations = np.zeros((n, *obs_shape), np.float32)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        self.lengths = np.zeros(n, np.int64)
        self.nonfinite = nonfinite.copy()

    def horizon_ends(self, t: int, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """The env's own truncation (the loop's last step is the horizon).

        Args:
            t: The step's index.
            terminated: Which sub-environments' episodes terminated ``[n]``.
            truncated: Which the env truncated ``[n]``.
        """
        return truncated

    def end(self, step: StepEnd) -> None:
        """Count the kept steps and close the episodes that ended."""
        ended, terminated = step.ended, step.terminated
        self.lengths += step.valid
        self.nonfinite |= step.bad
        self.terminated |= ended & terminated
        self.truncated |= ended & ~terminated
        self.final_observations[ended] = step.next_obs[ended]
        self.final_observations[step.bad] = step.obs[step.bad]

    def restart(self, env: BatchedTaskEnv, which: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plain episodes are not restarted.

        Args:
            env: The batched env.
            which: Indices of the sub-environments whose episodes ended.
            t: The step after which they restart.
        """
        return _NOTHING

    def episodes(self, shard: Shard, steps: dict[str, np.ndarray]) -> ShardEpisodes:
        """Row ``k``: sub-environment ``shard.start + k``'s one episode."""
        return ShardEpisodes(
            shard=shard,
            **steps,
            lengths=self.lengths,
            terminated=self.terminated,
            truncated=self.truncated,
            nonfinite=self.nonfinite,
            final_observations=self.final_observations,
        )


class StepBudget:
    """Episodes back to back: every sub-environment steps for its whole budget of ``steps`` steps.

    When an episode ends (early, or at the horizon ``H``) the sub-environment is reset with
    the next of the reset seeds its stream drew after the noise, and starts another episode;
    the one still running when the budget is spent is dropped (never the first, which the
    horizon ends in time).
    """

    def __init__(self, num_envs: int, steps: int, horizon: int, start: int) -> None:
        self.horizon, self.steps, self.start = horizon, steps, start
        self.begins = np.zeros(num_envs, np.int64)  # step at which the current episode began
        self.resets = np.zeros(num_envs, np.int64)  # reset seeds used so far
        self.seeds = np.zeros((num_envs, steps), np.int64)
        self.ends: list[dict[str, np.ndarray]] = []

    def draw_seeds(self, lane: int, stream: np.random.Generator) -> None:
        """One further reset seed per step (an upper bound on the episodes a sub-environment can start)."""
        self.seeds[lane] = stream.integers(0, 2**31 - 1, size=self.steps)

    def begin(self, obs_shape: tuple[int, ...], nonfinite: np.ndarray) -> None:
        """Start; a sub-environment that reset to a non-finite state keeps one empty episode and stays idle."""
        self.obs_shape = obs_shape
        self._close(np.flatnonzero(nonfinite), 0, np.zeros((len(nonfinite), *obs_shape), np.float32), nonfinite=True)

    def horizon_ends(self, t: int, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Within a sub-environment the horizon ends an episode, whether or not the env truncates it.

        Args:
            t: The step's index.
            terminated: Which sub-environments' episodes terminated ``[n]``.
            truncated: Which the env truncated ``[n]``.
        """
        return truncated | ((t + 1 - self.begins >= self.horizon) & ~terminated)

    def end(self, step: StepEnd) -> None:
        """Keep the episodes that ended, but not one the budget ran out on before its horizon."""
        cut = step.ended & ~step.terminated & ~step.truncated
        self._close(np.flatnonzero(step.ended & ~cut), step.t + 1, step.next_obs, terminated=step.terminated)
        self._close(np.flatnonzero(step.bad), step.t, step.obs, nonfinite=True)

    def restart(self, env: BatchedTaskEnv, which: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reset the sub-environments ``which`` for a new episode from step ``t + 1``, while budget is left.

        Returns their indices, fresh observations (zeros where non-finite) and which reset
        well; one that did not keeps an empty episode marked non-finite and stays idle.

        Args:
            env: The batched env.
            which: Indices of the sub-environments whose episodes ended.
            t: The step after which they restart.
        """
        if t >= self.steps - 1 or not which.any():
            return _NOTHING
        lanes = np.flatnonzero(which)
        reset_seeds: list[int | None] = [None] * len(which)
        for lane in lanes.tolist():
            reset_seeds[lane] = int(self.seeds[lane, self.resets[lane]])
        self.resets[lanes] += 1
        obs, _ = env.reset(seed=reset_seeds, options={"reset_mask": which})
        fresh = as_float32(obs)[lanes]
        ok = np.isfinite(fresh.reshape(len(lanes), -1)).all(axis=1)
        self.begins[lanes] = t + 1
        fresh[~ok] = 0.0
        self._close(lanes[~ok], t + 1, np.zeros((len(which), *self.obs_shape), np.float32), nonfinite=True)
        warn_nonfinite(int((~ok).sum()), "at a reset")
        return lanes, fresh, ok

    def episodes(self, shard: Shard, steps: dict[str, np.ndarray]) -> ShardEpisodes:
        """One ``H``-long padded row per kept episode, in sub-environment then time order."""
        merged = {key: np.concatenate([end[key] for end in self.ends]) for key in self.ends[0]}
        order = np.lexsort((merged["begin"], merged["lane"]))
        merged = {key: value[order] for key, value in merged.items()}
        lane, begin, length = merged["lane"], merged["begin"], merged["length"]
        offset = np.arange(self.horizon)[:, None]
        valid = offset < length[None, :]
        source = np.minimum(begin[None, :] + offset, steps["mask"].shape[0] - 1)
        rows = {}
        for name, array in steps.items():
            picked = array[source, lane[None, :]]
            keep = valid.reshape(valid.shape + (1,) * (picked.ndim - 2))
            rows[name] = np.where(keep, picked, np.zeros((), picked.dtype))
        rows["mask"] = valid.astype(np.float32)
        return ShardEpisodes(
            shard=shard,
            **rows,
            lengths=length,
            terminated=merged["terminated"],
            truncated=merged["truncated"],
            nonfinite=merged["nonfinite"],
            final_observations=merged["final_observations"],
            lanes=lane + self.start,
        )

    def _close(
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
        self.ends.append(
            {
                "lane": lanes,
                "begin": self.begins[lanes].copy(),
                "length": stop - self.begins[lanes],
                "terminated": ended & (not nonfinite),
                "truncated": ~ended & (not nonfinite),
                "nonfinite": np.full(len(lanes), nonfinite),
                "final_observations": np.asarray(final_observations[lanes], np.float32),
            }
        )
