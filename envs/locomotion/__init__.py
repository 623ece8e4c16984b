"""Locomotion task families on MuJoCo (HalfCheetah and Ant), registered on import.

| id                           | single env          | batched env             |
|------------------------------|---------------------|-------------------------|
| ``metarl/HalfCheetahVel-v0`` | HalfCheetahVelEnv   | BatchedHalfCheetahVel   |
| ``metarl/HalfCheetahDir-v0`` | HalfCheetahDirEnv   | BatchedHalfCheetahDir   |
| ``metarl/AntVel-v0``         | AntVelEnv           | BatchedAntVel           |
| ``metarl/AntDir-v0``         | AntDirEnv           | BatchedAntDir           |
| ``metarl/AntGoal-v0``        | AntGoalEnv          | BatchedAntGoal          |
| ``-v1`` of each of them      | the same classes with ``paper_dynamics=True``  |

Every id also comes as ``-v1`` (``paper_dynamics=True``): the MAML paper's simulation,
for the Ant a 0.02 s control step from a crouched start (see :mod:`envs.locomotion.ant`),
for HalfCheetah a 0.01 s control step (see :mod:`envs.locomotion.half_cheetah`).

>>> import gymnasium as gym, envs
>>> env = gym.make("metarl/HalfCheetahVel-v0")
>>> from metarl.tasks.build import make_batched
>>> batched = make_batched("metarl/AntDir-v0", num_envs=800)

The environment classes live in :mod:`envs.locomotion.half_cheetah` and
:mod:`envs.locomotion.ant`, which import Gymnasium's MuJoCo environments (they need
``gymnasium[mujoco]``); they are imported here only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.locomotion.tasks import DirectionTask, GoalTask, VelocityTask
from metarl.tasks.registry import register_task_env

HORIZON = 200
"""Default episode length (the MAML paper's)."""

_ENVS = {
    "HalfCheetahVel": "envs.locomotion.half_cheetah",
    "HalfCheetahDir": "envs.locomotion.half_cheetah",
    "AntVel": "envs.locomotion.ant",
    "AntDir": "envs.locomotion.ant",
    "AntGoal": "envs.locomotion.ant",
}

for _name, _module in _ENVS.items():
    register_task_env(
        f"metarl/{_name}-v0",
        entry_point=f"{_module}:{_name}Env",
        batched_entry_point=f"{_module}:Batched{_name}",
        max_episode_steps=HORIZON,
    )
    register_task_env(  # the MAML paper's simulation: one physics step per control step
        f"metarl/{_name}-v1",
        entry_point=f"{_module}:{_name}Env",
        batched_entry_point=f"{_module}:Batched{_name}",
        max_episode_steps=HORIZON,
        kwargs={"paper_dynamics": True},
    )

_EXPORTS = {f"{name}Env": module for name, module in _ENVS.items()}
_EXPORTS.update({f"Batched{name}": module for name, module in _ENVS.items()})


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DirectionTask", "GoalTask", "HORIZON", "VelocityTask", *sorted(_EXPORTS)]
