"""Inner-loss estimators against the exact MAML meta-gradient of a tabular MDP and a bandit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.exact_maml import exact_maml, expected_return, policy_table, sample_episodes, sampled_meta_gradient
from agents.maml import AdvantageSettings, inner_loss, inner_step
from agents.maml_trpo import MAMLTRPO, MetaUpdateSettings
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from tests.agents.test_maml_trpo import make_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from estimator_bias import problems  # noqa: E402

PROBLEMS = problems()


def _setup(name: str):
    obs, transitions, rewards, initial, horizon = PROBLEMS[name]
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(obs.shape[1], rewards.shape[1], (8,)).double()
    return policy, (obs, transitions, rewards, initial, horizon)


def test_the_closed_form_return_matches_monte_carlo():
    policy, (obs, transitions, rewards, initial, horizon) = _setup(next(iter(PROBLEMS)))
    params = {n: p.detach() for n, p in policy.task_params(1).items()}
    exact = expected_return(policy_table(policy, params, obs), transitions, rewards, initial, horizon)
    episodes, _ = sample_episodes(policy, params, obs, transitions, rewards, initial, horizon, 200_000,
                                  torch.Generator().manual_seed(0))
    returns = episodes.returns()[0]
    assert abs(float(returns.mean() - exact)) < 4 * float(returns.std()) / np.sqrt(200_000)


@pytest.mark.parametrize("estimator", ["lvc", "dice"])
def test_estimators_share_reinforces_value_gradient_and_adaptation(estimator):
    torch.manual_seed(3)
    policy = CategoricalMLPPolicy(2, 3, (5,)).double()
    batch = make_batch(policy, discrete=True, seed=3)
    theta = {n: p.detach().requires_grad_(True) for n, p in policy.task_params(3).items()}
    episodes, advantages = batch.episodes[0], batch.advantages[0]
    reference = inner_step(policy, theta, episodes, advantages, 0.5, create_graph=False)
    other = inner_step(policy, theta, episodes, advantages, 0.5, create_graph=False, estimator=estimator)
    for name in reference:
        torch.testing.assert_close(other[name], reference[name], rtol=1e-10, atol=1e-12)
    value = inner_loss(policy, theta, episodes, advantages, estimator)  # π/⊥π and 𝓜 are 1 in value
    mask = episodes.mask
    expected = -(advantages * mask).sum(dim=(0, 2)) / mask.sum(dim=(0, 2)) if estimator == "lvc" else 0 * value
    torch.testing.assert_close(value, expected)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_dice_converges_to_the_exact_meta_gradient_and_reinforce_does_not(name):
    policy, mdp = _setup(name)
    _, exact = exact_maml(policy, *mdp, fast_lr=2.0)

    def error(estimator: str, episodes: int, seed: int) -> float:
        estimate = sampled_meta_gradient(policy, *mdp, 2.0, episodes, estimator, torch.Generator().manual_seed(seed))
        return float((estimate - exact).norm() / exact.norm())

    small = np.mean([error("dice", 500, s) for s in range(3)])
    large = np.mean([error("dice", 20_000, s) for s in range(3)])
    assert large < 0.06  # the stated bound at N = 20,000
    assert large < small / 3  # about 1/sqrt(N): sqrt(40) = 6.3
    reinforce = np.mean([error("reinforce", 20_000, s) for s in range(3)])
    lvc = np.mean([error("lvc", 20_000, s) for s in range(3)])
    assert reinforce > 0.3 and reinforce > 5 * large  # a biased estimate: more episodes do not help
    assert large < lvc < reinforce  # LVC drops the cross-step terms only: biased, less so


@pytest.mark.parametrize("estimator", ["lvc", "dice"])
@pytest.mark.parametrize("fast", [False, True])
def test_the_meta_update_improves_the_surrogate_with_each_estimator(estimator, fast):
    torch.manual_seed(2)
    policy = GaussianMLPPolicy(2, 2, (5,)).double()
    batch = make_batch(policy, discrete=False, seed=2, horizon=20, episodes_per_task=8)
    options = {"fvp_step_subsample": 0.5, "fvp_inner_subsample": 0.5} if fast else {}
    settings = MetaUpdateSettings(fast_lr=0.5, inner_estimator=estimator, **options)
    metrics = MAMLTRPO(policy, None, settings, AdvantageSettings()).step(batch, np.random.default_rng(0))
    assert metrics["step_accepted"] == 1.0 and metrics["loss_after"] < metrics["loss_before"]
    assert 0 < metrics["kl_after"] <= 0.01
