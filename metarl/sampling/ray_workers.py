"""What runs inside a Ray sampling actor: the shard's env factory and the worker that rolls shards out.

The driver side is :mod:`metarl.sampling.ray_sampler`; this module needs no Ray.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from metarl.config import TrainConfig
from metarl.sampling.rollout import PolicyLike, rollout
from metarl.sampling.shards import Shard, ShardEpisodes
from metarl.tasks.build import make_batched
from metarl.tasks.oracle import TaskFeatureObservation
from metarl.tasks.protocol import BatchedTaskEnv, Task
from metarl.tasks.resolve import check_env_id, import_env_modules


def _registering_modules(env_id: str) -> tuple[str, ...]:
    """Modules whose import registers ``env_id`` (those of its entry points), for a fresh worker process."""
    spec = gym.spec(check_env_id(env_id))
    modules: list[str] = []
    module: str | None
    for entry_point in (spec.entry_point, spec.vector_entry_point):
        if isinstance(entry_point, str):
            module = entry_point.partition(":")[0]
        else:
            module = getattr(entry_point, "__module__", None)
        if module and module != "__main__" and module not in modules:
            modules.append(module)
    return tuple(modules)


@dataclass(frozen=True)
class ShardEnvFactory:
    """Builds, in a worker process, the batched env of a shard: what the driver built, at another size."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    task_features: bool = False
    """Wrap the env in :class:`metarl.tasks.oracle.TaskFeatureObservation` (the oracle's view)."""
    modules: tuple[str, ...] = ()
    """Modules to import first: they register ``env_id`` with Gymnasium."""

    @classmethod
    def for_config(cls, cfg: TrainConfig, env: BatchedTaskEnv) -> ShardEnvFactory:
        """The factory of the env the trainer builds for ``cfg`` (``env``: as the policy sees it)."""
        return cls(
            env_id=cfg.env_id,
            env_kwargs=dict(cfg.env_kwargs),
            max_episode_steps=cfg.horizon,
            task_features=isinstance(env, TaskFeatureObservation),
            modules=_registering_modules(cfg.env_id),
        )

    def __call__(self, num_envs: int) -> BatchedTaskEnv:
        """A batched env of ``num_envs`` sub-environments."""
        import_env_modules(*self.modules)
        env = make_batched(self.env_id, num_envs, max_episode_steps=self.max_episode_steps, **dict(self.env_kwargs))
        return TaskFeatureObservation(env) if self.task_features else env


class ShardWorker:
    """The body of a sampling actor: batched envs for shards (one per shard size) and the policy."""

    def __init__(self, env_factory: ShardEnvFactory, policy: PolicyLike, num_envs: int, num_threads: int = 1):
        torch.set_num_threads(num_threads)
        self.env_factory = env_factory
        self.policy = policy
        self._envs: dict[int, BatchedTaskEnv] = {}
        self._env(num_envs)  # fail at start-up, not at the first phase

    def _env(self, num_envs: int) -> BatchedTaskEnv:
        if num_envs not in self._envs:
            self._envs[num_envs] = self.env_factory(num_envs)
        return self._envs[num_envs]

    def ready(self) -> int:
        """The worker's process id, once it holds its env."""
        return os.getpid()

    def sample(
        self,
        tasks: Sequence[Task],
        params: Mapping[str, Tensor],
        envs_per_task: int,
        shard: Shard,
        phase_key: int,
        step_budget: bool = False,
        budget_horizons: int = 1,
    ) -> tuple[ShardEpisodes, float]:
        """The episodes of ``shard`` of the phase ``phase_key`` on ``tasks``, and the seconds it took.

        Args:
            tasks: The phase's tasks.
            params: Every task's parameters (leading task axis).
            envs_per_task: Sub-environments per task.
            shard: The sub-environments this worker steps.
            phase_key: Keys the episodes' random streams.
            step_budget: Sample a budget of steps per sub-environment.
            budget_horizons: With ``step_budget``: horizons of steps per sub-environment.
        """
        start = time.perf_counter()
        env = self._env(shard.size)
        env.set_tasks([tasks[index // envs_per_task] for index in range(shard.start, shard.stop)])
        part = rollout(
            env,
            self.policy,
            params,
            envs_per_task,
            phase_key,
            start=shard.start,
            step_budget=step_budget,
            budget_horizons=budget_horizons,
        )
        return part, time.perf_counter() - start

    def close(self) -> None:
        """Close the envs."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
