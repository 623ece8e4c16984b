"""The MAML inner loop: policy-gradient adaptation of every task's parameters at once.

θ'ᵢ = θ − α ∇θ Lᵢ(θ), where Lᵢ is the REINFORCE loss on task ``i``'s episodes. The
gradient of Σᵢ Lᵢ with respect to the per-task (expanded) parameters is, row by row,
each task's own gradient, so one backward pass adapts all tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from agents.policies import Params, Policy
from metarl.baseline import estimate_advantages
from metarl.episodes import Episodes
from metarl.sampler import Sampler


@dataclass(frozen=True)
class AdvantageSettings:
    """How advantages are estimated from episodes."""

    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize: bool = True
    bootstrap_truncated: bool = False

    def estimate(self, episodes: Episodes) -> Tensor:
        """GAE advantages ``[H, T, E]`` with a per-task linear baseline."""
        return estimate_advantages(
            episodes, self.gamma, self.gae_lambda, self.normalize, self.bootstrap_truncated
        )


@dataclass(frozen=True)
class AdaptationBatch:
    """Episodes after 0..K adaptation steps, with their advantages.

    ``episodes[k]`` were sampled with the parameters after ``k`` inner steps,
    ``params[k]`` (detached); ``episodes[:-1]`` feed the inner loop, ``episodes[-1]``
    is what the adapted policy did.
    """

    episodes: list[Episodes]
    advantages: list[Tensor]
    params: list[Params]

    @property
    def num_inner_steps(self) -> int:
        """K, the number of adaptation steps."""
        return len(self.episodes) - 1

    def select_tasks(self, index: Tensor) -> AdaptationBatch:
        """The same batch restricted to the tasks in ``index``."""
        return AdaptationBatch(
            episodes=[e.select_tasks(index) for e in self.episodes],
            advantages=[a[:, index] for a in self.advantages],
            params=[{n: p[index] for n, p in ps.items()} for ps in self.params],
        )


def inner_loss(policy: Policy, params: Params, episodes: Episodes, advantages: Tensor) -> Tensor:
    """REINFORCE loss per task ``[T]``: −mean over valid steps of log π(a|s) · A."""
    obs = episodes.packed(episodes.observations)
    actions = episodes.packed(episodes.actions)
    mask = episodes.packed(episodes.mask)
    log_probs = policy.distribution(obs, params).log_prob(actions)
    weighted = log_probs * episodes.packed(advantages) * mask
    return -weighted.sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)


def inner_step(
    policy: Policy, params: Params, episodes: Episodes, advantages: Tensor, lr: float, create_graph: bool
) -> Params:
    """One gradient step for every task: ``params - lr * ∇ inner_loss``.

    With ``create_graph`` the result is differentiable through the gradient
    (second-order MAML); without it the gradient is a constant (first order).
    """
    names = list(params)
    loss = inner_loss(policy, params, episodes, advantages).sum()
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
    return {n: params[n] - lr * g for n, g in zip(names, grads, strict=True)}


def adapt(
    policy: Policy,
    params: Params,
    batch: AdaptationBatch,
    lrs: Sequence[float],
    create_graph: bool,
) -> Params:
    """Apply the batch's K inner steps to ``params`` (recomputed as a function of them)."""
    for k in range(batch.num_inner_steps):
        params = inner_step(policy, params, batch.episodes[k], batch.advantages[k], lrs[k], create_graph)
    return params


def detached(params: Params) -> Params:
    """A copy of ``params`` cut from the graph, ready to be differentiated again."""
    return {n: p.detach().requires_grad_(True) for n, p in params.items()}


def sample_adaptation(
    policy: Policy,
    sampler: Sampler,
    rng: np.random.Generator,
    lrs: Sequence[float],
    advantage: AdvantageSettings,
    params: Params | None = None,
) -> AdaptationBatch:
    """Sample episodes, adapt, and sample again, ``len(lrs)`` times, for all tasks at once.

    Each step's episodes are fresh rollouts of the current parameters; the final
    entry holds the episodes of the fully adapted policy.
    """
    current = detached(params if params is not None else policy.task_params(sampler.num_tasks))
    episodes, advantages, used = [], [], []
    for k in range(len(lrs) + 1):
        eps = sampler.sample(current, rng)
        adv = advantage.estimate(eps)
        episodes.append(eps)
        advantages.append(adv)
        used.append({n: p.detach() for n, p in current.items()})
        if k < len(lrs):
            with torch.enable_grad():
                current = detached(inner_step(policy, current, eps, adv, lrs[k], create_graph=False))
    return AdaptationBatch(episodes=episodes, advantages=advantages, params=used)
