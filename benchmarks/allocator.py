"""The meta-update with glibc malloc's defaults versus the tuned settings of :mod:`metarl.system.memory`.

    .venv/bin/python benchmarks/allocator.py [--config halfcheetah-vel] [--rounds 3] [--num_threads 2]

Each measurement runs in its own process (glibc reads the settings at start-up), the two
settings alternating for ``--rounds`` rounds. A process samples a seeded batch of the
preset three times (the same episodes in every process; median of the last two), then
times the meta-update on it (median of 3 after a warm-up, θ restored before each).
Prints the medians over rounds and the ratios default / tuned measured in this one run.
(Page faults per op are asserted in tests/metarl/test_memory.py.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from metarl.system.memory import TUNED_MALLOC_ENV


def measure(config: str, num_threads: int) -> dict[str, float]:
    """Time sampling and the meta-update in this process, with its malloc settings."""
    import numpy as np
    import torch
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    import agents
    import envs  # noqa: F401  (registers the ids)
    from metarl.config import load_config
    from metarl.tasks.build import make_batched

    torch.set_num_threads(num_threads)
    torch.manual_seed(0)
    cfg = load_config(config, [])
    env = make_batched(
        cfg.env_id, cfg.meta_batch_size * cfg.episodes_per_task, max_episode_steps=cfg.horizon, **cfg.env_kwargs
    )
    learner = agents.build_maml_trpo(cfg, env)
    rng = np.random.default_rng(0)
    learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
    sampling = []
    for _ in range(3):  # the first a warm-up; same parameters, fresh episodes
        start = time.perf_counter()
        batch = learner.sample(rng)
        sampling.append(time.perf_counter() - start)
    params = list(learner.policy.parameters())
    theta = parameters_to_vector(params).detach().clone()
    times = []
    for _ in range(4):
        vector_to_parameters(theta, params)
        start = time.perf_counter()
        learner.step(batch, np.random.default_rng(0))
        times.append(time.perf_counter() - start)

    return {"update": statistics.median(times[1:]), "sampling": statistics.median(sampling[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="halfcheetah-vel")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.config, args.num_threads)))
        return

    results: dict[str, list[dict[str, float]]] = {"default": [], "keep": []}
    for _ in range(args.rounds):
        for setting in ("default", "keep"):
            env = {n: v for n, v in os.environ.items() if n not in TUNED_MALLOC_ENV}
            if setting == "keep":
                env.update(TUNED_MALLOC_ENV)
            out = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--config",
                    args.config,
                    "--num_threads",
                    str(args.num_threads),
                    "--child",
                    setting,
                ],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1]))

    def med(setting: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setting])

    print(f"config {args.config}, {args.num_threads} torch threads, {args.rounds} rounds (medians)")
    for setting in ("default", "keep"):
        print(
            f"  {setting}: sampling per round {[round(r['sampling'], 2) for r in results[setting]]}, "
            f"meta-update {[round(r['update'], 2) for r in results[setting]]}"
        )
    print("malloc                        sampling s   meta-update s")
    for setting, name in (("default", "glibc default"), ("keep", "tuned (keeps freed memory)")):
        print(f"{name:<30}{med(setting, 'sampling'):>10.2f}{med(setting, 'update'):>16.2f}")
    print(
        f"default / tuned: sampling {med('default', 'sampling') / med('keep', 'sampling'):.2f}x, "
        f"meta-update {med('default', 'update') / med('keep', 'update'):.2f}x"
    )


if __name__ == "__main__":
    main()
