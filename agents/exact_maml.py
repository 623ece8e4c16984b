"""The exact MAML objective of a tabular MDP (a bandit is one with a single state), in closed form.

For a policy over ``S`` states with action probabilities ``π_θ(a|s)`` (the policy's MLP on
each state's observation), the expected return of an episode of ``H`` steps from the
initial distribution ``d₀`` is, by finite-horizon policy evaluation,

    J(θ) = Σ_{t<H} d_tᵀ r_π,   d_{t+1} = P_πᵀ d_t,   P_π[s, s'] = Σ_a π(a|s) P[s, a, s'],
    r_π[s] = Σ_a π(a|s) R[s, a]

— torch all the way, so it is differentiable in θ to any order. The inner loss metarl
samples is −(mean over steps of) log π·A, whose expectation with undiscounted returns-to-go
as advantages is −J(θ)/H; one inner step of size α therefore takes θ to
θ' = θ + (α/H)∇J(θ), and the exact MAML objective is J(θ'(θ)) (Finn et al. 2017,
https://arxiv.org/abs/1703.03400). Its gradient is one autograd call: the reference the
sampled meta-gradient estimators (``reinforce``, ``lvc``, ``dice``; :mod:`agents.maml`)
are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.maml import AdaptationBatch, inner_step
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import Params, Policy
from agents.surrogate import PostAdaptationObjective
from metarl.sampling.episodes import Episodes


def policy_table(policy: Policy, params: Params, observations: Tensor) -> Tensor:
    """``π(a|s)`` as an ``[S, A]`` table: the policy on each state's observation ``[S, obs_dim]``.

    Args:
        policy: a categorical policy.
        params: its parameters with a leading task dimension of 1.
        observations: one observation per state.
    """
    return policy.distribution(observations.unsqueeze(0), params).probs[0]  # type: ignore[attr-defined]


def expected_return(probs: Tensor, transitions: Tensor, rewards: Tensor, initial: Tensor, horizon: int) -> Tensor:
    """J: the expected undiscounted return of ``horizon`` steps under the policy table ``probs``.

    Args:
        probs: ``π(a|s)``, ``[S, A]``.
        transitions: ``P[s, a, s']``, ``[S, A, S]``.
        rewards: mean rewards ``R[s, a]``, ``[S, A]``.
        initial: the initial state distribution ``[S]``.
        horizon: steps per episode.
    """
    step = torch.einsum("sa,sat->st", probs, transitions)
    reward = (probs * rewards).sum(-1)
    distribution, total = initial, torch.zeros((), dtype=probs.dtype)
    for _ in range(horizon):
        total = total + distribution @ reward
        distribution = distribution @ step
    return total


@dataclass(frozen=True)
class TabularProblem:
    """A tabular MDP of episodes of ``horizon`` steps, and the observation the policy sees in each state.

    ``observations [S, obs_dim]``, ``transitions [S, A, S]``, ``rewards [S, A]`` (mean
    rewards), ``initial [S]`` (the initial state distribution). A bandit is one state.
    """

    observations: Tensor
    transitions: Tensor
    rewards: Tensor
    initial: Tensor
    horizon: int

    def value(self, policy: Policy, params: Params) -> Tensor:
        """J of ``policy`` with ``params`` (task dimension 1), differentiable in them."""
        probs = policy_table(policy, params, self.observations)
        return expected_return(probs, self.transitions, self.rewards, self.initial, self.horizon)


def exact_maml(policy: Policy, problem: TabularProblem, fast_lr: float) -> tuple[Tensor, Tensor]:
    """The exact MAML objective ``J(θ')`` after one inner step, and its exact gradient in θ (flat).

    Args:
        policy: a categorical policy; θ is its parameters.
        problem: the MDP.
        fast_lr: the inner step size α (on the per-step mean loss, as metarl's inner loop takes it).
    """
    params = policy.task_params(1)
    names = list(params)
    grads = torch.autograd.grad(problem.value(policy, params), [params[n] for n in names], create_graph=True)
    adapted = {n: params[n] + (fast_lr / problem.horizon) * g for n, g in zip(names, grads, strict=True)}
    objective = problem.value(policy, adapted)
    gradient = torch.autograd.grad(objective, list(policy.parameters()))
    return objective.detach(), torch.cat([g.reshape(-1) for g in gradient])


def sample_episodes(
    policy: Policy, params: Params, problem: TabularProblem, num_episodes: int, generator: torch.Generator
) -> tuple[Episodes, Tensor]:
    """``num_episodes`` episodes of ``problem`` under ``params`` (one task), with returns-to-go as advantages.

    Rewards are the mean rewards ``R[s, a]`` (the noise of a sampled reward would only add
    variance); advantages are the undiscounted returns-to-go, with no baseline, so that the
    inner loss's expectation is exactly −J/H.

    Args:
        policy: a categorical policy.
        params: its parameters with a leading task dimension of 1.
        problem: the MDP.
        num_episodes: episodes to sample.
        generator: the random stream.
    """
    observations, transitions, rewards = problem.observations, problem.transitions, problem.rewards
    horizon = problem.horizon
    with torch.no_grad():
        probs = policy_table(policy, params, observations)
    states = torch.multinomial(problem.initial.expand(num_episodes, -1), 1, generator=generator).squeeze(-1)
    obs, actions, rews = [], [], []
    for _ in range(horizon):
        action = torch.multinomial(probs[states], 1, generator=generator).squeeze(-1)
        obs.append(observations[states])
        actions.append(action)
        rews.append(rewards[states, action])
        states = torch.multinomial(transitions[states, action], 1, generator=generator).squeeze(-1)
    shape = (horizon, 1, num_episodes)
    reward = torch.stack(rews).reshape(shape)
    episodes = Episodes(
        observations=torch.stack(obs).reshape(*shape, -1),
        actions=torch.stack(actions).reshape(shape),
        rewards=reward,
        mask=torch.ones(shape, dtype=reward.dtype),
        lengths=torch.full((1, num_episodes), horizon),
        terminated=torch.zeros(1, num_episodes, dtype=torch.bool),
        truncated=torch.ones(1, num_episodes, dtype=torch.bool),
        nonfinite=torch.zeros(1, num_episodes, dtype=torch.bool),
        final_observations=observations[states].reshape(1, num_episodes, -1),
    )
    returns_to_go = torch.flip(torch.cumsum(torch.flip(reward, [0]), 0), [0])
    return episodes, returns_to_go


def sampled_meta_gradient(
    policy: Policy,
    problem: TabularProblem,
    fast_lr: float,
    num_episodes: int,
    estimator: str,
    generator: torch.Generator,
) -> Tensor:
    """The meta-update's gradient as MAML-TRPO computes it from ``num_episodes`` episodes before and
    after one inner step with ``estimator``, scaled to estimate ∇θ J(θ') (flat): what :func:`exact_maml` gives.

    Args:
        policy: a categorical policy; θ is its parameters.
        problem: the MDP.
        fast_lr: the inner step size α.
        num_episodes: episodes per sampling phase.
        estimator: the inner loss, ``reinforce``, ``lvc`` or ``dice``.
        generator: the random stream.
    """
    theta = {n: p.detach() for n, p in policy.task_params(1).items()}
    pre, pre_advantages = sample_episodes(policy, theta, problem, num_episodes, generator)
    with torch.enable_grad():
        start = {n: p.clone().requires_grad_(True) for n, p in theta.items()}
        adapted = {n: p.detach() for n, p in inner_step(policy, start, pre, pre_advantages, fast_lr, False).items()}
    post, post_advantages = sample_episodes(policy, adapted, problem, num_episodes, generator)
    batch = AdaptationBatch(episodes=[pre, post], advantages=[pre_advantages, post_advantages], params=[theta, adapted])
    objective = PostAdaptationObjective(policy, batch, MetaUpdateSettings(fast_lr=fast_lr, inner_estimator=estimator))
    loss, _ = objective.loss_and_kl(objective.adapted(create_graph=True))
    gradient = torch.autograd.grad(loss, list(policy.parameters()))
    return -problem.horizon * torch.cat([g.reshape(-1) for g in gradient])  # the loss is −(mean over steps) ≈ −J/H
