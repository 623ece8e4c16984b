"""Each policy head's written-out derivatives, kept with the head, and the generic ones for any other head.

A policy's distribution head — the few numbers per step after its MLP — needs two things in
the fast meta-update (:mod:`agents.mlp_products`): the inner loss's gradient and Hessian in
the MLP's output and the head's parameters (a *loss head*), and the distribution parameters'
Jacobian in them (an *output head*). The Gaussian and categorical heads are written out here;
any other policy class (a subclass included) takes the generic ones, made by ``torch.func``.
A new head is registered once, with :func:`register_head_derivatives`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp

from agents.inner_losses import Transitions, log_prob_loss
from agents.mlp_trunk import Trunk
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Params, Policy


class GenericLossHead:
    """The inner loss's first and second derivatives in the MLP's output and the head's parameters, by torch.func.

    Any policy head and estimator of :func:`agents.inner_losses.log_prob_loss`; each product
    differentiates the head anew (``jvp`` of ``grad``).
    """

    def __init__(self, policy: Policy, head: Params, steps: Transitions, estimator: str, trunk: Trunk) -> None:
        def head_grad(output: Tensor, head: Params) -> tuple[Tensor, Params]:
            def loss(output: Tensor, head: Params) -> Tensor:
                dist = policy.output_distribution(policy.head_outputs(trunk.rows(output), head))
                return log_prob_loss(dist.log_prob(steps.actions), steps, estimator).sum()

            return grad(loss, argnums=(0, 1))(output, head)

        output = trunk.output.to(trunk.wide)
        self.output_grad, self.head_grads = head_grad(output, head)
        self._hessian = lambda d_out, d_head: jvp(head_grad, (output, head), (d_out, d_head))[1]

    def hessian(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, Params]:
        """The tangents of the loss's gradient in the output and in the head's parameters."""
        return self._hessian(d_output, d_head)


def _step_weights(steps: Transitions, rows: int) -> Tensor:
    """``A · mask / count`` per step ``[T, rows, 1]``: the loss is −Σ of it times each step's (estimated) log π."""
    mask = steps.mask
    weights = steps.advantages * mask / mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    return weights.reshape(mask.shape[0], rows, 1)


class GaussianLossHead:
    """:class:`GenericLossHead` for a diagonal Gaussian (:class:`~agents.policies.GaussianMLPPolicy`), written out.

    With ``r = a − μ``, ``P = exp(−2 log σ)`` and ``c`` the step's weight, the loss is
    ``−c log π`` with ``∇_μ log π = r P``, ``∇_{log σ} log π = r² P − 1``,
    ``∇²_μ = −P``, ``∇_μ∇_{log σ} = −2 r P``, ``∇²_{log σ} = −2 r² P`` (all diagonal); ``lvc``
    adds ``−c ∇log π ∇log πᵀ``.
    """

    def __init__(
        self, policy: GaussianMLPPolicy, head: Params, steps: Transitions, estimator: str, trunk: Trunk
    ) -> None:
        output = trunk.output.to(trunk.wide)
        num_tasks, rows, width = output.shape
        raw = head["log_std"]
        self.active = (raw >= policy.min_log_std).to(raw.dtype).unsqueeze(1)  # where the clamp passes derivatives
        precision = torch.exp(-2.0 * raw.clamp(min=policy.min_log_std)).unsqueeze(1)
        c = _step_weights(steps, rows).to(trunk.wide)
        self.score_mean = (steps.actions.reshape(num_tasks, rows, width).to(trunk.wide) - output) * precision
        self.score_log_std = self.score_mean * (steps.actions.reshape(num_tasks, rows, width) - output) - 1.0
        self.output_grad = -c * self.score_mean
        self.c_precision = c * precision
        self.c_mixed = 2.0 * c * self.score_mean
        self.c_log_std = 2.0 * c * (self.score_log_std + 1.0)
        self.c = c if estimator == "lvc" else None
        self.head_grads: Params = {"log_std": -(c * self.score_log_std).sum(1) * self.active.squeeze(1)}

    def hessian(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, Params]:
        """The tangents of the loss's gradient in the mean and in the log-std."""
        d_log_std = d_head["log_std"].unsqueeze(1) * self.active
        d_mean_grad = self.c_precision * d_output + self.c_mixed * d_log_std
        d_log_std_grad = (self.c_mixed * d_output + self.c_log_std * d_log_std).sum(1, keepdim=True)
        if self.c is not None:  # lvc: −c ∇log π (∇log π · d)
            d_log_prob = (self.score_mean * d_output + self.score_log_std * d_log_std).sum(-1, keepdim=True)
            weight = -self.c * d_log_prob
            d_mean_grad = d_mean_grad + weight * self.score_mean
            d_log_std_grad = d_log_std_grad + (weight * self.score_log_std).sum(1, keepdim=True)
        return d_mean_grad, {"log_std": (d_log_std_grad * self.active).squeeze(1)}


class CategoricalLossHead:
    """:class:`GenericLossHead` for a softmax over logits (:class:`~agents.policies.CategoricalMLPPolicy`), written out.

    ``∇ log π = onehot(a) − p`` and ``∇² log π = −(diag p − p pᵀ)``; ``lvc`` adds ``−c ∇log π ∇log πᵀ``.
    """

    def __init__(
        self, policy: CategoricalMLPPolicy, head: Params, steps: Transitions, estimator: str, trunk: Trunk
    ) -> None:
        logits = trunk.output.to(trunk.wide)
        num_tasks, rows, width = logits.shape
        self.probs = torch.softmax(logits, dim=-1)
        actions = steps.actions.reshape(num_tasks, rows, 1).long()
        self.score = torch.zeros_like(logits).scatter_(-1, actions, 1.0) - self.probs
        self.c = _step_weights(steps, rows).to(trunk.wide)
        self.output_grad = -self.c * self.score
        self.head_grads: Params = {}
        self.lvc = estimator == "lvc"

    def hessian(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, Params]:
        """The tangent of the loss's gradient in the logits (the head has no parameters)."""
        weighted = self.probs * d_output
        d_grad = self.c * (weighted - self.probs * weighted.sum(-1, keepdim=True))
        if self.lvc:
            d_grad = d_grad - self.c * (self.score * d_output).sum(-1, keepdim=True) * self.score
        return d_grad, {}


class GenericOutputs:
    """The distribution parameters from the MLP's output and the head's parameters; their jvp and vjp by torch.func."""

    def __init__(self, policy: Policy, head: Params, trunk: Trunk) -> None:
        def outputs_of(output: Tensor, head: Params) -> tuple[Tensor, ...]:
            return policy.head_outputs(trunk.rows(output), head)

        output = trunk.output.to(trunk.wide)
        pulled = vjp(outputs_of, output, head)
        self.outputs: tuple[Tensor, ...] = pulled[0]
        self._vjp = pulled[1]
        self._jvp = lambda d_out, d_head: jvp(outputs_of, (output, head), (d_out, d_head))[1]

    def tangent(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, ...]:
        """The outputs' tangents for the MLP output's ``[T, rows, k]`` and the head's tangents."""
        return tuple(self._jvp(d_output, d_head))

    def adjoint(self, output_grads: tuple[Tensor, ...]) -> tuple[Tensor, Params]:
        """The gradient of ``Σ u · outputs`` in the MLP's output ``[T, rows, k]`` and in the head's parameters."""
        return self._vjp(output_grads)


class GaussianOutputs:
    """:class:`GenericOutputs` for a diagonal Gaussian, written out: the mean is the MLP's output, the log-std
    clamped.
    """

    def __init__(self, policy: GaussianMLPPolicy, head: Params, trunk: Trunk) -> None:
        raw = head["log_std"]
        self.active = (raw >= policy.min_log_std).to(raw.dtype)  # where the clamp passes derivatives
        self.trunk = trunk
        self.outputs = policy.head_outputs(trunk.rows(trunk.output.to(trunk.wide)), head)

    def tangent(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, ...]:
        """The outputs' tangents ``(mean, log_std)`` for the MLP output's tangent and the head's."""
        mean = self.trunk.rows(d_output)
        d_log_std = d_head["log_std"] * self.active
        shape = (d_log_std.shape[0],) + (1,) * (mean.dim() - 2) + (d_log_std.shape[-1],)
        return mean, d_log_std.reshape(shape).expand_as(mean)

    def adjoint(self, output_grads: tuple[Tensor, ...]) -> tuple[Tensor, Params]:
        """The gradient of ``Σ u · outputs`` in the MLP's output and in the log-std."""
        mean_grad, log_std_grad = output_grads
        num_tasks = mean_grad.shape[0]
        d_log_std = log_std_grad.reshape(num_tasks, -1, log_std_grad.shape[-1]).sum(1) * self.active
        return mean_grad.reshape(num_tasks, -1, mean_grad.shape[-1]), {"log_std": d_log_std}


class CategoricalOutputs:
    """:class:`GenericOutputs` for a softmax policy, written out: the logits are the MLP's output."""

    def __init__(self, policy: CategoricalMLPPolicy, head: Params, trunk: Trunk) -> None:
        self.trunk = trunk
        self.outputs = policy.head_outputs(trunk.rows(trunk.output.to(trunk.wide)), head)

    def tangent(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, ...]:
        """The logits' tangent: the MLP output's own."""
        return (self.trunk.rows(d_output),)

    def adjoint(self, output_grads: tuple[Tensor, ...]) -> tuple[Tensor, Params]:
        """The gradient of ``Σ u · logits`` in the MLP's output (the head has no parameters)."""
        (logits_grad,) = output_grads
        return logits_grad.reshape(logits_grad.shape[0], -1, logits_grad.shape[-1]), {}


@dataclass(frozen=True)
class HeadDerivatives:
    """A policy head's written-out loss head and output head (classes taking the arguments of the generic ones)."""

    loss: type
    outputs: type


WRITTEN_OUT_HEADS: dict[type, HeadDerivatives] = {
    GaussianMLPPolicy: HeadDerivatives(GaussianLossHead, GaussianOutputs),
    CategoricalMLPPolicy: HeadDerivatives(CategoricalLossHead, CategoricalOutputs),
}
"""The policy classes with written-out heads (exactly these classes: a subclass takes the generic ones)."""


def register_head_derivatives(policy_class: type, loss: type, outputs: type) -> None:
    """Use ``loss`` and ``outputs`` as the written-out heads of ``policy_class``.

    Args:
        policy_class: the policy class (exactly: its subclasses take the generic heads).
        loss: built as ``loss(policy, head_params, transitions, estimator, trunk)``; has ``output_grad``,
            ``head_grads`` and ``hessian(d_output, d_head)``.
        outputs: built as ``outputs(policy, head_params, trunk)``; has ``outputs``, ``tangent`` and ``adjoint``.
    """
    WRITTEN_OUT_HEADS[policy_class] = HeadDerivatives(loss, outputs)


def loss_head(policy: Policy, head: Params, steps: Transitions, estimator: str, trunk: Trunk) -> Any:
    """The inner loss's derivatives in the MLP's output and the head: written out if registered, else generic.

    Args:
        policy: The policy.
        head: The output layer's parameters.
        steps: The tasks' packed valid transitions with their advantages.
        estimator: ``reinforce`` or ``lvc``.
        trunk: The hidden layers' forward pass on the steps' observations.
    """
    written = WRITTEN_OUT_HEADS.get(type(policy))
    return (written.loss if written else GenericLossHead)(policy, head, steps, estimator, trunk)


def output_head(policy: Policy, head: Params, trunk: Trunk) -> Any:
    """The distribution parameters' derivatives in the MLP's output and the head: written out if registered.

    Args:
        policy: The policy.
        head: The output layer's parameters.
        trunk: The hidden layers' forward pass on the observations.
    """
    written = WRITTEN_OUT_HEADS.get(type(policy))
    return (written.outputs if written else GenericOutputs)(policy, head, trunk)


__all__ = [
    "CategoricalLossHead",
    "CategoricalOutputs",
    "GaussianLossHead",
    "GaussianOutputs",
    "GenericLossHead",
    "GenericOutputs",
    "HeadDerivatives",
    "WRITTEN_OUT_HEADS",
    "loss_head",
    "output_head",
    "register_head_derivatives",
]
