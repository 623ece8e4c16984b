"""MAML-TRPO: a trust-region meta-update of θ through the inner loop.

The algorithm of Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", ICML 2017 (https://arxiv.org/abs/1703.03400), section 3.2:
the inner loop adapts θ to each task by policy gradient; the outer loop is a TRPO step
(Schulman et al. 2015, https://arxiv.org/abs/1502.05477) on the post-adaptation episodes,
differentiated through the inner loop, with Fisher-vector products for the conjugate
gradient and a backtracking line search on the surrogate inside the KL bound.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from agents.maml import (
    AdaptationBatch,
    AdaptationStep,
    AdvantageSettings,
    Steps,
    adapt,
    autograd_step,
    inner_step,
    sample_adaptation,
    steps_inner_step,
)
from agents.mlp_products import SUPPORTED_ESTIMATORS, InnerLossHessian, OutputJacobian, fisher_vector_product
from agents.policies import Params, Policy
from agents.written_out_step import WrittenOutStep
from metarl.config import TrainConfig
from metarl.learner.precision import choose_precision, cpu_description
from metarl.learner.trpo import backtracking_line_search, natural_step
from metarl.sampling import Sampler
from metarl.tasks.protocol import Task

log = logging.getLogger("metarl")


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
    hvp_subsample: float = TrainConfig.hvp_subsample
    inner_estimator: str = TrainConfig.inner_estimator
    fvp_step_subsample: float = 1.0
    fvp_inner_subsample: float = 1.0
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
            raise ValueError(f"adaptation_precision bf16 needs the inner loss reinforce or lvc, got "
                             f"{self.inner_estimator!r}")

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
            fvp_step_subsample=cfg.fvp_step_subsample,
            fvp_inner_subsample=cfg.fvp_inner_subsample,
            fisher_precision=precision,
            precision_reason=reason,
            adaptation_precision=adaptation,
            adaptation_reason=adaptation_reason,
        )

    def describe(self) -> str:
        """The Fisher-vector products these settings make, in words (for the run's log)."""
        tasks = "every task" if self.hvp_subsample >= 1.0 else f"{self.hvp_subsample:.0%} of the tasks"
        if self.exact_fisher:
            return f"exact: fp32 Fisher-vector products on every step of {tasks}" + self._estimator_note()
        return (f"fast: Fisher-vector products on {self.fvp_step_subsample:.0%} of the post-adaptation steps and "
                f"{self.fvp_inner_subsample:.0%} of the inner loop's steps of {tasks}, in {self.fisher_precision} "
                f"({self.precision_reason or 'CPU with ' + cpu_description()}); the inner step's gradient in "
                f"{self.adaptation_precision}"
                + (f" ({self.adaptation_reason})" if self.adaptation_reason else "") + self._estimator_note())

    def _estimator_note(self) -> str:
        return "" if self.inner_estimator == "reinforce" or self.first_order else (
            f"; inner loss {self.inner_estimator}")

    @property
    def exact_fisher(self) -> bool:
        """Whether the Fisher-vector products are the reference: fp32 on every step of the chosen tasks."""
        return self.fvp_step_subsample >= 1.0 and self.fvp_inner_subsample >= 1.0 and self.fisher_precision == "fp32"

    @property
    def products_use_every_inner_step(self) -> bool:
        """Whether the fast products' inner-loop Hessians are the meta-gradient's (so they can be reused)."""
        return self.fvp_inner_subsample >= 1.0

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


_FAST_PATH_FIELDS = ("fvp_step_subsample", "fvp_inner_subsample", "fisher_precision", "precision_reason",
                  "adaptation_precision", "adaptation_reason")
_CONFIG_FIELDS = tuple(f.name for f in fields(MetaUpdateSettings) if f.name not in _FAST_PATH_FIELDS)


def _masked_task_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over each task's valid steps ``[T]`` of packed ``[T, N, 1]`` values."""
    return (values * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)


class _Objective:
    """Surrogate loss and KL of the post-adaptation episodes as functions of θ."""

    def __init__(self, policy: Policy, batch: AdaptationBatch, settings: MetaUpdateSettings) -> None:
        self.policy = policy
        self.batch = batch
        self.settings = settings
        valid = batch.episodes[-1]
        self.obs = valid.packed(valid.observations)
        self.actions = valid.packed(valid.actions)
        self.mask = valid.packed(valid.mask)
        self.advantages = valid.packed(batch.advantages[-1])
        self._old: tuple[Distribution, Tensor] | None = None
        self._inner_steps: list[Steps] | None = None

    @property
    def old_dist(self) -> Distribution:
        """The policy the post-adaptation episodes were sampled with (its distribution on their steps)."""
        return self._old_policy()[0]

    @property
    def old_log_probs(self) -> Tensor:
        """log π_old of the post-adaptation episodes' actions."""
        return self._old_policy()[1]

    def _old_policy(self) -> tuple[Distribution, Tensor]:
        if self._old is None:
            with torch.no_grad():
                dist = self.policy.distribution(self.obs, self.batch.params[-1])
                self._old = dist, dist.log_prob(self.actions)
        return self._old

    def sampled_loss(self) -> tuple[Tensor, Params]:
        """The surrogate at the sampled adapted parameters, and those parameters (leaves it is differentiable in).

        Its forward pass also gives the old policy's distribution (the same numbers as its
        own no-grad forward), so the post-adaptation steps are evaluated once.
        """
        sampled = {n: p.detach().contiguous().requires_grad_(True) for n, p in self.batch.params[-1].items()}
        outputs = self.policy.fisher_outputs(self.obs, sampled)
        log_probs = self.policy.output_distribution(outputs).log_prob(self.actions)
        if self._old is None:
            old = self.policy.output_distribution(tuple(o.detach() for o in outputs))
            self._old = old, log_probs.detach()
        ratio = torch.exp(log_probs - self.old_log_probs)
        return -_masked_task_mean(ratio * self.advantages, self.mask).mean(), sampled

    def adapted(self, create_graph: bool) -> Params:
        """The adapted parameters as a function of θ: through autograd's inner loop with ``create_graph``
        (second order), else by the settings' :meth:`~MetaUpdateSettings.adaptation_step`, the sampler's."""
        s, batch = self.settings, self.batch
        params = self.policy.task_params(batch.episodes[-1].num_tasks)
        if create_graph or s.adaptation_precision == "fp32":
            lrs = [s.fast_lr] * batch.num_inner_steps
            return adapt(self.policy, params, batch, lrs, create_graph and not s.first_order, s.inner_estimator)
        if self._inner_steps is None:  # packed once: the line search adapts at every candidate
            self._inner_steps = [Steps.of(batch.episodes[k], batch.advantages[k])
                                 for k in range(batch.num_inner_steps)]
        step = s.adaptation_step()
        for steps in self._inner_steps:
            params = step(self.policy, params, steps, s.fast_lr)[0]
        return params

    def loss_and_kl(self, params: Params) -> tuple[Tensor, Tensor]:
        dist = self.policy.distribution(self.obs, params)
        ratio = torch.exp(dist.log_prob(self.actions) - self.old_log_probs)
        loss = -_masked_task_mean(ratio * self.advantages, self.mask).mean()
        kl = _masked_task_mean(kl_divergence(self.old_dist, dist), self.mask).mean()
        return loss, kl


def _kl_weights(mask: Tensor) -> Tensor:
    """Each step's weight in the KL ``[T, N, 1, 1]``: a mean over tasks of each task's mean over its valid steps."""
    return (mask / mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0) / mask.shape[0]).unsqueeze(-1)


def _widened(tensor: Tensor) -> Tensor:
    """``tensor`` in fp32 if it is bf16 (an autocast output), else as it is."""
    return tensor.float() if tensor.dtype == torch.bfloat16 else tensor


def adaptation_metrics(batch: AdaptationBatch) -> dict[str, float]:
    """Mean return per episode before adaptation and after each inner step; episodes per task."""
    returns = [e.mean_return() for e in batch.episodes]
    metrics = {"return_before": returns[0], "return_after": returns[-1]}
    if len(returns) > 2:
        metrics.update({f"return_after_step{k}": r for k, r in enumerate(returns[1:], start=1)})
    metrics["nonfinite_episodes"] = float(sum(int(e.nonfinite.sum()) for e in batch.episodes))
    for name, episodes in (("episodes_before", batch.episodes[0]), ("episodes_after", batch.episodes[-1])):
        metrics[name] = float(episodes.present.sum()) / episodes.num_tasks  # per task; more with a step budget
    return metrics


class MAMLTRPO:
    """The outer loop: per meta-batch of tasks, sample and adapt, then one TRPO step on θ."""

    def __init__(
        self,
        policy: Policy,
        sampler: Sampler,
        settings: MetaUpdateSettings,
        advantage: AdvantageSettings,
    ):
        self.policy = policy
        self.sampler = sampler
        self.settings = settings
        self.advantage = advantage
        self._described = False

    @property
    def inner_lrs(self) -> Sequence[float]:
        """The inner learning rate of each adaptation step."""
        return [self.settings.fast_lr] * self.settings.num_inner_steps

    def sample(self, rng: np.random.Generator) -> AdaptationBatch:
        """Episodes of the sampler's tasks before and after each inner step, adapted by this learner's inner step."""
        step = self.settings.adaptation_step(keep_hessian=True)
        return sample_adaptation(self.policy, self.sampler, rng, self.inner_lrs, self.advantage, step=step)

    def train_iteration(self, tasks: Sequence[Task], rng: np.random.Generator) -> dict[str, float]:
        """One meta-iteration on ``tasks``: sampling, adaptation and the meta-update; its metrics."""
        start = time.perf_counter()
        self.sampler.set_tasks(tasks)
        batch = self.sample(rng)
        sampled = time.perf_counter()
        update = self.step(batch, rng)
        done = time.perf_counter()
        env_steps = sum(e.num_steps for e in batch.episodes)
        return {
            **adaptation_metrics(batch),
            **update,
            "env_steps": float(env_steps),
            "sample_seconds": sampled - start,
            "update_seconds": done - sampled,
            "env_steps_per_s": env_steps / max(sampled - start, 1e-9),
        }

    def close(self) -> None:
        """Release what the sampler holds beyond its env (the Ray backend's actors)."""
        self.sampler.close()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to restore the learner: θ."""
        return {"policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore θ from :meth:`state_dict` output."""
        self.policy.load_state_dict(state["policy"])

    def _params(self) -> list[torch.nn.Parameter]:
        return list(self.policy.parameters())

    def _fisher_vector_product(
        self,
        objective: _Objective,
        adapted: Params | None,
        rng: np.random.Generator | None,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Callable[[Tensor], Tensor]:
        """``v ↦ F v + damping v`` for the KL of the post-adaptation policy, as a function of θ.

        At θ_old the Hessian of the KL equals ``Jᵀ M J`` exactly, with ``J`` the Jacobian of
        the distribution parameters (through the inner loop) and ``M`` the KL's Hessian in
        those parameters (:meth:`Policy.fisher_metric`). ``J v`` and ``Jᵀ u`` are two
        backward passes through a graph built once per meta-update — no third-order
        derivatives. With ``hvp_subsample < 1`` only a random subset of the tasks (drawn
        from ``rng``) enters the products, as TRPO implementations commonly do.

        The fast path approximates ``F`` (conjugate gradient tolerates inexact products;
        the line search still judges every step by the exact fp32 surrogate and KL):
        ``adapted`` is autograd's adapted parameters (``None``: made here if needed) and
        ``hessians`` the inner steps' :class:`~agents.mlp_products.InnerLossHessian` on all
        their steps of all tasks, if already made (reused when the products use the same).

        ``fvp_step_subsample < 1`` estimates it from a random share of each task's
        post-adaptation steps, ``fvp_inner_subsample < 1`` the inner loop's Hessian inside
        it from a random share of the steps each inner step learnt from, and
        ``fisher_precision: bf16`` runs the products' MLP work in bf16. For the ``reinforce``
        and ``lvc`` inner losses the fast products are written out
        (:mod:`agents.mlp_products`, equal to autograd's in float64 to rounding); ``dice``
        keeps autograd's, under bf16 autocast for bf16.
        """
        s = self.settings
        num_tasks = objective.mask.shape[0]
        count = max(1, math.ceil(s.hvp_subsample * num_tasks))
        if count < num_tasks:
            rng = rng if rng is not None else np.random.default_rng()
            index = torch.from_numpy(np.sort(rng.permutation(num_tasks)[:count]))
            objective = _Objective(self.policy, objective.batch.select_tasks(index), s)
            adapted, hessians = None, ()
        params = self._params()
        obs, mask = objective.obs, objective.mask
        low_precision = s.fisher_precision == "bf16"
        if not s.exact_fisher:
            rng = rng if rng is not None else np.random.default_rng()
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            if s.fvp_step_subsample < 1.0:
                post = Steps(objective.obs, objective.actions, objective.advantages, objective.mask)
                post = post.subsample(s.fvp_step_subsample, generator)
                obs, mask = post.observations, post.mask
            if s.inner_estimator in SUPPORTED_ESTIMATORS:
                return self._written_out_product(objective.batch, obs, _kl_weights(mask), generator, hessians)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                adapted = self._fisher_adaptation(objective.batch, generator)
        if adapted is None:
            adapted = objective.adapted(create_graph=True)
        weights = _kl_weights(mask)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
            outputs = self.policy.fisher_outputs(obs, adapted)
            fixed = tuple(_widened(o.detach()) for o in outputs)
            probes = tuple(torch.zeros_like(o, requires_grad=True) for o in outputs)
            transposed = torch.autograd.grad(outputs, params, grad_outputs=probes, create_graph=True)
        flat_transposed = torch.cat([g.reshape(-1) for g in transposed])  # Jᵀ·probe, linear in the probe
        damping = s.cg_damping

        def product(vector: Tensor) -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                jv = torch.autograd.grad(flat_transposed, probes, grad_outputs=vector, retain_graph=True)
                metric = self.policy.fisher_metric(fixed, tuple(_widened(t) for t in jv))
                metric = tuple((weights * m).to(o.dtype) for m, o in zip(metric, outputs, strict=True))
                fv = torch.autograd.grad(outputs, params, grad_outputs=metric, retain_graph=True)
            return torch.cat([f.reshape(-1) for f in fv]) + damping * vector

        return product

    def _written_out_product(
        self,
        batch: AdaptationBatch,
        obs: Tensor,
        weights: Tensor,
        generator: torch.Generator,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Callable[[Tensor], Tensor]:
        """The fast path's products with the MLP's derivatives written out (:mod:`agents.mlp_products`).

        The same approximation as :meth:`_fisher_adaptation` under autograd — the inner
        loop's Hessian on a random ``fvp_inner_subsample`` share of each inner step's steps
        (drawn from ``generator`` in the same order), at the parameters each step started
        from — on the post-adaptation observations ``obs`` with KL ``weights``; ``hessians``
        on all inner steps are reused at ``fvp_inner_subsample`` 1.
        """
        s = self.settings
        dtype = self._products_dtype()
        inner = list(hessians) if s.products_use_every_inner_step else []
        for k in range(len(inner), 0 if s.first_order else batch.num_inner_steps):
            steps = Steps.of(batch.episodes[k], batch.advantages[k])
            if s.fvp_inner_subsample < 1.0:
                steps = steps.subsample(s.fvp_inner_subsample, generator)
            inner.append(InnerLossHessian(self.policy, batch.params[k], steps, s.inner_estimator, dtype))
        outputs = OutputJacobian(self.policy, batch.params[-1], obs, dtype)
        return fisher_vector_product(self.policy, inner, outputs, weights, s.fast_lr, s.cg_damping)

    def _fisher_adaptation(self, batch: AdaptationBatch, generator: torch.Generator) -> Params:
        """The adapted parameters for the fast Fisher: exact values, derivatives from subsampled inner steps.

        Each inner step's gradient is taken on a random ``fvp_inner_subsample`` share of that
        step's steps (all of them at 1.0); its value is replaced by the parameters the
        episodes were sampled with (``batch.params``), so the Jacobian is that of the
        subsampled inner loop, taken at the true adapted parameters.
        """
        s = self.settings
        params = self.policy.task_params(batch.episodes[-1].num_tasks)
        for k in range(batch.num_inner_steps):
            if s.inner_estimator == "dice":  # its causal sums need whole episodes: no subsample
                stepped = inner_step(self.policy, params, batch.episodes[k], batch.advantages[k], s.fast_lr,
                                     not s.first_order, "dice")
            else:
                steps = Steps.of(batch.episodes[k], batch.advantages[k])
                if s.fvp_inner_subsample < 1.0:
                    steps = steps.subsample(s.fvp_inner_subsample, generator)
                stepped = steps_inner_step(self.policy, params, steps, s.fast_lr, not s.first_order,
                                           s.inner_estimator)
            value = batch.params[k + 1]
            params = {n: value[n].to(p.dtype) + (p - p.detach()) for n, p in stepped.items()}
        return params

    def _meta_gradient(self, objective: _Objective) -> tuple[float, Tensor, Params | None, list[InnerLossHessian]]:
        """The surrogate loss at θ, its gradient in θ through the inner loop, and what the products may reuse.

        Exact path (and ``dice``): autograd through the recomputed inner loop, in fp32; its
        graph (the adapted parameters) is returned for the exact products. Fast path: the
        gradient is ``Σ_tasks (I − α H_1) ⋯ (I − α H_K) ∇_θ' L``, with ``∇_θ' L`` in fp32 at
        the sampled adapted parameters and each ``H_k`` (on all of that inner step's steps)
        applied by :class:`~agents.mlp_products.InnerLossHessian` in ``fisher_precision`` (the
        ones the sampler's bf16 inner steps kept, if they did: :meth:`sample`); those are
        returned if the products use all inner steps too (else freed here). With
        ``adaptation_precision: bf16`` this is the path even for exact products, so that the
        gradient is taken at the adaptation that was sampled.
        """
        s = self.settings
        if (s.exact_fisher and s.adaptation_precision == "fp32") or s.inner_estimator not in SUPPORTED_ESTIMATORS:
            adapted = objective.adapted(create_graph=True)
            loss, _ = objective.loss_and_kl(adapted)
            exact = torch.autograd.grad(loss, self._params(), retain_graph=True)
            return loss.item(), torch.cat([g.reshape(-1) for g in exact]).detach(), adapted, []
        batch = objective.batch
        loss, sampled = objective.sampled_loss()
        grads = dict(zip(sampled, torch.autograd.grad(loss, list(sampled.values())), strict=True))
        dtype = self._products_dtype()
        hessians = batch.take_hessians()  # the sampler's inner steps built them, if they were bf16 ones
        if len(hessians) != batch.num_inner_steps or s.first_order or any(
                h.estimator != s.inner_estimator or h.trunk.dtype != dtype for h in hessians):
            hessians = [
                InnerLossHessian(self.policy, batch.params[k], Steps.of(batch.episodes[k], batch.advantages[k]),
                                 s.inner_estimator, dtype)
                for k in range(0 if s.first_order else batch.num_inner_steps)]
        for hessian in reversed(hessians):
            curvature = hessian(grads)
            grads = {n: g - s.fast_lr * curvature[n] for n, g in grads.items()}
        gradient = torch.cat([grads[n].sum(0).reshape(-1) for n, _ in self.policy.named_parameters()])
        return loss.item(), gradient, None, hessians if s.products_use_every_inner_step else []

    def _products_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.settings.fisher_precision == "bf16" else next(self.policy.parameters()).dtype

    def proposed_step(
        self, batch: AdaptationBatch, rng: np.random.Generator | None = None
    ) -> tuple[_Objective, Tensor, Tensor, float]:
        """The meta-update's objective, its fp32 gradient, the full natural-gradient step and the loss at θ.

        The step is ``F⁻¹g`` scaled to the trust region by conjugate gradient on this
        learner's Fisher-vector products (exact or fast); NaN where it is not finite.
        """
        objective = _Objective(self.policy, batch, self.settings)
        old_loss, gradient, adapted, hessians = self._meta_gradient(objective)
        if not (math.isfinite(old_loss) and bool(torch.isfinite(gradient).all())):
            return objective, gradient, torch.full_like(gradient, math.nan), old_loss
        fvp = self._fisher_vector_product(objective, adapted, rng, hessians)
        del adapted, hessians  # what the products do not hold is freed before conjugate gradient
        return objective, gradient, natural_step(gradient, fvp, self.settings.max_kl, self.settings.cg_iters), old_loss

    def step(self, batch: AdaptationBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """One meta-update on ``batch``; returns its metrics. θ stays unchanged on failure."""
        s = self.settings
        if not self._described:  # once, from inside the run, so that the line reaches its train.log
            log.info("meta-update %s", s.describe())
            self._described = True
        theta = parameters_to_vector(self._params()).detach()
        objective, gradient, full_step, old_loss = self.proposed_step(batch, rng)
        metrics = {"loss_before": old_loss, "grad_norm": float(gradient.norm())}

        if not (math.isfinite(old_loss) and bool(torch.isfinite(gradient).all())):
            log.warning("meta-update skipped: non-finite loss or gradient; parameters kept")
            return {**metrics, "step_accepted": 0.0, "step_fraction": 0.0, "kl_after": 0.0,
                    "loss_after": old_loss, "ls_steps": 0.0, "skipped_nonfinite": 1.0}

        if not bool(torch.isfinite(full_step).all()):
            log.warning("meta-update skipped: non-finite conjugate-gradient step; parameters kept")
            return {**metrics, "step_accepted": 0.0, "step_fraction": 0.0, "kl_after": 0.0,
                    "loss_after": old_loss, "ls_steps": 0.0, "skipped_nonfinite": 1.0}

        def evaluate(candidate: Tensor) -> tuple[float, float]:
            vector_to_parameters(candidate, self._params())
            adapted = objective.adapted(create_graph=False)
            with torch.no_grad():
                loss, kl = objective.loss_and_kl(adapted)
            return float(loss), float(kl)

        new_theta, result = backtracking_line_search(
            evaluate, theta, full_step, old_loss, s.max_kl, s.ls_max_steps, s.ls_backtrack_ratio
        )
        with torch.no_grad():
            vector_to_parameters(new_theta, self._params())
        if not result.accepted:
            log.warning("line search found no improving step within max_kl=%g; parameters kept", s.max_kl)
        return {
            **metrics,
            "step_accepted": float(result.accepted),
            "step_fraction": result.step_fraction,
            "kl_after": result.kl,
            "loss_after": result.loss,
            "ls_steps": float(result.num_steps),
            "step_norm": float(full_step.norm()) * result.step_fraction,
            "skipped_nonfinite": 0.0,
        }
