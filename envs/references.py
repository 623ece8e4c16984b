"""Analytic and classical reference returns for the discrete task families, batched over tasks.

It imports no env module: tasks come as arrays, or as objects carrying them (a
bandit task's ``probs``; an MDP task's ``transitions`` and ``mean_rewards``), so the env
modules import this one at the top.

Bandits (tasks as :class:`~envs.bandits.BanditTask` or an array ``probs[T, K]``):

* :func:`bandit_oracle_return` — ``n·max(p)``, the expected return of always pulling
  the best arm;
* :func:`bandit_random_return` — ``n·mean(p)``, uniformly random pulls;
* :func:`ucb1_return`, :func:`thompson_return` — UCB1 and Beta(1, 1)-Thompson sampling
  simulated on the same tasks, every task and run at once; the mean return per task.

Tabular MDPs (tasks as :class:`~envs.tabular_mdp.TabularMDPTask` or arrays
``P[T, S, A, S]``, ``R[T, S, A]``), exact by backward dynamic programming:

* :func:`mdp_value_iteration` — optimal finite-horizon values and policy;
* :func:`mdp_optimal_return`, :func:`mdp_random_return` — expected return from the
  initial state of the optimal and of the uniformly random policy.

:func:`bandit_reference_returns` and :func:`mdp_reference_returns` bundle them per family
as ``{name: per-task returns}``; the batched envs expose them as their
``reference_returns(tasks, horizon, rng)`` method, which evaluation reports beside the
learned methods (:func:`metarl.evaluation.protocol.reference_returns`).

All of it is plain numpy: one Python loop over time steps, none over tasks or runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

BanditTasks = Sequence[Any] | np.ndarray
"""Bandit tasks: a sequence of tasks with ``probs`` (:class:`~envs.bandits.BanditTask`) or an array ``probs[T, K]``."""
MDPTasks = Sequence[Any] | tuple[np.ndarray, np.ndarray]
"""MDP tasks: a sequence of tasks with ``transitions`` and ``mean_rewards``
(:class:`~envs.tabular_mdp.TabularMDPTask`) or a pair ``(P[T, S, A, S], R[T, S, A])``."""


# -- bandits -------------------------------------------------------------------------


def bandit_probs(tasks: BanditTasks) -> np.ndarray:
    """The arm probabilities of ``tasks`` as a ``float64`` array ``[T, K]``."""
    if isinstance(tasks, np.ndarray):
        probs = np.asarray(tasks, dtype=np.float64)
    else:
        probs = np.array([t.probs for t in tasks], dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"bandit tasks must form an array [T, K], got shape {probs.shape}")
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError("bandit arm probabilities must lie in [0, 1]")
    return probs


def bandit_oracle_return(tasks: BanditTasks, n: int) -> np.ndarray:
    """Expected return ``n·max(p)`` of always pulling the best arm, per task ``[T]``."""
    return n * bandit_probs(tasks).max(axis=1)


def bandit_random_return(tasks: BanditTasks, n: int) -> np.ndarray:
    """Expected return ``n·mean(p)`` of pulling uniformly random arms, per task ``[T]``."""
    return n * bandit_probs(tasks).mean(axis=1)


def _simulate_bandit(probs: np.ndarray, n: int, num_runs: int, rng: np.random.Generator, choose: str) -> np.ndarray:
    """Mean return per task of ``num_runs`` independent runs of UCB1 or Thompson sampling."""
    if n < 0 or num_runs < 1:
        raise ValueError(f"need n >= 0 and num_runs >= 1, got n={n}, num_runs={num_runs}")
    T, K = probs.shape
    counts = np.zeros((T * num_runs, K))
    successes = np.zeros((T * num_runs, K))
    p = np.repeat(probs, num_runs, axis=0)  # row = task * num_runs + run
    rows = np.arange(T * num_runs)
    total = np.zeros(T * num_runs)
    for t in range(n):
        if choose == "ucb1":
            # Untried arms first (lowest index), then the UCB1 index mean + sqrt(2 ln t / n_a).
            with np.errstate(divide="ignore", invalid="ignore"):
                index = successes / counts + np.sqrt(2.0 * np.log(max(t, 1)) / counts)
            index[counts == 0] = np.inf
        else:
            index = rng.beta(1.0 + successes, 1.0 + counts - successes)
        arms = np.argmax(index, axis=1)
        rewards = (rng.random(T * num_runs) < p[rows, arms]).astype(np.float64)
        counts[rows, arms] += 1.0
        successes[rows, arms] += rewards
        total += rewards
    return total.reshape(T, num_runs).mean(axis=1)


def ucb1_return(tasks: BanditTasks, n: int, rng: np.random.Generator, num_runs: int = 100) -> np.ndarray:
    """Mean return per task ``[T]`` of UCB1 (Auer et al., 2002) over ``num_runs`` runs of ``n`` pulls.

    Each arm is pulled once (in index order), then the arm maximising
    ``mean_a + sqrt(2·ln t / n_a)``, with ``t`` the number of pulls so far.

    Args:
        tasks: The bandit tasks' arm probabilities.
        n: Pulls per run.
        rng: Draws the pulls' outcomes.
        num_runs: Runs averaged per task.
    """
    return _simulate_bandit(bandit_probs(tasks), n, num_runs, rng, "ucb1")


def thompson_return(tasks: BanditTasks, n: int, rng: np.random.Generator, num_runs: int = 100) -> np.ndarray:
    """Mean return per task ``[T]`` of Thompson sampling with a Beta(1, 1) prior per arm.

    Every pull samples each arm's probability from its Beta posterior and pulls the
    arm with the largest sample.

    Args:
        tasks: The bandit tasks' arm probabilities.
        n: Pulls per run.
        rng: Draws the posterior samples and the pulls' outcomes.
        num_runs: Runs averaged per task.
    """
    return _simulate_bandit(bandit_probs(tasks), n, num_runs, rng, "thompson")


# -- tabular MDPs --------------------------------------------------------------------


def mdp_arrays(tasks: MDPTasks) -> tuple[np.ndarray, np.ndarray]:
    """Transitions ``P[T, S, A, S]`` and mean rewards ``R[T, S, A]`` of ``tasks``."""
    if isinstance(tasks, tuple) and len(tasks) == 2 and isinstance(tasks[0], np.ndarray):
        P, R = (np.asarray(x, dtype=np.float64) for x in tasks)
    else:
        objects = cast(Sequence[Any], tasks)  # tasks carrying their arrays
        P = np.stack([t.transitions for t in objects])
        R = np.stack([t.mean_rewards for t in objects])
    if P.ndim != 4 or P.shape[1] != P.shape[3] or R.shape != P.shape[:3]:
        raise ValueError(f"MDP tasks need P[T, S, A, S] and R[T, S, A], got {P.shape} and {R.shape}")
    return P, R


def mdp_value_iteration(tasks: MDPTasks, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Optimal finite-horizon values and policy of every task by backward induction.

    Returns ``values[T, horizon + 1, S]``, the optimal expected return collected from
    state ``s`` at time ``t`` until the horizon (``values[:, horizon] = 0``), and
    ``policy[T, horizon, S]``, an optimal action at time ``t`` in state ``s``.
    """
    P, R = mdp_arrays(tasks)
    T, S, _, _ = P.shape
    values = np.zeros((T, horizon + 1, S))
    policy = np.zeros((T, horizon, S), dtype=np.int64)
    for t in range(horizon - 1, -1, -1):
        q = R + np.einsum("tsaj,tj->tsa", P, values[:, t + 1])  # Q[T, S, A]
        policy[:, t] = q.argmax(axis=-1)
        values[:, t] = q.max(axis=-1)
    return values, policy


def mdp_optimal_return(tasks: MDPTasks, horizon: int, initial_state: int = 0) -> np.ndarray:
    """Expected return ``[T]`` of the optimal policy from ``initial_state`` (value iteration).

    Args:
        tasks: The MDPs' transitions and mean rewards.
        horizon: Steps per episode.
        initial_state: The state every episode starts in.
    """
    return mdp_value_iteration(tasks, horizon)[0][:, 0, initial_state]


def mdp_random_return(tasks: MDPTasks, horizon: int, initial_state: int = 0) -> np.ndarray:
    """Exact expected return ``[T]`` of the uniformly random policy from ``initial_state``.

    Args:
        tasks: The MDPs' transitions and mean rewards.
        horizon: Steps per episode.
        initial_state: The state every episode starts in.
    """
    P, R = mdp_arrays(tasks)
    values = np.zeros(P.shape[:2])  # V[T, S] with no steps to go
    for _ in range(horizon):
        values = (R + np.einsum("tsaj,tj->tsa", P, values)).mean(axis=-1)
    return values[:, initial_state]


# -- the families' evaluation hook -----------------------------------------------------

BANDIT_REFERENCES = ("best arm", "UCB1", "Thompson sampling", "uniform random arm")
"""Names of the bandit references, in the order :func:`bandit_reference_returns` returns them."""
MDP_REFERENCES = ("optimal (value iteration)", "uniform random")
"""Names of the tabular-MDP references, in the order :func:`mdp_reference_returns` returns them."""


def bandit_reference_returns(
    tasks: BanditTasks, horizon: int, rng: np.random.Generator, num_runs: int = 100
) -> dict[str, np.ndarray]:
    """Per-task expected return of episodes of ``horizon`` pulls: best arm, UCB1, Thompson, random.

    UCB1 and Thompson sampling draw from their own children of ``rng``
    (``rng.spawn(2)``, in that order), so each is reproducible on its own.

    Args:
        tasks: The bandit tasks' arm probabilities.
        horizon: Pulls per episode.
        rng: The parent of UCB1's and Thompson sampling's generators.
        num_runs: Runs averaged per task.
    """
    ucb_rng, thompson_rng = rng.spawn(2)
    best, ucb, thompson, random = BANDIT_REFERENCES
    return {
        best: bandit_oracle_return(tasks, horizon),
        ucb: ucb1_return(tasks, horizon, ucb_rng, num_runs),
        thompson: thompson_return(tasks, horizon, thompson_rng, num_runs),
        random: bandit_random_return(tasks, horizon),
    }


def mdp_reference_returns(
    tasks: MDPTasks, horizon: int, rng: np.random.Generator | None = None, initial_state: int = 0
) -> dict[str, np.ndarray]:
    """Per-task exact expected return from ``initial_state``: optimal policy and uniform random.

    Both are exact (dynamic programming), so ``rng`` is not used.

    Args:
        tasks: The MDPs' transitions and mean rewards.
        horizon: Steps per episode.
        rng: Unused (the returns are exact).
        initial_state: The state every episode starts in.
    """
    optimal, random = MDP_REFERENCES
    return {
        optimal: mdp_optimal_return(tasks, horizon, initial_state),
        random: mdp_random_return(tasks, horizon, initial_state),
    }
