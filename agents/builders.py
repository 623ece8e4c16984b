"""Learners built from a config: the policy, the sampler, the settings, and MAML-TRPO or a baseline.

Everything a :class:`~metarl.config.TrainConfig` decides about the learner is read here,
once: the scripts, the trainer and the benchmarks build through these functions.
"""

from __future__ import annotations

from typing import TypedDict

import gymnasium as gym

from agents.comparison_learners import TRPOLearner, observation_env
from agents.maml import AdvantageSettings
from agents.maml_trpo import MAMLTRPO, MetaUpdateSettings
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Policy
from metarl.config import TrainConfig
from metarl.precision import resolve_precision
from metarl.sampling import PolicyLike, Sampler
from metarl.sampling.ray_sampler import make_ray_sampler
from metarl.tasks import BatchedTaskEnv


def make_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    hidden_sizes: tuple[int, ...],
    nonlinearity: str = "tanh",
    init_std: float = 1.0,
    env_name: str = "environment",
) -> Policy:
    """A Gaussian policy for a Box action space, a categorical one for a Discrete space."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(
            f"{env_name}: the MLP policies need a flat Box observation space, got {observation_space}"
        )
    obs_dim = observation_space.shape[0]
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianMLPPolicy(obs_dim, action_space.shape[0], hidden_sizes, nonlinearity, init_std)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden_sizes, nonlinearity)
    raise ValueError(
        f"{env_name}: the MLP policies need a flat Box or a Discrete action space, got {action_space}"
    )


def policy_for(cfg: TrainConfig, env: BatchedTaskEnv) -> Policy:
    """A fresh policy of ``cfg``'s architecture for ``env``'s spaces (drawn from torch's RNG)."""
    return make_policy(
        env.single_observation_space,
        env.single_action_space,
        cfg.hidden_sizes,
        cfg.nonlinearity,
        cfg.init_std,
        env_name=cfg.env_id,
    )


class FisherSettings(TypedDict):
    """The Fisher-vector product settings of :class:`MetaUpdateSettings` a config gives."""

    fvp_step_subsample: float
    fvp_inner_subsample: float
    fisher_precision: str


def fisher_settings(cfg: TrainConfig) -> FisherSettings:
    """The Fisher-vector product settings of the meta-update ``cfg.meta_update`` names.

    ``exact`` is the fp32 reference on every step; ``fast`` resolves ``auto`` precision
    for this CPU (:func:`metarl.precision.resolve_precision`, which logs its choice).
    """
    if cfg.meta_update == "exact":
        return {"fvp_step_subsample": 1.0, "fvp_inner_subsample": 1.0, "fisher_precision": "fp32"}
    return {
        "fvp_step_subsample": cfg.fvp_step_subsample,
        "fvp_inner_subsample": cfg.fvp_inner_subsample,
        "fisher_precision": resolve_precision(cfg.fisher_precision),
    }


def advantage_settings(cfg: TrainConfig) -> AdvantageSettings:
    """How ``cfg`` estimates advantages (discount, GAE λ, normalisation, bootstrapping)."""
    return AdvantageSettings(cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages, cfg.bootstrap_truncated)


def make_sampler(cfg: TrainConfig, env: BatchedTaskEnv, policy: PolicyLike) -> Sampler:
    """The sampler ``cfg.sampler`` names for ``cfg.meta_batch_size`` tasks × ``cfg.episodes_per_task`` episodes.

    ``env`` must hold ``cfg.meta_batch_size × envs_per_task(cfg...)`` sub-environments
    (:func:`metarl.sampling.envs_per_task`; :func:`metarl.trainer.train` builds it so).

    ``local``: a :class:`~metarl.sampling.Sampler` on ``env``. ``ray``: a
    :class:`metarl.sampling.ray_sampler.RaySampler` with ``cfg.num_workers`` actors on the cluster at
    ``cfg.ray_address`` (a :class:`~metarl.config.ConfigError` if Ray is not installed or the
    cluster cannot be reached).
    """
    if cfg.sampler == "ray":
        return make_ray_sampler(cfg, env, policy, cfg.meta_batch_size, cfg.episodes_per_task)
    return Sampler(
        env,
        policy,
        cfg.meta_batch_size,
        cfg.episodes_per_task,
        step_budget=cfg.step_budget,
        budget_lanes=cfg.budget_lanes,
    )


def _learner_parts(
    cfg: TrainConfig, env: BatchedTaskEnv
) -> tuple[Policy, Sampler, MetaUpdateSettings, AdvantageSettings]:
    """Policy, sampler, update and advantage settings of ``cfg`` on ``env``."""
    policy = policy_for(cfg, env)
    sampler = make_sampler(cfg, env, policy)  # local, or Ray actors (cfg.sampler)
    settings = MetaUpdateSettings(
        fast_lr=cfg.fast_lr,
        num_inner_steps=cfg.num_inner_steps,
        first_order=cfg.first_order,
        max_kl=cfg.max_kl,
        cg_iters=cfg.cg_iters,
        cg_damping=cfg.cg_damping,
        ls_max_steps=cfg.ls_max_steps,
        ls_backtrack_ratio=cfg.ls_backtrack_ratio,
        hvp_subsample=cfg.hvp_subsample,
        inner_estimator=cfg.inner_estimator,
        **fisher_settings(cfg),
    )
    advantage = advantage_settings(cfg)
    return policy, sampler, settings, advantage


def build_maml_trpo(cfg: TrainConfig, env: BatchedTaskEnv) -> MAMLTRPO:
    """The MAML-TRPO learner of ``cfg`` on the batched ``env`` (policy drawn from torch's RNG)."""
    return MAMLTRPO(*_learner_parts(cfg, env))


def build_learner(cfg: TrainConfig, env: BatchedTaskEnv) -> MAMLTRPO:
    """The learner ``cfg.algorithm`` names: MAML-TRPO, or a TRPO baseline (``pretrained``, ``oracle``).

    For ``oracle`` the policy and sampler see ``env`` through
    :class:`metarl.oracle.TaskFeatureObservation` (observations with the task's features).
    """
    if cfg.algorithm == "maml-trpo":
        return build_maml_trpo(cfg, env)
    return TRPOLearner(*_learner_parts(cfg, observation_env(cfg.algorithm, env)))
