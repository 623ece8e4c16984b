"""The policies' tanh: torch.tanh's values and derivatives, computed through a sigmoid."""

from __future__ import annotations

import torch

from agents.policies import GaussianMLPPolicy, tanh


def test_tanh_matches_torch_tanh_in_float32_and_float64():
    x32 = torch.linspace(-30.0, 30.0, 200_001)
    assert float((tanh(x32) - torch.tanh(x32)).abs().max()) <= 3e-7
    x64 = x32.double()
    assert float((tanh(x64) - torch.tanh(x64)).abs().max()) <= 1e-15
    assert tanh(torch.tensor([0.0])).item() == 0.0
    assert tanh(torch.tensor([float("inf"), float("-inf")])).tolist() == [1.0, -1.0]
    assert torch.isnan(tanh(torch.tensor([float("nan")]))).all()


def test_tanh_first_and_second_derivatives():
    x = torch.linspace(-4.0, 4.0, 41, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (x,))
    assert torch.autograd.gradgradcheck(tanh, (x,))
    (grad,) = torch.autograd.grad(tanh(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), x)
    t = torch.tanh(x.detach())
    torch.testing.assert_close(grad.detach(), 1 - t**2, rtol=0, atol=1e-14)
    torch.testing.assert_close(second, -2 * t * (1 - t**2), rtol=0, atol=1e-14)


def test_policy_mean_uses_the_same_tanh_as_torch():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(5, 2, hidden_sizes=(16, 16))
    obs = torch.randn(3, 7, 5)
    params = policy.task_params(3)
    mean = policy.distribution(obs, params).mean
    x = obs
    for i in range(3):
        x = x @ policy.get_parameter(f"w{i}") + policy.get_parameter(f"b{i}")
        x = torch.tanh(x) if i < 2 else x
    torch.testing.assert_close(mean, x, rtol=0, atol=1e-6)
