"""Per-sub-environment random streams that a batched step draws from in one numpy call.

A batched environment should reproduce, sub-environment by sub-environment, what the
single environment does with the same reset seed and actions. One
``numpy.random.Generator`` per sub-environment would give that, but drawing from ``N``
generators needs a Python loop over them at every step. Instead every stream here is
*counter based*: draw number ``c`` of a stream with key ``k`` is the SplitMix64 output
``mix64(k + c·γ)`` (γ the 64-bit golden ratio), i.e. the ``c``-th output of a SplitMix64
generator seeded with ``k``. Any number of streams, each at its own counter, are then
advanced together with a few vectorised ``uint64`` operations.

The keys come from Gymnasium's seeding: at reset, a sub-environment draws a fresh
64-bit key from its own ``numpy.random.Generator`` (the single environment uses its
``self.np_random``), so ``reset(seed=s)`` pins the whole episode, and ``reset()``
without a seed continues that generator, exactly as Gymnasium specifies. Single and
batched environments share this code (the single one is a batch of one), so they
produce bit-identical episodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium.utils import seeding

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 2.0**-53


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a ``uint64`` array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


def draw_key(rng: np.random.Generator) -> np.uint64:
    """A fresh 64-bit stream key drawn from ``rng``."""
    return rng.integers(0, 2**64, dtype=np.uint64)


class SubenvStreams:
    """``num_streams`` independent uniform streams, one per sub-environment.

    :meth:`reset` (batched envs) or :meth:`restart` (single envs) gives some streams
    new keys and rewinds them; :meth:`uniform` draws the next values of *every* stream
    at once.
    """

    def __init__(self, num_streams: int) -> None:
        self.keys = np.zeros(num_streams, dtype=np.uint64)
        self.counters = np.zeros(num_streams, dtype=np.uint64)
        self._generators: list[np.random.Generator | None] = [None] * num_streams

    def reset(self, indices: np.ndarray | Sequence[int], seeds: Sequence[int | None]) -> None:
        """Rekey streams ``indices`` the way ``gymnasium.Env.reset(seed=...)`` reseeds ``np_random``.

        Stream ``i`` keeps a generator: a seed replaces it with
        ``gymnasium.utils.seeding.np_random(seed)``, ``None`` continues it (creating an
        unseeded one the first time). The new key is :func:`draw_key` of that generator.
        """
        keys = np.empty(len(seeds), dtype=np.uint64)
        for j, (i, seed) in enumerate(zip(indices, seeds, strict=True)):  # at reset only, never per step
            if seed is not None or self._generators[i] is None:
                self._generators[i] = seeding.np_random(None if seed is None else int(seed))[0]
            keys[j] = draw_key(self._generators[i])
        self.restart(indices, keys)

    def restart(self, indices: np.ndarray | Sequence[int], keys: np.ndarray | Sequence[np.uint64]) -> None:
        """Give stream ``indices[j]`` the key ``keys[j]`` and rewind it to its first draw."""
        indices = np.asarray(indices, dtype=np.int64)
        self.keys[indices] = np.asarray(keys, dtype=np.uint64)
        self.counters[indices] = 0

    def uniform(self, draws: int) -> np.ndarray:
        """The next ``draws`` values of every stream: ``float64`` in ``[0, 1)``, ``[num_streams, draws]``."""
        counters = self.counters[:, None] + np.arange(1, draws + 1, dtype=np.uint64)
        self.counters += np.uint64(draws)
        bits = _mix64(self.keys[:, None] + counters * _GAMMA)
        return (bits >> np.uint64(11)).astype(np.float64) * _TWO_POW_MINUS_53
