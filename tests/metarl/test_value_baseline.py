"""The per-task linear feature baseline recovers an exactly linear target."""

import torch

from metarl.learner.value_baseline import (
    LinearFeatureBaseline,
    baseline_features,
    estimate_advantages,
    task_major_features,
)
from metarl.sampling.episodes import Episodes, time_index


def make_episodes(observations, rewards, lengths, terminated=None):
    H, T, E = rewards.shape
    mask = (torch.arange(H).view(H, 1, 1) < lengths).to(rewards.dtype)
    terminated = torch.zeros(T, E, dtype=torch.bool) if terminated is None else terminated
    return Episodes(
        observations=observations * mask.unsqueeze(-1),
        actions=torch.zeros(H, T, E, 1, dtype=rewards.dtype),
        rewards=rewards * mask,
        mask=mask,
        lengths=lengths,
        terminated=terminated,
        truncated=~terminated,
        nonfinite=torch.zeros(T, E, dtype=torch.bool),
        final_observations=torch.zeros(T, E, observations.shape[-1], dtype=rewards.dtype),
    )


def test_baseline_recovers_linear_returns_per_task():
    torch.manual_seed(0)
    H, T, E, D, gamma = 12, 3, 5, 2, 0.9
    obs = torch.rand(H, T, E, D, dtype=torch.float64)
    lengths = torch.randint(6, H + 1, (T, E))
    steps = time_index(H, torch.float64).expand(H, T, E)
    weights = torch.randn(T, 2 * D + 4, dtype=torch.float64)  # a different target per task
    mask = (torch.arange(H).view(H, 1, 1) < lengths).double()
    target = torch.einsum("htef,tf->hte", baseline_features(obs, steps), weights) * mask
    # rewards chosen so that the discounted return-to-go equals the target exactly
    next_target = torch.cat([target[1:], torch.zeros_like(target[:1])])
    rewards = target - gamma * next_target
    episodes = make_episodes(obs, rewards, lengths)

    baseline = LinearFeatureBaseline(reg_coeff=1e-10)
    baseline.fit(episodes, gamma)
    torch.testing.assert_close(baseline.predict(episodes), target, atol=1e-6, rtol=0)


def test_advantages_of_a_perfect_baseline_are_zero():
    torch.manual_seed(1)
    H, T, E, D = 8, 2, 4, 1
    obs = torch.rand(H, T, E, D, dtype=torch.float64)
    steps = time_index(H, torch.float64).expand(H, T, E)
    w = torch.randn(T, 2 * D + 4, dtype=torch.float64)
    target = torch.einsum("htef,tf->hte", baseline_features(obs, steps), w)
    rewards = target - 1.0 * torch.cat([target[1:], torch.zeros_like(target[:1])])
    episodes = make_episodes(obs, rewards, torch.full((T, E), H), terminated=torch.ones(T, E, dtype=torch.bool))
    adv = estimate_advantages(episodes, gamma=1.0, gae_lambda=1.0, normalize=False)
    assert float(adv.abs().max()) < 1e-3  # the default ridge term (1e-5) leaves a tiny bias


def test_task_major_features_are_the_features_of_every_step_task_by_task():
    torch.manual_seed(2)
    H, T, E, D = 7, 3, 4, 5
    obs = 30.0 * torch.randn(H, T, E, D)  # some beyond the clamp at ±10
    steps = time_index(H).expand(H, T, E)
    expected = baseline_features(obs, steps).transpose(0, 1).reshape(T, H * E, 2 * D + 4)
    assert torch.equal(task_major_features(obs), expected)


def test_fit_predict_equals_fit_then_predict():
    torch.manual_seed(3)
    H, T, E, D = 10, 2, 3, 3
    episodes = make_episodes(torch.randn(H, T, E, D), torch.randn(H, T, E), torch.randint(1, H + 1, (T, E)))
    first = LinearFeatureBaseline()
    values = first.fit_predict(episodes, 0.95)
    second = LinearFeatureBaseline()
    second.fit(episodes, 0.95)
    assert torch.equal(values, second.predict(episodes))
    assert torch.equal(first.weights, second.weights)
    assert float(values[episodes.mask == 0].abs().max()) == 0.0
