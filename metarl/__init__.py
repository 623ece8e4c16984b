"""metarl: meta-reinforcement learning on task distributions (the shared core)."""

from metarl.tasks.build import check_task_env, make_batched
from metarl.tasks.protocol import BatchedTaskEnv, Task, TaskEnv
from metarl.tasks.registry import TaskEnvError, register_task_env, task_env_ids, unregister_task_env
from metarl.tasks.resolve import check_env_id, import_env_modules
from metarl.tasks.vector import SyncBatchedTaskEnv

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
