"""The sampler: layout of the episodes batch, per-task parameters, masks and lengths."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical

import envs  # noqa: F401
from agents import make_policy
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from envs.navigation import NavigationTask
from metarl import make_batched
from metarl.sampling import Sampler, Shard, assemble_episodes, draw_phase_key, rollout, split_shards

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


# ------------------------------------------------------------------ randomness per (task, episode)

FIELDS = (
    "observations",
    "actions",
    "rewards",
    "mask",
    "lengths",
    "terminated",
    "truncated",
    "nonfinite",
    "final_observations",
)
FAMILIES = {  # env id, horizon, env kwargs: a Gaussian, a categorical and a MuJoCo family
    "navigation": ("metarl/Navigation2D-v0", 25, {}),
    "tabular-mdp": ("metarl/TabularMDP-v0", 10, {}),
    "half-cheetah-vel": ("metarl/HalfCheetahVel-v0", 15, {"nthread": 1}),
}


def assert_same_episodes(a, b):
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def family_setup(family, num_tasks, episodes_per_task):
    env_id, horizon, kwargs = FAMILIES[family]
    env = make_batched(env_id, num_tasks * episodes_per_task, max_episode_steps=horizon, **kwargs)
    torch.manual_seed(0)
    policy = make_policy(env.single_observation_space, env.single_action_space, (16,))
    tasks = env.sample_tasks(num_tasks, np.random.default_rng(0))
    params = {n: p + 0.1 * torch.randn(num_tasks, *p.shape[1:]) for n, p in policy.task_params(num_tasks).items()}
    return env, policy, tasks, params


@pytest.mark.parametrize("family", list(FAMILIES))
def test_any_split_into_shards_reproduces_the_local_batch(family):
    """Shards (cutting through tasks, own envs, one torch thread) give exactly the local sampler's episodes."""
    num_tasks, episodes = 3, 4
    env, policy, tasks, params = family_setup(family, num_tasks, episodes)
    env_id, horizon, kwargs = FAMILIES[family]
    sampler = Sampler(env, policy, num_tasks, episodes)
    sampler.set_tasks(tasks)
    torch.manual_seed(123)  # torch's global RNG plays no part
    local = sampler.sample(params, np.random.default_rng(7))
    key = draw_phase_key(np.random.default_rng(7))
    threads = torch.get_num_threads()
    parts = []
    try:
        torch.set_num_threads(1)
        for shard in (Shard(0, 5), Shard(5, 6), Shard(6, 12)):
            shard_env = make_batched(env_id, shard.size, max_episode_steps=horizon, **kwargs)
            shard_env.set_tasks([tasks[k // episodes] for k in range(shard.start, shard.stop)])
            parts.append(rollout(shard_env, policy, params, episodes, key, start=shard.start))
    finally:
        torch.set_num_threads(threads)
    assert_same_episodes(assemble_episodes(parts[::-1], num_tasks, episodes), local)
    assert local.num_steps > 0 and float(local.actions.float().std()) > 0


def test_episode_depends_only_on_the_phase_key_task_and_episode_index():
    """Episode j of task i is the same whatever the number of episodes per task and torch's RNG state."""
    env4, policy, tasks, params = family_setup("navigation", 3, 4)
    env2 = make_batched("metarl/Navigation2D-v0", 3 * 2, max_episode_steps=25)
    four, two = Sampler(env4, policy, 3, 4), Sampler(env2, policy, 3, 2)
    four.set_tasks(tasks)
    two.set_tasks(tasks)
    torch.manual_seed(1)
    a = four.sample(params, np.random.default_rng(5))
    torch.manual_seed(2)
    b = two.sample(params, np.random.default_rng(5))
    assert torch.equal(a.actions[:, :, :2], b.actions) and torch.equal(a.rewards[:, :, :2], b.rewards)
    assert not torch.equal(a.actions[:, :, 0], a.actions[:, :, 1])  # each episode has its own stream
    c = four.sample(params, np.random.default_rng(6))
    assert not torch.equal(a.actions, c.actions)  # another phase key, other episodes


def test_the_samplers_actions_are_sample_from_noise_of_the_distribution_to_the_bit():
    torch.manual_seed(0)
    for policy in (GaussianMLPPolicy(3, 2, (8, 8), min_std=0.5), CategoricalMLPPolicy(3, 4, (8,))):
        params = {n: p.detach().clone() for n, p in policy.task_params(2).items()}
        if "log_std" in params:
            params["log_std"] = torch.tensor([[-2.0, 0.3], [0.1, -0.1]])  # one under the clamp
        obs = torch.randn(2, 5, 3)
        noise = torch.from_numpy(policy.draw_noise(np.random.default_rng(1), 10)).reshape(2, 5, -1).squeeze(-1)
        expected = policy.sample_from_noise(policy.distribution(obs, params), noise)
        assert torch.equal(policy.actions_from_noise(obs, params, noise), expected)


def test_actions_from_noise_follow_the_distribution():
    gaussian = GaussianMLPPolicy(2, 3, hidden_sizes=(4,))
    obs = torch.randn(2, 5, 2)
    dist = gaussian.distribution(obs, gaussian.task_params(2))
    noise = torch.from_numpy(gaussian.draw_noise(np.random.default_rng(0), 10)[:5]).expand(2, 5, 3)
    expected = dist.base_dist.loc + dist.base_dist.scale * noise
    torch.testing.assert_close(gaussian.sample_from_noise(dist, noise), expected)

    categorical = CategoricalMLPPolicy(2, 4)
    probs = torch.tensor([0.2, 0.5, 0.0, 0.3])
    dist = Categorical(probs=probs)
    at = torch.tensor([0.0, 0.1999, 0.2001, 0.6999, 0.7001, 0.9999], dtype=torch.float64)
    assert categorical.sample_from_noise(dist, at).tolist() == [0, 0, 1, 1, 3, 3]  # never the 0-probability action
    u = torch.from_numpy(categorical.draw_noise(np.random.default_rng(0), 200_000))
    counts = torch.bincount(categorical.sample_from_noise(dist, u), minlength=4).double() / len(u)
    torch.testing.assert_close(counts, probs.double(), atol=0.005, rtol=0)


def test_split_shards_is_contiguous_near_equal_and_clipped():
    assert split_shards(10, 3) == [Shard(0, 3), Shard(3, 7), Shard(7, 10)]
    assert split_shards(2, 5) == [Shard(0, 1), Shard(1, 2)]
    shards = split_shards(800, 7)
    assert shards[0].start == 0 and shards[-1].stop == 800
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:], strict=False))
    assert {s.size for s in shards} <= {114, 115}


def test_the_samplers_fast_streams_are_episode_stream():
    from metarl.sampling.streams import _EpisodeStreams, episode_stream

    streams = _EpisodeStreams(2**62 + 12345)
    for task, episode in ((0, 0), (3, 1), (2**32 - 1, 7)):
        fast = streams(task, episode).standard_normal(9)
        assert np.array_equal(fast, episode_stream(2**62 + 12345, task, episode).standard_normal(9))
    assert not np.array_equal(streams(0, 1).random(4), streams(1, 0).random(4))
