"""Meta-World's ML1, ML10 and ML45 as metarl task distributions (the ``metaworld`` extra).

A task is one of the benchmark's parametric variations of one environment
(:class:`MetaWorldTask`: the environment's name and metaworld's ``rand_vec``, the goal and
object positions). The tasks are metaworld's own, from its benchmark API
(``metaworld.ML1(env_name, seed)``, ``metaworld.ML10(seed)``, ``metaworld.ML45(seed)``):
``split="train"`` draws from the benchmark's training tasks, ``split="test"`` from its test
tasks (held-out goals for ML1, held-out environments for ML10 and ML45). The goal is hidden
from the observation, as in metaworld's ML benchmarks; observations (39 values), actions
(4 values in [−1, 1]), rewards and ``info["success"]`` are metaworld's.

On MuJoCo 4 no environment's scripted expert succeeds at a rate that differs beyond noise
from MuJoCo 3.3.0 (metaworld's pin): 50 seeded episodes per environment under each version,
docs/meta-world.md, measured by ``scripts/meta_world_experts.py``.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.meta_world.compat import patch_metaworld
from metarl.tasks.protocol import REWARD_BOUNDS_KEY

BENCHMARKS = ("ML1", "ML10", "ML45")
"""The Meta-World benchmarks this family offers."""

SPLITS = ("train", "test")
"""A benchmark's task sets: training tasks, and held-out test tasks."""


@dataclass(frozen=True)
class MetaWorldTask:
    """One Meta-World task: an environment and its goal and object positions.

    Args:
        env_name: The environment, e.g. ``"reach-v3"``.
        rand_vec: metaworld's random vector of that environment's task (goal and object positions).
    """

    env_name: str
    rand_vec: tuple[float, ...]


@dataclass(frozen=True)
class BenchmarkTasks:
    """A benchmark's environment classes and its training and test tasks."""

    classes: dict[str, type]
    train: tuple[MetaWorldTask, ...]
    test: tuple[MetaWorldTask, ...]


def _decode(task: Any) -> MetaWorldTask:
    # metaworld's Task.data is a pickle metaworld wrote in this process a moment ago (never read from a file)
    data = pickle.loads(task.data)  # noqa: S301
    return MetaWorldTask(env_name=task.env_name, rand_vec=tuple(float(v) for v in data["rand_vec"]))


@functools.lru_cache(maxsize=8)
def benchmark_tasks(benchmark: str, env_name: str | None, seed: int) -> BenchmarkTasks:
    """The tasks of metaworld's benchmark ``benchmark`` (for ML1: of ``env_name``) built with ``seed``.

    Args:
        benchmark: ``"ML1"``, ``"ML10"`` or ``"ML45"``.
        env_name: ML1's environment (``None`` for ML10 and ML45).
        seed: The seed metaworld draws the tasks' positions with.
    """
    patch_metaworld()
    import metaworld

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown Meta-World benchmark {benchmark!r}; one of {', '.join(BENCHMARKS)}")
    if benchmark == "ML1":
        if env_name not in metaworld.ML1.ENV_NAMES:
            raise ValueError(
                f"ML1 needs env_name, one of metaworld's environments (e.g. 'reach-v3', 'push-v3'), got {env_name!r}"
            )
        built = metaworld.ML1(env_name, seed=seed)
    elif env_name is not None:
        raise ValueError(f"{benchmark} takes no env_name (its environments are fixed), got {env_name!r}")
    else:
        built = getattr(metaworld, benchmark)(seed=seed)
    return BenchmarkTasks(
        classes={**built.train_classes, **built.test_classes},
        train=tuple(_decode(t) for t in built.train_tasks),
        test=tuple(_decode(t) for t in built.test_tasks),
    )


def draw_evenly(tasks: Sequence[MetaWorldTask], n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
    """``n`` of ``tasks`` drawn with ``rng``, each environment's share equal (±1, extras to random environments).

    Within an environment the draws are without replacement while it has enough tasks. With one
    environment (ML1) this is ``n`` draws of its tasks. Garage's Meta-World task sampler shares a
    meta-batch out between the environments the same way.

    Args:
        tasks: The tasks to draw from (one or more environments).
        n: How many.
        rng: The generator.
    """
    by_env: dict[str, list[MetaWorldTask]] = {}
    for task in tasks:
        by_env.setdefault(task.env_name, []).append(task)
    names = list(by_env)
    shares = np.full(len(names), n // len(names))
    shares[rng.permutation(len(names))[: n % len(names)]] += 1
    drawn: list[MetaWorldTask] = []
    for name, share in zip(names, shares.tolist(), strict=True):
        pool = by_env[name]
        picks = rng.choice(len(pool), size=share, replace=share > len(pool))
        drawn += [pool[int(i)] for i in picks]
    return [drawn[int(i)] for i in rng.permutation(len(drawn))]


class MetaWorldTaskEnv(gym.Env):
    """A Meta-World benchmark's tasks as one task environment (hidden goal, metaworld's rewards).

    Args:
        benchmark: ``"ML1"``, ``"ML10"`` or ``"ML45"``.
        env_name: ML1's environment (e.g. ``"push-v3"``); ``None`` for ML10 and ML45.
        split: ``"train"`` (the benchmark's training tasks) or ``"test"`` (its held-out tasks).
        benchmark_seed: The seed of metaworld's benchmark (which positions its tasks have).
        render_mode: ``"rgb_array"`` or ``None``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 80, REWARD_BOUNDS_KEY: (0.0, 10.0)}
    """Meta-World's v3 rewards lie in [0, 10] per step (its ``evaluate_state``), so returns in [0, 10·horizon]."""
    max_cached_envs: int = 3
    """metaworld environments (one per environment name) a sub-environment keeps built: ML10 and ML45
    switch between many, and an ML45 sub-environment holding all 50 would hold 50 MuJoCo models."""

    def __init__(
        self,
        benchmark: str = "ML1",
        env_name: str | None = "reach-v3",
        split: str = "train",
        benchmark_seed: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.benchmark = benchmark
        self.split = split
        self._tasks = benchmark_tasks(benchmark, env_name if benchmark == "ML1" else None, benchmark_seed)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._envs: dict[str, Any] = {}
        self._task = self.split_tasks[0]
        self._env = self._metaworld_env(self._task)

    @property
    def split_tasks(self) -> tuple[MetaWorldTask, ...]:
        """The tasks ``sample_tasks`` draws from: the benchmark's training or test tasks."""
        return self._tasks.train if self.split == "train" else self._tasks.test

    # -- the task protocol -------------------------------------------------------------
    def sample_tasks(self, n: int) -> list[MetaWorldTask]:
        """Draw ``n`` of the split's tasks with ``np_random``, environments in equal shares (:func:`draw_evenly`)."""
        return draw_evenly(self.split_tasks, n, self.np_random)

    def sample_heldout_tasks(self, n: int) -> list[MetaWorldTask]:
        """Draw ``n`` of the benchmark's test tasks with ``np_random``: what evaluation adapts to.

        For ML1 these are held-out goal and object positions, for ML10 and ML45 the held-out
        environments' tasks, whatever ``split`` this env trains on; the environments in equal
        shares (:func:`draw_evenly`), so that each held-out environment weighs the same.
        """
        return draw_evenly(self._tasks.test, n, self.np_random)

    def task_group(self, task: MetaWorldTask) -> str:
        """The task's environment: evaluation reports returns and success rates per environment."""
        return task.env_name

    def set_task(self, task: MetaWorldTask) -> None:
        """Switch to ``task``: its environment, with its goal and object positions."""
        if not isinstance(task, MetaWorldTask):
            raise TypeError(f"MetaWorldTaskEnv.set_task: expected a MetaWorldTask, got {type(task).__name__}")
        self._env = self._metaworld_env(task)
        self._task = task

    def get_task(self) -> MetaWorldTask:
        """The current task."""
        return self._task

    # -- Gymnasium ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode of the current task (its positions are fixed by the task; ``seed`` seeds ``np_random``)."""
        super().reset(seed=seed)
        obs, info = self._env.reset()
        return np.asarray(obs, dtype=np.float64), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """One metaworld step: observation, reward, never terminated, truncated at 500 steps, ``info["success"]``."""
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action, dtype=np.float32))
        return np.asarray(obs, dtype=np.float64), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """An RGB frame of the current environment (``render_mode="rgb_array"``)."""
        return self._env.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Close every metaworld environment this env built."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _metaworld_env(self, task: MetaWorldTask) -> Any:
        """The metaworld environment of ``task``'s name (built once), set to ``task``."""
        from metaworld.types import Task

        cls = self._tasks.classes.get(task.env_name)
        if cls is None:
            raise ValueError(
                f"{self.benchmark} has no environment {task.env_name!r}; its environments: "
                f"{', '.join(sorted(self._tasks.classes))}"
            )
        env = self._envs.pop(task.env_name, None)
        if env is None:
            env = cls(render_mode=self.render_mode)
        self._envs[task.env_name] = env  # the most recently used last
        while len(self._envs) > self.max_cached_envs:
            self._envs.pop(next(iter(self._envs))).close()
        data = {"rand_vec": np.array(task.rand_vec), "env_cls": cls, "partially_observable": True}
        env.set_task(Task(env_name=task.env_name, data=pickle.dumps(data)))
        return env
