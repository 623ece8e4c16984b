"""2D navigation to a random goal: the simplest task distribution of the MAML paper.

Two registered versions differ only in how an action becomes a displacement:

* ``metarl/Navigation2D-v0``: the action *is* the displacement, clipped to ±0.1 per
  axis (as in the widely used PyTorch port of MAML-RL);
* ``metarl/Navigation2D-v1``: actions live in ``[-1, 1]`` and move the point by
  ``0.1 * clip(a, -1, 1)`` — the MAML paper's own experiments, which wrapped the
  point env in rllab's action-normalising ``normalize``. A unit-variance Gaussian
  policy then explores on the scale of a step instead of ten times beyond it.

Versions (Gymnasium style): ``-v0`` came first; ``-v1`` changed only the action scale, as
above, and is what the ``2d-navigation`` preset trains on. Both render (``render_mode=
"rgb_array"``: the plane, the goal and the path, drawn with matplotlib) and declare
``metadata["reward_bounds"]`` (−inf, 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks.protocol import BatchedTaskEnv

GOAL_LOW, GOAL_HIGH = -0.5, 0.5
MAX_ACTION = 0.1
GOAL_RADIUS = 0.01


@dataclass(frozen=True)
class NavigationTask:
    """A 2D-navigation task: the goal position."""

    goal: tuple[float, float]


def sample_navigation_tasks(n: int, rng: np.random.Generator) -> list[NavigationTask]:
    """Draw ``n`` goals uniformly from ``[-0.5, 0.5]^2``."""
    goals = rng.uniform(GOAL_LOW, GOAL_HIGH, size=(n, 2))
    return [NavigationTask(goal=(float(x), float(y))) for x, y in goals]


def _check_task(task: Any) -> NavigationTask:
    if not isinstance(task, NavigationTask):
        raise TypeError(f"Navigation2D: expected a NavigationTask, got {type(task).__name__}")
    return task


def _observation_space() -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def _action_space(unit_actions: bool) -> gym.spaces.Box:
    bound = 1.0 if unit_actions else MAX_ACTION
    return gym.spaces.Box(-bound, bound, shape=(2,), dtype=np.float32)


def _displacement(action: np.ndarray, unit_actions: bool) -> np.ndarray:
    """The move an action makes: ``0.1 * clip(a, -1, 1)`` or ``clip(a, -0.1, 0.1)``."""
    if unit_actions:
        return MAX_ACTION * np.clip(action, -1.0, 1.0)
    return np.clip(action, -MAX_ACTION, MAX_ACTION)


def _move(position: np.ndarray, move: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for any leading batch shape: (new position, reward, terminated)."""
    position = position + move
    distance = np.sqrt(np.sum((position - goal) ** 2, axis=-1))
    return position, -distance, distance < GOAL_RADIUS


class Navigation2DEnv(gym.Env[np.ndarray, np.ndarray]):
    """A point agent in the plane moves towards a goal it cannot see.

    The agent starts at the origin; each task is a goal drawn uniformly from
    ``[-0.5, 0.5]^2``. The agent only learns where the goal is from the reward, so a
    policy has to adapt to each task from a few episodes.

    ## Action space

    ``Box(-0.1, 0.1, (2,), float32)``: the displacement in x and y. Actions outside
    the box are clipped. With ``unit_actions=True`` (``Navigation2D-v1``, the MAML
    paper's parametrisation): ``Box(-1, 1, (2,), float32)``, clipped to the box and
    scaled by 0.1 into the displacement.

    ## Observation space

    ``Box(-inf, inf, (2,), float32)``:

    | index | observation | unit |
    |-------|-------------|------|
    | 0     | x position  | m    |
    | 1     | y position  | m    |

    ## Rewards

    The negative Euclidean distance from the position after the step to the goal.

    ## Episode end

    * Termination: the agent is within 0.01 of the goal.
    * Truncation: after ``max_episode_steps`` (100 when made with ``gymnasium.make``).

    ## Tasks

    ``sample_tasks(n)`` returns ``n`` :class:`NavigationTask` drawn with the env's
    ``np_random``; ``set_task`` takes one, ``get_task`` returns the current one.

    ## Arguments

    ``task`` (the initial task; goal (0, 0) by default), ``unit_actions`` (see
    the action space; False for ``-v0``, True for ``-v1``), and ``render_mode``:
    ``"rgb_array"`` makes :meth:`render` return a ``width × height`` picture of the
    plane (matplotlib, no display): the goal region, the goal and the path so far.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "reward_bounds": (-np.inf, 0.0),  # minus a distance
    }

    def __init__(
        self,
        task: NavigationTask | None = None,
        unit_actions: bool = False,
        render_mode: str | None = None,
        width: int = 240,
        height: int = 240,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"Navigation2D: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.observation_space = _observation_space()
        self.action_space = _action_space(unit_actions)
        self.unit_actions = unit_actions
        self.render_mode = render_mode
        self._task = _check_task(task) if task is not None else NavigationTask(goal=(0.0, 0.0))
        self._goal = np.asarray(self._task.goal, dtype=np.float64)
        self._position = np.zeros(2)
        self._path = [self._position.copy()]
        self._size = (int(width), int(height))
        self._canvas: Any = None

    def sample_tasks(self, n: int) -> list[NavigationTask]:
        """Draw ``n`` tasks with the env's own generator."""
        return sample_navigation_tasks(n, self.np_random)

    def set_task(self, task: NavigationTask) -> None:
        """Make ``task`` the current task."""
        self._task = _check_task(task)
        self._goal = np.asarray(task.goal, dtype=np.float64)

    def get_task(self) -> NavigationTask:
        """Return the current task."""
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at the origin."""
        super().reset(seed=seed)
        self._position = np.zeros(2)
        self._path = [self._position.copy()]
        return self._position.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by the action (clipped), reward the negative distance to the goal; reaching it ends the episode."""
        move = _displacement(np.asarray(action, np.float64), self.unit_actions)
        self._position, reward, terminated = _move(self._position, move, self._goal)
        self._path.append(self._position.copy())
        return self._position.astype(np.float32), float(reward), bool(terminated), False, {}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """With ``render_mode="rgb_array"``: the plane as an ``[height, width, 3]`` uint8 array."""
        if self.render_mode != "rgb_array":
            return None
        if self._canvas is None:
            self._canvas = _NavigationCanvas(*self._size)
        return self._canvas.draw(np.asarray(self._path), self._goal)


class _NavigationCanvas:
    """One matplotlib figure reused for every frame (only the data changes)."""

    def __init__(self, width: int, height: int) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        dpi = 80
        self.figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        ax = self.figure.add_axes((0.02, 0.02, 0.96, 0.96))
        ax.add_patch(
            Rectangle(
                (GOAL_LOW, GOAL_LOW),
                GOAL_HIGH - GOAL_LOW,
                GOAL_HIGH - GOAL_LOW,
                facecolor="0.93",
                edgecolor="0.6",
                linewidth=0.8,
            )
        )
        ax.set_xlim(-0.75, 0.75)
        ax.set_ylim(-0.75, 0.75)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        (self.path,) = ax.plot([], [], color="tab:blue", linewidth=1.5)
        (self.agent,) = ax.plot([], [], "o", color="tab:blue", markersize=5)
        (self.goal,) = ax.plot([], [], "*", color="tab:red", markersize=12)
        ax.plot([0], [0], "+", color="0.3", markersize=8)

    def draw(self, path: np.ndarray, goal: np.ndarray) -> np.ndarray:
        self.path.set_data(path[:, 0], path[:, 1])
        self.agent.set_data(path[-1:, 0], path[-1:, 1])
        self.goal.set_data([goal[0]], [goal[1]])
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


class BatchedNavigation2D(BatchedTaskEnv[NavigationTask]):
    """``num_envs`` 2D-navigation sub-environments stepped in one numpy call."""

    def __init__(self, num_envs: int, max_episode_steps: int = 100, unit_actions: bool = False) -> None:
        super().__init__(num_envs, max_episode_steps)
        self._init_spaces(_observation_space(), _action_space(unit_actions))
        self.unit_actions = unit_actions
        self._positions = np.zeros((num_envs, 2))
        self._goals = np.zeros((num_envs, 2))

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[NavigationTask]:
        """Draw ``n`` tasks with ``rng``."""
        return sample_navigation_tasks(n, rng)

    def task_features(self, task: NavigationTask) -> np.ndarray:
        """The task as the oracle sees it: the goal ``(x, y)``."""
        return np.asarray(_check_task(task).goal, dtype=np.float32)

    def _apply_tasks(self, tasks: Sequence[NavigationTask]) -> None:
        self._goals = np.array([_check_task(t).goal for t in tasks], dtype=np.float64)

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        self._positions[indices] = 0.0
        return self._positions.astype(np.float32)

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        move = _displacement(actions.astype(np.float64), self.unit_actions)
        self._positions, reward, terminated = _move(self._positions, move, self._goals)
        return self._positions.astype(np.float32), reward, terminated, {}
