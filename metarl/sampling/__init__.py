"""Sampling: roll a policy out on every (task, episode) pair of an iteration at once.

One job per module:

* :mod:`~metarl.sampling.settings`: how many tasks, episodes and sub-environments a phase has;
* :mod:`~metarl.sampling.streams`: per-episode random streams (reset seeds, action noise);
* :mod:`~metarl.sampling.shards`: contiguous shards of the sub-environments, and joining
  their episodes into one batch;
* :mod:`~metarl.sampling.rollout`: the batched step loop over one shard;
* :mod:`~metarl.sampling.collectors`: what the loop keeps — plain episodes, or a step budget's;
* :mod:`~metarl.sampling.local`: the local :class:`Sampler`, one batched env in this process;
* :mod:`~metarl.sampling.ray_sampler`: the Ray backend, one shard per actor (the ``ray`` extra);
  :mod:`~metarl.sampling.ray_workers` is what runs inside an actor, :mod:`~metarl.sampling.ray_cluster`
  joins the cluster.

The same seed gives exactly the same episodes with either backend and any number of workers.
"""

from metarl.sampling.local import Sampler, torch_threads
from metarl.sampling.rollout import PolicyLike, rollout
from metarl.sampling.settings import SamplingSettings, envs_per_task
from metarl.sampling.shards import Shard, ShardEpisodes, assemble_episodes, split_shards
from metarl.sampling.streams import draw_phase_key, episode_stream

__all__ = [
    "PolicyLike",
    "Sampler",
    "SamplingSettings",
    "Shard",
    "ShardEpisodes",
    "assemble_episodes",
    "draw_phase_key",
    "envs_per_task",
    "episode_stream",
    "rollout",
    "split_shards",
    "torch_threads",
]
