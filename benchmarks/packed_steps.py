"""The meta-update on packed valid steps vs the padded [H, T, E] layout, on one sampled batch.

    .venv/bin/python benchmarks/packed_steps.py [--config ant-dir] [--checkpoint CKPT] [--repeats 3]
        [--num_threads 1] [-- --meta_batch_size 10 --episodes_per_task 40 --step_budget true]

Samples one meta-batch (the preset's settings, overridden after ``--``), then runs the
MAML-TRPO meta-update from the same θ on it, alternately with the losses on each task's
valid steps only (``Episodes.packed``, what training does) and on every padded step
(episodes that ended early, the empty slots of a step-budget batch), ``--repeats`` times
after a warm-up round. Prints the steps each layout evaluates, the median seconds of
each, their ratio, and the largest difference between the two updates' new θ.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from learner_setup import build
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from agents.maml import AdaptationBatch
from metarl.system.memory import restart_with_tuned_malloc


def set_layout(batch: AdaptationBatch, padded: bool) -> None:
    """Make every episodes batch's losses run on all ``H·E`` steps per task, or on its valid steps."""
    for episodes in batch.episodes:
        episodes.__dict__.pop("valid_step_index", None)  # the cached packing
        if padded:
            steps = episodes.horizon * episodes.episodes_per_task
            episodes.__dict__["valid_step_index"] = torch.arange(steps).expand(episodes.num_tasks, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ant-dir")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint of the config's policy architecture")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("override", nargs="*", help="config overrides: --key value pairs after --")
    args = parser.parse_args()

    cfg, env, learner = build(args.config, args.override, args.num_threads, args.checkpoint)
    params = list(learner.policy.parameters())
    rng = np.random.default_rng(0)
    learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
    begin = time.perf_counter()
    batch = learner.sample(rng)
    sampled = time.perf_counter() - begin
    valid = sum(int(e.mask.sum()) for e in batch.episodes)
    padded_steps = sum(e.mask.numel() for e in batch.episodes)
    packed_steps = sum(e.valid_step_index.numel() for e in batch.episodes)
    print(
        f"config {args.config} {' '.join(args.override)}: {cfg.meta_batch_size} tasks x {cfg.episodes_per_task} "
        f"episodes, horizon {cfg.horizon}, step_budget {cfg.step_budget}; torch threads {args.num_threads}; "
        f"policy {args.checkpoint or 'fresh'}; sampled in {sampled:.1f} s"
    )
    print(
        f"steps the losses evaluate (all phases): valid {valid}, packed {packed_steps} "
        f"({valid / packed_steps:.1%} valid), padded {padded_steps} ({valid / padded_steps:.1%} valid)"
    )

    theta = parameters_to_vector(params).detach().clone()
    times: dict[str, list[float]] = {"packed": [], "padded": []}
    new_theta: dict[str, torch.Tensor] = {}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for layout in times:
            set_layout(batch, padded=layout == "padded")
            with torch.no_grad():
                vector_to_parameters(theta, params)
            start = time.perf_counter()
            learner.step(batch, np.random.default_rng(0))
            if repeat:
                times[layout].append(time.perf_counter() - start)
            new_theta[layout] = parameters_to_vector(params).detach().clone()
    median = {layout: statistics.median(t) for layout, t in times.items()}
    for layout, t in times.items():
        print(f"{layout}: {median[layout]:.2f} s per meta-update (runs: {', '.join(f'{x:.2f}' for x in t)})")
    difference = float((new_theta["packed"] - new_theta["padded"]).abs().max())
    print(
        f"ratio padded / packed: {median['padded'] / median['packed']:.2f}x; "
        f"largest |θ_packed − θ_padded| after the update: {difference:.2e} "
        f"(step norm {float((new_theta['packed'] - theta).norm()):.3e})"
    )
    env.close()


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
