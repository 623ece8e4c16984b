"""The inner loop's losses on packed steps: each task's valid steps, and the ``reinforce`` and ``lvc`` losses on them.

:mod:`agents.maml` builds the inner loop (and ``dice``, which needs whole episodes) on these;
:mod:`agents.mlp_products` writes out their derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.policies import Params, Policy
from metarl.sampling.episodes import Episodes


@dataclass(frozen=True)
class Transitions:
    """Each task's valid steps, task-major ``[T, N, 1, ...]`` (see :meth:`Episodes.packed`).

    ``mask`` is 1 on a task's own steps and 0 on the positions past its count.
    """

    observations: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor

    @classmethod
    def of(cls, episodes: Episodes, advantages: Tensor) -> Transitions:
        """The valid steps of ``episodes`` with their ``advantages`` ``[H, T, E]``."""
        return cls(
            observations=episodes.packed(episodes.observations),
            actions=episodes.packed(episodes.actions),
            advantages=episodes.packed(advantages),
            mask=episodes.packed(episodes.mask),
        )

    def subsample(self, fraction: float, generator: torch.Generator) -> Transitions:
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
        return Transitions(
            take(self.observations), take(self.actions), take(self.advantages), kept.view(*kept.shape, 1)
        )


def magic_box(x: Tensor) -> Tensor:
    """DiCE's 𝓜(x) = exp(x − ⊥x): 1 in value, its derivatives those of exp at x."""
    return torch.exp(x - x.detach())


def transitions_loss(policy: Policy, params: Params, steps: Transitions, estimator: str = "reinforce") -> Tensor:
    """Inner loss per task ``[T]`` on packed ``steps``: −mean of log π(a|s)·A (``reinforce``) or of
    π(a|s)/⊥π(a|s)·A (``lvc``); ``dice`` needs episodes (:func:`inner_loss`).

    Args:
        policy: The policy.
        params: Its parameters, each with a leading task axis ``[T, ...]``.
        steps: The tasks' packed valid transitions with their advantages.
        estimator: ``reinforce`` or ``lvc``.
    """
    return log_prob_loss(policy.distribution(steps.observations, params).log_prob(steps.actions), steps, estimator)


def log_prob_loss(log_probs: Tensor, steps: Transitions, estimator: str = "reinforce") -> Tensor:
    """:func:`transitions_loss` from the log-probabilities ``[T, N, 1]`` of the actions of ``steps``.

    Args:
        log_probs: Log-probabilities ``[T, N, 1]`` of the actions of ``steps``.
        steps: The tasks' packed valid transitions with their advantages.
        estimator: ``reinforce`` or ``lvc``.
    """
    if estimator == "lvc":
        log_probs = magic_box(log_probs)
    elif estimator != "reinforce":
        raise ValueError(f"transitions_loss: estimator must be reinforce or lvc, got {estimator!r}")
    weighted = log_probs * steps.advantages * steps.mask
    return -weighted.sum(dim=(1, 2)) / steps.mask.sum(dim=(1, 2)).clamp(min=1.0)
