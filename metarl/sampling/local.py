"""The local sampler: one batched env in this process, every (task, episode) pair at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from metarl.sampling.episodes import Episodes
from metarl.sampling.rollout import PolicyLike, rollout
from metarl.sampling.settings import SamplingSettings
from metarl.sampling.shards import assemble_episodes
from metarl.sampling.streams import draw_phase_key
from metarl.tasks.protocol import BatchedTaskEnv, Task


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``num_threads`` torch intra-op threads (``None``: unchanged), then restore."""
    before = torch.get_num_threads()
    if num_threads is None or num_threads == before:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Sampler:
    """Samples ``episodes_per_task`` episodes of each of ``num_tasks`` tasks in one batched env.

    With ``step_budget`` each sub-environment instead runs episodes back to back for the
    horizon (:func:`rollout`), and the batch holds as many episode slots per task as the
    task with the most episodes needs. ``budget_lanes > 0`` shares each task's budget of
    ``E × H`` steps among that many sub-environments instead of ``E``
    (:class:`~metarl.sampling.settings.SamplingSettings`); ``env`` must then hold ``num_tasks × budget_lanes`` of them.

    Sub-environment ``i * E + j`` runs episode ``j`` of task ``i``. Every time step
    is one env call and one batched policy forward, in which task ``i`` uses its
    own parameters ``params[name][i]``.

    Randomness: each call of :meth:`sample` draws one key from the generator it is
    given; episode ``j`` of task ``i`` takes its reset seed and its action noise from
    :func:`episode_stream` of that key, ``i`` and ``j``, and actions are sampled by
    reparameterisation from that noise (:meth:`PolicyLike.actions_from_noise`). So any
    subset of the sub-environments, sampled elsewhere (the Ray backend,
    :mod:`metarl.sampling.ray_sampler`), reproduces exactly its part of the batch.

    Numerical faults do not reach the learner: a sub-environment whose reset
    observation, step observation or reward is non-finite (or beyond float32), or
    whose step ``info["diverged"]`` flag is set, ends its episode there; the offending
    step is dropped (masked out), the episode is marked in ``Episodes.nonfinite`` and
    a warning is logged.

    Threads: the per-step policy forward is many small ops, which torch's intra-op threads
    slow down (they synchronise every op and spin against the env's own threads, e.g.
    ``mujoco.batch``'s); so rollouts run with ``policy_threads`` torch threads (default 1)
    and the previous setting is restored for the learner (git show 7e49a18:BENCHMARKS.md, "Locomotion
    meta-iteration"). ``None`` leaves the thread count alone.
    """

    def __init__(
        self,
        env: BatchedTaskEnv,
        policy: PolicyLike,
        num_tasks: int,
        episodes_per_task: int,
        policy_threads: int | None = 1,
        step_budget: bool = False,
        budget_lanes: int = 0,
    ) -> None:
        self.settings = SamplingSettings(num_tasks, episodes_per_task, step_budget, budget_lanes)
        if env.num_envs != self.settings.num_envs:
            raise ValueError(
                f"Sampler: env has {env.num_envs} sub-environments, expected {self.settings.num_envs} "
                f"({num_tasks} tasks × {self.envs_per_task} sub-environments per task)"
            )
        self.env = env
        self.policy = policy
        self.horizon = env.max_episode_steps
        self.policy_threads = policy_threads
        self._tasks: list[Task] | None = None

    @property
    def num_tasks(self) -> int:
        """Tasks per phase."""
        return self.settings.num_tasks

    @property
    def episodes_per_task(self) -> int:
        """Episodes per task (with a step budget: horizons of steps per task)."""
        return self.settings.episodes_per_task

    @property
    def step_budget(self) -> bool:
        """Whether sub-environments run episodes back to back for their budget."""
        return self.settings.step_budget

    @property
    def envs_per_task(self) -> int:
        """Sub-environments per task."""
        return self.settings.envs_per_task

    @property
    def budget_horizons(self) -> int:
        """Horizons of steps each sub-environment runs (1 without a step budget)."""
        return self.settings.budget_horizons

    @classmethod
    def from_settings(
        cls, env: BatchedTaskEnv, policy: PolicyLike, settings: SamplingSettings, policy_threads: int | None = 1
    ) -> Sampler:
        """The sampler of ``settings`` on ``env`` (which must hold ``settings.num_envs`` sub-environments).

        Args:
            env: The batched env.
            policy: The policy whose actions are sampled.
            settings: The sampling settings.
            policy_threads: Torch threads of the per-step policy forward (``None``: leave torch's setting).
        """
        return cls(
            env,
            policy,
            settings.num_tasks,
            settings.episodes_per_task,
            policy_threads,
            settings.step_budget,
            settings.budget_lanes,
        )

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Use ``tasks`` (one per task slot) for the following calls to :meth:`sample`."""
        if len(tasks) != self.num_tasks:
            raise ValueError(f"Sampler.set_tasks: got {len(tasks)} tasks, expected {self.num_tasks}")
        self.env.set_tasks([task for task in tasks for _ in range(self.envs_per_task)])
        self._tasks = list(tasks)

    def sample(self, params: Mapping[str, Tensor], rng: np.random.Generator) -> Episodes:
        """One episode per sub-environment with per-task ``params``; the phase's key drawn from ``rng``."""
        if self._tasks is None:
            raise RuntimeError("Sampler.sample: call set_tasks first")
        with torch_threads(self.policy_threads):
            part = rollout(
                self.env,
                self.policy,
                params,
                self.envs_per_task,
                draw_phase_key(rng),
                step_budget=self.step_budget,
                budget_horizons=self.budget_horizons,
            )
        return assemble_episodes([part], self.num_tasks, self.envs_per_task)

    def close(self) -> None:
        """Release what the sampler holds beyond its env (nothing, locally)."""
