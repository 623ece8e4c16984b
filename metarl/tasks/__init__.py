"""Task distributions as Gymnasium environments: the protocol, its checks, the registry and the batched fallback.

:mod:`~metarl.tasks.protocol` (what a task environment is, single and batched),
:mod:`~metarl.tasks.checks` (does an env keep the protocol), :mod:`~metarl.tasks.registry`
(registering ids, resolving ``module:Id``, building batched envs), :mod:`~metarl.tasks.vector`
(``N`` single envs stepped in a loop), :mod:`~metarl.tasks.env_check` (``metarl check-env``),
:mod:`~metarl.tasks.oracle` (observations with the task's features, for the oracle baseline).
"""

from metarl.tasks.protocol import (
    DIVERGED_INFO_KEY,
    REWARD_BOUNDS_KEY,
    BatchedTaskEnv,
    EnvFaultError,
    Task,
    TaskEnv,
    check_batch,
    return_bounds,
)

__all__ = [
    "DIVERGED_INFO_KEY",
    "REWARD_BOUNDS_KEY",
    "BatchedTaskEnv",
    "EnvFaultError",
    "Task",
    "TaskEnv",
    "check_batch",
    "return_bounds",
]
