"""Shards: contiguous runs of an iteration's sub-environments, and joining their episodes.

:func:`split_shards` cuts an iteration's sub-environments into contiguous shards (one per
worker); :func:`assemble_episodes` joins the shards' :class:`ShardEpisodes` into the one
:class:`~metarl.sampling.episodes.Episodes` batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metarl.sampling.episodes import Episodes


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
    successes: np.ndarray | None = None
    """``[H, n]`` float32: 1 where the env reported success (``None``: it reports none)."""
    lanes: np.ndarray | None = None
    """With a step budget: the sub-environment (index in the phase) that ran each episode row;
    rows are in sub-environment, then time order. ``None``: row ``k`` is sub-environment ``start + k``."""


_TIME_MAJOR = ("observations", "actions", "rewards", "mask")
_PER_EPISODE = ("lengths", "terminated", "truncated", "nonfinite", "final_observations")


def _optional_time_major(parts: Sequence[ShardEpisodes]) -> tuple[str, ...]:
    """``("successes",)`` when every shard has them, ``()`` when none has (a mix is an error)."""
    have = [part.successes is not None for part in parts]
    if any(have) and not all(have):
        raise ValueError("assemble_episodes: some shards report success and others do not")
    return ("successes",) if all(have) else ()


def assemble_episodes(parts: Sequence[ShardEpisodes], num_tasks: int, envs_per_task: int) -> Episodes:
    """The :class:`Episodes` batch ``[H, T, E]`` of shards that together cover every sub-environment once.

    ``envs_per_task``: sub-environments per task (``E`` in plain sampling; with a step
    budget the batch's width is instead the most episodes any task got).

    Args:
        parts: The shards' episodes.
        num_tasks: The phase's tasks.
        envs_per_task: Sub-environments per task.
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
    for name in _TIME_MAJOR + _optional_time_major(parts):
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
    for name in _TIME_MAJOR + _optional_time_major(parts):
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
