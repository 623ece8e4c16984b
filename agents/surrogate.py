"""The outer loop's objective: TRPO's surrogate loss and KL on the post-adaptation episodes, as functions of θ.

Schulman et al. 2015 (https://arxiv.org/abs/1502.05477), with the policy after the inner loop
(Finn et al. 2017, https://arxiv.org/abs/1703.03400): the importance-weighted advantage of the
post-adaptation episodes and the KL from the policy that sampled them, averaged per task over
its valid steps, then over tasks.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence

from agents.inner_losses import Transitions
from agents.maml import AdaptationBatch, adapt
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import Params, Policy


def masked_task_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over each task's valid steps ``[T]`` of packed ``[T, N, 1]`` values."""
    return (values * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)


class PostAdaptationObjective:
    """Surrogate loss and KL of the post-adaptation episodes as functions of θ.

    Args:
        policy: the policy (θ its parameters).
        batch: the episodes before and after each inner step, with their advantages and parameters.
        settings: the meta-update's settings (the inner step, its precision and estimator).
    """

    def __init__(self, policy: Policy, batch: AdaptationBatch, settings: MetaUpdateSettings) -> None:
        self.policy = policy
        self.batch = batch
        self.settings = settings
        valid = batch.episodes[-1]
        self.obs = valid.packed(valid.observations)
        self.actions = valid.packed(valid.actions)
        self.mask = valid.packed(valid.mask)
        self.advantages = valid.packed(batch.advantages[-1])
        self._old: tuple[Distribution, Tensor] | None = None
        self._inner_steps: list[Transitions] | None = None

    @property
    def old_dist(self) -> Distribution:
        """The policy the post-adaptation episodes were sampled with (its distribution on their steps)."""
        return self._old_policy()[0]

    @property
    def old_log_probs(self) -> Tensor:
        """Log π_old of the post-adaptation episodes' actions."""
        return self._old_policy()[1]

    def _old_policy(self) -> tuple[Distribution, Tensor]:
        if self._old is None:
            with torch.no_grad():
                dist = self.policy.distribution(self.obs, self.batch.params[-1])
                self._old = dist, dist.log_prob(self.actions)
        return self._old

    def sampled_loss(self) -> tuple[Tensor, Params]:
        """The surrogate at the sampled adapted parameters, and those parameters (leaves it is differentiable in).

        Its forward pass also gives the old policy's distribution (the same numbers as its
        own no-grad forward), so the post-adaptation steps are evaluated once.
        """
        sampled = {n: p.detach().contiguous().requires_grad_(True) for n, p in self.batch.params[-1].items()}
        outputs = self.policy.fisher_outputs(self.obs, sampled)
        log_probs = self.policy.output_distribution(outputs).log_prob(self.actions)
        if self._old is None:
            old = self.policy.output_distribution(tuple(o.detach() for o in outputs))
            self._old = old, log_probs.detach()
        ratio = torch.exp(log_probs - self.old_log_probs)
        return -masked_task_mean(ratio * self.advantages, self.mask).mean(), sampled

    def adapted(self, create_graph: bool) -> Params:
        """The adapted parameters as a function of θ: through autograd's inner loop with ``create_graph``
        (second order), else by the settings' :meth:`~MetaUpdateSettings.adaptation_step`, the sampler's.
        """
        s, batch = self.settings, self.batch
        params = self.policy.task_params(batch.episodes[-1].num_tasks)
        if create_graph or s.adaptation_precision == "fp32":
            lrs = [s.fast_lr] * batch.num_inner_steps
            return adapt(self.policy, params, batch, lrs, create_graph and not s.first_order, s.inner_estimator)
        if self._inner_steps is None:  # packed once: the line search adapts at every candidate
            self._inner_steps = [
                Transitions.of(batch.episodes[k], batch.advantages[k]) for k in range(batch.num_inner_steps)
            ]
        step = s.adaptation_step()
        for steps in self._inner_steps:
            params = step(self.policy, params, steps, s.fast_lr)[0]
        return params

    def loss_and_kl(self, params: Params) -> tuple[Tensor, Tensor]:
        """The surrogate loss and the mean KL from the sampling policy at the adapted parameters ``params``."""
        dist = self.policy.distribution(self.obs, params)
        ratio = torch.exp(dist.log_prob(self.actions) - self.old_log_probs)
        loss = -masked_task_mean(ratio * self.advantages, self.mask).mean()
        kl = masked_task_mean(kl_divergence(self.old_dist, dist), self.mask).mean()
        return loss, kl


def kl_weights(mask: Tensor) -> Tensor:
    """Each step's weight in the KL ``[T, N, 1, 1]``: a mean over tasks of each task's mean over its valid steps."""
    return (mask / mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0) / mask.shape[0]).unsqueeze(-1)


def widened(tensor: Tensor) -> Tensor:
    """``tensor`` in fp32 if it is bf16 (an autocast output), else as it is."""
    return tensor.float() if tensor.dtype == torch.bfloat16 else tensor


__all__ = ["PostAdaptationObjective", "kl_weights", "masked_task_mean", "widened"]
