"""Policies and meta-learners: MLP policies, MAML adaptation, MAML-TRPO."""

from __future__ import annotations

from agents.builders import (
    build_learner,
    build_maml_trpo,
    evaluation_adapter,
    make_policy,
    make_sampler,
    policy_for,
)
from agents.comparison_learners import TRPOLearner, observation_env
from agents.maml import AdaptationBatch, AdvantageSettings, adapt, sample_adaptation
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Policy

__all__ = [
    "MAMLTRPO",
    "AdaptationBatch",
    "AdvantageSettings",
    "CategoricalMLPPolicy",
    "GaussianMLPPolicy",
    "MetaUpdateSettings",
    "Policy",
    "TRPOLearner",
    "adapt",
    "build_learner",
    "build_maml_trpo",
    "evaluation_adapter",
    "make_policy",
    "make_sampler",
    "observation_env",
    "policy_for",
    "sample_adaptation",
]
