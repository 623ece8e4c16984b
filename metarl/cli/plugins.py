"""What the command line loads from installed packages: the task families and the agents.

The core never imports ``envs`` or ``agents`` (docs/architecture.md); the command line finds
them, as it would a package of yours, through entry-point groups declared in
``pyproject.toml``:

* ``metarl.task_families``: modules that register task environments when imported
  (:func:`metarl.tasks.registry.load_task_families`);
* ``metarl.agents``: a module (or object) with the functions of :class:`AgentsPlugin`,
  which builds learners and policies from a config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, Protocol, cast

import numpy as np

from metarl.config import TrainConfig
from metarl.sampling import Sampler
from metarl.sampling.episodes import Episodes
from metarl.tasks.protocol import BatchedTaskEnv
from metarl.tasks.registry import TaskEnvError, load_task_families
from metarl.training.run_state import MetaLearner

AGENTS_GROUP = "metarl.agents"
"""The entry-point group of the agents plugin."""

Adapter = Callable[[Any, Sampler, np.random.Generator, Sequence[float]], tuple[list[Episodes], list[Any]]]
"""``(policy, sampler, rng, lrs) -> (episodes before and after each inner step, parameters per step)``."""


class AgentsPlugin(Protocol):
    """What the command line needs of the agents: learners, policies and adaptation built from a config."""

    def build_learner(self, cfg: TrainConfig, env: BatchedTaskEnv) -> MetaLearner:
        """The meta-learner of ``cfg`` on ``env`` (for training)."""

    def observation_env(self, algorithm: str, env: BatchedTaskEnv) -> BatchedTaskEnv:
        """``env`` as ``algorithm``'s policy sees it (the oracle's observations carry the task)."""

    def policy_for(self, cfg: TrainConfig, env: BatchedTaskEnv) -> Any:
        """A fresh policy of ``cfg``'s architecture for ``env``."""

    def evaluation_adapter(self, cfg: TrainConfig) -> Adapter:
        """How an evaluation adapts ``cfg``'s policy: its inner step and advantages."""


def load_agents() -> AgentsPlugin:
    """The agents plugin an installed package declares under :data:`AGENTS_GROUP` (the shipped ``agents``).

    Loading it also loads the task families (:func:`load_task_families`).
    """
    load_task_families()
    entries = list(metadata.entry_points(group=AGENTS_GROUP))
    if not entries:
        raise TaskEnvError(
            f"no agents installed: no package declares the entry-point group {AGENTS_GROUP!r} "
            "(reinstall metarl: pip install -e .)"
        )
    return cast(AgentsPlugin, entries[0].load())


__all__ = ["AGENTS_GROUP", "Adapter", "AgentsPlugin", "load_agents", "load_task_families"]
