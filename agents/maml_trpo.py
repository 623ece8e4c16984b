"""MAML-TRPO: a trust-region meta-update of θ through the inner loop.

The algorithm of Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", ICML 2017 (https://arxiv.org/abs/1703.03400), section 3.2:
the inner loop adapts θ to each task by policy gradient; the outer loop is a TRPO step
(Schulman et al. 2015, https://arxiv.org/abs/1502.05477) on the post-adaptation episodes,
differentiated through the inner loop, with Fisher-vector products for the conjugate
gradient and a backtracking line search on the surrogate inside the KL bound.

:class:`MAMLTRPO` orchestrates: it samples and adapts (:func:`agents.maml.sample_adaptation`),
asks its path (:mod:`agents.meta_update_paths`: the exact reference or the fast path) for the
meta-gradient and the Fisher-vector products, solves for the natural step and line-searches
it on the surrogate (:mod:`agents.surrogate`). Its settings are
:class:`~agents.meta_update_settings.MetaUpdateSettings`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from agents.maml import AdaptationBatch, AdvantageSettings, adaptation_metrics, sample_adaptation
from agents.meta_update_paths import MetaGradient, Product, meta_update_path
from agents.meta_update_settings import MetaUpdateSettings
from agents.mlp_products import InnerLossHessian
from agents.policies import Params, Policy
from agents.surrogate import PostAdaptationObjective
from metarl.learner.trpo import backtracking_line_search, natural_step
from metarl.sampling import Sampler
from metarl.tasks.protocol import Task, task_groups

log = logging.getLogger("metarl")


class MAMLTRPO:
    """The outer loop: per meta-batch of tasks, sample and adapt, then one TRPO step on θ.

    Args:
        policy: the policy (θ its parameters).
        sampler: samples the tasks' episodes (``None`` for a learner that only steps given batches).
        settings: the meta-update's settings.
        advantage: how advantages are computed from the episodes.
    """

    def __init__(
        self,
        policy: Policy,
        sampler: Sampler,
        settings: MetaUpdateSettings,
        advantage: AdvantageSettings,
    ):
        self.policy = policy
        self.sampler = sampler
        self.advantage = advantage
        self.settings = settings  # builds self.path
        self._described = False

    @property
    def settings(self) -> MetaUpdateSettings:
        """The meta-update's settings; assigning new ones rebuilds the meta-update path from them."""
        return self._settings

    @settings.setter
    def settings(self, settings: MetaUpdateSettings) -> None:
        self._settings = settings
        self.path = meta_update_path(self.policy, settings)

    def arithmetic(self) -> dict[str, str]:
        """The precision of the Fisher-vector products and of the inner step, as resolved for this CPU."""
        return {"products": self.settings.fisher_precision, "inner_step": self.settings.adaptation_precision}

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
            **adaptation_metrics(batch, task_groups(self.sampler.env, tasks)),
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

    def objective(self, batch: AdaptationBatch) -> PostAdaptationObjective:
        """The surrogate and KL of ``batch``'s post-adaptation episodes as functions of θ."""
        return PostAdaptationObjective(self.policy, batch, self.settings)

    def meta_gradient(self, objective: PostAdaptationObjective) -> MetaGradient:
        """The surrogate at θ and its gradient through the inner loop, by this learner's path."""
        return self.path.meta_gradient(objective)

    def fisher_vector_product(
        self,
        objective: PostAdaptationObjective,
        adapted: Params | None = None,
        rng: np.random.Generator | None = None,
        hessians: Sequence[InnerLossHessian] = (),
    ) -> Product:
        """``v ↦ F v + damping v`` for the KL of the post-adaptation policy, as a function of θ, by this learner's
        path; with ``fvp_task_fraction < 1`` on a random subset of the tasks (drawn from ``rng``), as TRPO
        implementations commonly do.

        Args:
            objective: the meta-update's objective.
            adapted: autograd's adapted parameters with their graph, if made (exact path).
            rng: draws the task subset and the fast path's subsamples.
            hessians: inner-loop Hessians on all inner steps, if made (the fast path reuses them).
        """
        num_tasks = objective.mask.shape[0]
        count = max(1, math.ceil(self.settings.fvp_task_fraction * num_tasks))
        if count < num_tasks:
            rng = rng if rng is not None else np.random.default_rng()
            index = torch.from_numpy(np.sort(rng.permutation(num_tasks)[:count]))
            objective = self.objective(objective.batch.select_tasks(index))
            adapted, hessians = None, ()
        return self.path.fisher_product(objective, adapted, rng, hessians)

    def proposed_step(
        self, batch: AdaptationBatch, rng: np.random.Generator | None = None
    ) -> tuple[PostAdaptationObjective, Tensor, Tensor, float]:
        """The meta-update's objective, its fp32 gradient, the full natural-gradient step and the loss at θ.

        The step is ``F⁻¹g`` scaled to the trust region by conjugate gradient on this
        learner's Fisher-vector products (exact or fast); NaN where it is not finite.
        """
        objective = self.objective(batch)
        old_loss, gradient, adapted, hessians = self.meta_gradient(objective)
        if not (math.isfinite(old_loss) and bool(torch.isfinite(gradient).all())):
            return objective, gradient, torch.full_like(gradient, math.nan), old_loss
        fvp = self.fisher_vector_product(objective, adapted, rng, hessians)
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

        skipped = {
            "step_accepted": 0.0,
            "step_fraction": 0.0,
            "kl_after": 0.0,
            "loss_after": old_loss,
            "ls_steps": 0.0,
            "skipped_nonfinite": 1.0,
        }
        if not (math.isfinite(old_loss) and bool(torch.isfinite(gradient).all())):
            log.warning("meta-update skipped: non-finite loss or gradient; parameters kept")
            return {**metrics, **skipped}
        if not bool(torch.isfinite(full_step).all()):
            log.warning("meta-update skipped: non-finite conjugate-gradient step; parameters kept")
            return {**metrics, **skipped}

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
