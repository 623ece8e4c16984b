"""Task-distribution environments, registered with Gymnasium on import.

>>> import gymnasium as gym, envs
>>> env = gym.make("metarl/Navigation2D-v0")
"""

from envs import bandits as bandits  # registers metarl/Bandit-K{5,10,50}-N{10,100,500}-v0
from envs import locomotion as locomotion  # registers the HalfCheetah and Ant ids
from envs import meta_world as meta_world  # registers metarl/ML1-v3, ML10-v3, ML45-v3 when metaworld is installed
from envs import tabular_mdp as tabular_mdp  # registers metarl/TabularMDP-v0
from envs.navigation import BatchedNavigation2D, Navigation2DEnv, NavigationTask
from metarl.tasks.registry import register_task_env

register_task_env(
    "metarl/Navigation2D-v0",
    entry_point="envs.navigation:Navigation2DEnv",
    batched_entry_point="envs.navigation:BatchedNavigation2D",
    max_episode_steps=100,
)
register_task_env(  # the MAML paper's action scale: actions in [-1, 1], moves of 0.1 * a
    "metarl/Navigation2D-v1",
    entry_point="envs.navigation:Navigation2DEnv",
    batched_entry_point="envs.navigation:BatchedNavigation2D",
    max_episode_steps=100,
    kwargs={"unit_actions": True},
)

__all__ = ["BatchedNavigation2D", "Navigation2DEnv", "NavigationTask"]
