"""Shared by the meta-update benchmarks: a preset's MAML-TRPO learner on its batched env."""

from __future__ import annotations

import torch

import agents
import envs  # noqa: F401  (registers the ids)
from agents.maml_trpo import MAMLTRPO
from metarl.config import TrainConfig, load_config
from metarl.runs.checkpoint import load_checkpoint
from metarl.tasks.protocol import BatchedTaskEnv
from metarl.training.trainer import build_env


def build(
    config: str, overrides: list[str], num_threads: int, checkpoint: str | None = None
) -> tuple[TrainConfig, BatchedTaskEnv, MAMLTRPO]:
    """Config ``config`` with ``overrides``, its env sized as training sizes it, and its learner.

    Torch runs on ``num_threads`` threads, parameters start from seed 0 or from ``checkpoint``.
    """
    torch.set_num_threads(num_threads)
    torch.manual_seed(0)
    cfg = load_config(config, overrides)
    env = build_env(cfg)
    learner = agents.build_maml_trpo(cfg, env)
    if checkpoint:
        learner.load_state_dict(load_checkpoint(checkpoint)["learner"])
    return cfg, env, learner
