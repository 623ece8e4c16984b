"""Baselines trained without meta-learning: plain TRPO on every task's episodes.

* ``pretrained``: one policy trained with TRPO on episodes from the whole task
  distribution; at evaluation it is fine-tuned with the same inner steps as MAML.
* ``oracle``: the same TRPO, but the policy also observes the task's features
  (:class:`metarl.tasks.oracle.TaskFeatureObservation`); it needs no adaptation.

Each iteration samples ``episodes_per_task`` episodes of each of ``meta_batch_size``
tasks with θ and takes one TRPO step on them. It is the MAML-TRPO meta-update with
zero inner steps: the same surrogate, KL, conjugate gradient and line search
(:mod:`metarl.learner.trpo`), with θ itself as every task's parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from agents.maml import AdvantageSettings
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import Policy
from metarl.sampling import Sampler
from metarl.tasks.oracle import TaskFeatureObservation
from metarl.tasks.protocol import BatchedTaskEnv, Task


class TRPOLearner(MAMLTRPO):
    """Plain TRPO on the pre-adaptation episodes of all tasks of a batch (no inner loop)."""

    def __init__(
        self, policy: Policy, sampler: Sampler, settings: MetaUpdateSettings, advantage: AdvantageSettings
    ) -> None:
        super().__init__(policy, sampler, dataclasses.replace(settings, num_inner_steps=0), advantage)

    def train_iteration(self, tasks: Sequence[Task], rng: np.random.Generator) -> dict[str, float]:
        """Sample θ on ``tasks`` and take one TRPO step; metrics have ``return_before`` only."""
        metrics = super().train_iteration(tasks, rng)
        metrics.pop("return_after", None)  # nothing was adapted
        metrics.pop("episodes_after", None)
        return metrics


def observation_env(algorithm: str, env: BatchedTaskEnv) -> BatchedTaskEnv:
    """The env as ``algorithm``'s policy sees it: with task features appended for ``oracle``."""
    return TaskFeatureObservation(env) if algorithm == "oracle" else env


__all__ = ["TRPOLearner", "observation_env"]
