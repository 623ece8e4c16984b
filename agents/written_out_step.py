"""The inner step with the MLP's passes written out (bf16 on the fast path), keeping its Hessian for the meta-update.

The reference inner step takes the inner loss's gradient by autograd in fp32
(:func:`agents.maml.autograd_step`). This one takes it from the forward and reverse passes of
:mod:`agents.mlp_products` in ``dtype`` — the passes the fast meta-gradient's inner-loop
Hessian is built from anyway — so the sampler's inner step can hand that Hessian to the
meta-update instead of the meta-update building it again, and the line search's inner steps
run at the bf16 speed. The gradient is then ``dtype``'s (bf16: within about 1 % of fp32 per
parameter, git show 7e49a18:BENCHMARKS.md); the sampler, the line search and the evaluation take the same
step, so the adaptation they see is one function of θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.inner_losses import Transitions
from agents.mlp_products import InnerLossHessian, inner_loss_gradient
from agents.policies import Params, Policy


@dataclass(frozen=True)
class WrittenOutStep:
    """An :class:`~agents.maml.AdaptationStep` whose gradient comes from the written-out MLP passes in ``dtype``.

    Args:
        estimator: the inner loss whose Hessian is kept (one of
            :data:`~agents.mlp_products.SUPPORTED_ESTIMATORS`; the gradient is the same for each).
        dtype: the dtype of the MLP's passes.
        keep_hessian: build the step's :class:`~agents.mlp_products.InnerLossHessian` (on all
            its steps) and return it; else take the gradient alone (:func:`inner_loss_gradient`).
            The numbers are the same either way.
    """

    estimator: str
    dtype: torch.dtype
    keep_hessian: bool = False

    def __call__(
        self, policy: Policy, params: Params, steps: Transitions, lr: float
    ) -> tuple[Params, InnerLossHessian | None]:
        """``θ' = θ − lr ∇L`` on ``steps`` for every task, and the Hessian if kept (``None`` else)."""
        with torch.no_grad():
            params = {n: p.detach() for n, p in params.items()}
            hessian = InnerLossHessian(policy, params, steps, self.estimator, self.dtype) if self.keep_hessian else None
            grads = (
                hessian.gradient() if hessian is not None else inner_loss_gradient(policy, params, steps, self.dtype)
            )
            return {n: p - lr * grads[n] for n, p in params.items()}, hessian
