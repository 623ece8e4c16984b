"""metarl: meta-reinforcement learning on task distributions (the shared core)."""

from metarl.registry import check_env_id, make_batched, register_task_env, task_env_ids
from metarl.tasks import BatchedTaskEnv, Task, TaskEnv

__all__ = [
    "BatchedTaskEnv",
    "Task",
    "TaskEnv",
    "check_env_id",
    "make_batched",
    "register_task_env",
    "task_env_ids",
]
