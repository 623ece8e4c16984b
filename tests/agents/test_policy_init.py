"""The policies' initialisation: Glorot-uniform layers, the output layer scaled by ``init_output_scale``."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from metarl.config.loading import load_config


@pytest.mark.parametrize("cls", [GaussianMLPPolicy, CategoricalMLPPolicy])
def test_output_scale_multiplies_only_the_output_layer(cls):
    torch.manual_seed(5)
    plain = cls(17, 6, (100, 100), "relu")
    torch.manual_seed(5)
    small = cls(17, 6, (100, 100), "relu", output_scale=0.01)
    for name, p in plain.named_parameters():
        q = dict(small.named_parameters())[name]
        expected = p * 0.01 if name == "w2" else p
        torch.testing.assert_close(q, expected, rtol=0, atol=0)
    bound = np.sqrt(6.0 / (100 + 6))
    assert 0.9 * bound < float(plain.w2.detach().abs().max()) <= bound
    assert 0.9 * bound * 0.01 < float(small.w2.detach().abs().max()) <= bound * 0.01


def test_small_output_scale_starts_near_zero_action_means():
    obs = torch.randn(1, 256, 17, generator=torch.Generator().manual_seed(0))
    means = []
    for scale in (1.0, 0.01):
        torch.manual_seed(2)
        policy = GaussianMLPPolicy(17, 6, (100, 100), "relu", output_scale=scale)
        with torch.no_grad():
            means.append(float(policy.distribution(obs, policy.task_params(1)).mean.abs().mean()))
    assert means[0] > 0.2  # a Glorot output layer: action means of the order of the noise
    assert means[1] == pytest.approx(means[0] * 0.01, rel=1e-4)


def test_config_threads_init_output_scale_to_the_policy():
    env = SimpleNamespace(
        single_observation_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        single_action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
    )
    policies = []
    for overrides in (["--init_output_scale", "0.01"], []):
        torch.manual_seed(0)
        policies.append(agents.policy_for(load_config("2d-navigation", overrides), env))  # type: ignore[arg-type]
    small, plain = policies
    last = f"w{plain.num_layers - 1}"
    torch.testing.assert_close(getattr(small, last), getattr(plain, last) * 0.01, rtol=0, atol=0)
    torch.testing.assert_close(small.w0, plain.w0, rtol=0, atol=0)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_output_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match="output_scale must be > 0"):
        GaussianMLPPolicy(3, 2, (4,), output_scale=scale)
    with pytest.raises(ValueError, match="init_output_scale': must be > 0"):
        load_config("2d-navigation", ["--init_output_scale", str(scale)])
