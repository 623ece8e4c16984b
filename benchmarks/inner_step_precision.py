"""What an inner step (adaptation) costs, and how far it moves, with its gradient in fp32 by autograd or in bf16.

    .venv/bin/python benchmarks/inner_step_precision.py [--config halfcheetah-vel] [--repeats 7]

The inner step is ``θ' = θ − α ∇L_inner(θ)`` on every step of a task's episodes; the
sampler takes it once per iteration and the line search once per candidate. This times,
on one sampled phase of the preset, alternating, ``--repeats`` times each:

* ``fp32 autograd``: ``adaptation_precision: fp32`` (:func:`agents.maml.autograd_step`);
* ``bf16 written out``: ``adaptation_precision: bf16`` as the line search takes it
  (:class:`agents.written_out_step.WrittenOutStep`: the MLP's forward and reverse passes
  written out in bf16, the head in fp32);
* ``bf16 + Hessian``: the same step as the sampler takes it with bf16 products, building
  the inner loop's Hessian for the meta-gradient on the way (the same numbers);
* ``bf16 autograd``: autograd through the policy's MLP with its matmuls in bf16 and
  everything between them in fp32 (an alternative, not used by training);

and prints, per parameter, the relative error of each bf16 step against the fp32 one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

import agents
import envs  # noqa: F401
from agents.maml import Transitions, transitions_inner_step
from agents.policies import Params, Policy
from agents.written_out_step import WrittenOutStep
from metarl.config import load_config
from metarl.system.memory import restart_with_tuned_malloc
from metarl.tasks.build import make_batched


def fp32_step(policy: Policy, steps: Transitions, num_tasks: int, lr: float) -> Params:
    params = {n: p.detach().requires_grad_(True) for n, p in policy.task_params(num_tasks).items()}
    with torch.enable_grad():
        stepped = transitions_inner_step(policy, params, steps, lr, create_graph=False)
    return {n: p.detach() for n, p in stepped.items()}


def bf16_written_out_step(policy: Policy, steps: Transitions, num_tasks: int, lr: float) -> Params:
    return WrittenOutStep("reinforce", torch.bfloat16)(policy, policy.task_params(num_tasks), steps, lr)[0]


def bf16_kept_hessian_step(policy: Policy, steps: Transitions, num_tasks: int, lr: float) -> Params:
    step = WrittenOutStep("reinforce", torch.bfloat16, keep_hessian=True)
    return step(policy, policy.task_params(num_tasks), steps, lr)[0]


def bf16_autograd_step(policy: Policy, steps: Transitions, num_tasks: int, lr: float) -> Params:
    original = policy._mlp
    bf16 = torch.bfloat16

    def mlp(obs: Tensor, params) -> Tensor:
        lead = obs.shape[:-1]
        x = obs.reshape(lead[0], -1, obs.shape[-1]).to(bf16)
        for i in range(policy.num_layers):
            z = torch.baddbmm(params[f"b{i}"].to(bf16).unsqueeze(1), x, params[f"w{i}"].to(bf16)).float()
            x = policy._act(z).to(bf16) if i < policy.num_layers - 1 else z
        return x.reshape(*lead, x.shape[-1])

    policy._mlp = mlp  # type: ignore[method-assign]
    try:
        return fp32_step(policy, steps, num_tasks, lr)
    finally:
        policy._mlp = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="halfcheetah-vel")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    cfg = load_config(args.config, [])
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(0)
    env = make_batched(
        cfg.env_id, cfg.meta_batch_size * cfg.episodes_per_task, max_episode_steps=cfg.horizon, **cfg.env_kwargs
    )
    learner = agents.build_maml_trpo(cfg, env)
    rng = np.random.default_rng(0)
    learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
    batch = learner.sample(rng)
    steps = Transitions.of(batch.episodes[0], batch.advantages[0])
    T, lr, policy = cfg.meta_batch_size, cfg.fast_lr, learner.policy
    ways: dict[str, Callable[[], Params]] = {
        "fp32 autograd": lambda: fp32_step(policy, steps, T, lr),
        "bf16 written out": lambda: bf16_written_out_step(policy, steps, T, lr),
        "bf16 + Hessian": lambda: bf16_kept_hessian_step(policy, steps, T, lr),
        "bf16 autograd": lambda: bf16_autograd_step(policy, steps, T, lr),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Params] = {}
    for _ in range(args.repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            results[name] = way()
            times[name].append(time.perf_counter() - start)
    theta = {n: p.detach() for n, p in policy.task_params(T).items()}
    fp32 = statistics.median(times["fp32 autograd"])
    print(
        f"config {args.config}: one inner step on {int(steps.mask.sum()):,} steps of {T} tasks, "
        f"{torch.get_num_threads()} torch threads, median of {args.repeats}, alternating"
    )
    for name in ways:
        seconds = statistics.median(times[name])
        print(f"  {name:17s} {seconds * 1e3:7.1f} ms   ({seconds / fp32:.2f}x fp32)")
    for name in ("bf16 written out", "bf16 + Hessian", "bf16 autograd"):
        errors = []
        for n in results[name]:
            exact = results["fp32 autograd"][n] - theta[n]
            if float(exact.norm()) > 0:
                errors.append(f"{n} {float((results[name][n] - theta[n] - exact).norm() / exact.norm()):.4f}")
        print(f"  relative error of the {name} step per parameter: {', '.join(errors)}")


if __name__ == "__main__":
    restart_with_tuned_malloc()
    main()
