"""Learners built from a config: the policy, the sampler, the settings, and MAML-TRPO or a baseline.

Everything a :class:`~metarl.config.TrainConfig` decides about the learner is read here,
once: the scripts, the trainer and the benchmarks build through these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from agents.comparison_learners import TRPOLearner, observation_env
from agents.maml import AdvantageSettings, sample_adaptation
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Params, Policy
from metarl.config import TrainConfig
from metarl.sampling import PolicyLike, Sampler, SamplingSettings
from metarl.sampling.episodes import Episodes
from metarl.sampling.ray_sampler import make_ray_sampler
from metarl.tasks.protocol import BatchedTaskEnv

Adapter = Callable[[PolicyLike, Sampler, np.random.Generator, Sequence[float]], tuple[list[Episodes], list[Params]]]
"""An evaluation's adaptation: ``(policy, sampler, rng, lrs) -> (episodes per step, parameters per step)``."""


def make_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    hidden_sizes: tuple[int, ...],
    nonlinearity: str = "tanh",
    init_std: float = 1.0,
    env_name: str = "environment",
    output_scale: float = 1.0,
) -> Policy:
    """A Gaussian policy for a Box action space, a categorical one for a Discrete space.

    Args:
        observation_space: The env's single observation space (a flat Box).
        action_space: The env's single action space: a flat Box (Gaussian policy) or Discrete (categorical).
        hidden_sizes: Widths of the MLP's hidden layers.
        nonlinearity: The hidden layers' activation (``tanh`` or ``relu``).
        init_std: The Gaussian policy's initial standard deviation (unused for a categorical one).
        env_name: How error messages name the env.
        output_scale: Factor on the output layer's initial Glorot weights (see :class:`Policy`).
    """
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"{env_name}: the MLP policies need a flat Box observation space, got {observation_space}")
    obs_dim = observation_space.shape[0]
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianMLPPolicy(
            obs_dim, action_space.shape[0], hidden_sizes, nonlinearity, init_std, output_scale=output_scale
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden_sizes, nonlinearity, output_scale)
    raise ValueError(f"{env_name}: the MLP policies need a flat Box or a Discrete action space, got {action_space}")


def policy_for(cfg: TrainConfig, env: BatchedTaskEnv) -> Policy:
    """A fresh policy of ``cfg``'s architecture for ``env``'s spaces (drawn from torch's RNG)."""
    return make_policy(
        env.single_observation_space,
        env.single_action_space,
        cfg.hidden_sizes,
        cfg.nonlinearity,
        cfg.init_std,
        env_name=cfg.env_id,
        output_scale=cfg.init_output_scale,
    )


def make_sampler(cfg: TrainConfig, env: BatchedTaskEnv, policy: PolicyLike) -> Sampler:
    """The sampler ``cfg.sampler`` names for ``cfg.meta_batch_size`` tasks × ``cfg.episodes_per_task`` episodes.

    ``env`` must hold the ``num_envs`` of :meth:`SamplingSettings.from_config` ``(cfg)``
    (:func:`metarl.training.trainer.build_env` builds it so).

    ``local``: a :class:`~metarl.sampling.Sampler` on ``env``. ``ray``: a
    :class:`metarl.sampling.ray_sampler.RaySampler` with ``cfg.num_workers`` actors on the cluster at
    ``cfg.ray_address`` (a :class:`~metarl.config.ConfigError` if Ray is not installed or the
    cluster cannot be reached).

    Args:
        cfg: The run's config: ``sampler``, the batch sizes, the sampler's seeds and Ray settings.
        env: The batched task env the local sampler steps.
        policy: The policy whose actions are sampled.
    """
    if cfg.sampler == "ray":
        return make_ray_sampler(cfg, env, policy)
    return Sampler.from_settings(env, policy, SamplingSettings.from_config(cfg))


def _learner_parts(
    cfg: TrainConfig, env: BatchedTaskEnv
) -> tuple[Policy, Sampler, MetaUpdateSettings, AdvantageSettings]:
    """Policy, sampler, update and advantage settings of ``cfg`` on ``env``."""
    policy = policy_for(cfg, env)
    sampler = make_sampler(cfg, env, policy)  # local, or Ray actors (cfg.sampler)
    return policy, sampler, MetaUpdateSettings.from_config(cfg), AdvantageSettings.from_config(cfg)


def build_maml_trpo(cfg: TrainConfig, env: BatchedTaskEnv) -> MAMLTRPO:
    """The MAML-TRPO learner of ``cfg`` on the batched ``env`` (policy drawn from torch's RNG)."""
    return MAMLTRPO(*_learner_parts(cfg, env))


def build_learner(cfg: TrainConfig, env: BatchedTaskEnv) -> MAMLTRPO:
    """The learner ``cfg.algorithm`` names: MAML-TRPO, or a TRPO baseline (``pretrained``, ``oracle``).

    For ``oracle`` the policy and sampler see ``env`` through
    :class:`metarl.tasks.oracle.TaskFeatureObservation` (observations with the task's features).
    """
    if cfg.algorithm == "maml-trpo":
        return build_maml_trpo(cfg, env)
    return TRPOLearner(*_learner_parts(cfg, observation_env(cfg.algorithm, env)))


def evaluation_adapter(cfg: TrainConfig) -> Adapter:
    """How an evaluation adapts ``cfg``'s policy to held-out tasks: the run's own inner step and advantages.

    The returned function samples the episodes before adaptation and after each of the
    ``lrs`` inner steps and returns them with each step's per-task parameters.

    Args:
        cfg: the evaluated run's settings.
    """
    advantage = AdvantageSettings.from_config(cfg)
    step = MetaUpdateSettings.from_config(cfg).adaptation_step()  # the inner step the run trained with

    def adapt(
        policy: PolicyLike, sampler: Sampler, rng: np.random.Generator, lrs: Sequence[float]
    ) -> tuple[list[Episodes], list[Params]]:
        batch = sample_adaptation(policy, sampler, rng, lrs, advantage, step=step)  # type: ignore[arg-type]
        return batch.episodes, batch.params

    return adapt
