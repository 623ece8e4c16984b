"""Step-budget sampling: what sharing a task's budget among fewer sub-environments costs and keeps.

    .venv/bin/python benchmarks/budget_lanes.py [--config ant-dir] [--tasks 10] [--lanes 0,10,4,1]
        [--episodes_per_task 40] [--checkpoint CKPT] [--repeats 3] [--threads 1]

Samples one phase (every task with its own parameters, as after adaptation) with
``--step_budget`` and each ``--budget_lanes`` value in turn, ``--repeats`` times after a
warm-up round, on ``--tasks`` tasks with a budget of ``episodes_per_task`` × horizon
steps each (default: the preset's; the MAML paper's Ant forward/backward run had
40 × 200). ``0`` is one sub-environment per episode; ``1`` one per task, the MAML paper
code's sampler. ``--checkpoint`` loads a trained policy (a fresh one's Ant episodes end
early, a trained one's later). Prints per setting the median seconds
per phase, the env steps the batch keeps (steps of dropped unfinished episodes are
simulated but not kept), episodes per task, and the ratios to ``--lanes``' first value.
MuJoCo and torch run on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import agents
import envs  # noqa: F401
from metarl.config import load_config
from metarl.runs.checkpoint import load_checkpoint
from metarl.sampling import Sampler, envs_per_task
from metarl.system.memory import restart_with_tuned_malloc
from metarl.tasks.build import make_batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ant-dir")
    parser.add_argument("--tasks", type=int, default=10, help="tasks per phase (default 10)")
    parser.add_argument("--episodes_per_task", type=int, default=None, help="default: the preset's")
    parser.add_argument("--lanes", default="0,10,4,1", help="budget_lanes values, the first is the reference")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint of the config's policy architecture")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    overrides = [] if args.episodes_per_task is None else ["--episodes_per_task", str(args.episodes_per_task)]
    cfg = load_config(args.config, overrides)
    lanes = [int(v) for v in args.lanes.split(",")]
    T, E, H = args.tasks, cfg.episodes_per_task, cfg.horizon
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = {**cfg.env_kwargs, "nthread": args.threads}
    lane_envs = {
        k: make_batched(cfg.env_id, T * envs_per_task(E, True, k), max_episode_steps=H, **kwargs) for k in lanes
    }
    policy = agents.policy_for(cfg, lane_envs[lanes[0]])  # one policy (and parameters) for every setting
    if args.checkpoint:
        policy.load_state_dict(load_checkpoint(args.checkpoint)["learner"]["policy"])
    samplers = {k: Sampler(env, policy, T, E, step_budget=True, budget_lanes=k) for k, env in lane_envs.items()}
    tasks = lane_envs[lanes[0]].sample_tasks(T, np.random.default_rng(0))
    params = {n: p.detach() for n, p in policy.task_params(T).items()}
    for sampler in samplers.values():
        sampler.set_tasks(tasks)
    print(
        f"{cfg.env_id}: {T} tasks x a budget of {E} x {H} steps; {args.threads} thread(s); "
        f"policy: {args.checkpoint or 'fresh'}"
    )

    times: dict[int, list[float]] = {k: [] for k in lanes}
    kept: dict[int, list[int]] = {k: [] for k in lanes}
    episodes: dict[int, list[float]] = {k: [] for k in lanes}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for k, sampler in samplers.items():
            begin = time.perf_counter()
            batch = sampler.sample(params, np.random.default_rng(repeat))
            if repeat:
                times[k].append(time.perf_counter() - begin)
                kept[k].append(batch.num_steps)
                episodes[k].append(float(batch.present.sum()) / T)
    budget = T * E * H
    ref = lanes[0]
    median = {k: statistics.median(times[k]) for k in lanes}
    steps = {k: statistics.median(kept[k]) for k in lanes}
    for k in lanes:
        print(
            f"budget_lanes {k:>3} ({envs_per_task(E, True, k):>3} sub-envs per task): "
            f"{median[k]:6.2f} s per phase, keeps {steps[k] / budget:5.1%} of the budget "
            f"({steps[k]:.0f} steps, {statistics.median(episodes[k]):.1f} episodes per task), "
            f"{steps[k] / median[k]:7.0f} kept steps/s  (runs: {', '.join(f'{t:.2f}' for t in times[k])})"
        )
    for k in lanes[1:]:
        rate = steps[k] / median[k] / (steps[ref] / median[ref])
        print(
            f"ratio budget_lanes {k} / {ref}: time {median[k] / median[ref]:.2f}x, kept steps "
            f"{steps[k] / steps[ref]:.2f}x, kept steps per second {rate:.2f}x"
        )
    for sampler in samplers.values():
        sampler.env.close()


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
