"""A MuJoCo task family of your own: its batched env against the single-env path and the raw physics, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/mujoco_family.py [--num-envs 800] [--steps 50] [--threads 1] [--repeats 3]

On the worked example ``scripts/examples/reacher_goal.py`` (docs/custom-envs.md) it times, with
the same random actions (drawn before timing) and the same number of sub-environments:

* ``single``: the family registered without its batched class, so that metarl vectorises
  the single env itself (:class:`metarl.tasks.vector.SyncBatchedTaskEnv`, a Python loop);
* ``batched``: the family's :class:`metarl.tasks.mujoco_family.BatchedMujocoTaskEnv`;
* ``raw``: ``mujoco.batch.Batch`` of the same model stepping ``frame_skip`` physics steps per
  env step, with no observation, reward or termination work — the limit.

The three alternate, ``--repeats`` times each; the output gives the medians of env steps per
second and the medians of the per-repeat ratios batched/raw and batched/single. Targets: batched
at least 0.8× raw and 3× single. Writes ``benchmarks/results/mujoco_family.json`` (with the
machine: CPU kind, cores, package versions) unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mujoco
import mujoco.batch
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the example module, from the repository root

from metarl.system.files import write_atomic  # noqa: E402
from metarl.system.machine import machine_record  # noqa: E402
from metarl.tasks.build import make_batched  # noqa: E402
from metarl.tasks.registry import register_task_env, task_env_ids  # noqa: E402
from scripts.examples import reacher_goal  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "mujoco_family.json"
SINGLE_ID = "examples/ReacherGoalSingle-v0"


def _rate(step: Callable[[np.ndarray], object], actions: np.ndarray) -> float:
    """Env steps per second of ``step`` over ``actions`` ``[T, n, nu]``."""
    start = time.perf_counter()
    for action in actions:
        step(action)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=800, help="sub-environments (default 800: 40 tasks x 20 episodes)")
    p.add_argument("--steps", type=int, default=50, help="env steps per timed rollout (default 50: the horizon)")
    p.add_argument("--threads", type=int, default=1, help="mujoco.batch threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args(argv)
    if SINGLE_ID not in task_env_ids():
        register_task_env(SINGLE_ID, entry_point=reacher_goal.ReacherGoalEnv, max_episode_steps=args.steps + 1)
    n = args.num_envs
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(args.steps, n, 2)).astype(np.float32)
    tasks = reacher_goal.sample_goals(n, rng)

    single = make_batched(SINGLE_ID, n, max_episode_steps=args.steps + 1)
    batched = make_batched(
        reacher_goal.__name__ + ":examples/ReacherGoal-v0", n, max_episode_steps=args.steps + 1, nthread=args.threads
    )
    for env in (single, batched):
        env.set_tasks(tasks)
    raw = mujoco.batch.Batch(mujoco.MjModel.from_xml_path(reacher_goal.XML), n, args.threads)
    ctrl = raw.bind("ctrl")

    def raw_step(action: np.ndarray) -> None:
        ctrl[:] = action
        raw.step(nstep=reacher_goal.FRAME_SKIP)

    rates: dict[str, list[float]] = {"single": [], "batched": [], "raw": []}
    for _ in range(args.repeats):
        single.reset(seed=0)
        rates["single"].append(_rate(single.step, actions))
        batched.reset(seed=0)
        rates["batched"].append(_rate(batched.step, actions))
        raw.reset()
        rates["raw"].append(_rate(raw_step, actions))
    ratio_raw = statistics.median(b / r for b, r in zip(rates["batched"], rates["raw"], strict=True))
    ratio_single = statistics.median(b / s for b, s in zip(rates["batched"], rates["single"], strict=True))
    result = {
        "benchmark": "mujoco_family",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_record(),
        "settings": {
            "num_envs": n,
            "steps": args.steps,
            "threads": args.threads,
            "repeats": args.repeats,
            "family": "examples/ReacherGoal-v0",
        },
        "env_steps_per_second": {k: statistics.median(v) for k, v in rates.items()},
        "batched_over_raw": ratio_raw,
        "batched_over_single": ratio_single,
        "targets": {"batched_over_raw": 0.8, "batched_over_single": 3.0},
    }
    print(f"{result['machine']['cpu']}, {n} sub-environments, {args.steps} steps, {args.threads} MuJoCo thread(s)")
    for name, value in result["env_steps_per_second"].items():
        print(f"  {name:<8} {value:12,.0f} env steps/s")
    print(
        f"  batched / raw physics: {ratio_raw:.2f}x (target >= 0.8x); batched / single-env path: "
        f"{ratio_single:.1f}x (target >= 3x)"
    )
    if not args.no_save:
        write_atomic(OUT, json.dumps(result, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
