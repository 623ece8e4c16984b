"""Does a subsampled Fisher-vector product change the MAML-TRPO meta-update? Same batch, several fractions.

    .venv/bin/python benchmarks/fvp_task_fraction.py [--config halfcheetah-vel] [--fractions 1.0 0.25 0.1] [--batches 2]
        [--checkpoint CKPT] [-- config overrides]

For each of ``--batches`` sampled meta-batches (the preset's size unless overridden after
``--``), runs the meta-update from the same θ with each ``fvp_task_fraction`` fraction and
prints its seconds, the surrogate-loss improvement and KL after the line search, and the
cosine between its step and the step with all tasks (the first fraction).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from learner_setup import build
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from metarl.system.memory import restart_with_tuned_malloc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="halfcheetah-vel")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.25, 0.1])
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="start from this checkpoint's θ (the config's architecture)")
    parser.add_argument("override", nargs="*", help="config overrides: --key value pairs after --")
    args = parser.parse_args()

    cfg, env, learner = build(args.config, args.override, args.num_threads, args.checkpoint)
    params = list(learner.policy.parameters())
    rng = np.random.default_rng(0)
    print(
        f"config {args.config} {' '.join(args.override)}: {cfg.meta_batch_size} tasks x {cfg.episodes_per_task} "
        f"episodes, horizon {cfg.horizon}; torch threads {args.num_threads}"
    )
    print("batch  fvp_task_fraction  update_s  loss_improvement  kl_after  step_fraction  cos(step, step_all)")
    for b in range(args.batches):
        learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
        batch = learner.sample(rng)
        theta = parameters_to_vector(params).detach().clone()
        reference: torch.Tensor | None = None
        for fraction in args.fractions:
            learner.settings = dataclasses.replace(learner.settings, fvp_task_fraction=fraction)
            start = time.perf_counter()
            metrics = learner.step(batch, np.random.default_rng(b))
            seconds = time.perf_counter() - start
            step = parameters_to_vector(params).detach() - theta
            reference = step if reference is None else reference
            cos = float(step.dot(reference) / (step.norm() * reference.norm()).clamp(min=1e-30))
            print(
                f"{b:5d}  {fraction:13.2f}  {seconds:8.2f}  {metrics['loss_before'] - metrics['loss_after']:16.5f}"
                f"  {metrics['kl_after']:8.5f}  {metrics['step_fraction']:13.3f}  {cos:19.3f}",
                flush=True,
            )
            with torch.no_grad():
                vector_to_parameters(theta, params)
        assert reference is not None
        with torch.no_grad():  # move on from the first fraction's step, as training would
            vector_to_parameters(theta + reference, params)


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
