"""Bernoulli multi-armed bandits: the classic discrete meta-RL benchmark (RL², MAML ports).

A task is the vector of arm probabilities ``p ~ U[0, 1]^K``; an episode is ``n`` pulls.
Registered ids: ``metarl/Bandit-K{5,10,50}-N{10,100,500}-v0`` (kwarg ``k`` = number of
arms, ``max_episode_steps`` = ``n``). Versions: ``-v0`` is the first and current one; its
``metadata["reward_bounds"]`` (0, 1) lets figures stop intervals at a return of ``n``.

Randomness and batching: each sub-environment of :class:`BatchedBernoulliBandit` owns a
random stream keyed at reset from its own seeded generator (see :mod:`envs.streams`), and
the step draws the next uniform of every stream in one vectorised call. The reward of a
pull is ``1.0 if u < p[a] else 0.0``, computed by the same code in the single and the
batched env, so a batched env and ``N`` single envs reset with the same seeds and given
the same actions produce identical trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.references import bandit_reference_returns
from envs.streams import SubenvStreams, draw_key
from metarl.tasks.protocol import BatchedTaskEnv
from metarl.tasks.registry import register_task_env

BANDIT_ARMS = (5, 10, 50)
"""Numbers of arms ``K`` with a registered id."""
BANDIT_PULLS = (10, 100, 500)
"""Episode lengths ``n`` with a registered id."""


@dataclass(frozen=True)
class BanditTask:
    """A Bernoulli bandit task: the success probability of every arm."""

    probs: tuple[float, ...]

    def __post_init__(self) -> None:
        probs = tuple(float(p) for p in self.probs)
        if not probs or not all(0.0 <= p <= 1.0 for p in probs):
            raise ValueError(f"BanditTask: probs must be a non-empty sequence in [0, 1], got {self.probs!r}")
        object.__setattr__(self, "probs", probs)

    @property
    def num_arms(self) -> int:
        """The number of arms ``K``."""
        return len(self.probs)


def bandit_id(k: int, n: int) -> str:
    """The registered id of the ``k``-armed bandit with episodes of ``n`` pulls."""
    return f"metarl/Bandit-K{k}-N{n}-v0"


def sample_bandit_tasks(n: int, k: int, rng: np.random.Generator) -> list[BanditTask]:
    """Draw ``n`` tasks of ``k`` arms with probabilities i.i.d. ``U[0, 1]``.

    Args:
        n: The number of tasks.
        k: Arms per task.
        rng: The generator of the probabilities.
    """
    return [BanditTask(probs=tuple(row)) for row in rng.uniform(0.0, 1.0, size=(n, k)).tolist()]


def _check_task(task: Any, k: int, where: str) -> BanditTask:
    if not isinstance(task, BanditTask):
        raise TypeError(f"{where}: expected a BanditTask, got {type(task).__name__}")
    if task.num_arms != k:
        raise ValueError(f"{where}: task has {task.num_arms} arms, the environment {k}")
    return task


def _check_k(k: int, where: str) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"{where}: k (number of arms) must be a positive integer, got {k!r}")
    return int(k)


def _pull(probs: np.ndarray, actions: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Rewards of pulling arm ``actions[i]`` of ``probs[i]`` with uniforms ``u[i]``."""
    return (u < probs[np.arange(len(actions)), actions]).astype(np.float64)


class BernoulliBanditEnv(gym.Env[np.ndarray, np.int64]):
    """A ``K``-armed Bernoulli bandit: each pull pays 1 with the arm's probability.

    A task fixes the arm probabilities ``p``, drawn i.i.d. from ``U[0, 1]``; the agent
    only learns them from its rewards, so it has to explore and then exploit within
    the ``n`` pulls of an episode (and a meta-learner across episodes of one task).

    ## Action space

    ``Discrete(K)``: the arm to pull.

    ## Observation space

    ``Box(0, 1, (1,), float32)``, always ``[1.0]``: a bandit has no state. The constant
    lets a stateless MLP policy run unchanged; its logits are then the learned
    preferences over arms.

    | index | observation | value |
    |-------|-------------|-------|
    | 0     | constant    | 1.0   |

    ## Rewards

    ``1.0`` with probability ``p[a]`` and ``0.0`` otherwise, for the pulled arm ``a``.
    The expected return of an episode of ``n`` pulls is at most ``n·max(p)``.

    ## Episode end

    * Termination: never.
    * Truncation: after ``n`` pulls (``max_episode_steps``; ``n`` in the registered id).

    ## Arguments

    * ``k``: the number of arms (default 5).
    * ``task``: the initial task; defaults to every arm at ``p = 0.5``.
    * ``pulls``: the ``n`` of the registered id (set by the registration; the episode
      length comes from ``max_episode_steps``). The batched env refuses an episode
      length (the config's ``horizon``) other than ``n``.

    ## Tasks

    ``sample_tasks(n)`` returns ``n`` :class:`BanditTask` drawn with the env's
    ``np_random``; ``set_task`` takes one, ``get_task`` returns the current one.
    """

    metadata: dict[str, Any] = {"render_modes": [], "reward_bounds": (0.0, 1.0)}  # Bernoulli arms

    def __init__(self, k: int = 5, task: BanditTask | None = None, pulls: int | None = None) -> None:
        self.k = _check_k(k, type(self).__name__)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.k)
        self._task = BanditTask(probs=(0.5,) * self.k)
        self._probs = np.full((1, self.k), 0.5)
        if task is not None:
            self.set_task(task)
        self._streams = SubenvStreams(1)

    def sample_tasks(self, n: int) -> list[BanditTask]:
        """Draw ``n`` tasks with the env's own generator."""
        return sample_bandit_tasks(n, self.k, self.np_random)

    def set_task(self, task: BanditTask) -> None:
        """Make ``task`` the current task (effective immediately)."""
        self._task = _check_task(task, self.k, f"{type(self).__name__}.set_task")
        self._probs = np.asarray(task.probs, dtype=np.float64)[None, :]

    def get_task(self) -> BanditTask:
        """Return the current task."""
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: the constant observation."""
        super().reset(seed=seed)
        self._streams.restart([0], [draw_key(self.np_random)])
        return np.ones(1, dtype=np.float32), {}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pull arm ``action``: a Bernoulli reward with the task's probability of that arm."""
        if not self.action_space.contains(action):
            raise ValueError(f"{type(self).__name__}.step: invalid action {action!r} for {self.action_space}")
        reward = _pull(self._probs, np.array([int(action)]), self._streams.uniform(1)[:, 0])
        return np.ones(1, dtype=np.float32), float(reward[0]), False, False, {}


class BatchedBernoulliBandit(BatchedTaskEnv[BanditTask]):
    """``num_envs`` Bernoulli bandits, each with its own task, pulled in one numpy call.

    Actions are integer arrays of shape ``(num_envs,)``; see :class:`BernoulliBanditEnv`
    for spaces and rewards and the module docstring for how randomness is kept
    identical to the single environment.
    """

    def __init__(self, num_envs: int, max_episode_steps: int = 100, k: int = 5, pulls: int | None = None) -> None:
        if pulls is not None and max_episode_steps != pulls:
            raise ValueError(
                f"{bandit_id(k, pulls)} has episodes of {pulls} pulls, but max_episode_steps (the config's "
                f"horizon) is {max_episode_steps}; set horizon: {pulls}, or pick the id with "
                f"N{max_episode_steps} if that length is the one you want"
            )
        super().__init__(num_envs, max_episode_steps)
        self.k = _check_k(k, type(self).__name__)
        single = BernoulliBanditEnv(k=self.k)
        self._init_spaces(single.observation_space, single.action_space)
        self._probs = np.full((num_envs, self.k), 0.5)
        self._streams = SubenvStreams(num_envs)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[BanditTask]:
        """Draw ``n`` tasks with ``rng``."""
        return sample_bandit_tasks(n, self.k, rng)

    def task_features(self, task: BanditTask) -> np.ndarray:
        """The task as the oracle baseline sees it: the ``K`` arm probabilities."""
        return np.asarray(_check_task(task, self.k, f"{type(self).__name__}.task_features").probs, np.float32)

    def reference_returns(
        self, tasks: Sequence[BanditTask], horizon: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Per-task returns of ``horizon`` pulls: best arm (``n·max p``), UCB1, Thompson, random (``n·mean p``).

        See :func:`envs.references.bandit_reference_returns`; evaluation reports them.

        Args:
            tasks: The held-out tasks.
            horizon: Pulls per episode.
            rng: Seeds UCB1's and Thompson sampling's runs.
        """
        where = f"{type(self).__name__}.reference_returns"
        return bandit_reference_returns([_check_task(t, self.k, where) for t in tasks], horizon, rng)

    def _apply_tasks(self, tasks: Sequence[BanditTask]) -> None:
        where = f"{type(self).__name__}.set_tasks"
        self._probs = np.array([_check_task(t, self.k, where).probs for t in tasks], dtype=np.float64)

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        self._streams.reset(indices, seeds)
        return np.ones((self.num_envs, 1), dtype=np.float32)

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = actions.astype(np.int64, copy=False)
        if np.any((actions < 0) | (actions >= self.k)):
            raise ValueError(f"{type(self).__name__}.step: actions must be in [0, {self.k}), got {actions}")
        reward = _pull(self._probs, actions, self._streams.uniform(1)[:, 0])
        obs = np.ones((self.num_envs, 1), dtype=np.float32)
        return obs, reward, np.zeros(self.num_envs, dtype=bool), {}


def _register() -> None:
    for k in BANDIT_ARMS:
        for n in BANDIT_PULLS:
            if bandit_id(k, n) in gym.registry:  # module imported a second time
                continue
            register_task_env(
                bandit_id(k, n),
                entry_point="envs.bandits:BernoulliBanditEnv",
                batched_entry_point="envs.bandits:BatchedBernoulliBandit",
                max_episode_steps=n,
                kwargs={"k": k, "pulls": n},
            )


_register()
