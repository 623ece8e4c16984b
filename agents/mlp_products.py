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
from torch.func import grad, jvp, vjp

from agents.inner_losses import Transitions, log_prob_loss
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Params, Policy

SUPPORTED_ESTIMATORS = ("reinforce", "lvc")
"""Inner losses whose Hessian-vector products this module makes."""


def _transposed(x: Tensor) -> Tensor:
    return x.transpose(1, 2)


class Trunk:
    """An MLP's forward pass on rows ``obs [T, ..., in]`` with per-task ``params``, kept for tangent and adjoint passes.

    Args:
        policy: the policy whose MLP this is.
        params: per-task parameters (the MLP's ``w{i}``, ``b{i}`` with a leading task dimension).
        obs: the rows, ``[T, ..., in]``.
        dtype: the dtype the activations are kept and multiplied in.
    """

    def __init__(self, policy: Policy, params: Params, obs: Tensor, dtype: torch.dtype) -> None:
        self.num_layers = policy.num_layers
        self.tanh = policy.nonlinearity == "tanh"
        self.dtype = dtype
        self.wide = params["w0"].dtype  # the parameters' own dtype, of the head and of every result
        self.row_shape = obs.shape[:-1]
        x = obs.reshape(obs.shape[0], -1, obs.shape[-1]).to(dtype)
        self.weights = [params[f"w{i}"].to(dtype) for i in range(self.num_layers)]
        self.inputs = [x]  # the input of each layer
        self.slopes: list[Tensor] = []  # the nonlinearity's derivative after each hidden layer
        for i, weight in enumerate(self.weights):
            z = torch.baddbmm(params[f"b{i}"].to(dtype).unsqueeze(1), x, weight)
            if i == self.num_layers - 1:
                self.output = z
            elif self.tanh:
                wide = torch.tanh(z.to(self.wide))  # 1 − h² in bf16 would cancel to a few bits near |h| = 1
                x = wide.to(dtype)
                if x is not wide:  # wide is ours alone: 1 − h² in place, no temporaries
                    wide.square_().neg_().add_(1.0)
                    self.slopes.append(wide.to(dtype))
                else:
                    self.slopes.append(1.0 - wide * wide)
                self.inputs.append(x)
            else:
                x = torch.relu(z)
                self.slopes.append((z > 0).to(dtype))
                self.inputs.append(x)
        # each layer's input transposed, with a row of ones: one contiguous matmul gives the
        # weight's and the bias's gradient (a transposed view multiplies at half the speed)
        ones = torch.ones(x.shape[0], 1, x.shape[1], dtype=dtype)
        self.inputs_t = [torch.cat([_transposed(x), ones], dim=1) for x in self.inputs]

    def parameter_grads(self, layer: int, output_grad: Tensor) -> tuple[Tensor, Tensor]:
        """The gradients of ``Σ output_grad · z`` in layer ``layer``'s weight and bias (``z`` its output)."""
        both = torch.bmm(self.inputs_t[layer], output_grad)
        return both[:, :-1], both[:, -1]

    def rows(self, output: Tensor) -> Tensor:
        """``output`` ``[T, rows, k]`` in the rows' own shape ``[T, ..., k]``."""
        return output.reshape(*self.row_shape, output.shape[-1])

    def tangent(self, tangent: Params) -> tuple[list[Tensor | None], Tensor]:
        """Forward mode: the tangents of every layer's input (``None`` for the observations) and of the output."""
        inputs: list[Tensor | None] = [None]
        dx: Tensor | None = None
        for i, weight in enumerate(self.weights):
            dz = torch.baddbmm(
                tangent[f"b{i}"].to(self.dtype).unsqueeze(1), self.inputs[i], tangent[f"w{i}"].to(self.dtype)
            )
            if dx is not None:
                dz.baddbmm_(dx, weight)
            if i == self.num_layers - 1:
                return inputs, dz
            dx = dz * self.slopes[i]  # out of place: in-place bf16 multiplies run at half the speed here
            inputs.append(dx)
        raise AssertionError("an MLP has at least one layer")

    def adjoint(self, output_grad: Tensor) -> Params:
        """Reverse mode: the gradient of ``Σ output_grad · output`` in the MLP's parameters."""
        grads: Params = {}
        g = output_grad.to(self.dtype)
        for i in reversed(range(self.num_layers)):
            grads[f"w{i}"], grads[f"b{i}"] = self.parameter_grads(i, g)
            if i > 0:
                g = torch.bmm(g, _transposed(self.weights[i])) * self.slopes[i - 1]
        return grads


def _head_names(policy: Policy, params: Params) -> list[str]:
    trunk = {f"{kind}{i}" for i in range(policy.num_layers) for kind in "wb"}
    return [n for n in params if n not in trunk]


class _AnyHead:
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


class _GaussianHead:
    """:class:`_AnyHead` for a diagonal Gaussian (:class:`~agents.policies.GaussianMLPPolicy`), written out.

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


class _CategoricalHead:
    """:class:`_AnyHead` for a softmax over logits (:class:`~agents.policies.CategoricalMLPPolicy`), written out.

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


def _head(policy: Policy, head: Params, steps: Transitions, estimator: str, trunk: Trunk) -> _AnyHead:
    """The written-out head of the policies that have one, :class:`_AnyHead` for any other."""
    if type(policy) is GaussianMLPPolicy:
        return _GaussianHead(policy, head, steps, estimator, trunk)  # type: ignore[return-value]
    if type(policy) is CategoricalMLPPolicy:
        return _CategoricalHead(policy, head, steps, estimator, trunk)  # type: ignore[return-value]
    return _AnyHead(policy, head, steps, estimator, trunk)


class _AnyOutputs:
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


class _GaussianOutputs:
    """:class:`_AnyOutputs` for a diagonal Gaussian, written out: the mean is the MLP's output, the log-std clamped."""

    def __init__(self, policy: GaussianMLPPolicy, head: Params, trunk: Trunk) -> None:
        raw = head["log_std"]
        self.active = (raw >= policy.min_log_std).to(raw.dtype)  # where the clamp passes derivatives
        self.trunk = trunk
        self.outputs = policy.head_outputs(trunk.rows(trunk.output.to(trunk.wide)), head)

    def tangent(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, ...]:
        mean = self.trunk.rows(d_output)
        d_log_std = d_head["log_std"] * self.active
        shape = (d_log_std.shape[0],) + (1,) * (mean.dim() - 2) + (d_log_std.shape[-1],)
        return mean, d_log_std.reshape(shape).expand_as(mean)

    def adjoint(self, output_grads: tuple[Tensor, ...]) -> tuple[Tensor, Params]:
        mean_grad, log_std_grad = output_grads
        num_tasks = mean_grad.shape[0]
        d_log_std = log_std_grad.reshape(num_tasks, -1, log_std_grad.shape[-1]).sum(1) * self.active
        return mean_grad.reshape(num_tasks, -1, mean_grad.shape[-1]), {"log_std": d_log_std}


class _CategoricalOutputs:
    """:class:`_AnyOutputs` for a softmax policy, written out: the logits are the MLP's output."""

    def __init__(self, policy: CategoricalMLPPolicy, head: Params, trunk: Trunk) -> None:
        self.trunk = trunk
        self.outputs = policy.head_outputs(trunk.rows(trunk.output.to(trunk.wide)), head)

    def tangent(self, d_output: Tensor, d_head: Params) -> tuple[Tensor, ...]:
        return (self.trunk.rows(d_output),)

    def adjoint(self, output_grads: tuple[Tensor, ...]) -> tuple[Tensor, Params]:
        (logits_grad,) = output_grads
        return logits_grad.reshape(logits_grad.shape[0], -1, logits_grad.shape[-1]), {}


def _outputs(policy: Policy, head: Params, trunk: Trunk) -> _AnyOutputs:
    """The written-out output head of the policies that have one, :class:`_AnyOutputs` for any other."""
    if type(policy) is GaussianMLPPolicy:
        return _GaussianOutputs(policy, head, trunk)  # type: ignore[return-value]
    if type(policy) is CategoricalMLPPolicy:
        return _CategoricalOutputs(policy, head, trunk)  # type: ignore[return-value]
    return _AnyOutputs(policy, head, trunk)


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
        self.head = _head(
            policy, {n: params[n].to(trunk.wide).contiguous() for n in self.head_names}, steps, estimator, trunk
        )
        # the loss's backward pass through the MLP: the gradient at each layer's output, and
        # for tanh the nonlinearity's curvature term −2 h ⊙ ∂L/∂h
        self.output_grads: list[Tensor] = [self.head.output_grad.to(dtype)] * trunk.num_layers
        self.curvatures: list[Tensor | None] = [None] * (trunk.num_layers - 1)
        g = self.output_grads[-1]
        for i in reversed(range(1, trunk.num_layers)):
            hidden_grad = torch.bmm(g, _transposed(trunk.weights[i]))
            if trunk.tanh:
                self.curvatures[i - 1] = -2.0 * trunk.inputs[i] * hidden_grad
            g = hidden_grad * trunk.slopes[i - 1]
            self.output_grads[i - 1] = g
        self.output_grads_t = [_transposed(g).contiguous() for g in self.output_grads]

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
                d_weight = d_weight + _transposed(torch.bmm(self.output_grads_t[i], dx))
            product[f"w{i}"], product[f"b{i}"] = d_weight.to(trunk.wide), d_bias.to(trunk.wide)
            if i > 0:
                d_hidden = torch.bmm(dg, _transposed(trunk.weights[i]))
                d_hidden.baddbmm_(g, _transposed(tangent[f"w{i}"].to(trunk.dtype)))
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
    head = _head(policy, {n: params[n].to(trunk.wide).contiguous() for n in names}, steps, "reinforce", trunk)
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
        self.head = _outputs(policy, {n: params[n].to(trunk.wide).contiguous() for n in self.head_names}, trunk)
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
