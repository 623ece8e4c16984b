"""The fast meta-update's Fisher-vector products, with the MLP's derivatives written out.

The product is ``F v = Jᵀ W M J v`` with ``J = J_o (I − α H_K) ⋯ (I − α H_1)``: ``J_o`` the
Jacobian of the distribution parameters on the post-adaptation steps
(:meth:`~agents.policies.Policy.fisher_outputs`) at the adapted parameters, ``H_k`` the
Hessian of the k-th inner loss at the parameters that inner step started from (each
symmetric, so ``Jᵀ`` applies the same factors in reverse order), ``M`` the KL's Hessian
in the distribution parameters and ``W`` the steps' weights in the KL.

Autograd makes ``J v`` and ``Jᵀ u`` as double-backward passes through a graph of the inner
loop, op by op. Here the MLP's part of each is written out: ``H v`` in forward mode over
the inner loss's backward pass (Pearlmutter, "Fast exact multiplication by the Hessian",
Neural Computation 1994), ``J_o v`` in forward mode and ``J_oᵀ u`` in reverse mode, with the
activations and the inner loss's backward pass computed once per meta-update and kept (in
bf16 when asked, so that every big matmul runs in bf16). The distribution head — the few
numbers per step after the MLP — goes through ``torch.func``, so every policy head and the
``reinforce`` and ``lvc`` inner losses are covered; ``dice`` couples the steps of an episode
and stays with autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from agents.inner_losses import Transitions
from agents.mlp_trunk import Trunk, transposed
from agents.policies import Params, Policy
from agents.policy_heads import loss_head, output_head

SUPPORTED_ESTIMATORS = ("reinforce", "lvc")
"""Inner losses whose Hessian-vector products this module makes."""


def _head_names(policy: Policy, params: Params) -> list[str]:
    trunk = {f"{kind}{i}" for i in range(policy.num_layers) for kind in "wb"}
    return [n for n in params if n not in trunk]


class InnerLossHessian:
    """``t ↦ H t`` per task: the Hessian of one inner step's loss at ``params``, times a tangent.

    The MLP's activations on the inner step's steps and the loss's backward pass are
    computed here, once; each product is one forward-mode pass over them.

    Args:
        policy: the policy.
        params: per-task parameters the inner step starts from.
        steps: the steps that inner step learns from (packed, maybe subsampled).
        estimator: the inner loss, one of :data:`SUPPORTED_ESTIMATORS`.
        dtype: the dtype of the MLP's part (bf16 for bf16 products).
    """

    def __init__(self, policy: Policy, params: Params, steps: Transitions, estimator: str, dtype: torch.dtype) -> None:
        if estimator not in SUPPORTED_ESTIMATORS:
            raise ValueError(f"InnerLossHessian: estimator must be one of {SUPPORTED_ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        self.trunk = trunk = Trunk(policy, params, steps.observations, dtype)
        self.head_names = _head_names(policy, params)
        self.head = loss_head(
            policy, {n: params[n].to(trunk.wide).contiguous() for n in self.head_names}, steps, estimator, trunk
        )
        # the loss's backward pass through the MLP: the gradient at each layer's output, and
        # for tanh the nonlinearity's curvature term −2 h ⊙ ∂L/∂h
        self.output_grads: list[Tensor] = [self.head.output_grad.to(dtype)] * trunk.num_layers
        self.curvatures: list[Tensor | None] = [None] * (trunk.num_layers - 1)
        g = self.output_grads[-1]
        for i in reversed(range(1, trunk.num_layers)):
            hidden_grad = torch.bmm(g, transposed(trunk.weights[i]))
            if trunk.tanh:
                self.curvatures[i - 1] = -2.0 * trunk.inputs[i] * hidden_grad
            g = hidden_grad * trunk.slopes[i - 1]
            self.output_grads[i - 1] = g
        self.output_grads_t = [transposed(g).contiguous() for g in self.output_grads]

    def gradient(self) -> Params:
        """The inner loss's gradient per task at ``params``, from the backward pass kept here, in the parameters' dtype.

        The same arithmetic as :func:`inner_loss_gradient` (its MLP part in this Hessian's dtype).
        """
        trunk = self.trunk
        grads: Params = {}
        for i in range(trunk.num_layers):
            weight, bias = trunk.parameter_grads(i, self.output_grads[i])
            grads[f"w{i}"], grads[f"b{i}"] = weight.to(trunk.wide), bias.to(trunk.wide)
        return {**grads, **self.head.head_grads}

    def __call__(self, tangent: Params) -> Params:
        """``H t`` per task, in the parameters' dtype, for a per-task ``tangent`` of every parameter."""
        trunk = self.trunk
        inputs, d_output = trunk.tangent(tangent)
        d_output_grad, d_head = self.head.hessian(
            d_output.to(trunk.wide), {n: tangent[n].to(trunk.wide).contiguous() for n in self.head_names}
        )
        product: Params = {n: d_head[n] for n in self.head_names}
        dg = d_output_grad.to(trunk.dtype)
        for i in reversed(range(trunk.num_layers)):
            g, dx = self.output_grads[i], inputs[i]
            d_weight, d_bias = trunk.parameter_grads(i, dg)
            if dx is not None:  # + dxᵀ g, as (gᵀ dx)ᵀ: both operands contiguous
                d_weight = d_weight + transposed(torch.bmm(self.output_grads_t[i], dx))
            product[f"w{i}"], product[f"b{i}"] = d_weight.to(trunk.wide), d_bias.to(trunk.wide)
            if i > 0:
                d_hidden = torch.bmm(dg, transposed(trunk.weights[i]))
                d_hidden.baddbmm_(g, transposed(tangent[f"w{i}"].to(trunk.dtype)))
                dg = d_hidden * trunk.slopes[i - 1]
                curvature, d_input = self.curvatures[i - 1], inputs[i]
                if curvature is not None:
                    assert d_input is not None
                    dg = torch.addcmul(dg, curvature, d_input)
        return product


def inner_loss_gradient(policy: Policy, params: Params, steps: Transitions, dtype: torch.dtype) -> Params:
    """The inner loss's gradient per task at ``params`` on ``steps``, the MLP's passes written out in ``dtype``.

    One forward and one reverse pass (:class:`Trunk`), the head in the parameters' dtype:
    the arithmetic of :meth:`InnerLossHessian.gradient` without keeping what its products need.

    Args:
        policy: the policy.
        params: per-task parameters.
        steps: the steps the inner step learns from (packed).
        dtype: the dtype of the MLP's part.
    """
    trunk = Trunk(policy, params, steps.observations, dtype)
    names = _head_names(policy, params)
    head = loss_head(policy, {n: params[n].to(trunk.wide).contiguous() for n in names}, steps, "reinforce", trunk)
    grads = {n: g.to(trunk.wide) for n, g in trunk.adjoint(head.output_grad).items()}
    return {**grads, **head.head_grads}


class OutputJacobian:
    """``J_o`` and ``J_oᵀ`` per task: the Jacobian of the distribution parameters on ``obs`` at ``params``.

    Args:
        policy: the policy.
        params: per-task (adapted) parameters.
        obs: the post-adaptation steps' observations ``[T, ..., obs_dim]``.
        dtype: the dtype of the MLP's part.
    """

    def __init__(self, policy: Policy, params: Params, obs: Tensor, dtype: torch.dtype) -> None:
        self.trunk = trunk = Trunk(policy, params, obs, dtype)
        self.head_names = _head_names(policy, params)
        self.head = output_head(policy, {n: params[n].to(trunk.wide).contiguous() for n in self.head_names}, trunk)
        self.outputs = self.head.outputs

    def __call__(self, tangent: Params) -> tuple[Tensor, ...]:
        """``J_o t``: the tangent of every output (in the parameters' dtype) for a per-task ``tangent``."""
        trunk = self.trunk
        _, d_output = trunk.tangent(tangent)
        d_head = {n: tangent[n].to(trunk.wide).contiguous() for n in self.head_names}
        return self.head.tangent(d_output.to(trunk.wide), d_head)

    def adjoint(self, output_grads: Sequence[Tensor]) -> Params:
        """``J_oᵀ u``: the gradient of ``Σ u · outputs`` in the per-task parameters (their dtype)."""
        trunk = self.trunk
        output_grad, head_grad = self.head.adjoint(tuple(u.to(trunk.wide) for u in output_grads))
        grads = {n: g.to(trunk.wide) for n, g in trunk.adjoint(output_grad.reshape(trunk.output.shape)).items()}
        return {**grads, **head_grad}


def fisher_vector_product(
    policy: Policy,
    inner: Sequence[InnerLossHessian],
    outputs: OutputJacobian,
    weights: Tensor,
    lr: float,
    damping: float,
) -> Callable[[Tensor], Tensor]:
    """``v ↦ Jᵀ W M J v + damping · v`` for θ flattened in ``policy.named_parameters()`` order.

    Args:
        policy: the policy (its :meth:`~agents.policies.Policy.fisher_metric` is ``M``).
        inner: each inner step's Hessian, in the order the steps were taken (empty: first order).
        outputs: the Jacobian of the distribution parameters on the post-adaptation steps.
        weights: each step's weight in the KL, ``[T, ..., 1]`` like the outputs' rows.
        lr: the inner learning rate α.
        damping: added times ``v``.
    """
    shapes = {n: p.shape for n, p in policy.named_parameters()}
    sizes = [p.numel() for p in policy.parameters()]
    num_tasks = weights.shape[0]
    fixed = tuple(o.detach() for o in outputs.outputs)

    def through_inner_loop(tangent: Params, steps: Sequence[InnerLossHessian]) -> Params:
        for hessian in steps:
            curvature = hessian(tangent)
            tangent = {n: t - lr * curvature[n] for n, t in tangent.items()}
        return tangent

    def product(vector: Tensor) -> Tensor:
        pieces = torch.split(vector, sizes)
        tangent = {
            n: piece.view(shape).expand(num_tasks, *shape)
            for (n, shape), piece in zip(shapes.items(), pieces, strict=True)
        }
        tangent = through_inner_loop(tangent, inner)
        metric = policy.fisher_metric(fixed, outputs(tangent))
        adjoint = through_inner_loop(outputs.adjoint(tuple(weights * m for m in metric)), list(reversed(inner)))
        return torch.cat([adjoint[n].sum(0).reshape(-1) for n in shapes]) + damping * vector

    return product
