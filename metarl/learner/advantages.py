"""Discounted returns and generalised advantage estimation (GAE) on padded episodes.

GAE as in Schulman, Moritz, Levine, Jordan and Abbeel, "High-Dimensional Continuous
Control Using Generalized Advantage Estimation", ICLR 2016 (https://arxiv.org/abs/1506.02438).

Both are discounted sums over the future of one episode, ``x_t = Σ_{t'≥t} c^{t'-t} y_{t'}``.
Because an episode's valid steps are a prefix of the ``H`` padded steps and padding
holds zeros, that sum is one ``[H, H]`` upper-triangular matmul for all tasks and
episodes at once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discount_matrix(horizon: int, discount: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """``M[t, t'] = discount^(t'-t)`` for ``t' ≥ t``, else 0.

    Args:
        horizon: The matrix's size.
        discount: The discount factor.
        dtype: The matrix's dtype.
    """
    t = torch.arange(horizon, dtype=torch.float64)
    power = t.view(1, -1) - t.view(-1, 1)
    matrix = torch.where(power >= 0, discount ** power.clamp(min=0), torch.zeros(()))
    return matrix.to(dtype)


def discounted_cumsum(values: Tensor, discount: float) -> Tensor:
    """``Σ_{t'≥t} discount^(t'-t) values[t']`` along dim 0 of ``values [H, ...]``."""
    horizon = values.shape[0]
    matrix = discount_matrix(horizon, discount, values.dtype)
    return (matrix @ values.reshape(horizon, -1)).reshape(values.shape)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Discounted return-to-go of every step, ``[H, T, E]``, zero after an episode's end.

    Args:
        rewards: Rewards ``[H, T, E]``.
        mask: Which steps are valid ``[H, T, E]``.
        gamma: The discount factor.
    """
    return discounted_cumsum(rewards * mask, gamma) * mask


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    last_values: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalised advantage estimates ``[H, T, E]``.

    ``values[t]`` is V(s_t) on valid steps. ``last_values [T, E]`` is the value of the
    state after an episode's last step: 0 when the episode terminated, and V(s_final)
    when it was truncated and should be bootstrapped (0 for a finite-horizon objective).

    Args:
        rewards: Rewards ``[H, T, E]``.
        values: The baseline's values ``[H, T, E]``.
        mask: Which steps are valid ``[H, T, E]``.
        last_values: The values ``[T, E]`` after each episode's last step.
        gamma: The discount factor.
        lam: GAE's λ.
    """
    values = values * mask
    next_mask = torch.cat([mask[1:], torch.zeros_like(mask[:1])])
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * next_mask
    is_last = mask - next_mask  # 1 exactly on each episode's last valid step
    next_values = next_values + is_last * last_values.unsqueeze(0)
    deltas = (rewards + gamma * next_values - values) * mask
    return discounted_cumsum(deltas, gamma * lam) * mask


def normalize_per_task(advantages: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages of each task shifted and scaled to mean 0 and std 1 over its valid steps.

    Args:
        advantages: Advantages ``[H, T, E]``.
        mask: Which steps are valid ``[H, T, E]``.
        eps: Added to the standard deviation.
    """
    count = mask.sum(dim=(0, 2), keepdim=True).clamp(min=1.0)
    mean = (advantages * mask).sum(dim=(0, 2), keepdim=True) / count
    var = (((advantages - mean) * mask) ** 2).sum(dim=(0, 2), keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + eps) * mask
