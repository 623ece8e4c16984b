"""The task protocol: single task environments and natively batched ones.

A *task environment* is a Gymnasium env whose dynamics or reward depend on a task
drawn from a task distribution. It offers three methods on top of Gymnasium's API:

* ``sample_tasks(n)`` draws ``n`` tasks with the env's own ``self.np_random``;
* ``set_task(task)`` makes ``task`` the current one (it takes effect at the next reset
  at the latest);
* ``get_task()`` returns the current task.

Tasks are small frozen dataclasses or numpy arrays, never dicts.

A family whose per-step reward is bounded may say so in its single env class's
``metadata["reward_bounds"] = (low, high)`` (``±inf`` for an open side): figures then
never draw a confidence interval past the bound of an episode's return
(:func:`return_bounds`).

A *batched task environment* (:class:`BatchedTaskEnv`) steps ``num_envs``
sub-environments, each with its own task, in one call. It is a
:class:`gymnasium.vector.VectorEnv` with autoreset disabled: the sampler runs one
episode per sub-environment and resets them all at the start of every phase, so a
sub-environment whose episode has ended keeps being stepped and its outputs are
ignored (masked) by the sampler.
"""

from __future__ import annotations

import abc
import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space


class DataclassTask(Protocol):
    """A task that is a dataclass instance (frozen by convention): its fields are the task's parameters."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


Task: TypeAlias = DataclassTask | np.ndarray | float
"""A task: a frozen dataclass (what the shipped families use), a numpy array, or a number.

Never a dict (:func:`metarl.tasks.checks.check_tasks` refuses them): a task must compare and
serialise as one value, into checkpoints and results files
(:func:`metarl.evaluation.results.task_to_json`)."""

TaskT = TypeVar("TaskT", bound=Task)
"""The task type of one family (:class:`BatchedTaskEnv` ``[NavigationTask]`` and so on)."""

DIVERGED_INFO_KEY = "diverged"
"""Optional ``info`` entry of a step: a single env's bool, or a batched env's bool per
sub-environment, saying its physics became unstable this step; the sampler ends those
episodes and counts them like non-finite ones (:class:`metarl.tasks.vector.SyncBatchedTaskEnv`
passes a single env's flag on per sub-environment)."""

SUCCESS_INFO_KEY = "success"
"""Optional ``info`` entry of a step: a single env's truthy value, or a batched env's bool per
sub-environment, saying the task is solved at this step (Meta-World's ``info["success"]``). An
episode succeeds when any of its steps does; the sampler keeps the flags
(:attr:`metarl.sampling.episodes.Episodes.successes`) and evaluation reports success rates."""

REWARD_BOUNDS_KEY = "reward_bounds"
"""Key of an env class's ``metadata`` holding its per-step reward bounds ``(low, high)``."""


def return_bounds(metadata: Any, horizon: int) -> tuple[float, float]:
    """Bounds of an episode's (undiscounted) return of at most ``horizon`` steps.

    Args:
        metadata: An env class's ``metadata`` mapping; without ``reward_bounds`` the return is unbounded.
        horizon: The longest episode. An episode that ends early sums fewer rewards, so the bounds always include 0:
            ``[min(0, horizon·low), max(0, horizon·high)]``.
    """
    low, high = (dict(metadata or {})).get(REWARD_BOUNDS_KEY, (-np.inf, np.inf))
    return float(min(0.0, horizon * float(low))), float(max(0.0, horizon * float(high)))


@runtime_checkable
class TaskEnv(Protocol):
    """What a single task environment offers on top of :class:`gymnasium.Env`."""

    def sample_tasks(self, n: int) -> list[Task]:
        """Draw ``n`` tasks from the task distribution with ``self.np_random``."""

    def set_task(self, task: Task) -> None:
        """Make ``task`` the current task."""

    def get_task(self) -> Task:
        """Return the current task."""


HELDOUT_SAMPLER = "sample_heldout_tasks"
"""An optional method of a task env (single: ``(n)`` with ``np_random``; batched: ``(n, rng)``) that draws
from tasks the family holds out of training, such as a benchmark's test split (Meta-World's test
goals or test environments). Evaluation draws its held-out tasks from it when a family has it, and
otherwise from ``sample_tasks`` with the evaluation's own seed (:func:`heldout_sampler`)."""


TASK_GROUP = "task_group"
"""An optional method of a task env, ``task_group(task) -> str``: the group a task belongs to,
such as a Meta-World task's environment. Evaluation then reports returns and success rates per
group as well (:func:`task_groups`)."""


def task_groups(env: Any, tasks: Sequence[Task]) -> list[str]:
    """Each task's group by the env's :data:`TASK_GROUP` method, or ``[]`` if the env has none (or gives ``None``).

    Args:
        env: A batched (or single) task env.
        tasks: The tasks.
    """
    group = getattr(env, TASK_GROUP, None)
    groups = [group(task) for task in tasks] if callable(group) else []
    return [] if any(g is None for g in groups) else [str(g) for g in groups]


def heldout_sampler(env: Any) -> Any:
    """The sampler ``(n, rng) -> tasks`` of held-out tasks: the env's :data:`HELDOUT_SAMPLER`, or ``sample_tasks``.

    Args:
        env: A batched task env.
    """
    own = getattr(env, HELDOUT_SAMPLER, None)
    return own if callable(own) else env.sample_tasks


class EnvFaultError(RuntimeError):
    """A task environment's reset or step raised, or returned what its spaces and the protocol forbid.

    The message names the environment, and where it can, the sub-environment and its task.
    """


def check_batch(
    env_name: str, what: str, obs: Any, expected_obs: tuple[int, ...], reward: Any = None, terminated: Any = None
) -> None:
    """Raise :class:`EnvFaultError` unless a batched reset's or step's outputs have the shapes and kinds they must.

    Args:
        env_name: the environment, for the message.
        what: ``"reset"`` or ``"step"``.
        obs: the observations, expected a numeric array of shape ``expected_obs``.
        expected_obs: ``(num_envs, *observation shape)``.
        reward: the rewards (a step), a numeric array of shape ``(num_envs,)``.
        terminated: the termination flags (a step), shape ``(num_envs,)``.
    """
    if not isinstance(obs, np.ndarray) or obs.shape != expected_obs or not np.issubdtype(obs.dtype, np.number):
        shape = getattr(obs, "shape", None)
        kind = getattr(obs, "dtype", type(obs).__name__)
        raise EnvFaultError(
            f"{env_name}: {what} returned observations of shape {shape} ({kind}), expected a "
            f"numeric array of shape {expected_obs}"
        )
    if reward is not None:
        n = expected_obs[0]
        if not isinstance(reward, np.ndarray) or reward.shape != (n,) or not np.issubdtype(reward.dtype, np.number):
            shape = getattr(reward, "shape", None)
            raise EnvFaultError(
                f"{env_name}: {what} returned rewards of shape {shape}, expected one number per "
                f"sub-environment, shape ({n},)"
            )
        if np.shape(terminated) != (n,):
            raise EnvFaultError(
                f"{env_name}: {what} returned termination flags of shape {np.shape(terminated)}, expected ({n},)"
            )


@contextlib.contextmanager
def _time_limit(seconds: float, env_name: str) -> Iterator[None]:
    """Raise :class:`EnvFaultError` in the block if it runs longer than ``seconds`` (0: no limit, or off the main
    thread, where no signal can reach it).
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise EnvFaultError(f"{env_name}: a step did not return within step_timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class BatchedTaskEnv(gym.vector.VectorEnv, abc.ABC, Generic[TaskT]):
    """``num_envs`` sub-environments, each with its own task, stepped in one call.

    Subclasses set ``single_observation_space`` and ``single_action_space`` and
    implement :meth:`sample_tasks`, :meth:`_apply_tasks`, :meth:`_reset_subenvs` and
    :meth:`_step_all`. This base class keeps the tasks, counts elapsed steps and
    reports truncation at ``max_episode_steps``, kept apart from termination.

    ``reset(seed=...)`` takes one int (sub-environment ``i`` gets ``seed + i``) or a
    list of per-sub-environment seeds; ``options={"reset_mask": mask}`` resets only
    the sub-environments where ``mask`` is true, leaving the others untouched.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.DISABLED}
    step_timeout: float = 0.0
    """Seconds a call of :meth:`step` may take (0: no limit); beyond it the step raises :class:`EnvFaultError`.
    Enforced with ``SIGALRM`` in the main thread, so a step stuck in Python code is stopped."""

    def __init__(self, num_envs: int, max_episode_steps: int) -> None:
        if num_envs <= 0:
            raise ValueError(f"{type(self).__name__}: num_envs must be positive, got {num_envs}")
        if max_episode_steps <= 0:
            raise ValueError(f"{type(self).__name__}: max_episode_steps must be positive, got {max_episode_steps}")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self._tasks: list[TaskT] | None = None
        self._elapsed = np.zeros(num_envs, dtype=np.int64)

    def _init_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Set the single and batched spaces (call from the subclass constructor)."""
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)

    # -- task API --------------------------------------------------------------------
    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[TaskT]:
        """Draw ``n`` tasks of this family with the generator ``rng``."""

    def set_tasks(self, tasks: Sequence[TaskT]) -> None:
        """Give sub-environment ``i`` the task ``tasks[i]``; takes effect now."""
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(
                f"{type(self).__name__}.set_tasks: got {len(tasks)} tasks for {self.num_envs} sub-environments"
            )
        self._apply_tasks(tasks)
        self._tasks = tasks

    def get_tasks(self) -> list[TaskT]:
        """The task of every sub-environment."""
        if self._tasks is None:
            raise RuntimeError(f"{type(self).__name__}: no tasks set; call set_tasks first")
        return list(self._tasks)

    @abc.abstractmethod
    def _apply_tasks(self, tasks: list[TaskT]) -> None:
        """Store the tasks in the arrays the step uses."""

    # -- stepping --------------------------------------------------------------------
    @abc.abstractmethod
    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        """Reset the sub-environments ``indices`` (with one seed each); return all observations."""

    @abc.abstractmethod
    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every sub-environment; return ``(obs, reward, terminated, info)``."""

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all (or the masked) sub-environments; return ``(obs, info)``."""
        if self._tasks is None:
            raise RuntimeError(f"{type(self).__name__}: call set_tasks before reset")
        mask = None if options is None else options.get("reset_mask")
        indices = np.arange(self.num_envs) if mask is None else np.flatnonzero(np.asarray(mask, bool))
        if seed is None:
            seeds: list[int | None] = [None] * len(indices)
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + int(i) for i in indices]
        else:
            all_seeds = list(seed)
            if len(all_seeds) != self.num_envs:
                raise ValueError(
                    f"{type(self).__name__}.reset: got {len(all_seeds)} seeds for {self.num_envs} sub-environments"
                )
            seeds = [all_seeds[i] for i in indices]
        obs = self._reset_subenvs(indices, seeds)
        check_batch(type(self).__name__, "reset", obs, self.observation_space.shape or ())
        self._elapsed[indices] = 0
        return obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with ``actions`` of shape ``(num_envs, ...)``."""
        actions = np.asarray(actions)
        expected = self.action_space.shape
        if expected is not None and actions.shape != expected:
            raise ValueError(f"{type(self).__name__}.step: actions have shape {actions.shape}, expected {expected}")
        with _time_limit(self.step_timeout, type(self).__name__):
            obs, reward, terminated, info = self._step_all(actions)
        check_batch(type(self).__name__, "step", obs, self.observation_space.shape or (), reward, terminated)
        self._elapsed += 1
        truncated = (self._elapsed >= self.max_episode_steps) & ~terminated
        return obs, reward, terminated, truncated, info
