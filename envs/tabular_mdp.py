"""Random tabular MDPs: the discrete meta-RL benchmark of RL² with a known optimal policy.

A task is an MDP with ``S`` states and ``A`` actions: a transition distribution
``P[s, a] ~ Dirichlet(1, …, 1)`` and a mean reward ``R[s, a] ~ N(1, 1)`` per
state-action pair. Every episode starts in state 0 and lasts 10 steps. Registered id:
``metarl/TabularMDP-v0`` (kwargs ``num_states=10``, ``num_actions=5``). Versions: ``-v0`` is
the first and current one.

Randomness and batching: each sub-environment of :class:`BatchedTabularMDP` owns a
random stream keyed at reset from its own seeded generator (see :mod:`envs.streams`).
A step draws three uniforms from every stream in one vectorised call: one picks the
next state by inverse-CDF sampling of ``P[s, a]``, two make the reward noise by
Box–Muller. The single and the batched env share this code, so a batched env and ``N``
single envs reset with the same seeds and given the same actions produce identical
trajectories.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.references import mdp_reference_returns
from envs.streams import SubenvStreams, draw_key
from metarl.tasks.protocol import BatchedTaskEnv
from metarl.tasks.registry import register_task_env

NUM_STATES = 10
NUM_ACTIONS = 5
HORIZON = 10
INITIAL_STATE = 0
REWARD_MEAN, REWARD_STD, REWARD_NOISE_STD = 1.0, 1.0, 1.0


@dataclass(frozen=True, eq=False)
class TabularMDPTask:
    """A tabular MDP task: read-only float64 arrays.

    * ``transitions[s, a, s']``: probability of moving to ``s'`` after action ``a`` in
      ``s``, shape ``(S, A, S)``, each ``transitions[s, a]`` sums to 1;
    * ``mean_rewards[s, a]``: expected reward of action ``a`` in ``s``, shape ``(S, A)``.

    Tasks compare and hash by value; a results file holds :meth:`to_json`.
    """

    transitions: np.ndarray
    mean_rewards: np.ndarray

    def __post_init__(self) -> None:
        P = np.array(self.transitions, dtype=np.float64)
        R = np.array(self.mean_rewards, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
            raise ValueError(f"TabularMDPTask: transitions must have shape (S, A, S), got {P.shape}")
        if R.shape != P.shape[:2]:
            raise ValueError(f"TabularMDPTask: mean_rewards must have shape {P.shape[:2]}, got {R.shape}")
        if np.any(P < 0) or not np.allclose(P.sum(axis=-1), 1.0, atol=1e-6):
            raise ValueError("TabularMDPTask: every transitions[s, a] must be a probability vector")
        if not np.all(np.isfinite(R)):
            raise ValueError("TabularMDPTask: mean_rewards must be finite")
        P.flags.writeable = False
        R.flags.writeable = False
        object.__setattr__(self, "transitions", P)
        object.__setattr__(self, "mean_rewards", R)

    @property
    def num_states(self) -> int:
        """The number of states ``S``."""
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        """The number of actions ``A``."""
        return self.transitions.shape[1]

    def fingerprint(self) -> str:
        """A short hash of the exact arrays: tells tasks apart in results files."""
        digest = hashlib.sha256(self.transitions.tobytes() + self.mean_rewards.tobytes())
        return digest.hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The task in a results file: rewards to 4 decimals and the :meth:`fingerprint`.

        The 500 transition probabilities are left out (a results file stays small); the
        held-out tasks are reproducible from the evaluation seed, and the fingerprint
        checks that a task is the one evaluated.
        """
        return {
            "mean_rewards": np.round(self.mean_rewards, 4).tolist(),
            "fingerprint": self.fingerprint(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TabularMDPTask):
            return NotImplemented
        return np.array_equal(self.transitions, other.transitions) and np.array_equal(
            self.mean_rewards, other.mean_rewards
        )

    def __hash__(self) -> int:
        return hash((self.transitions.shape, self.transitions.tobytes(), self.mean_rewards.tobytes()))

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        return type(self), (self.transitions, self.mean_rewards)


def sample_tabular_mdp_tasks(
    n: int, rng: np.random.Generator, num_states: int = NUM_STATES, num_actions: int = NUM_ACTIONS
) -> list[TabularMDPTask]:
    """Draw ``n`` MDPs: ``P[s, a] ~ Dirichlet(1)``, ``R[s, a] ~ N(1, 1)``.

    Args:
        n: The number of tasks.
        rng: The generator of the transitions and rewards.
        num_states: States per MDP.
        num_actions: Actions per state.
    """
    P = rng.dirichlet(np.ones(num_states), size=(n, num_states, num_actions))
    R = rng.normal(REWARD_MEAN, REWARD_STD, size=(n, num_states, num_actions))
    return [TabularMDPTask(transitions=P[i], mean_rewards=R[i]) for i in range(n)]


def default_task(num_states: int, num_actions: int) -> TabularMDPTask:
    """The task before any ``set_task``: uniform transitions, every mean reward 1."""
    return TabularMDPTask(
        transitions=np.full((num_states, num_actions, num_states), 1.0 / num_states),
        mean_rewards=np.full((num_states, num_actions), REWARD_MEAN),
    )


def _check_sizes(num_states: int, num_actions: int, where: str) -> tuple[int, int]:
    for name, value in (("num_states", num_states), ("num_actions", num_actions)):
        if int(value) != value or value < 1:
            raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(num_states), int(num_actions)


def _check_task(task: Any, num_states: int, num_actions: int, where: str) -> TabularMDPTask:
    if not isinstance(task, TabularMDPTask):
        raise TypeError(f"{where}: expected a TabularMDPTask, got {type(task).__name__}")
    if (task.num_states, task.num_actions) != (num_states, num_actions):
        raise ValueError(
            f"{where}: task has {task.num_states} states and {task.num_actions} actions, "
            f"the environment {num_states} and {num_actions}"
        )
    return task


def _cumulative(transitions: np.ndarray) -> np.ndarray:
    """Cumulative transition probabilities over ``s'``, the last one exactly 1."""
    cdf = np.cumsum(transitions, axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def _transition(
    cdf: np.ndarray, mean_rewards: np.ndarray, states: np.ndarray, actions: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Next states and rewards of every sub-env from three uniforms ``u[i]`` each."""
    rows = np.arange(len(states))
    next_states = np.sum(cdf[rows, states, actions] <= u[:, :1], axis=-1)  # first s' with cdf > u
    noise = np.sqrt(-2.0 * np.log1p(-u[:, 1])) * np.cos(2.0 * np.pi * u[:, 2])  # Box–Muller
    return next_states, mean_rewards[rows, states, actions] + REWARD_NOISE_STD * noise


class TabularMDPEnv(gym.Env[np.ndarray, np.int64]):
    """A random finite MDP whose dynamics and rewards the agent must discover.

    A task draws, for every state-action pair, the next-state distribution from a flat
    Dirichlet and the mean reward from ``N(1, 1)``. The observation is the state; the
    agent learns the task only from transitions and noisy rewards.

    ## Action space

    ``Discrete(A)`` (``A = num_actions``, default 5).

    ## Observation space

    ``Box(0, 1, (S,), float32)``: the one-hot encoding of the current state
    (``S = num_states``, default 10).

    | index | observation                       | value      |
    |-------|-----------------------------------|------------|
    | s     | 1 if the current state is ``s``   | 0.0 or 1.0 |

    ## Rewards

    ``R[s, a] + ε`` with ``ε ~ N(0, 1)``, for the state ``s`` the action ``a`` was taken
    in. The next state is drawn from ``P[s, a]``.

    ## Starting state

    State 0, in every episode.

    ## Episode end

    * Termination: never.
    * Truncation: after ``max_episode_steps`` (10 when made with ``gymnasium.make``).

    ## Arguments

    * ``num_states``, ``num_actions``: the sizes ``S`` and ``A``.
    * ``task``: the initial task; defaults to :func:`default_task` (uniform transitions,
      mean rewards 1).

    ## Tasks

    ``sample_tasks(n)`` returns ``n`` :class:`TabularMDPTask` drawn with the env's
    ``np_random``; ``set_task`` takes one, ``get_task`` returns the current one.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self, num_states: int = NUM_STATES, num_actions: int = NUM_ACTIONS, task: TabularMDPTask | None = None
    ) -> None:
        self.num_states, self.num_actions = _check_sizes(num_states, num_actions, type(self).__name__)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(self.num_states,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.num_actions)
        self.set_task(task if task is not None else default_task(self.num_states, self.num_actions))
        self._state = np.array([INITIAL_STATE])
        self._streams = SubenvStreams(1)

    def sample_tasks(self, n: int) -> list[TabularMDPTask]:
        """Draw ``n`` tasks with the env's own generator."""
        return sample_tabular_mdp_tasks(n, self.np_random, self.num_states, self.num_actions)

    def set_task(self, task: TabularMDPTask) -> None:
        """Make ``task`` the current task (effective immediately)."""
        where = f"{type(self).__name__}.set_task"
        self._task = _check_task(task, self.num_states, self.num_actions, where)
        self._cdf = _cumulative(task.transitions)[None]
        self._mean_rewards = task.mean_rewards[None]

    def get_task(self) -> TabularMDPTask:
        """Return the current task."""
        return self._task

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.num_states, dtype=np.float32)
        obs[self._state[0]] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start in state 0."""
        super().reset(seed=seed)
        self._streams.restart([0], [draw_key(self.np_random)])
        self._state = np.array([INITIAL_STATE])
        return self._obs(), {}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take ``action``: the task's transition and its noisy reward."""
        if not self.action_space.contains(action):
            raise ValueError(f"{type(self).__name__}.step: invalid action {action!r} for {self.action_space}")
        u = self._streams.uniform(3)
        actions = np.array([int(action)])
        self._state, reward = _transition(self._cdf, self._mean_rewards, self._state, actions, u)
        return self._obs(), float(reward[0]), False, False, {}


class BatchedTabularMDP(BatchedTaskEnv[TabularMDPTask]):
    """``num_envs`` tabular MDPs, each with its own task, stepped in one numpy call.

    Actions are integer arrays of shape ``(num_envs,)``; see :class:`TabularMDPEnv` for
    spaces and rewards and the module docstring for how randomness is kept identical
    to the single environment.
    """

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int = HORIZON,
        num_states: int = NUM_STATES,
        num_actions: int = NUM_ACTIONS,
    ) -> None:
        super().__init__(num_envs, max_episode_steps)
        self.num_states, self.num_actions = _check_sizes(num_states, num_actions, type(self).__name__)
        single = TabularMDPEnv(self.num_states, self.num_actions)
        self._init_spaces(single.observation_space, single.action_space)
        default = default_task(self.num_states, self.num_actions)
        self._cdf = np.broadcast_to(_cumulative(default.transitions), (num_envs, *default.transitions.shape))
        self._mean_rewards = np.broadcast_to(default.mean_rewards, (num_envs, *default.mean_rewards.shape))
        self._states = np.full(num_envs, INITIAL_STATE, dtype=np.int64)
        self._streams = SubenvStreams(num_envs)
        self._eye = np.eye(self.num_states, dtype=np.float32)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[TabularMDPTask]:
        """Draw ``n`` tasks with ``rng``."""
        return sample_tabular_mdp_tasks(n, rng, self.num_states, self.num_actions)

    def task_features(self, task: TabularMDPTask) -> np.ndarray:
        """The task as the oracle baseline sees it: ``P`` then ``R``, flattened (``S·A·S + S·A`` values)."""
        task = _check_task(task, self.num_states, self.num_actions, f"{type(self).__name__}.task_features")
        return np.concatenate([task.transitions.ravel(), task.mean_rewards.ravel()]).astype(np.float32)

    def reference_returns(
        self, tasks: Sequence[TabularMDPTask], horizon: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Per-task exact expected returns from state 0: optimal (value iteration) and uniform random.

        See :func:`envs.references.mdp_reference_returns`; evaluation reports them.

        Args:
            tasks: The held-out tasks.
            horizon: Steps per episode.
            rng: Unused (the returns are exact).
        """
        where = f"{type(self).__name__}.reference_returns"
        checked = [_check_task(t, self.num_states, self.num_actions, where) for t in tasks]
        return mdp_reference_returns(checked, horizon, rng, INITIAL_STATE)

    def _apply_tasks(self, tasks: Sequence[TabularMDPTask]) -> None:
        where = f"{type(self).__name__}.set_tasks"
        tasks = [_check_task(t, self.num_states, self.num_actions, where) for t in tasks]
        self._cdf = _cumulative(np.stack([t.transitions for t in tasks]))
        self._mean_rewards = np.stack([t.mean_rewards for t in tasks])

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        self._streams.reset(indices, seeds)
        self._states[indices] = INITIAL_STATE
        return self._eye[self._states]

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = actions.astype(np.int64, copy=False)
        if np.any((actions < 0) | (actions >= self.num_actions)):
            raise ValueError(f"{type(self).__name__}.step: actions must be in [0, {self.num_actions}), got {actions}")
        u = self._streams.uniform(3)
        self._states, reward = _transition(self._cdf, self._mean_rewards, self._states, actions, u)
        return self._eye[self._states], reward, np.zeros(self.num_envs, dtype=bool), {}


def _register() -> None:
    if "metarl/TabularMDP-v0" not in gym.registry:  # skip if the module is imported a second time
        register_task_env(
            "metarl/TabularMDP-v0",
            entry_point="envs.tabular_mdp:TabularMDPEnv",
            batched_entry_point="envs.tabular_mdp:BatchedTabularMDP",
            max_episode_steps=HORIZON,
        )


_register()
