"""The MAML inner loop: policy-gradient adaptation of every task's parameters at once.

θ'ᵢ = θ − α ∇θ Lᵢ(θ), where Lᵢ is a policy-gradient loss on task ``i``'s episodes. The
gradient of Σᵢ Lᵢ with respect to the per-task (expanded) parameters is, row by row,
each task's own gradient, so one backward pass adapts all tasks.

Three estimators of Lᵢ share their value's first derivative (so θ' is the same) and differ
in the second, which the meta-update differentiates through:

* ``reinforce``: −mean log π(a|s)·A, as MAML (Finn et al. 2017, https://arxiv.org/abs/1703.03400)
  and its common implementations do. Its Hessian misses the terms that come from the
  episodes' own dependence on θ (Foerster et al. 2018, https://arxiv.org/abs/1802.05098).
* ``lvc``: the low-variance curvature estimator, −mean π(a|s)/⊥π(a|s)·A (Rothfuss et al.
  2019, ProMP, https://arxiv.org/abs/1810.06784): it adds each step's own score outer
  product, not the cross-step ones.
* ``dice``: −Σ_t (𝓜(c_t) − 𝓜(c_{t−1}))·A_t with c_t the episode's causal log-probability
  up to step t and 𝓜(x) = exp(x − ⊥x): DiCE with its baseline (Farquhar et al. 2019,
  Loaded DiCE, https://arxiv.org/abs/1909.10549, at λ = 1), unbiased at every order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from agents.inner_losses import Transitions, magic_box, transitions_loss
from agents.mlp_products import InnerLossHessian
from agents.policies import Params, Policy
from metarl.config import ESTIMATORS, TrainConfig
from metarl.learner.value_baseline import estimate_advantages
from metarl.runs.logs import GROUP_MARK
from metarl.sampling import Sampler
from metarl.sampling.episodes import Episodes
from metarl.tasks.registry import TaskEnvError


@dataclass(frozen=True)
class AdvantageSettings:
    """How advantages are estimated from episodes (defaults: :class:`~metarl.config.TrainConfig`'s).

    Args:
        gamma: Discount factor.
        gae_lambda: GAE λ (1: Monte-Carlo returns minus the baseline).
        normalize: Normalise each task's advantages to zero mean and unit variance.
        bootstrap_truncated: Bootstrap truncated episodes from the baseline's value of their final observation.
    """

    gamma: float = TrainConfig.gamma
    gae_lambda: float = TrainConfig.gae_lambda
    normalize: bool = TrainConfig.normalize_advantages
    bootstrap_truncated: bool = TrainConfig.bootstrap_truncated

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> AdvantageSettings:
        """How ``cfg`` estimates advantages."""
        return cls(cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages, cfg.bootstrap_truncated)

    def estimate(self, episodes: Episodes) -> Tensor:
        """GAE advantages ``[H, T, E]`` with a per-task linear baseline."""
        return estimate_advantages(episodes, self.gamma, self.gae_lambda, self.normalize, self.bootstrap_truncated)


@dataclass(frozen=True)
class AdaptationBatch:
    """Episodes after 0..K adaptation steps, with their advantages.

    ``episodes[k]`` were sampled with the parameters after ``k`` inner steps,
    ``params[k]`` (detached); ``episodes[:-1]`` feed the inner loop, ``episodes[-1]``
    is what the adapted policy did. ``hessians`` holds the inner steps' Hessians if the
    sampler's :class:`AdaptationStep` kept them, for the meta-update to take once
    (:meth:`take_hessians`).
    """

    episodes: list[Episodes]
    advantages: list[Tensor]
    params: list[Params]
    hessians: list[InnerLossHessian] = field(default_factory=list)

    @property
    def num_inner_steps(self) -> int:
        """K, the number of adaptation steps."""
        return len(self.episodes) - 1

    def take_hessians(self) -> list[InnerLossHessian]:
        """The kept inner-step Hessians (empty if none), handed over once: the batch forgets them, so they are
        freed as soon as their taker is done with them.
        """
        taken = list(self.hessians)
        self.hessians.clear()
        return taken

    def select_tasks(self, index: Tensor) -> AdaptationBatch:
        """The same batch restricted to the tasks in ``index`` (without kept Hessians)."""
        return AdaptationBatch(
            episodes=[e.select_tasks(index) for e in self.episodes],
            advantages=[a[:, index] for a in self.advantages],
            params=[{n: p[index] for n, p in ps.items()} for ps in self.params],
        )


def dice_loss(policy: Policy, params: Params, episodes: Episodes, advantages: Tensor) -> Tensor:
    """DiCE inner loss per task ``[T]``: −Σ_t (𝓜(c_t) − 𝓜(c_{t−1}))·A_t over valid steps / their count.

    ``c_t`` is the sum of the episode's log-probabilities up to and including step ``t``; the
    episodes keep their time axis, so this evaluates the padded ``[T, H, E]`` layout.

    Args:
        policy: The policy.
        params: Its parameters, each with a leading task axis ``[T, ...]``.
        episodes: The tasks' episodes in the padded ``[T, H, E]`` layout.
        advantages: Advantages ``[T, H, E]`` of the episodes' steps.
    """
    obs = episodes.task_major(episodes.observations)
    mask = episodes.task_major(episodes.mask)
    log_probs = policy.distribution(obs, params).log_prob(episodes.task_major(episodes.actions)) * mask
    causal = torch.cumsum(log_probs, dim=1)
    weights = (magic_box(causal) - magic_box(causal - log_probs)) * mask
    weighted = weights * episodes.task_major(advantages)
    return -weighted.sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)


def inner_loss(
    policy: Policy, params: Params, episodes: Episodes, advantages: Tensor, estimator: str = "reinforce"
) -> Tensor:
    """The inner loss per task ``[T]`` by ``estimator`` (``reinforce``, ``lvc``, ``dice``; module docstring).

    Args:
        policy: the policy.
        params: per-task parameters.
        episodes: the episodes the inner step learns from.
        advantages: their advantages ``[H, T, E]``.
        estimator: one of :data:`metarl.config.ESTIMATORS`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"inner_loss: estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if estimator == "dice":
        return dice_loss(policy, params, episodes, advantages)
    return transitions_loss(policy, params, Transitions.of(episodes, advantages), estimator)


def inner_step(
    policy: Policy,
    params: Params,
    episodes: Episodes,
    advantages: Tensor,
    lr: float,
    create_graph: bool,
    estimator: str = "reinforce",
) -> Params:
    """One gradient step for every task: ``params - lr * ∇ inner_loss``.

    With ``create_graph`` the result is differentiable through the gradient
    (second-order MAML) — with the curvature of ``estimator`` —; without it the gradient
    is a constant (first order), the same for every estimator.

    Args:
        policy: The policy.
        params: The parameters to adapt, each with a leading task axis ``[T, ...]``.
        episodes: Each task's episodes sampled with ``params``.
        advantages: Advantages ``[T, H, E]`` of the episodes' steps.
        lr: The inner step size.
        create_graph: Keep the step differentiable (second order) rather than a constant gradient (first order).
        estimator: The inner loss: ``reinforce``, ``lvc`` or ``dice``.
    """
    if estimator == "dice":
        return _step(params, dice_loss(policy, params, episodes, advantages).sum(), lr, create_graph)
    return transitions_inner_step(policy, params, Transitions.of(episodes, advantages), lr, create_graph, estimator)


def transitions_inner_step(
    policy: Policy, params: Params, steps: Transitions, lr: float, create_graph: bool, estimator: str = "reinforce"
) -> Params:
    """:func:`inner_step` on packed ``steps`` (``reinforce`` or ``lvc``).

    Args:
        policy: The policy.
        params: The parameters to adapt, each with a leading task axis ``[T, ...]``.
        steps: The tasks' packed valid transitions with their advantages.
        lr: The inner step size.
        create_graph: Keep the step differentiable (second order).
        estimator: ``reinforce`` or ``lvc``.
    """
    return _step(params, transitions_loss(policy, params, steps, estimator).sum(), lr, create_graph)


def _step(params: Params, loss: Tensor, lr: float, create_graph: bool) -> Params:
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
    return {n: params[n] - lr * g for n, g in zip(names, grads, strict=True)}


def adapt(
    policy: Policy,
    params: Params,
    batch: AdaptationBatch,
    lrs: Sequence[float],
    create_graph: bool,
    estimator: str = "reinforce",
) -> Params:
    """Apply the batch's K inner steps to ``params`` (recomputed as a function of them), by ``estimator``.

    Args:
        policy: The policy.
        params: The parameters before adaptation, each with a leading task axis ``[T, ...]``.
        batch: The sampled adaptation: each step's episodes and advantages.
        lrs: The step size of each inner step.
        create_graph: Keep the steps differentiable (second order).
        estimator: The inner loss: ``reinforce``, ``lvc`` or ``dice``.
    """
    for k in range(batch.num_inner_steps):
        params = inner_step(policy, params, batch.episodes[k], batch.advantages[k], lrs[k], create_graph, estimator)
    return params


def detached(params: Params) -> Params:
    """A copy of ``params`` cut from the graph, ready to be differentiated again."""
    return {n: p.detach().requires_grad_(True) for n, p in params.items()}


class AdaptationStep(Protocol):
    """How :func:`sample_adaptation` takes an inner step: ``θ' = θ − lr ∇L`` on ``steps`` for every task.

    Returns the stepped parameters (detached) and the step's
    :class:`~agents.mlp_products.InnerLossHessian` if it made one for the meta-update to
    reuse (else ``None``).
    """

    def __call__(
        self, policy: Policy, params: Params, steps: Transitions, lr: float
    ) -> tuple[Params, InnerLossHessian | None]:
        """One inner step from ``params`` on ``steps`` with learning rate ``lr``.

        Returns the adapted parameters and, if kept, the step's inner-loop Hessian.
        """


def autograd_step(policy: Policy, params: Params, steps: Transitions, lr: float) -> tuple[Params, None]:
    """The reference :class:`AdaptationStep`: the gradient by autograd, in the parameters' dtype.

    Args:
        policy: The policy.
        params: The parameters to adapt, each with a leading task axis ``[T, ...]``.
        steps: The tasks' packed valid transitions with their advantages.
        lr: The inner step size.
    """
    with torch.enable_grad():
        stepped = transitions_inner_step(policy, detached(params), steps, lr, create_graph=False)
    return {n: p.detach() for n, p in stepped.items()}, None


def sample_adaptation(
    policy: Policy,
    sampler: Sampler,
    rng: np.random.Generator,
    lrs: Sequence[float],
    advantage: AdvantageSettings,
    params: Params | None = None,
    step: AdaptationStep = autograd_step,
) -> AdaptationBatch:
    """Sample episodes, adapt, and sample again, ``len(lrs)`` times, for all tasks at once.

    Each step's episodes are fresh rollouts of the current parameters; the final
    entry holds the episodes of the fully adapted policy. ``step`` takes each inner
    step (the meta-update's learner passes its own, so that the adaptation sampled is
    the one it differentiates).

    Args:
        policy: The policy.
        sampler: The sampler of every task's episodes at once.
        rng: Seeds of the rollouts.
        lrs: The step size of each inner step (their number is the number of steps).
        advantage: How the episodes' advantages are computed.
        params: The parameters to start from (the policy's own if ``None``).
        step: How each inner step is taken.
    """
    current = detached(params if params is not None else policy.task_params(sampler.num_tasks))
    episodes, advantages, used, hessians = [], [], [], []
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
            stepped, hessian = step(policy, used[-1], Transitions.of(eps, adv), lrs[k])
            current = detached(stepped)
            if hessian is not None:
                hessians.append(hessian)
    return AdaptationBatch(episodes=episodes, advantages=advantages, params=used, hessians=hessians)


def adaptation_metrics(batch: AdaptationBatch, groups: Sequence[str] = ()) -> dict[str, float]:
    """Mean return per episode before adaptation and after each inner step; episodes per task; success rates.

    ``success_before`` and ``success_after`` (the mean over tasks of the fraction of episodes that
    succeeded) appear only for an env that reports ``info["success"]``. With ``groups`` (each
    task's group, :func:`metarl.tasks.protocol.task_groups`), ``return_before@<group>`` and
    ``return_after@<group>`` give the same means over each group's tasks when there are two or
    more groups: a training curve then shows a meta-policy that adapts to one direction only.

    Args:
        batch: The episodes before and after each inner step.
        groups: Each task's group, in the batch's task order; or none.
    """
    returns = [e.mean_return() for e in batch.episodes]
    metrics = {"return_before": returns[0], "return_after": returns[-1]}
    names = sorted(set(groups))
    for name in names if len(names) > 1 else []:  # one group (ML1's one environment) says nothing new
        rows = torch.tensor([g == name for g in groups])
        for key, episodes in (("return_before", batch.episodes[0]), ("return_after", batch.episodes[-1])):
            clean = episodes.present & ~episodes.nonfinite
            clean[~rows] = False
            metrics[f"{key}{GROUP_MARK}{name}"] = (
                float(episodes.returns()[clean].mean()) if bool(clean.any()) else math.nan
            )
    if len(returns) > 2:
        metrics.update({f"return_after_step{k}": r for k, r in enumerate(returns[1:], start=1)})
    metrics["nonfinite_episodes"] = float(sum(int(e.nonfinite.sum()) for e in batch.episodes))
    for name, episodes in (("episodes_before", batch.episodes[0]), ("episodes_after", batch.episodes[-1])):
        metrics[name] = float(episodes.present.sum()) / episodes.num_tasks  # per task; more with a step budget
    for name, episodes in (("success_before", batch.episodes[0]), ("success_after", batch.episodes[-1])):
        rates = episodes.success_rates()  # an env that reports info["success"] (Meta-World)
        if rates is not None:
            metrics[name] = float(rates.mean())
    return metrics
