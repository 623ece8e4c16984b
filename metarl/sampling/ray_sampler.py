"""The sampler's Ray backend: actors that each own a shard of the (task, episode) pairs.

The ``N = T·E`` sub-environments of an iteration are cut into contiguous shards, one
per worker (:func:`metarl.sampling.shards.split_shards`). A worker is a Ray actor holding a
batched environment of its shard's size and a copy of the policy, sent once
(:class:`~metarl.sampling.ray_workers.ShardWorker`). Per
sampling phase the driver puts the per-task parameters into the object store once,
every worker rolls its shard out with :func:`metarl.sampling.rollout.rollout`, and the driver
joins the parts into the same :class:`~metarl.sampling.episodes.Episodes` batch the local
sampler returns: an episode's reset seed and action noise depend only on the phase key
and its (task, episode) index, and the policy is evaluated on whole tasks, so the
same seed gives exactly the same episodes whatever the number of workers.

Fault tolerance: a worker that dies while sampling (its process killed, its node
lost) is replaced by a fresh actor, and its shard is sampled again on a live worker
(or on the replacement when none is left); the result is the same, because the
shard's randomness does not depend on who samples it. A cluster that cannot be
reached, or workers that cannot start, are a clear error at start-up.

Ray is an optional dependency (``pip install -e ".[ray]"``); this module imports
without it and says how to install it when it is needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from metarl.config import ConfigError, TrainConfig
from metarl.sampling.episodes import Episodes
from metarl.sampling.local import Sampler
from metarl.sampling.ray_cluster import (
    CONNECT_TIMEOUT_S,
    MAX_ATTEMPTS,
    RAY_INSTALL_HINT,
    WORKER_START_TIMEOUT_S,
    SamplerError,
    _retriable_errors,
    connect,
    require_ray,
)
from metarl.sampling.ray_workers import ShardEnvFactory, ShardWorker
from metarl.sampling.rollout import PolicyLike
from metarl.sampling.settings import SamplingSettings
from metarl.sampling.shards import ShardEpisodes, assemble_episodes, split_shards
from metarl.sampling.streams import draw_phase_key
from metarl.tasks.protocol import BatchedTaskEnv, Task

log = logging.getLogger("metarl")


@dataclass
class RaySamplerStats:
    """What the Ray sampler did: phases, lost workers, and where the last phase's time went."""

    phases: int = 0
    resampled_shards: int = 0
    replaced_workers: int = 0
    last_phase_seconds: float = 0.0
    """Wall time of the last phase on the driver (put, rollouts, transfer, assembly)."""
    last_worker_seconds: list[float] = field(default_factory=list)
    """Each shard's rollout time inside its worker in the last phase."""


class RaySampler(Sampler):
    """The :class:`~metarl.sampling.Sampler` interface, sampled by ``num_workers`` Ray actors.

    ``env`` is the driver's batched env (its spaces and tasks are checked there);
    ``env_factory`` builds each worker's env of its shard's size. Connects to the
    cluster at ``address`` (empty: a local Ray instance) unless Ray is already
    initialised, starts the workers and waits until each holds its env.
    """

    def __init__(
        self,
        env: BatchedTaskEnv,
        policy: PolicyLike,
        num_tasks: int,
        episodes_per_task: int,
        *,
        env_factory: ShardEnvFactory,
        num_workers: int,
        address: str = "",
        threads_per_worker: int = 1,
        max_attempts: int = MAX_ATTEMPTS,
        step_budget: bool = False,
        budget_lanes: int = 0,
    ) -> None:
        super().__init__(env, policy, num_tasks, episodes_per_task, step_budget=step_budget, budget_lanes=budget_lanes)
        if num_workers < 1:
            raise ValueError(f"RaySampler: num_workers must be >= 1, got {num_workers}")
        self._ray = require_ray()
        self._owns_ray = connect(address)
        self._retriable = _retriable_errors(self._ray)
        self.env_factory = env_factory
        self.threads_per_worker = threads_per_worker
        self.max_attempts = max_attempts
        self.shards = split_shards(env.num_envs, num_workers)
        self.stats = RaySamplerStats()
        self.workers: list[Any] = []
        self._tasks_ref: Any = None
        self._check_cpus(len(self.shards))
        self._actor_class = self._ray.remote(num_cpus=1, max_restarts=0)(ShardWorker)
        self._policy_ref = self._ray.put(policy)
        try:
            self.workers = [self._start_worker(shard.size) for shard in self.shards]
            self._wait_ready(self.workers)
        except BaseException:
            self.close()
            raise

    def _check_cpus(self, num_workers: int) -> None:
        """Each worker takes 1 CPU: too few on a local instance is an error, on a cluster a warning (nodes may join)."""
        cpus = self._ray.cluster_resources().get("CPU", 0)
        if num_workers <= cpus:
            return
        if self._owns_ray:
            self.close()
            raise ConfigError(
                f"config field 'num_workers': {num_workers} workers need {num_workers} CPUs, and the local Ray "
                f"instance has {cpus:g}; lower num_workers or point ray_address at a cluster",
                field="num_workers",
            )
        log.warning(
            "Ray sampler: %d workers need %d CPUs and the cluster has %g; waiting up to %.0f s for nodes",
            num_workers,
            num_workers,
            cpus,
            WORKER_START_TIMEOUT_S,
        )

    def _start_worker(self, num_envs: int) -> Any:
        return self._actor_class.remote(self.env_factory, self._policy_ref, num_envs, self.threads_per_worker)

    def _wait_ready(self, workers: Sequence[Any]) -> None:
        ray = self._ray
        refs = [worker.ready.remote() for worker in workers]
        try:
            ray.get(refs, timeout=WORKER_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            started = len(ray.wait(refs, num_returns=len(refs), timeout=0)[0])
            cpus = ray.cluster_resources().get("CPU", 0)
            raise SamplerError(
                f"Ray sampler: only {started} of {len(workers)} workers started within {WORKER_START_TIMEOUT_S:.0f} s; "
                f"each needs 1 CPU and the cluster has {cpus:g} (see `ray status`); lower num_workers or add nodes"
            ) from None
        except self._retriable as exc:
            raise SamplerError(f"Ray sampler: a worker failed to start: {exc}") from exc

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Use ``tasks`` for the following phases (put into the object store once)."""
        super().set_tasks(tasks)
        self._tasks_ref = self._ray.put(list(tasks))

    def _replace(self, slot: int, dead: Any) -> None:
        """A fresh actor in ``slot`` if ``dead`` still holds it."""
        if self.workers[slot] is not dead:
            return
        try:
            self._ray.kill(dead)
        except Exception:  # noqa: BLE001 (already gone)
            pass
        self.workers[slot] = self._start_worker(self.shards[slot].size)
        self.stats.replaced_workers += 1

    def sample(self, params: Mapping[str, Tensor], rng: np.random.Generator) -> Episodes:
        """The same batch as :meth:`Sampler.sample`, sampled by the workers (the phase key drawn from ``rng``)."""
        if self._tasks_ref is None:
            raise RuntimeError("RaySampler.sample: call set_tasks first")
        ray = self._ray
        began = time.perf_counter()
        phase_key = draw_phase_key(rng)
        params_ref = ray.put({name: p.detach().contiguous() for name, p in params.items()})
        E = self.envs_per_task

        def submit(index: int, slot: int) -> Any:
            return self.workers[slot].sample.remote(
                self._tasks_ref, params_ref, E, self.shards[index], phase_key, self.step_budget, self.budget_horizons
            )

        pending: dict[Any, tuple[int, int, Any, int]] = {}  # ref -> (shard, slot, worker, attempt)
        for index in range(len(self.shards)):
            pending[submit(index, index)] = (index, index, self.workers[index], 1)
        parts: dict[int, ShardEpisodes] = {}
        seconds: dict[int, float] = {}
        failed: set[int] = set()  # slots whose worker died during this phase
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            index, slot, worker, attempt = pending.pop(ref)
            try:
                parts[index], seconds[index] = ray.get(ref)
            except self._retriable as exc:
                failed.add(slot)
                if attempt >= self.max_attempts:
                    raise SamplerError(
                        f"Ray sampler: shard {index} (sub-environments {self.shards[index].start}.."
                        f"{self.shards[index].stop - 1}) was lost {attempt} times; last error: "
                        f"{' '.join(str(exc).split())[:300]}. Check the cluster (ray status) and --resume the run"
                    ) from exc
                self._replace(slot, worker)
                busy = [s for _, s, _, _ in pending.values()]
                live = [s for s in range(len(self.workers)) if s not in failed]
                target = min(live, key=busy.count) if live else slot
                log.warning(
                    "Ray sampler: worker %d died while sampling shard %d (%s: %s); resampling it on %s worker %d",
                    slot,
                    index,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    "live" if live else "restarted",
                    target,
                )
                pending[submit(index, target)] = (index, target, self.workers[target], attempt + 1)
                self.stats.resampled_shards += 1
        self.stats.phases += 1
        self.stats.last_worker_seconds = [seconds[i] for i in range(len(self.shards))]
        episodes = assemble_episodes(list(parts.values()), self.num_tasks, E)
        self.stats.last_phase_seconds = time.perf_counter() - began
        return episodes

    def close(self) -> None:
        """Stop the workers (and the local Ray instance, if this sampler started it)."""
        ray = self._ray
        for worker in self.workers:
            try:
                ray.kill(worker)
            except Exception:  # noqa: BLE001 (already gone)
                pass
        self.workers = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False


def make_ray_sampler(cfg: TrainConfig, env: BatchedTaskEnv, policy: PolicyLike) -> RaySampler:
    """The Ray sampler of ``cfg`` (its sampling settings, ``num_workers``, ``ray_address``) on ``env``.

    Args:
        cfg: The run's config.
        env: The driver's batched env (for its spaces and tasks).
        policy: The policy whose actions are sampled.
    """
    sampling = SamplingSettings.from_config(cfg)
    return RaySampler(
        env,
        policy,
        sampling.num_tasks,
        sampling.episodes_per_task,
        env_factory=ShardEnvFactory.for_config(cfg, env),
        num_workers=cfg.num_workers,
        address=cfg.ray_address,
        step_budget=sampling.step_budget,
        budget_lanes=sampling.budget_lanes,
    )


__all__ = [
    "CONNECT_TIMEOUT_S",
    "MAX_ATTEMPTS",
    "RAY_INSTALL_HINT",
    "RaySampler",
    "RaySamplerStats",
    "SamplerError",
    "ShardEnvFactory",
    "ShardWorker",
    "connect",
    "make_ray_sampler",
    "require_ray",
]
