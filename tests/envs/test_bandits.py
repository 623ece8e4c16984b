"""Bernoulli bandits: spaces, rewards of known arms, batched = single, references."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.bandits import (
    BANDIT_ARMS,
    BANDIT_PULLS,
    BanditTask,
    BatchedBernoulliBandit,
    BernoulliBanditEnv,
    bandit_id,
    sample_bandit_tasks,
)
from envs.references import bandit_oracle_return, bandit_random_return, thompson_return, ucb1_return
from envs.streams import SubenvStreams
from metarl.tasks.build import make_batched
from metarl.tasks.registry import task_env_ids


def test_check_env() -> None:
    for k, n in [(5, 10), (50, 500)]:
        env = gym.make(bandit_id(k, n)).unwrapped
        env.set_task(env.sample_tasks(1)[0])
        check_env(env, skip_render_check=True)


def test_registered_ids_have_k_arms_and_n_pulls() -> None:
    for k in BANDIT_ARMS:
        for n in BANDIT_PULLS:
            assert bandit_id(k, n) in task_env_ids()
            env = gym.make(bandit_id(k, n))
            assert env.spec.max_episode_steps == n
            assert env.action_space == gym.spaces.Discrete(k)
    batched = make_batched(bandit_id(10, 500), 3)
    assert isinstance(batched, BatchedBernoulliBandit)
    assert (batched.k, batched.max_episode_steps, batched.num_envs) == (10, 500, 3)
    assert make_batched(bandit_id(5, 10), 2, max_episode_steps=10).max_episode_steps == 10


def test_episode_truncates_after_n_pulls_and_never_terminates() -> None:
    env = gym.make(bandit_id(5, 10))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.ones(1, np.float32))
    for t in range(10):
        obs, reward, terminated, truncated, _ = env.step(t % 5)
        assert reward in (0.0, 1.0)
        assert not terminated
        assert truncated == (t == 9)


def test_known_probabilities_give_expected_rewards() -> None:
    task = BanditTask(probs=(0.0, 1.0, 0.25))
    env = BernoulliBanditEnv(k=3, task=task)
    env.reset(seed=1)
    assert [env.step(0)[1] for _ in range(50)] == [0.0] * 50
    assert [env.step(1)[1] for _ in range(50)] == [1.0] * 50

    # 40 000 pulls of the p = 0.25 arm: mean 0.25, variance p(1 - p), within 4 standard errors.
    batched = BatchedBernoulliBandit(num_envs=2000, max_episode_steps=20, k=3)
    batched.set_tasks([task] * 2000)
    batched.reset(seed=5)
    rewards = np.stack([batched.step(np.full(2000, 2))[1] for _ in range(20)])
    assert set(np.unique(rewards)) == {0.0, 1.0}
    assert abs(rewards.mean() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / rewards.size)
    assert abs(rewards.var() - 0.1875) < 0.01
    # Pulls are independent across steps and sub-environments.
    assert abs(np.corrcoef(rewards[:-1].ravel(), rewards[1:].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(rewards[:, :-1].ravel(), rewards[:, 1:].ravel())[0, 1]) < 0.03


def test_batched_equals_single_envs_step_by_step() -> None:
    num_envs, k, horizon = 5, 4, 30
    rng = np.random.default_rng(0)
    batched = BatchedBernoulliBandit(num_envs=num_envs, max_episode_steps=horizon, k=k)
    tasks = batched.sample_tasks(num_envs, rng)
    batched.set_tasks(tasks)
    singles = [BernoulliBanditEnv(k=k, task=task) for task in tasks]
    seeds = [3, 7, 11, 11, 2**40]

    def run(batched_obs: np.ndarray, single_obs: list[np.ndarray], steps: int = horizon) -> None:
        np.testing.assert_array_equal(batched_obs, np.stack(single_obs))
        for t in range(steps):
            actions = rng.integers(0, k, size=num_envs)
            obs, reward, terminated, truncated, _ = batched.step(actions)
            results = [env.step(a) for env, a in zip(singles, actions, strict=True)]
            np.testing.assert_array_equal(obs, np.stack([r[0] for r in results]))
            np.testing.assert_array_equal(reward, [r[1] for r in results])
            assert not terminated.any()
            if steps == horizon:
                assert truncated.all() == (t == horizon - 1) and truncated.any() == truncated.all()

    run(batched.reset(seed=seeds)[0], [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)])
    # A second episode without seeds continues every sub-environment's generator.
    run(batched.reset()[0], [env.reset()[0] for env in singles])
    # Resetting only some sub-environments leaves the others' streams where they were.
    mask = np.array([True, False, True, False, False])
    obs, _ = batched.reset(seed=[100, None, 102, None, None], options={"reset_mask": mask})
    for i in np.flatnonzero(mask):
        singles[i].reset(seed=100 + int(i))
    run(obs, [np.ones(1, np.float32)] * num_envs, steps=10)


def test_same_seed_same_episode_different_seed_different_episode() -> None:
    env = BernoulliBanditEnv(k=2, task=BanditTask(probs=(0.5, 0.5)))

    def episode(seed: int) -> list[float]:
        env.reset(seed=seed)
        return [env.step(0)[1] for _ in range(64)]

    assert episode(4) == episode(4)
    assert episode(4) != episode(5)


def test_set_task_changes_rewards() -> None:
    env = BernoulliBanditEnv(k=2, task=BanditTask(probs=(0.0, 0.0)))
    env.reset(seed=0)
    assert sum(env.step(1)[1] for _ in range(20)) == 0.0
    env.set_task(BanditTask(probs=(0.0, 1.0)))
    assert env.get_task() == BanditTask(probs=(0.0, 1.0))
    assert sum(env.step(1)[1] for _ in range(20)) == 20.0

    batched = BatchedBernoulliBandit(num_envs=2, max_episode_steps=5, k=2)
    batched.set_tasks([BanditTask(probs=(1.0, 0.0)), BanditTask(probs=(0.0, 1.0))])
    batched.reset(seed=0)
    np.testing.assert_array_equal(batched.step(np.array([0, 0]))[1], [1.0, 0.0])
    batched.set_tasks([BanditTask(probs=(0.0, 0.0)), BanditTask(probs=(1.0, 1.0))])
    np.testing.assert_array_equal(batched.step(np.array([0, 0]))[1], [0.0, 1.0])


def test_sample_tasks_uniform_and_reproducible() -> None:
    env = BernoulliBanditEnv(k=10)
    env.reset(seed=3)
    tasks = env.sample_tasks(500)
    env.reset(seed=3)
    assert env.sample_tasks(500) == tasks
    probs = np.array([t.probs for t in tasks])
    assert probs.shape == (500, 10) and probs.min() >= 0.0 and probs.max() <= 1.0
    assert abs(probs.mean() - 0.5) < 0.01 and abs(probs.var() - 1 / 12) < 0.005
    assert sample_bandit_tasks(4, 10, np.random.default_rng(1)) == sample_bandit_tasks(4, 10, np.random.default_rng(1))


def test_bad_tasks_and_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match="probs"):
        BanditTask(probs=(0.5, 1.5))
    env = BernoulliBanditEnv(k=3)
    with pytest.raises(ValueError, match="2 arms"):
        env.set_task(BanditTask(probs=(0.5, 0.5)))
    with pytest.raises(TypeError, match="BanditTask"):
        env.set_task((0.1, 0.2, 0.3))  # type: ignore[arg-type]
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(3)
    batched = BatchedBernoulliBandit(num_envs=2, k=3)
    batched.set_tasks([BanditTask(probs=(0.5,) * 3)] * 2)
    batched.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        batched.step(np.array([0, -1]))


def test_streams_are_uniform_and_independent() -> None:
    streams = SubenvStreams(4)
    streams.reset([0, 1, 2, 3], [0, 1, 2, 3])
    u = streams.uniform(50_000)
    assert u.shape == (4, 50_000) and u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_allclose(u.mean(axis=1), 0.5, atol=0.006)
    np.testing.assert_allclose(u.var(axis=1), 1 / 12, atol=0.002)
    np.testing.assert_allclose(np.corrcoef(u), np.eye(4), atol=0.02)
    # Drawing in pieces gives the same values as drawing at once.
    streams.reset([0, 1, 2, 3], [0, 1, 2, 3])
    np.testing.assert_array_equal(np.hstack([streams.uniform(3), streams.uniform(7)]), u[:, :10])


# -- references ------------------------------------------------------------------------


def test_oracle_and_random_returns_are_exact() -> None:
    probs = np.array([[0.1, 0.7, 0.3], [0.9, 0.2, 0.5]])
    np.testing.assert_allclose(bandit_oracle_return(probs, 100), [70.0, 90.0])
    np.testing.assert_allclose(bandit_random_return(probs, 100), [110 / 3, 160 / 3])
    tasks = [BanditTask(probs=tuple(row)) for row in probs]
    np.testing.assert_allclose(bandit_oracle_return(tasks, 10), [7.0, 9.0])


def test_oracle_return_is_the_mean_return_of_the_best_arm() -> None:
    task = BanditTask(probs=(0.2, 0.6, 0.4))
    batched = BatchedBernoulliBandit(num_envs=4000, max_episode_steps=10, k=3)
    batched.set_tasks([task] * 4000)
    batched.reset(seed=0)
    returns = sum(batched.step(np.ones(4000, np.int64))[1] for _ in range(10))
    # Binomial(10, 0.6) returns: mean 6, standard deviation sqrt(2.4).
    assert abs(returns.mean() - bandit_oracle_return([task], 10)[0]) < 4 * math.sqrt(2.4 / 4000)


def _scalar_ucb1(probs: tuple[float, ...], n: int) -> float:
    """UCB1 written plainly, for arms that always or never pay (deterministic rewards)."""
    k = len(probs)
    counts, sums, total = [0] * k, [0.0] * k, 0.0
    for t in range(n):
        if t < k:
            arm = t
        else:
            index = [sums[a] / counts[a] + math.sqrt(2 * math.log(t) / counts[a]) for a in range(k)]
            arm = index.index(max(index))
        reward = probs[arm]
        counts[arm] += 1
        sums[arm] += reward
        total += reward
    return total


def test_ucb1_matches_a_plain_implementation_on_deterministic_arms() -> None:
    cases = [(0.0, 1.0, 0.0), (1.0, 1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0)]
    for n in (2, 7, 60):
        for probs in cases:
            got = ucb1_return(np.array([probs]), n, np.random.default_rng(0), num_runs=3)
            np.testing.assert_array_equal(got, [_scalar_ucb1(probs, n)])
    # Fewer pulls than arms: the first n arms once each.
    assert ucb1_return(np.array([[0.0, 1.0, 0.0]]), 2, np.random.default_rng(0))[0] == 1.0


def test_ucb1_and_thompson_beat_random_and_approach_the_oracle() -> None:
    probs = np.array([[0.1, 0.9], [0.9, 0.1]])
    n, rng = 200, np.random.default_rng(0)
    oracle, random = bandit_oracle_return(probs, n), bandit_random_return(probs, n)
    ucb = ucb1_return(probs, n, rng, num_runs=400)
    thompson = thompson_return(probs, n, rng, num_runs=400)
    for name, value in (("UCB1", ucb), ("Thompson", thompson)):
        assert np.all(value > random + 0.85 * (oracle - random)), (name, value, random, oracle)
        assert np.all(value <= oracle + 1.0), (name, value, oracle)
    # Thompson sampling's regret on an easy 2-armed bandit is a few pulls (about 3 here).
    assert np.all(thompson > oracle - 5.0)


def test_references_are_reproducible_and_batched_over_tasks() -> None:
    tasks = sample_bandit_tasks(6, 5, np.random.default_rng(2))
    a = thompson_return(tasks, 50, np.random.default_rng(9), num_runs=20)
    b = thompson_return(tasks, 50, np.random.default_rng(9), num_runs=20)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6,)
    assert np.all(a <= bandit_oracle_return(tasks, 50) + 5.0)


def test_batched_bandit_refuses_a_horizon_other_than_the_ids_pulls():
    env = make_batched("metarl/Bandit-K5-N10-v0", 4, max_episode_steps=10)
    assert env.max_episode_steps == 10
    env.close()
    with pytest.raises(ValueError, match=r"Bandit-K5-N10-v0 has episodes of 10 pulls.*horizon\) is 100"):
        make_batched("metarl/Bandit-K5-N10-v0", 4, max_episode_steps=100)
