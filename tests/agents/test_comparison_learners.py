"""Pretrained and oracle learners: plain TRPO on pre-adaptation episodes, chosen by ``algorithm``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

import agents
import envs  # noqa: F401  (registers the task environments)
from metarl.config import load_config
from metarl.tasks.build import make_batched
from metarl.tasks.oracle import TaskFeatureObservation


def _config(algorithm: str):
    return load_config(
        "2d-navigation",
        [
            "--algorithm",
            algorithm,
            "--meta_batch_size",
            "4",
            "--episodes_per_task",
            "5",
            "--horizon",
            "20",
            "--hidden_sizes",
            "16",
        ],
    )


@pytest.mark.parametrize(("algorithm", "obs_dim"), [("pretrained", 2), ("oracle", 4)])
def test_trpo_baseline_takes_a_trust_region_step_without_adaptation(algorithm: str, obs_dim: int):
    cfg = _config(algorithm)
    env = make_batched(cfg.env_id, 20, max_episode_steps=cfg.horizon)
    torch.manual_seed(0)
    learner = agents.build_learner(cfg, env)
    assert isinstance(learner, agents.TRPOLearner) and learner.inner_lrs == []
    assert learner.policy.input_size == obs_dim
    assert isinstance(learner.sampler.env, TaskFeatureObservation) == (algorithm == "oracle")
    before = parameters_to_vector(learner.policy.parameters()).detach().clone()
    rng = np.random.default_rng(0)
    metrics = learner.train_iteration(env.sample_tasks(4, rng), rng)
    assert "return_after" not in metrics and np.isfinite(metrics["return_before"])
    assert metrics["env_steps"] <= 4 * 5 * 20  # one sampling phase, no inner steps
    assert metrics["step_accepted"] == 1.0 and 0 < metrics["kl_after"] <= cfg.max_kl
    assert metrics["loss_after"] < metrics["loss_before"]
    assert not torch.equal(before, parameters_to_vector(learner.policy.parameters()))


def test_maml_trpo_is_the_default_learner():
    cfg = _config("maml-trpo")
    learner = agents.build_learner(cfg, make_batched(cfg.env_id, 20, max_episode_steps=cfg.horizon))
    assert type(learner) is agents.MAMLTRPO and learner.inner_lrs == [0.1]
