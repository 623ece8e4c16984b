"""Seconds per MAML-TRPO meta-iteration, split into sampling and meta-update, and the cost of
one Fisher-vector product with all tasks versus a subsample.

    .venv/bin/python benchmarks/meta_iteration.py [--config 2d-navigation] [--repeats 3] [--num_threads 1]
    .venv/bin/python benchmarks/meta_iteration.py --config halfcheetah-vel --repeats 3 --no-fvp

Prints medians over ``--repeats`` iterations (after one warm-up iteration) and ratios
measured in this one run. For a MuJoCo (``mujoco.batch``) environment it also times the
pure physics of an iteration's env steps — raw ``mujoco.batch`` stepping of the same
model with the same number of sims and threads, random controls, no observation, reward
or policy work — and prints the iteration's ratio to it; and the pure physics of its
samples: each measured iteration's resets (initial ``qpos``/``qvel``) and steps (controls,
which sub-environments stepped) are recorded and replayed on a fresh ``mujoco.batch``, so
the states and contacts are those the policy produced. ``--num_threads`` is torch's
thread count for the learner; the sampler's policy forward runs with
``--policy_threads`` (the trainer's default, 1; 0: the learner's count).

``--thread-ab N`` then times, on one sampled batch, the meta-update with 1 and with N
torch threads and a sampling phase with the policy forward on 1 and on N threads,
alternating, ``--repeats`` times each: on a shared machine whose load changes from
minute to minute only such interleaved timings compare thread counts fairly.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import mujoco
import mujoco.batch
import numpy as np
import outputs
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import agents
import envs  # noqa: F401
from agents.surrogate import PostAdaptationObjective
from metarl.config import config_to_dict, load_config
from metarl.system.memory import restart_with_tuned_malloc
from metarl.tasks.build import make_batched


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def physics_seconds(env: object, env_steps: int) -> float | None:
    """Wall time of ``env_steps`` env steps of raw ``mujoco.batch`` stepping like ``env``'s (None: not MuJoCo)."""
    model, nthread, frame_skip = (getattr(env, name, None) for name in ("model", "nthread", "frame_skip"))
    if not isinstance(model, mujoco.MjModel) or nthread is None or frame_skip is None:
        return None
    num_envs = env.num_envs  # type: ignore[attr-defined]
    batch = mujoco.batch.Batch(model, num_envs, nthread)
    ctrl = batch.bind("ctrl")
    batch.forward()
    low, high = model.actuator_ctrlrange.T
    controls = np.random.default_rng(0).uniform(low, high, size=(64, num_envs, model.nu))
    rounds = max(1, round(env_steps / num_envs))
    for k in range(8):  # warm up
        ctrl[:] = controls[k]
        batch.step(nstep=frame_skip)
    start = time.perf_counter()
    for k in range(rounds):
        ctrl[:] = controls[k % len(controls)]
        batch.step(nstep=frame_skip)
    return (time.perf_counter() - start) * env_steps / (rounds * num_envs)


class PhysicsRecorder:
    """Stands in for a batched locomotion env's ``mujoco.batch.Batch`` and records its physics.

    It forwards every call and keeps, in order, each reset (the sub-environments' initial
    ``qpos``/``qvel``, taken at the ``forward`` that follows a reset) and each step (the
    controls and which sub-environments stepped), so that :meth:`replay_seconds` can time
    the same physics, with the same states and controls, on a fresh ``Batch`` with no
    observation, reward or policy work.
    """

    def __init__(self, env: object) -> None:
        self.env = env
        self.batch = env._batch  # type: ignore[attr-defined]
        self.events: list[tuple] = []
        self.recording = False
        env._batch = self  # type: ignore[attr-defined]

    def __getattr__(self, name: str):
        return getattr(self.batch, name)

    def forward(self, ids=None):
        out = self.batch.forward(ids) if ids is not None else self.batch.forward()
        if self.recording:
            index = np.arange(self.env.num_envs) if ids is None else np.asarray(ids)  # type: ignore[attr-defined]
            self.events.append(("reset", index, self.env.qpos[index].copy(), self.env.qvel[index].copy()))  # type: ignore[attr-defined]
        return out

    def step(self, ids=None, nstep: int = 1):
        if self.recording:
            self.events.append(("step", None if ids is None else np.asarray(ids).copy(), self.env.ctrl.copy(), nstep))  # type: ignore[attr-defined]
        return self.batch.step(ids, nstep=nstep)

    def replay_seconds(self) -> float:
        """Wall time of the recorded steps on a fresh ``Batch`` (same model, sims, threads)."""
        env = self.env
        batch = mujoco.batch.Batch(env.model, env.num_envs, env.nthread)  # type: ignore[attr-defined]
        qpos, qvel, ctrl = batch.bind("qpos"), batch.bind("qvel"), batch.bind("ctrl")
        total = 0.0
        for event in self.events:
            if event[0] == "reset":
                _, index, q, v = event
                batch.reset(index, stage=mujoco.mjtStage.mjSTAGE_NONE)
                qpos[index], qvel[index] = q, v
                batch.forward(index)
            else:
                _, ids, controls, nstep = event
                ctrl[:] = controls
                start = time.perf_counter()
                try:
                    batch.step(ids, nstep=nstep)
                except mujoco.batch.SimulationError:
                    pass
                total += time.perf_counter() - start
        return total


def thread_ab(learner: agents.MAMLTRPO, batch: agents.AdaptationBatch, threads: int, repeats: int) -> None:
    """Print median seconds of the meta-update and of a sampling phase with 1 and ``threads`` torch threads."""
    params = list(learner.policy.parameters())
    theta = parameters_to_vector(params).detach().clone()
    task_params = {n: p.detach() for n, p in batch.params[-1].items()}
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for n in (1, threads):
            torch.set_num_threads(n)
            start = time.perf_counter()
            learner.step(batch, np.random.default_rng(0))
            times.setdefault(("meta-update", n), []).append(time.perf_counter() - start)
            with torch.no_grad():
                vector_to_parameters(theta, params)
            learner.sampler.policy_threads = n
            start = time.perf_counter()
            learner.sampler.sample(task_params, np.random.default_rng(0))
            times.setdefault(("sampling phase", n), []).append(time.perf_counter() - start)
    print(f"threads A/B, interleaved, median of {repeats}:")
    for what in ("meta-update", "sampling phase"):
        one, many = (statistics.median(times[(what, n)]) for n in (1, threads))
        print(
            f"  {what:15s} torch threads 1: {one:6.2f} s   {threads}: {many:6.2f} s   ({threads}/1: {many / one:.2f}x)"
        )


def meta_update_components(learner: agents.MAMLTRPO, batch: agents.AdaptationBatch, repeats: int) -> None:
    """Print median seconds of the meta-update's parts on ``batch`` (θ unchanged)."""
    params = list(learner.policy.parameters())
    objective = PostAdaptationObjective(learner.policy, batch, learner.settings)

    def meta_gradient() -> None:
        loss, _ = objective.loss_and_kl(objective.adapted(create_graph=True))
        torch.autograd.grad(loss, params)

    def line_search_evaluation() -> None:
        adapted = objective.adapted(create_graph=False)
        with torch.no_grad():
            objective.loss_and_kl(adapted)

    def build_fisher():
        return learner.fisher_vector_product(objective, objective.adapted(create_graph=True), np.random.default_rng(0))

    product = build_fisher()
    vector = torch.randn(sum(p.numel() for p in params))
    print(f"meta-update parts (median of {repeats}, fvp_task_fraction {learner.settings.fvp_task_fraction}):")
    print(
        f"  meta-gradient (inner step with create_graph, loss, backward): "
        f"{median_seconds(meta_gradient, repeats):.3f} s"
    )
    print(
        f"  one line-search evaluation (inner step, loss and KL):          "
        f"{median_seconds(line_search_evaluation, repeats):.3f} s"
    )
    print(
        f"  Fisher-vector product: build {median_seconds(build_fisher, repeats):.3f} s, "
        f"one product {median_seconds(lambda: product(vector), repeats * 3):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="2d-navigation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_threads", type=int, default=0, help="torch threads of the learner (0: the config's)")
    parser.add_argument(
        "--policy_threads", type=int, default=1, help="torch threads of the sampler's policy forward (0: --num_threads)"
    )
    parser.add_argument("--subsample", type=float, default=0.25, help="fvp_task_fraction to compare with 1.0")
    parser.add_argument(
        "--thread-ab",
        type=int,
        default=0,
        metavar="N",
        help="also compare 1 and N torch threads, interleaved (0: skip)",
    )
    parser.add_argument("--no-fvp", dest="fvp", action="store_false", help="skip the Fisher-vector product timings")
    parser.add_argument(
        "--components",
        action="store_true",
        help="time the meta-update's parts on one batch: meta-gradient, line-search evaluation, Fisher products",
    )
    parser.add_argument(
        "--save", action="store_true", help="write results/meta_iteration_<config>.json (BENCHMARKS.md's table)"
    )
    parser.add_argument("override", nargs="*", help="config overrides: --key value pairs after --")
    args = parser.parse_args()

    cfg = load_config(args.config, args.override)
    args.num_threads = args.num_threads or cfg.num_threads
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(0)
    env = make_batched(
        cfg.env_id, cfg.meta_batch_size * cfg.episodes_per_task, max_episode_steps=cfg.horizon, **cfg.env_kwargs
    )
    learner = agents.build_maml_trpo(cfg, env)
    learner.sampler.policy_threads = args.policy_threads or args.num_threads
    rng = np.random.default_rng(0)

    def iteration() -> dict[str, float]:
        return learner.train_iteration(env.sample_tasks(cfg.meta_batch_size, rng), rng)

    iteration()  # warm-up
    recorder = PhysicsRecorder(env) if hasattr(env, "_batch") else None
    rows, replays = [], []
    for _ in range(args.repeats):
        if recorder is not None:
            recorder.events.clear()
            recorder.recording = True
        rows.append(iteration())
        if recorder is not None:
            recorder.recording = False
            replays.append(recorder.replay_seconds())
    total = statistics.median(r["sample_seconds"] + r["update_seconds"] for r in rows)
    sample = statistics.median(r["sample_seconds"] for r in rows)
    update = statistics.median(r["update_seconds"] for r in rows)
    steps_per_s = statistics.median(r["env_steps_per_s"] for r in rows)
    env_steps = int(statistics.median(r["env_steps"] for r in rows))
    ls_steps = statistics.median(r["ls_steps"] for r in rows)
    physics = statistics.median(physics_seconds(env, env_steps) or 0.0 for _ in range(args.repeats))

    print(
        f"config {args.config} {' '.join(args.override)}: {cfg.meta_batch_size} tasks x "
        f"{cfg.episodes_per_task} episodes, horizon {cfg.horizon}, fvp_task_fraction {cfg.fvp_task_fraction}; "
        f"torch threads: learner {args.num_threads}, policy forward in sampling {learner.sampler.policy_threads}"
    )
    print(f"seconds per meta-iteration (median of {args.repeats}): {total:.2f}")
    print(f"  sampling (all phases):  {sample:.2f} s  ({sample / total:.0%}), {steps_per_s:,.0f} env steps/s")
    print(f"  meta-update:            {update:.2f} s  ({update / total:.0%}), {ls_steps:.0f} line-search step(s)")
    if physics:
        print(
            f"pure physics of its {env_steps:,} env steps (raw mujoco.batch, {env.num_envs} sims, "  # type: ignore[attr-defined]
            f"{env.nthread} threads): {physics:.2f} s"
        )  # type: ignore[attr-defined]
        print(
            f"  iteration / physics: {total / physics:.2f}x   sampling / physics: {sample / physics:.2f}x   "
            f"meta-update / physics: {update / physics:.2f}x"
        )
    if replays:
        replay = statistics.median(replays)
        print(
            f"pure physics of its samples (their initial states and actions replayed on a fresh "
            f"mujoco.batch, median of {len(replays)}): {replay:.2f} s"
        )
        print(
            f"  iteration / physics of its samples: {total / replay:.2f}x   sampling: {sample / replay:.2f}x   "
            f"meta-update: {update / replay:.2f}x"
        )
    if args.save:
        replay = statistics.median(replays) if replays else None
        outputs.save(
            f"meta_iteration_{args.config}",
            {
                "config": args.config,
                "overrides": args.override,
                "env_id": cfg.env_id,
                "meta_batch_size": cfg.meta_batch_size,
                "episodes_per_task": cfg.episodes_per_task,
                "horizon": cfg.horizon,
                "repeats": args.repeats,
                "torch_threads": args.num_threads,
                "policy_threads": learner.sampler.policy_threads,
                "mujoco_threads": getattr(env, "nthread", None),
                "config_values": config_to_dict(cfg),
            },
            {
                "seconds_per_iteration": total,
                "sampling_seconds": sample,
                "meta_update_seconds": update,
                "env_steps": env_steps,
                "physics_seconds": physics or None,
                "sample_physics_seconds": replay,
            },
        )
    if args.thread_ab:
        learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
        batch = learner.sample(rng)
        thread_ab(learner, batch, args.thread_ab, args.repeats)
        torch.set_num_threads(args.num_threads)
        learner.sampler.policy_threads = args.policy_threads or args.num_threads
    if args.components:
        learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
        batch = learner.sample(rng)
        meta_update_components(learner, batch, args.repeats)
    if not args.fvp:
        return

    learner.sampler.set_tasks(env.sample_tasks(cfg.meta_batch_size, rng))
    batch = learner.sample(rng)
    params = list(learner.policy.parameters())
    vector = torch.randn(sum(p.numel() for p in params))
    timings = {}
    for name, fraction in (("ours", 1.0), ("subsample", args.subsample)):
        learner.settings = dataclasses.replace(learner.settings, fvp_task_fraction=fraction)
        objective = PostAdaptationObjective(learner.policy, batch, learner.settings)
        fvp = learner.fisher_vector_product(objective, objective.adapted(create_graph=True), np.random.default_rng(1))
        timings[name] = median_seconds(lambda fvp=fvp: fvp(vector), args.repeats * 3)
    # reference: the Hessian of the KL by double backpropagation through its gradient
    objective = PostAdaptationObjective(learner.policy, batch, learner.settings)
    _, kl = objective.loss_and_kl(objective.adapted(create_graph=True))
    flat_grad_kl = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, params, create_graph=True)])

    def double_backward() -> None:
        torch.autograd.grad(flat_grad_kl.dot(vector), params, retain_graph=True)

    timings["double"] = median_seconds(double_backward, args.repeats * 3)

    print("Fisher-vector product (median):")
    print(f"  double backprop through the KL gradient (reference): {timings['double'] * 1000:.0f} ms")
    print(
        f"  J^T M J, all tasks (ours):                           {timings['ours'] * 1000:.0f} ms"
        f"  -> {timings['double'] / timings['ours']:.2f}x faster"
    )
    print(
        f"  J^T M J, {args.subsample:.0%} of tasks (fvp_task_fraction):            "
        f"{timings['subsample'] * 1000:.0f} ms  -> {timings['double'] / timings['subsample']:.2f}x faster"
    )


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    main()
