"""Per-episode random streams: an episode's reset seed and action noise from (phase key, task, episode).

Every sampling phase draws one key from the run's generator; each (task, episode) pair
then has a stream of its own, so the same key gives the same episodes however the
sub-environments are split among workers.
"""

from __future__ import annotations

import numpy as np


def draw_phase_key(rng: np.random.Generator) -> int:
    """A sampling phase's key: the one draw a phase makes from the run's generator."""
    return int(rng.integers(0, 2**63 - 1))


def episode_stream(phase_key: int, task: int, episode: int) -> np.random.Generator:
    """The random stream of episode ``episode`` of task ``task`` in the phase ``phase_key``.

    A Philox (counter-based) generator keyed by all three numbers: the episode's reset
    seed and action noise depend on nothing else, in particular not on which process
    or shard of sub-environments samples it.

    Args:
        phase_key: The sampling phase's key.
        task: The task's index in the phase.
        episode: The episode's index in the task.
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
