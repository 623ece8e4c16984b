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
from metarl.registry import TaskEnvError
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


@dataclass(frozen=True)
class Steps:
    """Each task's valid steps, task-major ``[T, N, 1, ...]`` (see :meth:`Episodes.packed`).

    ``mask`` is 1 on a task's own steps and 0 on the positions past its count.
    """

    observations: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor

    @classmethod
    def of(cls, episodes: Episodes, advantages: Tensor) -> Steps:
        """The valid steps of ``episodes`` with their ``advantages`` ``[H, T, E]``."""
        return cls(
            observations=episodes.packed(episodes.observations),
            actions=episodes.packed(episodes.actions),
            advantages=episodes.packed(advantages),
            mask=episodes.packed(episodes.mask),
        )

    def subsample(self, fraction: float, generator: torch.Generator) -> Steps:
        """A random ``fraction`` of every task's valid steps (at least one), drawn without replacement.

        All tasks at once: random keys sort each task's valid steps into a random order
        ahead of its padding, and the first ``ceil(fraction · count)`` are kept.

        Args:
            fraction: share of each task's steps to keep, in (0, 1].
            generator: the random stream of the draw.
        """
        mask = self.mask.reshape(self.mask.shape[0], -1)
        counts = mask.sum(1)
        keep = torch.ceil(fraction * counts).clamp(min=1.0)
        keys = torch.rand(mask.shape, generator=generator, dtype=torch.float64) + (mask <= 0).double()
        width = int(keep.max())
        index = torch.argsort(keys, dim=1)[:, :width]

        def take(tensor: Tensor) -> Tensor:
            flat = tensor.reshape(tensor.shape[0], tensor.shape[1], *tensor.shape[3:])
            gather = index.view(*index.shape, *(1,) * (flat.dim() - 2)).expand(*index.shape, *flat.shape[2:])
            return torch.gather(flat, 1, gather).unsqueeze(2)

        kept = (torch.arange(width).unsqueeze(0) < torch.minimum(keep, counts).unsqueeze(1)).to(self.mask.dtype)
        return Steps(take(self.observations), take(self.actions), take(self.advantages), kept.view(*kept.shape, 1))


def steps_loss(policy: Policy, params: Params, steps: Steps) -> Tensor:
    """REINFORCE loss per task ``[T]`` on packed ``steps``: −mean over them of log π(a|s) · A."""
    log_probs = policy.distribution(steps.observations, params).log_prob(steps.actions)
    weighted = log_probs * steps.advantages * steps.mask
    return -weighted.sum(dim=(1, 2)) / steps.mask.sum(dim=(1, 2)).clamp(min=1.0)


def inner_loss(policy: Policy, params: Params, episodes: Episodes, advantages: Tensor) -> Tensor:
    """REINFORCE loss per task ``[T]``: −mean over valid steps of log π(a|s) · A."""
    return steps_loss(policy, params, Steps.of(episodes, advantages))


def inner_step(
    policy: Policy, params: Params, episodes: Episodes, advantages: Tensor, lr: float, create_graph: bool
) -> Params:
    """One gradient step for every task: ``params - lr * ∇ inner_loss``.

    With ``create_graph`` the result is differentiable through the gradient
    (second-order MAML); without it the gradient is a constant (first order).
    """
    return steps_inner_step(policy, params, Steps.of(episodes, advantages), lr, create_graph)


def steps_inner_step(policy: Policy, params: Params, steps: Steps, lr: float, create_graph: bool) -> Params:
    """:func:`inner_step` on packed ``steps``."""
    names = list(params)
    loss = steps_loss(policy, params, steps).sum()
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
        if eps.num_steps == 0:
            bad = int(eps.nonfinite.sum())
            raise TaskEnvError(
                f"no usable step in a whole sampling phase: {bad} of {int(eps.present.sum())} episodes ended in "
                "non-finite values (NaN or infinity in an observation or reward) at reset or at their first step; "
                "check the environment's reset and step"
            )
        adv = advantage.estimate(eps)
        episodes.append(eps)
        advantages.append(adv)
        used.append({n: p.detach() for n, p in current.items()})
        if k < len(lrs):
            with torch.enable_grad():
                current = detached(inner_step(policy, current, eps, adv, lrs[k], create_graph=False))
    return AdaptationBatch(episodes=episodes, advantages=advantages, params=used)
