"""The meta-update's two paths behind one interface: each owns its meta-gradient and its Fisher-vector product.

* :class:`ExactMetaUpdate`, the reference: autograd through the recomputed inner loop in
  fp32; the Fisher-vector product ``Jᵀ M J`` by two backward passes through a graph built
  once per meta-update (no third-order derivatives).
* :class:`FastMetaUpdate`: the meta-gradient ``Σ_tasks (I − α H_1) ⋯ (I − α H_K) ∇_θ' L``
  with the MLP's derivatives written out (:mod:`agents.mlp_products`), and products estimated
  from a random share of each task's steps, optionally in bf16. ``dice`` keeps autograd's
  derivatives. Conjugate gradient tolerates inexact products; the line search still judges
  every step by the exact fp32 surrogate and KL.

:func:`meta_update_path` picks the path of a :class:`~agents.meta_update_settings.MetaUpdateSettings`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from agents.inner_losses import Transitions
from agents.maml import AdaptationBatch, inner_step, transitions_inner_step
from agents.meta_update_settings import MetaUpdateSettings
from agents.mlp_products import SUPPORTED_ESTIMATORS, InnerLossHessian, OutputJacobian, fisher_vector_product
from agents.policies import Params, Policy
from agents.surrogate import PostAdaptationObjective, kl_weights, widened

Product = Callable[[Tensor], Tensor]


class MetaGradient(NamedTuple):
    """The surrogate at θ, its gradient in θ through the inner loop, and what the products may reuse.

    Args:
        loss: the surrogate loss at θ.
        gradient: its flat gradient in θ (fp32).
        adapted: autograd's adapted parameters with their graph (exact path), else ``None``.
        hessians: the inner steps' :class:`~agents.mlp_products.InnerLossHessian`, when the fast
            products use the same ones, else empty.
    """

    loss: float
    gradient: Tensor
    adapted: Params | None
    hessians: list[InnerLossHessian]


class MetaUpdatePath(Protocol):
    """What the orchestrator (:class:`agents.maml_trpo.MAMLTRPO`) needs of a path."""

    def meta_gradient(self, objective: PostAdaptationObjective) -> MetaGradient:
        """The surrogate at θ and its gradient through the inner loop."""

    def fisher_product(
        self,
        objective: PostAdaptationObjective,
        adapted: Params | None,
        rng: np.random.Generator | None,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Product:
        """``v ↦ F v + damping v`` for the KL of the post-adaptation policy as a function of θ.

        Args:
            objective: The post-adaptation objective (its episodes and the inner loop's batch).
            adapted: The adapted parameters with their graph through the inner loop, or ``None``.
            rng: Draws the subsampled steps where the path subsamples.
            hessians: The inner loop's Hessians, where the path uses them.
        """


def _flat(grads: Sequence[Tensor]) -> Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


class ExactMetaUpdate:
    """The fp32 reference: autograd through the inner loop for the gradient and the Fisher-vector products.

    Args:
        policy: the policy (θ its parameters).
        settings: the meta-update's settings.
    """

    def __init__(self, policy: Policy, settings: MetaUpdateSettings) -> None:
        self.policy = policy
        self.settings = settings

    def meta_gradient(self, objective: PostAdaptationObjective) -> MetaGradient:
        """Autograd through the recomputed inner loop in fp32; the graph is kept for the products."""
        adapted = objective.adapted(create_graph=True)
        loss, _ = objective.loss_and_kl(adapted)
        exact = torch.autograd.grad(loss, list(self.policy.parameters()), retain_graph=True)
        return MetaGradient(loss.item(), _flat(exact).detach(), adapted, [])

    def fisher_product(
        self,
        objective: PostAdaptationObjective,
        adapted: Params | None,
        rng: np.random.Generator | None = None,
        hessians: Sequence[InnerLossHessian] = (),
        *,
        low_precision: bool = False,
    ) -> Product:
        """``Jᵀ M J v + damping v`` at θ_old, exactly the Hessian of the KL there.

        ``J`` is the Jacobian of the distribution parameters (through the inner loop, the
        graph of ``adapted``, made here if ``None``) and ``M`` the KL's Hessian in those
        parameters (:meth:`Policy.fisher_metric`); ``J v`` and ``Jᵀ u`` are two backward passes.
        ``low_precision`` runs them under bf16 autocast (the fast path's ``dice`` products).

        Args:
            objective: The post-adaptation objective (its episodes and the inner loop's batch).
            adapted: The adapted parameters with their graph through the inner loop (made here if ``None``).
            rng: Unused: the exact products take every step.
            hessians: Unused by the exact path.
            low_precision: Run the backward passes under bf16 autocast.
        """
        params = list(self.policy.parameters())
        obs, mask = objective.obs, objective.mask
        if adapted is None:
            adapted = objective.adapted(create_graph=True)
        weights = kl_weights(mask)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
            outputs = self.policy.fisher_outputs(obs, adapted)
            fixed = tuple(widened(o.detach()) for o in outputs)
            probes = tuple(torch.zeros_like(o, requires_grad=True) for o in outputs)
            transposed = torch.autograd.grad(outputs, params, grad_outputs=probes, create_graph=True)
        flat_transposed = _flat(transposed)  # Jᵀ·probe, linear in the probe
        damping = self.settings.cg_damping

        def product(vector: Tensor) -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                jv = torch.autograd.grad(flat_transposed, probes, grad_outputs=vector, retain_graph=True)
                metric = self.policy.fisher_metric(fixed, tuple(widened(t) for t in jv))
                metric = tuple((weights * m).to(o.dtype) for m, o in zip(metric, outputs, strict=True))
                fv = torch.autograd.grad(outputs, params, grad_outputs=metric, retain_graph=True)
            return _flat(fv) + damping * vector

        return product


class FastMetaUpdate:
    """The fast path: written-out derivatives, subsampled and optionally bf16 Fisher-vector products.

    Args:
        policy: the policy (θ its parameters).
        settings: the meta-update's settings (``fvp_transition_fraction``, ``fvp_inner_fraction``,
            ``fisher_precision``, ``adaptation_precision``).
    """

    def __init__(self, policy: Policy, settings: MetaUpdateSettings) -> None:
        self.policy = policy
        self.settings = settings
        self.exact = ExactMetaUpdate(policy, settings)

    def products_dtype(self) -> torch.dtype:
        """The dtype of the products' MLP work: bf16 with ``fisher_precision: bf16``, else the policy's."""
        return torch.bfloat16 if self.settings.fisher_precision == "bf16" else next(self.policy.parameters()).dtype

    def meta_gradient(self, objective: PostAdaptationObjective) -> MetaGradient:
        """``Σ_tasks (I − α H_1) ⋯ (I − α H_K) ∇_θ' L``: ``∇_θ' L`` in fp32 at the sampled adapted parameters,
        each ``H_k`` (on all of that inner step's steps) in ``fisher_precision``.

        The sampler's bf16 inner steps may have kept the ``H_k`` (:meth:`AdaptationBatch.take_hessians`);
        they are used if they fit. They are returned for the products when those use all inner
        steps too, else freed here. ``dice`` takes the exact path's gradient.
        """
        s = self.settings
        if s.inner_estimator not in SUPPORTED_ESTIMATORS:
            return self.exact.meta_gradient(objective)
        batch = objective.batch
        loss, sampled = objective.sampled_loss()
        grads = dict(zip(sampled, torch.autograd.grad(loss, list(sampled.values())), strict=True))
        dtype = self.products_dtype()
        hessians = batch.take_hessians()
        if (
            len(hessians) != batch.num_inner_steps
            or s.first_order
            or any(h.estimator != s.inner_estimator or h.trunk.dtype != dtype for h in hessians)
        ):
            hessians = [
                InnerLossHessian(
                    self.policy,
                    batch.params[k],
                    Transitions.of(batch.episodes[k], batch.advantages[k]),
                    s.inner_estimator,
                    dtype,
                )
                for k in range(0 if s.first_order else batch.num_inner_steps)
            ]
        for hessian in reversed(hessians):
            curvature = hessian(grads)
            grads = {n: g - s.fast_lr * curvature[n] for n, g in grads.items()}
        gradient = torch.cat([grads[n].sum(0).reshape(-1) for n, _ in self.policy.named_parameters()])
        return MetaGradient(loss.item(), gradient, None, hessians if s.products_use_every_inner_step else [])

    def fisher_product(
        self,
        objective: PostAdaptationObjective,
        adapted: Params | None,
        rng: np.random.Generator | None,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Product:
        """The products on a random ``fvp_transition_fraction`` share of each task's post-adaptation steps, the inner
        loop's Hessian on ``fvp_inner_fraction`` of its steps, in ``fisher_precision``; at the reference
        settings, the exact path's.

        Args:
            objective: The post-adaptation objective (its episodes and the inner loop's batch).
            adapted: The adapted parameters with their graph, used at the reference settings.
            rng: Draws the subsampled steps.
            hessians: The inner loop's Hessians of the sampled adaptation.
        """
        s = self.settings
        if s.exact_fisher:
            return self.exact.fisher_product(objective, adapted, rng)
        obs, mask = objective.obs, objective.mask
        rng = rng if rng is not None else np.random.default_rng()
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if s.fvp_transition_fraction < 1.0:
            post = Transitions(objective.obs, objective.actions, objective.advantages, objective.mask)
            post = post.subsample(s.fvp_transition_fraction, generator)
            obs, mask = post.observations, post.mask
        if s.inner_estimator in SUPPORTED_ESTIMATORS:
            return self.written_out_product(objective.batch, obs, kl_weights(mask), generator, hessians)
        low_precision = s.fisher_precision == "bf16"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
            adapted = self.fisher_adaptation(objective.batch, generator)
        subsampled = _SubsampledObjective(objective, obs, mask)
        return self.exact.fisher_product(subsampled, adapted, low_precision=low_precision)  # type: ignore[arg-type]

    def written_out_product(
        self,
        batch: AdaptationBatch,
        obs: Tensor,
        weights: Tensor,
        generator: torch.Generator,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Product:
        """The products with the MLP's derivatives written out (:mod:`agents.mlp_products`).

        The same approximation as :meth:`fisher_adaptation` under autograd — the inner loop's
        Hessian on a random ``fvp_inner_fraction`` share of each inner step's steps (drawn
        from ``generator`` in the same order), at the parameters each step started from — on
        the post-adaptation observations ``obs`` with KL ``weights``; ``hessians`` on all inner
        steps are reused at ``fvp_inner_fraction`` 1.

        Args:
            batch: the episodes and parameters of every inner step.
            obs: the post-adaptation observations the products are estimated on.
            weights: each of their steps' weight in the KL.
            generator: draws the inner steps' subsample.
            hessians: inner-loop Hessians already built on all inner steps (reused when they fit).
        """
        s = self.settings
        dtype = self.products_dtype()
        inner = list(hessians) if s.products_use_every_inner_step else []
        for k in range(len(inner), 0 if s.first_order else batch.num_inner_steps):
            steps = Transitions.of(batch.episodes[k], batch.advantages[k])
            if s.fvp_inner_fraction < 1.0:
                steps = steps.subsample(s.fvp_inner_fraction, generator)
            inner.append(InnerLossHessian(self.policy, batch.params[k], steps, s.inner_estimator, dtype))
        outputs = OutputJacobian(self.policy, batch.params[-1], obs, dtype)
        return fisher_vector_product(self.policy, inner, outputs, weights, s.fast_lr, s.cg_damping)

    def fisher_adaptation(self, batch: AdaptationBatch, generator: torch.Generator) -> Params:
        """The adapted parameters for the fast Fisher under autograd: exact values, derivatives from subsampled
        inner steps.

        Each inner step's gradient is taken on a random ``fvp_inner_fraction`` share of that
        step's steps (all of them at 1.0); its value is replaced by the parameters the
        episodes were sampled with (``batch.params``), so the Jacobian is that of the
        subsampled inner loop, taken at the true adapted parameters.

        Args:
            batch: the episodes and parameters of every inner step.
            generator: draws the inner steps' subsample.
        """
        s = self.settings
        params = self.policy.task_params(batch.episodes[-1].num_tasks)
        for k in range(batch.num_inner_steps):
            if s.inner_estimator == "dice":  # its causal sums need whole episodes: no subsample
                stepped = inner_step(
                    self.policy, params, batch.episodes[k], batch.advantages[k], s.fast_lr, not s.first_order, "dice"
                )
            else:
                steps = Transitions.of(batch.episodes[k], batch.advantages[k])
                if s.fvp_inner_fraction < 1.0:
                    steps = steps.subsample(s.fvp_inner_fraction, generator)
                stepped = transitions_inner_step(
                    self.policy, params, steps, s.fast_lr, not s.first_order, s.inner_estimator
                )
            value = batch.params[k + 1]
            params = {n: value[n].to(p.dtype) + (p - p.detach()) for n, p in stepped.items()}
        return params


class _SubsampledObjective:
    """An objective's post-adaptation observations and mask replaced by a subsample (for the products only)."""

    def __init__(self, objective: PostAdaptationObjective, obs: Tensor, mask: Tensor) -> None:
        self.obs, self.mask = obs, mask
        self._objective = objective

    def adapted(self, create_graph: bool) -> Params:
        return self._objective.adapted(create_graph)


def meta_update_path(policy: Policy, settings: MetaUpdateSettings) -> ExactMetaUpdate | FastMetaUpdate:
    """The exact reference where ``settings`` are it (fp32 products on every step, fp32 adaptation), else the
    fast path (whose ``dice`` gradient and reference-settings products are the exact path's).
    """
    if settings.exact_fisher and settings.adaptation_precision == "fp32":
        return ExactMetaUpdate(policy, settings)
    return FastMetaUpdate(policy, settings)


__all__ = ["ExactMetaUpdate", "FastMetaUpdate", "MetaGradient", "MetaUpdatePath", "Product", "meta_update_path"]
