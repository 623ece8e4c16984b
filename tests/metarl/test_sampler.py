"""The sampler: layout of the episodes batch, per-task parameters, masks and lengths."""

import math

import numpy as np
import torch

import envs  # noqa: F401
from agents.policies import GaussianMLPPolicy
from envs.navigation import NavigationTask
from metarl import make_batched
from metarl.sampler import Sampler

T, E = 3, 4


def make_sampler(horizon=100):
    torch.manual_seed(0)
    env = make_batched("metarl/Navigation2D-v0", T * E, max_episode_steps=horizon)
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8,))
    sampler = Sampler(env, policy, T, E)
    sampler.set_tasks([NavigationTask((0.4, 0.4)), NavigationTask((-0.3, 0.1)), NavigationTask((0.0, -0.45))])
    return sampler, policy


def test_episodes_layout_rewards_and_truncation():
    sampler, policy = make_sampler(horizon=30)
    episodes = sampler.sample(policy.task_params(T), np.random.default_rng(0))
    assert episodes.observations.shape == (30, T, E, 2)
    assert episodes.actions.shape == (30, T, E, 2)
    assert episodes.rewards.shape == episodes.mask.shape == (30, T, E)
    assert episodes.lengths.shape == (T, E)
    # wide random actions never hit a 0.01 goal in 30 steps: every episode truncated at 30
    assert episodes.lengths.eq(30).all() and episodes.truncated.all() and not episodes.terminated.any()
    # the reward is minus the distance from the next position to the task's goal
    goals = torch.tensor([[0.4, 0.4], [-0.3, 0.1], [0.0, -0.45]]).view(1, T, 1, 2)
    next_pos = torch.cat([episodes.observations[1:], episodes.final_observations.unsqueeze(0)])
    expected = -(next_pos - goals).norm(dim=-1)
    torch.testing.assert_close(episodes.rewards, expected, atol=1e-5, rtol=0)
    assert episodes.num_steps == 30 * T * E


def test_each_task_uses_its_own_parameters():
    sampler, policy = make_sampler()
    params = {n: p.detach().clone().contiguous() for n, p in policy.task_params(T).items()}
    params["log_std"][0] = -20.0  # task 0: deterministic actions at the MLP's mean
    params["b1"][0] = torch.tensor([0.1, 0.1])
    params["w1"][0] = 0.0  # task 0's mean action is exactly (0.1, 0.1): straight to (0.4, 0.4)
    episodes = sampler.sample(params, np.random.default_rng(1))
    first = episodes.actions[:, 0][episodes.mask[:, 0] > 0]
    torch.testing.assert_close(first, torch.full_like(first, 0.1), atol=1e-5, rtol=0)  # std clamps at 1e-6
    assert episodes.terminated[0].all() and episodes.lengths[0].eq(4).all()  # reaches the goal at step 4
    # the other tasks keep θ's unit standard deviation
    others = episodes.actions[:, 1:][episodes.mask[:, 1:] > 0]
    assert 0.8 < float(others.std()) < 1.2


def test_mask_is_a_prefix_and_padding_is_zero():
    sampler, policy = make_sampler()
    params = {n: p.detach().clone().contiguous() for n, p in policy.task_params(T).items()}
    params["log_std"][:] = -20.0
    params["w1"][:] = 0.0
    params["b1"][:] = torch.tensor([0.1, 0.1])
    episodes = sampler.sample(params, np.random.default_rng(2))
    mask = episodes.mask
    assert torch.equal(mask.sum(0).long(), episodes.lengths)
    assert (mask[1:] <= mask[:-1]).all()  # once 0, always 0
    padding = mask == 0
    assert episodes.rewards[padding].abs().sum() == 0
    assert episodes.observations[padding].abs().sum() == 0
    returns = episodes.returns()
    assert math.isclose(float(returns[0, 0]), float(episodes.rewards[:4, 0, 0].sum()), rel_tol=1e-6)


def test_same_seed_same_episodes():
    sampler, policy = make_sampler(horizon=20)
    torch.manual_seed(7)
    a = sampler.sample(policy.task_params(T), np.random.default_rng(3))
    torch.manual_seed(7)
    b = sampler.sample(policy.task_params(T), np.random.default_rng(3))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.rewards, b.rewards)
