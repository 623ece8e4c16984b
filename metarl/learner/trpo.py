"""Trust-region pieces: conjugate gradient, the natural-gradient step, backtracking line search.

As in TRPO (Schulman, Levine, Moritz, Jordan and Abbeel, "Trust Region Policy
Optimization", ICML 2015, https://arxiv.org/abs/1502.05477, appendix C): the step
direction solves ``F x = g`` by conjugate gradient on Fisher-vector products, is scaled
to the KL bound, and is shrunk until the surrogate improves within it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def conjugate_gradient_with_product(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``; ``(x, A x)``.

    ``A x`` comes from the residual recurrence (``b - r``: the sum of the products already
    taken), so it costs no further ``matvec``.

    Args:
        matvec: ``v ↦ A v``.
        b: the right-hand side.
        iters: at most this many iterations, one ``matvec`` each.
        residual_tol: stop once ``rᵀr`` falls below this.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    r_dot = r.dot(r)
    for _ in range(iters):
        if float(r_dot) < residual_tol:
            break
        ap = matvec(p)
        alpha = r_dot / p.dot(ap)
        x = x + alpha * p
        r = r - alpha * ap
        new_r_dot = r.dot(r)
        p = r + (new_r_dot / r_dot) * p
        r_dot = new_r_dot
    return x, b - r


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``.

    Args:
        matvec: ``v ↦ A v``.
        b: the right-hand side.
        iters: at most this many iterations, one ``matvec`` each.
        residual_tol: stop once the squared residual norm falls below this.
    """
    return conjugate_gradient_with_product(matvec, b, iters, residual_tol)[0]


def natural_step(
    gradient: Tensor, fisher_vector_product: Callable[[Tensor], Tensor], max_kl: float, cg_iters: int
) -> Tensor:
    """The full step ``s = F⁻¹g · sqrt(2 max_kl / gᵀF⁻¹g)`` whose quadratic KL model equals ``max_kl``.

    ``cg_iters`` Fisher-vector products in all: the curvature ``xᵀF x`` of the solution ``x``
    uses the ``F x`` that conjugate gradient's residual already holds.

    Args:
        gradient: ``g``, the surrogate loss's gradient.
        fisher_vector_product: ``v ↦ F v`` (damped).
        max_kl: the trust region's KL bound.
        cg_iters: conjugate-gradient iterations.
    """
    direction, fisher_direction = conjugate_gradient_with_product(fisher_vector_product, gradient, cg_iters)
    shs = 0.5 * direction.dot(fisher_direction)
    if not bool(torch.isfinite(shs)) or float(shs) <= 0.0:
        return torch.full_like(direction, math.nan)
    return direction * torch.sqrt(max_kl / shs)


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of a backtracking line search."""

    accepted: bool
    step_fraction: float  # fraction of the full step taken (0 if none was accepted)
    num_steps: int  # candidates evaluated
    loss: float  # loss at the returned parameters
    kl: float  # KL at the returned parameters (0 if none was accepted)


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[float, float]],
    params: Tensor,
    full_step: Tensor,
    old_loss: float,
    max_kl: float,
    max_steps: int = 15,
    ratio: float = 0.8,
) -> tuple[Tensor, LineSearchResult]:
    """Try ``params - ratio^k full_step`` for ``k = 0, 1, ...``; accept the first candidate
    whose loss is lower than ``old_loss`` and whose KL is at most ``max_kl``.

    ``evaluate(candidate) -> (loss, kl)``. If no candidate qualifies, the original
    ``params`` are returned unchanged and ``accepted`` is false.

    Args:
        evaluate: The loss and KL of a candidate.
        params: The flat parameters before the step.
        full_step: The step at ``k = 0``.
        old_loss: The loss at ``params``.
        max_kl: The trust region's bound on the KL.
        max_steps: Candidates tried.
        ratio: The step's shrink factor per candidate.
    """
    fraction = 1.0
    for k in range(max_steps):
        candidate = params - fraction * full_step
        loss, kl = evaluate(candidate)
        if math.isfinite(loss) and math.isfinite(kl) and loss < old_loss and kl <= max_kl:
            return candidate, LineSearchResult(True, fraction, k + 1, loss, kl)
        fraction *= ratio
    return params, LineSearchResult(False, 0.0, max_steps, old_loss, 0.0)
