"""The episodes batch: every (task, episode) pair of one sampling phase."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class Episodes:
    """Episodes of ``T`` tasks × ``E`` episodes each, padded to ``H`` steps.

    Time-major tensors are shaped ``[H, T, E, ...]``; ``mask`` is 1 on the steps an
    episode actually took (always a prefix of the ``H`` steps) and 0 after its end,
    where every other tensor holds zeros. An episode ends by termination
    (``terminated``), by truncation at the horizon (``truncated``), or because the
    sub-environment produced non-finite values (``nonfinite``; the offending step is
    dropped), and ``final_observations`` holds the observation after its last step.
    ``successes`` (``None`` unless the env reports ``info["success"]``,
    :data:`metarl.tasks.protocol.SUCCESS_INFO_KEY`) is 1 on the steps where it did.
    """

    observations: Tensor  # [H, T, E, obs_dim] float32
    actions: Tensor  # [H, T, E, *action_shape]
    rewards: Tensor  # [H, T, E] float32
    mask: Tensor  # [H, T, E] float32
    lengths: Tensor  # [T, E] int64
    terminated: Tensor  # [T, E] bool
    truncated: Tensor  # [T, E] bool
    nonfinite: Tensor  # [T, E] bool
    final_observations: Tensor  # [T, E, obs_dim] float32
    successes: Tensor | None = None  # [H, T, E] float32, or None

    def __post_init__(self) -> None:
        h, t, e = self.mask.shape
        for name in ("observations", "actions", "rewards") + (("successes",) if self.successes is not None else ()):
            if getattr(self, name).shape[:3] != (h, t, e):
                shape = tuple(getattr(self, name).shape)
                raise ValueError(f"Episodes.{name} has shape {shape}, expected ({h}, {t}, {e}, ...)")
        for name in ("lengths", "terminated", "truncated", "nonfinite"):
            if getattr(self, name).shape != (t, e):
                raise ValueError(f"Episodes.{name} has shape {tuple(getattr(self, name).shape)}, expected ({t}, {e})")

    @property
    def horizon(self) -> int:
        """``H``, the padded number of time steps."""
        return self.mask.shape[0]

    @property
    def num_tasks(self) -> int:
        """``T``, the number of tasks."""
        return self.mask.shape[1]

    @property
    def episodes_per_task(self) -> int:
        """``E``, the number of episodes per task."""
        return self.mask.shape[2]

    @property
    def num_steps(self) -> int:
        """Environment steps these episodes took."""
        return int(self.lengths.sum())

    @property
    def present(self) -> Tensor:
        """``[T, E]`` bool: the slot holds an episode (a step-budget batch pads tasks with empty slots)."""
        return (self.lengths > 0) | self.nonfinite

    def returns(self) -> Tensor:
        """Undiscounted return of every episode, ``[T, E]`` (0 in an empty slot)."""
        return (self.rewards * self.mask).sum(0)

    def mean_returns(self) -> Tensor:
        """Mean undiscounted return per episode of each task, ``[T]`` float64 (empty slots left out)."""
        present = self.present.double()
        return (self.returns().double() * present).sum(1) / present.sum(1).clamp(min=1.0)

    def mean_return(self) -> float:
        """Mean undiscounted return per episode over all tasks' episodes.

        Empty slots are left out, and so are episodes cut short by non-finite values (counted
        in :attr:`nonfinite`): a batch of bad episodes cannot look better than a clean one.
        NaN when no episode is clean.
        """
        clean = self.present & ~self.nonfinite
        return float(self.returns()[clean].mean()) if bool(clean.any()) else math.nan

    def succeeded(self) -> Tensor | None:
        """``[T, E]`` bool: the episode succeeded at some step (Meta-World's protocol); ``None`` without."""
        if self.successes is None:
            return None
        return (self.successes * self.mask).amax(0) > 0 if self.horizon else self.present & False

    def success_rates(self) -> Tensor | None:
        """Fraction of each task's episodes that succeeded, ``[T]`` float64 (empty slots left out); ``None`` without."""
        succeeded = self.succeeded()
        if succeeded is None:
            return None
        present = self.present.double()
        return (succeeded.double() * present).sum(1) / present.sum(1).clamp(min=1.0)

    def task_major(self, tensor: Tensor) -> Tensor:
        """A time-major ``[H, T, ...]`` tensor as task-major ``[T, H, ...]`` (for the policy)."""
        return tensor.transpose(0, 1)

    @cached_property
    def valid_step_index(self) -> Tensor:
        """``[T, N]``: where each task's valid steps lie among its ``H·E`` task-major steps.

        ``N`` is the most valid steps any task has; a task with fewer is filled up with
        indices of its padding steps (mask 0). Without any padding this is ``0..H·E-1``.
        """
        mask = self.task_major(self.mask).reshape(self.num_tasks, -1)
        count = int(mask.sum(1).max()) if mask.numel() else 0
        if count == mask.shape[1]:
            return torch.arange(count).expand(self.num_tasks, count)
        # a stable sort puts each task's valid steps first, in their original order
        return torch.sort(mask, dim=1, descending=True, stable=True).indices[:, :count]

    def packed(self, tensor: Tensor) -> Tensor:
        """A time-major ``[H, T, E, ...]`` tensor as task-major ``[T, N, 1, ...]`` of valid steps only.

        The losses of the inner and outer loop are means over each task's valid steps, so
        they need no time structure; leaving out the padding (episodes that ended early,
        the empty slots of a step-budget batch) spares the policy evaluating it. Positions
        past a task's own count hold padding steps, where :attr:`mask` packs to 0.
        """
        index = self.valid_step_index
        flat = self.task_major(tensor).reshape(self.num_tasks, -1, *tensor.shape[3:])
        if index.shape[1] == flat.shape[1]:  # every step kept (the index is 0..H·E-1): nothing to move
            return flat.unsqueeze(2)
        gather = index.view(*index.shape, *(1,) * (flat.dim() - 2)).expand(*index.shape, *flat.shape[2:])
        return torch.gather(flat, 1, gather).unsqueeze(2)

    def select_tasks(self, index: Tensor) -> Episodes:
        """The episodes of the tasks in ``index`` only."""
        return Episodes(
            observations=self.observations[:, index],
            actions=self.actions[:, index],
            rewards=self.rewards[:, index],
            mask=self.mask[:, index],
            lengths=self.lengths[index],
            terminated=self.terminated[index],
            truncated=self.truncated[index],
            nonfinite=self.nonfinite[index],
            final_observations=self.final_observations[index],
            successes=None if self.successes is None else self.successes[:, index],
        )


def time_index(horizon: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[0, 1, ..., H-1]`` as a column ``[H, 1, 1]`` for broadcasting against ``[H, T, E]``."""
    return torch.arange(horizon, dtype=dtype).view(horizon, 1, 1)
