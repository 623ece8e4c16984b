"""Sampling throughput: the local sampler versus the Ray sampler, in one run on this machine.

    .venv/bin/python benchmarks/ray_sampling.py [--config halfcheetah-vel] [--num_workers 2] [--repeats 3]

Without a ``halfcheetah-vel`` preset, uses its settings: HalfCheetahVel, 40 tasks × 20
episodes × 200 steps, a (100, 100) policy. Samples one phase (every task with its own
parameters, as after adaptation) with each backend, in turn, ``--repeats`` times after
a warm-up round: the local sampler as the trainer runs it (``num_threads`` torch
threads, MuJoCo on all CPUs) and with one thread of each, and the Ray sampler
(``--num_workers`` workers, one CPU each). Checks that all give exactly the same
episodes; prints medians, the ratios, where a Ray phase's time goes (rollouts inside
the workers versus the rest: object store, transfer, assembly) and the bytes moved per
phase. With ``--update``, also times one local iteration (sampling and meta-update) with
each thread setting: the learner's share of an iteration. Starts a local Ray instance
with ``--num_workers`` CPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import statistics
import time

import numpy as np
import ray
import torch

import agents
import envs  # noqa: F401
from metarl.config import ConfigError, load_config
from metarl.sampling import Sampler
from metarl.sampling.ray_sampler import RaySampler, ShardEnvFactory
from metarl.system.memory import restart_with_tuned_malloc
from metarl.tasks.build import make_batched

HALFCHEETAH_VEL = [
    "--env_id",
    "metarl/HalfCheetahVel-v0",
    "--meta_batch_size",
    "40",
    "--episodes_per_task",
    "20",
    "--horizon",
    "200",
    "--hidden_sizes",
    "100,100",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="halfcheetah-vel")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--worker_nthread",
        type=int,
        default=1,
        help="MuJoCo threads per worker env (env_kwargs nthread; 1 = one CPU per worker)",
    )
    parser.add_argument("--update", action="store_true", help="also time one meta-update")
    args = parser.parse_args()

    try:
        cfg = load_config(args.config, [])
    except ConfigError:
        print(f"(no preset {args.config!r}: using its settings as overrides: {' '.join(HALFCHEETAH_VEL)})")
        cfg = load_config(None, HALFCHEETAH_VEL)
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(0)
    T, E, H = cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon
    env = make_batched(cfg.env_id, T * E, max_episode_steps=H, **cfg.env_kwargs)
    policy = agents.policy_for(cfg, env)
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    params = {n: p.detach() + 0.05 * torch.randn(T, *p.shape[1:]) for n, p in policy.task_params(T).items()}
    print(
        f"{cfg.env_id}: {T} tasks x {E} episodes x {H} steps = {T * E * H} env steps per phase; "
        f"torch threads {cfg.num_threads}, local MuJoCo threads {getattr(env, 'nthread', '-')}"
    )

    # local as the trainer runs it (torch: cfg.num_threads, MuJoCo: all CPUs), and with one thread of each
    env_1 = make_batched(cfg.env_id, T * E, max_episode_steps=H, **{**cfg.env_kwargs, "nthread": 1})
    backends: dict[str, tuple[Sampler, int]] = {
        f"local ({cfg.num_threads} torch threads)": (Sampler(env, policy, T, E), cfg.num_threads),
        "local (1 thread)": (Sampler(env_1, policy, T, E), 1),
    }
    ray.init(num_cpus=args.num_workers, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    factory = dataclasses.replace(
        ShardEnvFactory.for_config(cfg, env), env_kwargs={**cfg.env_kwargs, "nthread": args.worker_nthread}
    )
    remote = RaySampler(env, policy, T, E, env_factory=factory, num_workers=args.num_workers)
    start_up = time.perf_counter() - started
    backends[f"ray ({args.num_workers} workers)"] = (remote, cfg.num_threads)
    for sampler, _ in backends.values():
        sampler.set_tasks(tasks)

    times: dict[str, list[float]] = {name: [] for name in backends}
    inside: list[float] = []
    for repeat in range(args.repeats + 1):  # the first round warms up
        results = {}
        for name, (sampler, threads) in backends.items():
            torch.set_num_threads(threads)
            begin = time.perf_counter()
            results[name] = sampler.sample(params, np.random.default_rng(repeat))
            if repeat:
                times[name].append(time.perf_counter() - begin)
        if repeat:
            inside.append(max(remote.stats.last_worker_seconds))
        reference = next(iter(results.values()))
        for episodes in results.values():
            for field in ("observations", "actions", "rewards", "mask"):
                assert torch.equal(getattr(reference, field), getattr(episodes, field)), field
    torch.set_num_threads(cfg.num_threads)
    steps = reference.num_steps
    episodes_bytes = sum(
        getattr(reference, f).numel() * getattr(reference, f).element_size()
        for f in ("observations", "actions", "rewards", "mask", "final_observations")
    )
    params_bytes = len(pickle.dumps(params))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    worker = statistics.median(inside)
    ray_name = list(backends)[-1]

    print(f"same episodes from every backend: yes ({steps} env steps per phase)")
    print(f"Ray start-up ({args.num_workers} workers, each building its env): {start_up:.1f} s")
    for name in backends:
        print(
            f"{name:>26}: {median[name]:6.2f} s per phase  {steps / median[name]:7.0f} env steps/s  "
            f"(runs: {', '.join(f'{t:.2f}' for t in times[name])})"
        )
    for name in list(backends)[:-1]:
        print(f"ratio {ray_name} / {name}: {median[name] / median[ray_name]:.2f}x throughput")
    print(
        f"ray phase: {worker:.2f} s slowest worker's rollout, {median[ray_name] - worker:.2f} s the rest "
        f"(put params, transfer, assembly; {(median[ray_name] - worker) / median[ray_name]:.0%})"
    )
    print(f"per phase: parameters {params_bytes / 1e6:.1f} MB out (once), episodes {episodes_bytes / 1e6:.1f} MB back")
    remote.close()
    ray.shutdown()
    if args.update:
        for threads in sorted({cfg.num_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            learner = agents.build_maml_trpo(cfg, env_1 if threads == 1 else env)
            learner.sampler.set_tasks(tasks)
            rng = np.random.default_rng(0)
            begin = time.perf_counter()
            batch = learner.sample(rng)
            sampled = time.perf_counter()
            learner.step(batch, rng)
            done = time.perf_counter()
            print(
                f"one iteration, local, {threads} torch thread(s): sampling {sampled - begin:.1f} s "
                f"({len(batch.episodes)} phases, with advantages and the inner step), "
                f"meta-update {done - sampled:.1f} s"
            )
    env_1.close()


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
