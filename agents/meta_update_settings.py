"""The meta-update's settings: the inner loop as the outer loop sees it, the TRPO step, and the fast path's options.

:class:`MetaUpdateSettings` is read from a :class:`~metarl.config.TrainConfig`; ``meta_update:
exact`` keeps the Fisher-vector products at the fp32 reference on every step, ``fast`` takes the
config's subsampling and resolves its ``auto`` precisions for this CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from agents.maml import AdaptationStep, autograd_step
from agents.mlp_products import SUPPORTED_ESTIMATORS
from agents.written_out_step import WrittenOutStep
from metarl.config import TrainConfig
from metarl.learner.precision import choose_precision, cpu_description


@dataclass(frozen=True)
class MetaUpdateSettings:
    """Settings of the inner loop as seen by the outer loop, and of the TRPO step.

    Each field is the :class:`~metarl.config.TrainConfig` field of the same name, and takes
    its default, but for the fast path's: the Fisher-vector products' defaults here are the
    exact reference (fp32 on every step), and the adaptation's is fp32; :meth:`from_config`
    applies ``cfg.meta_update`` (``exact`` keeps all of them at the reference).
    """

    fast_lr: float = TrainConfig.fast_lr
    num_inner_steps: int = TrainConfig.num_inner_steps
    first_order: bool = TrainConfig.first_order
    max_kl: float = TrainConfig.max_kl
    cg_iters: int = TrainConfig.cg_iters
    cg_damping: float = TrainConfig.cg_damping
    ls_max_steps: int = TrainConfig.ls_max_steps
    ls_backtrack_ratio: float = TrainConfig.ls_backtrack_ratio
    fvp_task_fraction: float = TrainConfig.fvp_task_fraction
    inner_estimator: str = TrainConfig.inner_estimator
    fvp_transition_fraction: float = 1.0
    fvp_inner_fraction: float = 1.0
    fisher_precision: str = "fp32"
    precision_reason: str = field(default="", compare=False)
    """Why ``fisher_precision`` was chosen, for the run's log (empty: set directly)."""
    adaptation_precision: str = "fp32"
    adaptation_reason: str = field(default="", compare=False)
    """Why ``adaptation_precision`` was chosen, for the run's log (empty: set directly)."""

    def __post_init__(self) -> None:
        if self.adaptation_precision not in ("fp32", "bf16"):
            raise ValueError(f"adaptation_precision must be fp32 or bf16, got {self.adaptation_precision!r}")
        if self.adaptation_precision == "bf16" and self.inner_estimator not in SUPPORTED_ESTIMATORS:
            raise ValueError(
                f"adaptation_precision bf16 needs the inner loss reinforce or lvc, got {self.inner_estimator!r}"
            )

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> MetaUpdateSettings:
        """The meta-update of ``cfg``; ``meta_update: exact`` is the fp32 reference on every step.

        ``fast`` takes ``cfg``'s Fisher-vector subsampling and resolves its ``auto`` precision
        for this CPU (:func:`metarl.learner.precision.choose_precision`; :meth:`describe` says why).

        Args:
            cfg: the run's settings.
        """
        shared = {name: getattr(cfg, name) for name in _CONFIG_FIELDS}
        if cfg.meta_update == "exact":
            return cls(**shared)
        precision, reason = choose_precision(cfg.fisher_precision)
        adaptation, adaptation_reason = "fp32", ""
        if cfg.inner_estimator in SUPPORTED_ESTIMATORS:
            adaptation, adaptation_reason = choose_precision(cfg.adaptation_precision)
        return cls(
            **shared,
            fvp_transition_fraction=cfg.fvp_transition_fraction,
            fvp_inner_fraction=cfg.fvp_inner_fraction,
            fisher_precision=precision,
            precision_reason=reason,
            adaptation_precision=adaptation,
            adaptation_reason=adaptation_reason,
        )

    def describe(self) -> str:
        """The Fisher-vector products these settings make, in words (for the run's log)."""
        tasks = "every task" if self.fvp_task_fraction >= 1.0 else f"{self.fvp_task_fraction:.0%} of the tasks"
        if self.exact_fisher:
            return f"exact: fp32 Fisher-vector products on every step of {tasks}" + self._estimator_note()
        return (
            f"fast: Fisher-vector products on {self.fvp_transition_fraction:.0%} of the post-adaptation steps and "
            f"{self.fvp_inner_fraction:.0%} of the inner loop's steps of {tasks}, in {self.fisher_precision} "
            f"({self.precision_reason or 'CPU with ' + cpu_description()}); the inner step's gradient in "
            f"{self.adaptation_precision}"
            + (f" ({self.adaptation_reason})" if self.adaptation_reason else "")
            + self._estimator_note()
        )

    def _estimator_note(self) -> str:
        return (
            "" if self.inner_estimator == "reinforce" or self.first_order else (f"; inner loss {self.inner_estimator}")
        )

    @property
    def exact_fisher(self) -> bool:
        """Whether the Fisher-vector products are the reference: fp32 on every step of the chosen tasks."""
        return (
            self.fvp_transition_fraction >= 1.0 and self.fvp_inner_fraction >= 1.0 and self.fisher_precision == "fp32"
        )

    @property
    def products_use_every_inner_step(self) -> bool:
        """Whether the fast products' inner-loop Hessians are the meta-gradient's (so they can be reused)."""
        return self.fvp_inner_fraction >= 1.0

    def adaptation_step(self, keep_hessian: bool = False) -> AdaptationStep:
        """The inner step of ``adaptation_precision``: autograd's (fp32), or the bf16 written-out one.

        Args:
            keep_hessian: let the bf16 step keep its inner-loop Hessian for the meta-gradient
                (only where that is the meta-gradient's: bf16 products, second order).
        """
        if self.adaptation_precision == "fp32":
            return autograd_step
        keep = keep_hessian and self.fisher_precision == "bf16" and not self.first_order
        return WrittenOutStep(self.inner_estimator, torch.bfloat16, keep)


_FAST_PATH_FIELDS = (
    "fvp_transition_fraction",
    "fvp_inner_fraction",
    "fisher_precision",
    "precision_reason",
    "adaptation_precision",
    "adaptation_reason",
)
_CONFIG_FIELDS = tuple(f.name for f in fields(MetaUpdateSettings) if f.name not in _FAST_PATH_FIELDS)


__all__ = ["MetaUpdateSettings"]
