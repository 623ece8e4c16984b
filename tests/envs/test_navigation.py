"""2D navigation: Gymnasium conformance, hand-checked dynamics, batched equals single."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.navigation import Navigation2DEnv, NavigationTask
from metarl import make_batched

ENV_ID = "metarl/Navigation2D-v0"
PAPER_ID = "metarl/Navigation2D-v1"


@pytest.mark.parametrize("env_id", [ENV_ID, PAPER_ID])
def test_check_env_passes(env_id):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == 100
    check_env(env.unwrapped, skip_render_check=True)


def test_v1_moves_by_a_tenth_of_the_clipped_unit_action():
    env = gym.make(PAPER_ID)
    assert env.action_space.low.tolist() == [-1.0, -1.0] and env.action_space.high.tolist() == [1.0, 1.0]
    env.unwrapped.set_task(NavigationTask(goal=(0.3, -0.2)))
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([0.5, -3.0], np.float32))  # y clipped to -1
    assert obs == pytest.approx([0.05, -0.1])
    assert reward == pytest.approx(-np.hypot(0.25, 0.1))


def test_dynamics_reward_and_termination_by_hand():
    env = Navigation2DEnv(task=NavigationTask(goal=(0.3, -0.2)))
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0]
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5, -0.05], np.float32))  # x clipped to 0.1
    assert obs == pytest.approx([0.1, -0.05])
    assert reward == pytest.approx(-np.hypot(0.2, 0.15))
    assert not terminated and not truncated
    env.step(np.array([0.1, -0.1], np.float32))
    obs, reward, terminated, _, _ = env.step(np.array([0.095, -0.05], np.float32))  # within 0.01 of goal
    assert obs == pytest.approx([0.295, -0.2], abs=1e-6)
    assert reward == pytest.approx(-0.005, abs=1e-6) and terminated


def test_tasks_are_seeded_typed_and_in_range():
    env = Navigation2DEnv()
    env.reset(seed=5)
    tasks = env.sample_tasks(1000)
    env.reset(seed=5)
    assert env.sample_tasks(1000) == tasks
    goals = np.array([t.goal for t in tasks])
    assert all(isinstance(t, NavigationTask) for t in tasks)
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and abs(goals.mean()) < 0.03


def test_set_task_changes_the_reward():
    env = Navigation2DEnv()
    env.reset(seed=0)
    env.set_task(NavigationTask(goal=(0.5, 0.5)))
    assert env.get_task() == NavigationTask(goal=(0.5, 0.5))
    _, far, *_ = env.step(np.zeros(2, np.float32))
    env.set_task(NavigationTask(goal=(0.0, 0.1)))
    _, near, *_ = env.step(np.zeros(2, np.float32))
    assert far == pytest.approx(-np.sqrt(0.5)) and near == pytest.approx(-0.1)


@pytest.mark.parametrize("env_id", [ENV_ID, PAPER_ID])
def test_batched_equals_single_envs_step_for_step(env_id):
    n = 6
    rng = np.random.default_rng(0)
    scale = 10.0 if env_id == PAPER_ID else 1.0  # v1 actions are ten times v0's
    batched = make_batched(env_id, n)
    tasks = batched.sample_tasks(n, rng)
    tasks[0] = NavigationTask(goal=(0.05, 0.0))  # reachable quickly: exercises termination
    batched.set_tasks(tasks)
    singles = [gym.make(env_id) for _ in range(n)]
    for env, task in zip(singles, tasks, strict=True):
        env.unwrapped.set_task(task)
    seeds = list(range(10, 10 + n))
    obs_b, _ = batched.reset(seed=seeds)
    obs_s = np.stack([env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)])
    np.testing.assert_array_equal(obs_b, obs_s)
    done = np.zeros(n, bool)
    for t in range(100):
        actions = (scale * rng.uniform(-0.15, 0.15, size=(n, 2))).astype(np.float32)
        actions[0] = [0.1 * scale, 0.0] if t == 0 else [-0.05 * scale, 0.0]
        out_b = batched.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                continue
            obs, reward, terminated, truncated, _ = env.step(actions[i])
            np.testing.assert_array_equal(out_b[0][i], obs)
            assert out_b[1][i] == reward and out_b[2][i] == terminated and out_b[3][i] == truncated
            done[i] = terminated or truncated
    assert done.all()
    assert out_b[3][1:].all()  # the others were truncated at step 100


def test_partial_reset_leaves_other_subenvs_alone():
    batched = make_batched(ENV_ID, 3)
    batched.set_tasks(batched.sample_tasks(3, np.random.default_rng(1)))
    batched.reset(seed=0)
    obs, *_ = batched.step(np.full((3, 2), 0.1, np.float32))
    obs2, _ = batched.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs2[[0, 2]], obs[[0, 2]])
    assert obs2[1].tolist() == [0.0, 0.0]


def test_batched_env_rejects_wrong_shapes_and_task_counts():
    batched = make_batched(ENV_ID, 2)
    with pytest.raises(ValueError, match="got 3 tasks for 2 sub-environments"):
        batched.set_tasks(batched.sample_tasks(3, np.random.default_rng(0)))
    batched.set_tasks(batched.sample_tasks(2, np.random.default_rng(0)))
    batched.reset(seed=0)
    with pytest.raises(ValueError, match="actions have shape"):
        batched.step(np.zeros((2, 3), np.float32))
