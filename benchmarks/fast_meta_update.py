"""The fast meta-update against the exact one: speed, step quality, FLOPs and the matmul peaks, in one run.

    .venv/bin/python benchmarks/fast_meta_update.py [--config 2d-navigation] [--batches 3]
        [--options exact bf16:1.0 fp32:0.1 bf16:0.1] [--checkpoint CKPT] [--num_threads 2] [-- overrides]

For each of ``--batches`` sampled meta-batches (the preset's size), runs the meta-update
from the same θ with every option — ``exact`` (fp32 Fisher-vector products on every
step of every task: the reference), or changes to it joined by ``+``: ``tasks=F`` (a
share of the tasks, ``fvp_task_fraction``), ``post=F`` and ``inner=F`` (a random share of
each task's post-adaptation steps and of the inner loop's steps), ``bf16``, ``est=NAME``
(the inner-loss estimator: ``reinforce``, ``lvc``, ``dice``), ``cg=N`` (conjugate-gradient
iterations; the reference keeps the config's), ``adapt=bf16`` (the inner step's gradient in
bf16, ``adaptation_precision``) — interleaved, and prints per option the median
seconds and its ratio to ``exact``, the cosine between its full natural-gradient step and
the exact one, the surrogate improvement and KL of the step the line search accepted and
the line-search steps taken. The batches are sampled with the reference's fp32
adaptation; an ``adapt=bf16`` option sees the same episodes with its own adapted
parameters (and, with ``bf16``, the inner-loop Hessians its sampler would have kept)
recomputed from them, so that its objective is the one it would train on. Then, per
option, the matmul FLOPs of one meta-update (``torch.utils.flop_counter``) and its
achieved GFLOP/s, next to the fp32 and bf16 batched-matmul peaks measured in the same run
on the policy's own layer shape. ``--save`` writes the medians to
``results/fast_meta_update_<config>.json``, BENCHMARKS.md's "Meta-update: exact and fast".
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import outputs
import torch
from learner_setup import build
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.utils.flop_counter import FlopCounterMode

from agents.inner_losses import Transitions
from agents.maml import AdaptationBatch
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from metarl.learner.precision import matmul_seconds
from metarl.system.memory import restart_with_tuned_malloc


def option_settings(base: MetaUpdateSettings, option: str) -> MetaUpdateSettings:
    """``base`` with the Fisher-vector products that ``option`` names.

    ``exact`` (fp32, every step of every task), or ``+``-joined changes to it: ``tasks=F``
    (``fvp_task_fraction``), ``post=F`` (``fvp_transition_fraction``), ``inner=F``
    (``fvp_inner_fraction``), ``bf16``, ``est=NAME`` (``inner_estimator``), ``cg=N``
    (``cg_iters``), ``adapt=bf16`` (``adaptation_precision``) — e.g. ``post=0.1+inner=0.1`` or
    ``tasks=0.1`` or ``est=dice``.
    """
    settings = dataclasses.replace(
        base,
        fvp_task_fraction=1.0,
        fvp_transition_fraction=1.0,
        fvp_inner_fraction=1.0,
        fisher_precision="fp32",
        adaptation_precision="fp32",
    )
    fields = {"tasks": "fvp_task_fraction", "post": "fvp_transition_fraction", "inner": "fvp_inner_fraction"}
    for token in option.split("+"):
        name, _, value = token.partition("=")
        if token == "exact":
            continue
        if token == "bf16":
            settings = dataclasses.replace(settings, fisher_precision="bf16")
        elif name == "est" and value:
            settings = dataclasses.replace(settings, inner_estimator=value)
        elif name == "cg" and value:
            settings = dataclasses.replace(settings, cg_iters=int(value))
        elif name == "adapt" and value in ("bf16", "fp32"):
            settings = dataclasses.replace(settings, adaptation_precision=value)
        elif name in fields and value:
            settings = dataclasses.replace(settings, **{fields[name]: float(value)})
        else:
            raise SystemExit(
                f"option {option!r}: expected 'exact' or tasks=F, post=F, inner=F, bf16, est=NAME, "
                "cg=N, adapt=bf16 joined by '+'"
            )
    return settings


def batch_for(batch: AdaptationBatch, learner: MAMLTRPO) -> AdaptationBatch:
    """``batch`` as ``learner``'s own adaptation would have left it: the same episodes, and with
    ``adaptation_precision: bf16`` the adapted parameters (and the Hessians its sampler keeps)
    recomputed from them by its inner step."""
    s = learner.settings
    if s.adaptation_precision == "fp32":
        return batch
    step = s.adaptation_step(keep_hessian=True)
    params, hessians = [batch.params[0]], []
    for k in range(batch.num_inner_steps):
        steps = Transitions.of(batch.episodes[k], batch.advantages[k])
        stepped, hessian = step(learner.policy, params[-1], steps, s.fast_lr)
        params.append(stepped)
        hessians += [hessian] if hessian is not None else []
    return dataclasses.replace(batch, params=params, hessians=hessians)


def matmul_peak(batch: int, rows: int, width: int, dtype: torch.dtype, batched: bool, repeats: int = 20) -> float:
    """GFLOP/s of ``[batch, rows, width] @ [batch, width, width]`` (or, not ``batched``, of one
    ``[batch · rows, width] @ [width, width]`` matmul) in ``dtype``, median of ``repeats``."""
    a = torch.randn(batch, rows, width).to(dtype)
    b = torch.randn(batch, width, width).to(dtype)
    if not batched:
        a, b = a.reshape(batch * rows, width), b[0]
    return 2 * batch * rows * width * width / matmul_seconds(a, b, repeats, warmup=3) / 1e9


def matmul_flops(learner: MAMLTRPO, batch, rng_seed: int) -> float:
    """Matmul FLOPs of one meta-update on ``batch`` (θ restored afterwards)."""
    params = list(learner.policy.parameters())
    theta = parameters_to_vector(params).detach().clone()
    with FlopCounterMode(display=False) as counter:
        learner.step(batch, np.random.default_rng(rng_seed))
    with torch.no_grad():
        vector_to_parameters(theta, params)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="2d-navigation")
    parser.add_argument("--options", nargs="+", default=["exact", "bf16", "post=0.2", "post=0.1+inner=0.1"])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None, help="start from this checkpoint's θ (the config's architecture)")
    parser.add_argument("--no-flops", dest="flops", action="store_false", help="skip the FLOP count and peaks")
    parser.add_argument(
        "--save", action="store_true", help="write results/fast_meta_update_<config>.json (BENCHMARKS.md's table)"
    )
    parser.add_argument("override", nargs="*", help="config overrides: --key value pairs after --")
    args = parser.parse_args()
    args.options = ["exact", *(o for o in args.options if o != "exact")]  # the reference comes first

    cfg, env, learner = build(args.config, args.override, args.num_threads, args.checkpoint)
    base = learner.settings
    params = list(learner.policy.parameters())
    rng = np.random.default_rng(0)
    print(
        f"config {args.config} {' '.join(args.override)}: {cfg.meta_batch_size} tasks x {cfg.episodes_per_task} "
        f"episodes, horizon {cfg.horizon}, hidden {cfg.hidden_sizes}, fvp_task_fraction {cfg.fvp_task_fraction}, "
        f"cg_iters {cfg.cg_iters}; torch threads {args.num_threads}"
        + (f"; θ from {args.checkpoint}" if args.checkpoint else "")
    )
    rows: dict[str, list[dict[str, float]]] = {o: [] for o in args.options}
    batch = None
    theta = parameters_to_vector(params).detach().clone()
    for b in range(args.batches + 1):  # batch 0 warms up every option and is not counted
        learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
        learner.settings = dataclasses.replace(base, adaptation_precision="fp32")  # the reference's adaptation
        batch = learner.sample(rng)
        theta = parameters_to_vector(params).detach().clone()
        exact_step: torch.Tensor | None = None
        accepted_exact: torch.Tensor | None = None
        for option in args.options:
            learner.settings = option_settings(base, option)
            _, _, full_step, _ = learner.proposed_step(batch_for(batch, learner), np.random.default_rng(b))
            with torch.no_grad():
                vector_to_parameters(theta, params)
            own = batch_for(batch, learner)
            start = time.perf_counter()
            metrics = learner.step(own, np.random.default_rng(b))
            seconds = time.perf_counter() - start
            accepted = parameters_to_vector(params).detach() - theta
            with torch.no_grad():
                vector_to_parameters(theta, params)
            if option == "exact":
                exact_step, accepted_exact = full_step, accepted
            assert exact_step is not None
            cos = float(full_step.dot(exact_step) / (full_step.norm() * exact_step.norm()).clamp(min=1e-30))
            print(
                f"  batch {b}{' (warm-up)' if not b else ''} {option}: {seconds:.2f} s, cos {cos:.4f}, "
                f"gain {metrics['loss_before'] - metrics['loss_after']:.5f}, ls_steps {metrics['ls_steps']:.0f}",
                flush=True,
            )
            if b:
                rows[option].append(
                    {
                        "seconds": seconds,
                        "cos": cos,
                        "improvement": metrics["loss_before"] - metrics["loss_after"],
                        "kl": metrics["kl_after"],
                        "ls_steps": metrics["ls_steps"],
                        "step_fraction": metrics["step_fraction"],
                    }
                )
        assert accepted_exact is not None
        with torch.no_grad():  # move on from the exact step, as training would
            vector_to_parameters(theta + accepted_exact, params)

    def med(option: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[option])

    exact_seconds = med("exact", "seconds")
    print(f"\nper option, medians over {args.batches} batches (the same batches and θ for every option):")
    print("option                 update_s  vs_exact  cos(step,exact) [min]  surrogate_gain  kl_after  ls_steps")
    for option in args.options:
        print(
            f"{option:21s}  {med(option, 'seconds'):8.3f}  {exact_seconds / med(option, 'seconds'):7.2f}x"
            f"  {med(option, 'cos'):9.4f} [{min(r['cos'] for r in rows[option]):.4f}]"
            f"  {med(option, 'improvement'):14.5f}  {med(option, 'kl'):8.5f}  {med(option, 'ls_steps'):8.1f}"
        )
    print(
        "per batch: "
        + "; ".join(f"{o}: gain " + "/".join(f"{r['improvement']:.4f}" for r in rows[o]) for o in args.options)
    )
    if args.save:
        outputs.save(
            f"fast_meta_update_{args.config}",
            {
                "config": args.config,
                "overrides": args.override,
                "env_id": cfg.env_id,
                "checkpoint": args.checkpoint,
                "meta_batch_size": cfg.meta_batch_size,
                "episodes_per_task": cfg.episodes_per_task,
                "horizon": cfg.horizon,
                "batches": args.batches,
                "torch_threads": args.num_threads,
            },
            {
                "options": {
                    o: {
                        "update_seconds": med(o, "seconds"),
                        "cosine": med(o, "cos"),
                        "cosine_min": min(r["cos"] for r in rows[o]),
                        "surrogate_gain": med(o, "improvement"),
                        "kl_after": med(o, "kl"),
                        "ls_steps": med(o, "ls_steps"),
                    }
                    for o in args.options
                }
            },
        )
    if not args.flops:
        return

    with torch.no_grad():  # the last batch's θ, where its episodes were sampled
        vector_to_parameters(theta, params)
    width = max(cfg.hidden_sizes) if cfg.hidden_sizes else 1
    steps = batch.episodes[-1].packed(batch.episodes[-1].mask).shape[1] if batch is not None else 1
    peaks = {
        name: matmul_peak(cfg.meta_batch_size, steps, width, dtype, batched=True)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    flat = {
        name: matmul_peak(cfg.meta_batch_size, steps, width, dtype, batched=False)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    print(
        f"\nmatmul peaks in this run, {args.num_threads} threads: batched "
        f"[{cfg.meta_batch_size}, {steps}, {width}] x [{cfg.meta_batch_size}, {width}, {width}] "
        f"(the policy's layers): fp32 {peaks['fp32']:.0f} GFLOP/s, "
        f"bf16 {peaks['bf16']:.0f} GFLOP/s (bf16/fp32 {peaks['bf16'] / peaks['fp32']:.2f}x); one "
        f"[{cfg.meta_batch_size * steps}, {width}] x [{width}, {width}]: fp32 {flat['fp32']:.0f}, "
        f"bf16 {flat['bf16']:.0f} GFLOP/s ({flat['bf16'] / flat['fp32']:.2f}x)"
    )
    print("option                 matmul GFLOP per meta-update  achieved GFLOP/s  share of its precision's peak")
    for option in args.options:
        learner.settings = option_settings(base, option)
        flops = matmul_flops(learner, batch_for(batch, learner), 0)
        achieved = flops / med(option, "seconds") / 1e9
        peak = peaks["bf16" if "bf16" in option.split("+") else "fp32"]
        print(f"{option:21s}  {flops / 1e9:28.1f}  {achieved:16.1f}  {achieved / peak:8.0%} (of {peak:.0f})")


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
