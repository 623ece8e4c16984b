"""Example of a task family of your own: a point mass pushed by a random wind.

One Gymnasium env class and one :func:`metarl.register_task_env` call: importing this
module registers ``examples/WindPoint-v0``; metarl vectorises it itself. Train on it
from the repository root with the module named in the env id::

    metarl train --config scripts/examples/wind_point.yaml

or from Python: ``python scripts/examples/wind_point.py`` (a short run, see ``main``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl import register_task_env

MAX_WIND = 0.5
"""Largest wind force; below the largest action force, so the wind can be beaten."""
GOAL = np.array([1.0, 0.0])
"""Where the point mass should go (the same for every task)."""
DT, DRAG = 0.1, 0.9


@dataclass(frozen=True)
class WindTask:
    """A wind task: the constant force the wind applies, ``(fx, fy)``."""

    wind: tuple[float, float]


@register_task_env("examples/WindPoint-v0", max_episode_steps=50)
class WindPointEnv(gym.Env[np.ndarray, np.ndarray]):
    """A point mass that must reach a goal while an unseen wind pushes it.

    The mass starts near the origin at rest and should reach ``(1, 0)``. Each task is
    a constant wind force of random direction and strength up to 0.5; the agent does
    not observe it and has to adapt to it from its rewards.

    ## Action space

    ``Box(-1, 1, (2,), float32)``: the force applied in x and y (clipped to the box).

    ## Observation space

    ``Box(-inf, inf, (4,), float32)``:

    | index | observation | unit |
    |-------|-------------|------|
    | 0     | x position  | m    |
    | 1     | y position  | m    |
    | 2     | x velocity  | m/s  |
    | 3     | y velocity  | m/s  |

    ## Dynamics and rewards

    ``v ← 0.9 v + 0.1 (action + wind)``, ``p ← p + 0.1 v``. The reward is the negative
    distance from the new position to the goal minus ``0.01 |action|²``.

    ## Episode end

    No termination; truncation after ``max_episode_steps`` (50 by default).

    ## Tasks

    ``sample_tasks(n)`` draws ``n`` :class:`WindTask` with the env's ``np_random``
    (direction uniform, strength uniform in ``[0, 0.5]``).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_wind: float = MAX_WIND) -> None:
        self.max_wind = max_wind
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._task = WindTask(wind=(0.0, 0.0))
        self._state = np.zeros(4)

    # -- the task protocol ---------------------------------------------------------
    def sample_tasks(self, n: int) -> list[WindTask]:
        """Draw ``n`` winds with the env's own generator."""
        angle = self.np_random.uniform(0.0, 2 * np.pi, size=n)
        strength = self.np_random.uniform(0.0, self.max_wind, size=n)
        winds = strength[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return [WindTask(wind=(float(fx), float(fy))) for fx, fy in winds]

    def set_task(self, task: WindTask) -> None:
        """Make ``task`` the current task."""
        if not isinstance(task, WindTask):
            raise TypeError(f"WindPoint: expected a WindTask, got {type(task).__name__}")
        self._task = task

    def get_task(self) -> WindTask:
        """Return the current task."""
        return self._task

    def task_features(self, task: WindTask) -> np.ndarray:
        """The task as a vector (lets an oracle baseline see the wind)."""
        return np.asarray(task.wind, dtype=np.float32)

    # -- Gymnasium API -------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start near the origin at rest."""
        super().reset(seed=seed)
        self._state = np.zeros(4)
        self._state[:2] = self.np_random.uniform(-0.05, 0.05, size=2)
        return self._state.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Push with the action's force plus the task's wind; reward the negative distance to the goal."""
        force = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        velocity = DRAG * self._state[2:] + DT * (force + np.asarray(self._task.wind))
        position = self._state[:2] + DT * velocity
        self._state = np.concatenate([position, velocity])
        reward = -float(np.linalg.norm(position - GOAL)) - 0.01 * float(force @ force)
        return self._state.astype(np.float32), reward, False, False, {}


def main(out_dir: str = "runs", num_iterations: int = 5) -> None:
    """Train MAML-TRPO on the wind family for a few iterations through the Python API."""
    import agents  # (imported here: only needed to train)
    from metarl.config import TrainConfig
    from metarl.training.trainer import train

    cfg = TrainConfig(
        env_id="examples/WindPoint-v0",
        horizon=50,
        meta_batch_size=10,
        episodes_per_task=10,
        num_iterations=num_iterations,
        out_dir=out_dir,
        run_name="wind-point-api",
    )
    print(f"run folder: {train(cfg, agents.build_maml_trpo)}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
