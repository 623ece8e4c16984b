"""Meta-World task distributions (``pip install -e ".[metaworld]"``, see docs/meta-world.md).

| id                    | tasks                                                       |
|-----------------------|-------------------------------------------------------------|
| ``metarl/ML1-v3``     | one environment's goal positions (``env_name="push-v3"``)   |
| ``metarl/ML10-v3``    | 10 training environments, 5 held-out ones                   |
| ``metarl/ML45-v3``    | 45 training environments, 5 held-out ones                   |

``split="train"`` (default) or ``"test"`` chooses the benchmark's task set. The ids are
registered only when metaworld is installed; nothing else in metarl imports this package.
"""

from __future__ import annotations

import importlib.util

from metarl.tasks.registry import register_task_env

HORIZON = 500
"""metaworld's episode length (``max_path_length``)."""

AVAILABLE = importlib.util.find_spec("metaworld") is not None
"""Whether metaworld is installed (the ids are registered only then)."""

if AVAILABLE:
    for _benchmark in ("ML1", "ML10", "ML45"):
        register_task_env(
            f"metarl/{_benchmark}-v3",
            entry_point="envs.meta_world.family:MetaWorldTaskEnv",
            max_episode_steps=HORIZON,
            kwargs={"benchmark": _benchmark, **({} if _benchmark == "ML1" else {"env_name": None})},
        )
