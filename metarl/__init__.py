"""metarl: meta-reinforcement learning on task distributions (the shared core)."""

from metarl.registry import (
    TaskEnvError,
    check_env_id,
    check_task_env,
    import_env_modules,
    make_batched,
    register_task_env,
    task_env_ids,
    unregister_task_env,
)
from metarl.tasks import BatchedTaskEnv, Task, TaskEnv
from metarl.vector import SyncBatchedTaskEnv

__all__ = [
    "BatchedTaskEnv",
    "SyncBatchedTaskEnv",
    "Task",
    "TaskEnv",
    "TaskEnvError",
    "check_env_id",
    "check_task_env",
    "import_env_modules",
    "make_batched",
    "register_task_env",
    "task_env_ids",
    "unregister_task_env",
]
