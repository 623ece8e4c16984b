"""Discounted returns, GAE and per-task normalisation against hand-computed values."""

import pytest
import torch

from metarl.learner.advantages import discounted_returns, gae, normalize_per_task


def col(values):
    """A [H] list as an [H, 1, 1] tensor (one task, one episode)."""
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


def test_discounted_returns_by_hand():
    rewards = col([1.0, 2.0, 3.0])
    mask = col([1.0, 1.0, 1.0])
    returns = discounted_returns(rewards, mask, gamma=0.5)
    # G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75
    assert returns.flatten().tolist() == pytest.approx([2.75, 3.5, 3.0])


def test_discounted_returns_ignore_padding():
    rewards = col([1.0, 2.0, 99.0])  # the third step lies after the episode's end
    mask = col([1.0, 1.0, 0.0])
    returns = discounted_returns(rewards, mask, gamma=0.5)
    assert returns.flatten().tolist() == pytest.approx([2.0, 2.0, 0.0])


def test_gae_terminated_episode_by_hand():
    rewards, values, mask = col([1.0, 1.0, 0.0]), col([0.5, 0.2, 7.0]), col([1.0, 1.0, 0.0])
    adv = gae(rewards, values, mask, last_values=torch.zeros(1, 1, dtype=torch.float64), gamma=0.9, lam=0.8)
    # delta1 = 1 + 0 - 0.2 = 0.8 ; delta0 = 1 + 0.9*0.2 - 0.5 = 0.68 ; A0 = 0.68 + 0.72*0.8
    assert adv.flatten().tolist() == pytest.approx([1.256, 0.8, 0.0])


def test_gae_truncated_episode_bootstraps_last_value():
    rewards, values, mask = col([1.0, 1.0]), col([0.5, 0.2]), col([1.0, 1.0])
    last = torch.ones(1, 1, dtype=torch.float64)
    adv = gae(rewards, values, mask, last_values=last, gamma=0.9, lam=0.8)
    # delta1 = 1 + 0.9*1 - 0.2 = 1.7 ; A0 = 0.68 + 0.72*1.7
    assert adv.flatten().tolist() == pytest.approx([0.68 + 0.72 * 1.7, 1.7])


def test_gae_with_lambda_one_is_return_minus_value():
    torch.manual_seed(0)
    rewards = torch.randn(6, 3, 2, dtype=torch.float64)
    values = torch.randn(6, 3, 2, dtype=torch.float64)
    lengths = torch.tensor([[6, 4], [1, 5], [3, 6]])
    mask = (torch.arange(6).view(6, 1, 1) < lengths).double()
    adv = gae(rewards, values, mask, torch.zeros(3, 2, dtype=torch.float64), gamma=0.95, lam=1.0)
    expected = (discounted_returns(rewards, mask, 0.95) - values) * mask
    torch.testing.assert_close(adv, expected)


def test_normalize_per_task():
    adv = torch.tensor([[[1.0], [10.0]], [[3.0], [20.0]], [[100.0], [-5.0]]])  # [H=3, T=2, E=1]
    mask = torch.tensor([[[1.0], [1.0]], [[1.0], [1.0]], [[0.0], [1.0]]])
    out = normalize_per_task(adv, mask)
    # task 0: valid values 1, 3 -> mean 2, std 1 -> -1, 1 ; padding stays 0
    assert out[:, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-6)
    task1 = out[:, 1, 0]
    assert float(task1.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(task1.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
