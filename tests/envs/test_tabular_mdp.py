"""Tabular MDPs: spaces, dynamics statistics, batched = single, value iteration by hand."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.references import mdp_optimal_return, mdp_random_return, mdp_value_iteration
from envs.tabular_mdp import (
    HORIZON,
    BatchedTabularMDP,
    TabularMDPEnv,
    TabularMDPTask,
    sample_tabular_mdp_tasks,
)
from metarl.tasks.build import make_batched
from metarl.tasks.registry import task_env_ids

ENV_ID = "metarl/TabularMDP-v0"


def hand_made_task() -> TabularMDPTask:
    """Two states, two actions.

    State 0: action 0 stays (reward 1), action 1 moves to state 1 (reward 0).
    State 1: action 0 pays 3 and moves to either state with probability 1/2,
    action 1 pays 1.5 and stays.
    """
    P = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.0, 1.0]]])
    R = np.array([[1.0, 0.0], [3.0, 1.5]])
    return TabularMDPTask(transitions=P, mean_rewards=R)


def test_check_env() -> None:
    env = gym.make(ENV_ID).unwrapped
    env.set_task(env.sample_tasks(1)[0])
    check_env(env, skip_render_check=True)
    check_env(gym.make(ENV_ID, num_states=3, num_actions=2).unwrapped, skip_render_check=True)


def test_registration_and_spaces() -> None:
    assert ENV_ID in task_env_ids()
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 10
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (10,), np.float32)
    assert env.action_space == gym.spaces.Discrete(5)
    batched = make_batched(ENV_ID, 3, num_states=4, num_actions=2)
    assert isinstance(batched, BatchedTabularMDP)
    assert batched.max_episode_steps == 10
    assert batched.single_observation_space.shape == (4,) and batched.action_space.shape == (3,)


def test_episode_starts_in_state_0_is_one_hot_and_truncates_at_10() -> None:
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.eye(10, dtype=np.float32)[0])
    for t in range(10):
        obs, _, terminated, truncated, _ = env.step(t % 5)
        assert obs.sum() == 1.0 and set(np.unique(obs)) == {0.0, 1.0}
        assert not terminated and truncated == (t == 9)


@pytest.mark.slow
def test_transitions_and_reward_noise_follow_the_task() -> None:
    task = sample_tabular_mdp_tasks(1, np.random.default_rng(3), num_states=6, num_actions=3)[0]
    N = 20_000
    batched = BatchedTabularMDP(num_envs=N, num_states=6, num_actions=3)
    batched.set_tasks([task] * N)
    batched.reset(seed=0)
    obs, reward, *_ = batched.step(np.full(N, 2))
    frequencies = obs.mean(axis=0)
    p = task.transitions[0, 2]
    np.testing.assert_array_less(np.abs(frequencies - p), 4 * np.sqrt(p * (1 - p) / N) + 1e-9)
    noise = reward - task.mean_rewards[0, 2]
    assert abs(noise.mean()) < 4 / math.sqrt(N)
    assert abs(noise.std() - 1.0) < 0.01
    for k, mass in ((1, 0.682689), (2, 0.954500)):  # Gaussian mass within k standard deviations
        assert abs(np.mean(np.abs(noise) < k) - mass) < 4 * math.sqrt(mass * (1 - mass) / N)


def test_batched_equals_single_envs_step_by_step() -> None:
    num_envs, horizon = 4, 10
    rng = np.random.default_rng(1)
    batched = BatchedTabularMDP(num_envs=num_envs, max_episode_steps=horizon)
    tasks = batched.sample_tasks(num_envs, rng)
    batched.set_tasks(tasks)
    singles = [TabularMDPEnv(task=task) for task in tasks]
    seeds = [0, 1, 1, 99]
    for episode in range(3):
        if episode == 0:
            obs, _ = batched.reset(seed=seeds)
            single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
        else:  # later episodes continue each sub-environment's generator
            obs, _ = batched.reset()
            single_obs = [env.reset()[0] for env in singles]
        np.testing.assert_array_equal(obs, np.stack(single_obs))
        for t in range(horizon):
            actions = rng.integers(0, 5, size=num_envs)
            obs, reward, terminated, truncated, _ = batched.step(actions)
            results = [env.step(a) for env, a in zip(singles, actions, strict=True)]
            np.testing.assert_array_equal(obs, np.stack([r[0] for r in results]))
            np.testing.assert_array_equal(reward, [r[1] for r in results])
            assert not terminated.any() and bool(truncated.all()) == (t == horizon - 1)


def test_set_task_changes_rewards_and_dynamics() -> None:
    task = hand_made_task()
    richer = TabularMDPTask(transitions=task.transitions, mean_rewards=task.mean_rewards + 5.0)
    env = TabularMDPEnv(num_states=2, num_actions=2, task=task)

    def episode() -> tuple[list[float], list[int]]:
        env.reset(seed=7)
        steps = [env.step(a) for a in (0, 1, 0, 0, 1)]
        return [s[1] for s in steps], [int(s[0].argmax()) for s in steps]

    rewards, states = episode()
    assert states[:2] == [0, 1]  # action 0 stays in state 0, action 1 moves to state 1
    env.set_task(richer)
    assert env.get_task() == richer
    richer_rewards, richer_states = episode()
    assert richer_states == states  # same seed: same noise and transitions
    np.testing.assert_allclose(np.subtract(richer_rewards, rewards), 5.0)

    swapped = TabularMDPTask(transitions=task.transitions[:, ::-1], mean_rewards=task.mean_rewards)
    env.set_task(swapped)
    assert episode()[1][0] == 1  # now action 0 leaves state 0


def test_sample_tasks_are_reproducible_and_well_formed() -> None:
    env = TabularMDPEnv()
    env.reset(seed=5)
    tasks = env.sample_tasks(200)
    env.reset(seed=5)
    assert env.sample_tasks(200) == tasks
    P = np.stack([t.transitions for t in tasks])
    R = np.stack([t.mean_rewards for t in tasks])
    assert P.shape == (200, 10, 5, 10) and R.shape == (200, 10, 5)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0)
    # Dirichlet(1) over 10 states: each probability has mean 1/10 and variance 9/1100.
    assert abs(P.mean() - 0.1) < 1e-12 and abs(P.var() - 9 / 1100) < 3e-4
    assert abs(R.mean() - 1.0) < 0.05 and abs(R.std() - 1.0) < 0.05


def test_task_is_frozen_hashable_and_picklable() -> None:
    task = hand_made_task()
    with pytest.raises(ValueError):
        task.transitions[0, 0, 0] = 0.5
    with pytest.raises(AttributeError):
        task.mean_rewards = np.zeros((2, 2))  # type: ignore[misc]
    assert task == hand_made_task() and hash(task) == hash(hand_made_task())
    assert task != TabularMDPTask(transitions=task.transitions, mean_rewards=task.mean_rewards + 1)
    clone = pickle.loads(pickle.dumps(task))
    assert clone == task and not clone.transitions.flags.writeable


def test_bad_tasks_and_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match="probability"):
        TabularMDPTask(transitions=np.full((2, 2, 2), 0.4), mean_rewards=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        TabularMDPTask(transitions=np.full((2, 2, 2), 0.5), mean_rewards=np.zeros(2))
    env = TabularMDPEnv()
    with pytest.raises(ValueError, match="2 states"):
        env.set_task(hand_made_task())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(5)
    batched = BatchedTabularMDP(num_envs=2, num_states=2, num_actions=2)
    batched.set_tasks([hand_made_task()] * 2)
    batched.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        batched.step(np.array([0, 2]))


# -- references ------------------------------------------------------------------------


def test_value_iteration_on_the_hand_made_mdp() -> None:
    # Backward induction by hand (V_h = optimal value with h steps to go):
    #   V_1 = [max(1, 0), max(3, 1.5)]                             = [1, 3]
    #   V_2 = [max(1 + 1, 0 + 3), max(3 + (1 + 3)/2, 1.5 + 3)]       = [3, 5]
    #   V_3 = [max(1 + 3, 0 + 5), max(3 + (3 + 5)/2, 1.5 + 5)]       = [5, 7]
    values, policy = mdp_value_iteration([hand_made_task()], horizon=3)
    np.testing.assert_allclose(values[0], [[5.0, 7.0], [3.0, 5.0], [1.0, 3.0], [0.0, 0.0]])
    np.testing.assert_array_equal(policy[0], [[1, 0], [1, 0], [0, 0]])
    np.testing.assert_allclose(mdp_optimal_return([hand_made_task()], horizon=3), [5.0])
    np.testing.assert_allclose(mdp_optimal_return([hand_made_task()], horizon=3, initial_state=1), [7.0])


def test_random_policy_value_on_the_hand_made_mdp() -> None:
    # W_h = mean over actions of (R + P W_{h-1}):
    #   W_1 = [(1 + 0)/2, (3 + 1.5)/2]                                   = [0.5, 2.25]
    #   W_2 = [((1 + 0.5) + (0 + 2.25))/2, ((3 + 1.375) + (1.5 + 2.25))/2] = [1.875, 4.0625]
    #   W_3(0) = ((1 + 1.875) + (0 + 4.0625))/2                          = 3.46875
    task = [hand_made_task()]
    np.testing.assert_allclose(mdp_random_return(task, horizon=1), [0.5])
    np.testing.assert_allclose(mdp_random_return(task, horizon=2), [1.875])
    np.testing.assert_allclose(mdp_random_return(task, horizon=2, initial_state=1), [4.0625])
    np.testing.assert_allclose(mdp_random_return(task, horizon=3), [3.46875])


@pytest.mark.slow
def test_references_match_rollouts_in_the_environment() -> None:
    """The optimal policy and random actions, run in the batched env, earn the computed values."""
    N, horizon = 20_000, 3
    rng = np.random.default_rng(0)
    env = BatchedTabularMDP(num_envs=N, max_episode_steps=horizon, num_states=2, num_actions=2)
    env.set_tasks([hand_made_task()] * N)
    _, policy = mdp_value_iteration([hand_made_task()], horizon)
    for name, expected in (("optimal", 5.0), ("random", 3.46875)):
        obs, _ = env.reset(seed=1)
        total = np.zeros(N)
        for t in range(horizon):
            state = obs.argmax(axis=1)
            actions = policy[0, t, state] if name == "optimal" else rng.integers(0, 2, size=N)
            obs, reward, *_ = env.step(actions)
            total += reward
        assert abs(total.mean() - expected) < 4 * total.std() / math.sqrt(N), name


def test_references_are_batched_over_tasks() -> None:
    tasks = sample_tabular_mdp_tasks(8, np.random.default_rng(4))
    optimal, random = mdp_optimal_return(tasks, HORIZON), mdp_random_return(tasks, HORIZON)
    assert optimal.shape == random.shape == (8,)
    np.testing.assert_allclose(optimal[3], mdp_optimal_return(tasks[3:4], HORIZON)[0])
    assert np.all(optimal > random)
    P = np.stack([t.transitions for t in tasks])
    R = np.stack([t.mean_rewards for t in tasks])
    np.testing.assert_array_equal(mdp_optimal_return((P, R), HORIZON), optimal)
