"""Does stepping two halves of a sampling phase on two threads hide the sampler's own work behind the physics?

    .venv/bin/python benchmarks/sampling_overlap.py [--config halfcheetah-vel] [--repeats 5]

One sampling phase of a MuJoCo preset (all its tasks × episodes), timed two ways,
alternating, ``--repeats`` times each:

* ``one batch``: the trainer's sampler — one ``mujoco.batch`` of every sub-environment
  on all cores, the policy forward and the episode bookkeeping in between;
* ``two threads``: the sub-environments cut into two shards (whole tasks), each with its
  own 1-thread ``mujoco.batch``, rolled out on two Python threads at once. A thread's
  physics releases the GIL, so one shard's policy forward and bookkeeping can run while
  the other shard's physics does.

Both give the same episodes (checked: the rollouts of shards are those of one batch).
Prints the medians and their ratio, and the raw ``mujoco.batch`` time of the same number
of env steps for scale.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch
from meta_iteration import physics_seconds

import agents
import envs  # noqa: F401
from metarl.config import load_config
from metarl.sampling.rollout import rollout
from metarl.sampling.shards import Shard, ShardEpisodes, assemble_episodes, split_shards
from metarl.system.memory import restart_with_tuned_malloc
from metarl.tasks.build import make_batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="halfcheetah-vel")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cfg = load_config(args.config, [])
    torch.set_num_threads(1)  # the sampler's policy forward runs on 1 torch thread
    torch.manual_seed(0)
    T, E, H = cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon
    env = make_batched(cfg.env_id, T * E, max_episode_steps=H, **cfg.env_kwargs)
    if not hasattr(env, "_batch"):
        raise SystemExit(f"{cfg.env_id} is not a mujoco.batch env: nothing to overlap")
    policy = agents.build_maml_trpo(cfg, env).policy
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    env.set_tasks([task for task in tasks for _ in range(E)])
    params = {n: p.detach().unsqueeze(0).expand(T, *p.shape).contiguous() for n, p in policy.named_parameters()}
    shards = [Shard(s.start * E, s.stop * E) for s in split_shards(T, 2)]  # whole tasks per shard
    halves = [make_batched(cfg.env_id, s.size, max_episode_steps=H, **{**cfg.env_kwargs, "nthread": 1}) for s in shards]
    for half, shard in zip(halves, shards, strict=True):
        half.set_tasks([tasks[index // E] for index in range(shard.start, shard.stop)])

    def one_batch(key: int):
        return assemble_episodes([rollout(env, policy, params, E, key)], T, E)

    def two_threads(key: int):
        parts: list[ShardEpisodes | None] = [None, None]

        def work(k: int) -> None:
            parts[k] = rollout(halves[k], policy, params, E, key, start=shards[k].start)

        other = threading.Thread(target=work, args=(1,))
        other.start()
        work(0)
        other.join()
        assert parts[0] is not None and parts[1] is not None
        return assemble_episodes([parts[0], parts[1]], T, E)

    a, b = one_batch(0), two_threads(0)
    same = all(torch.equal(getattr(a, n), getattr(b, n)) for n in ("observations", "actions", "rewards", "mask"))
    times: dict[str, list[float]] = {"one batch": [], "two threads": []}
    for key in range(1, args.repeats + 1):
        for name, fn in (("one batch", one_batch), ("two threads", two_threads)):
            start = time.perf_counter()
            fn(key)
            times[name].append(time.perf_counter() - start)
    raw = physics_seconds(env, T * E * H)
    one, two = (statistics.median(times[n]) for n in ("one batch", "two threads"))
    print(
        f"config {args.config}: one sampling phase of {T} tasks x {E} episodes x {H} steps, "
        f"median of {args.repeats}, alternating; episodes identical: {same}"
    )
    print(f"  one batch ({env.nthread} physics threads):      {one:.3f} s")  # type: ignore[attr-defined]
    print(f"  two shards on two threads (1 each): {two:.3f} s   (two / one: {two / one:.3f}x)")
    print(f"  raw mujoco.batch physics of as many env steps: {raw or 0.0:.3f} s")


if __name__ == "__main__":
    restart_with_tuned_malloc()
    main()
