"""Env steps per second of the batched locomotion envs next to raw physics and Gymnasium vector envs.

Run from the repository root::

    .venv/bin/python benchmarks/locomotion_envs.py

For HalfCheetahVel and AntVel it measures, in one run and with random actions (drawn
before timing):

* ``batched``: the natively batched env (``make_batched``), ``--num-envs`` sub-envs;
* ``raw``: ``mujoco.batch.Batch`` of the same model and size stepping ``frame_skip``
  physics steps per env step, with no observation, reward or termination work;
* ``sync`` / ``async``: Gymnasium's ``SyncVectorEnv`` / ``AsyncVectorEnv`` of the
  single env (fewer envs and steps: they are slow).

Raw and batched are timed alternately, ``--repeats`` times each, so that load from
other processes hits both alike; the table gives medians and the median of the
per-repeat ratios batched/raw.

Besides wall-clock env steps per second it reports env steps per CPU-second: the CPU
time of this process (all its threads) plus that of the vector env's worker
processes. On a machine shared with other jobs the wall-clock rates of multi-threaded
and multi-process runs drop far more than their CPU cost rises (a step waits for its
slowest thread), so the CPU-second rates are the fairer comparison there; on an idle
machine with 2 cores the two agree up to the factor 2 of the cores.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
import outputs

import envs  # noqa: F401  (registers the ids)
from envs.locomotion.models import FRAME_SKIP, ant_model, half_cheetah_model
from metarl.tasks.build import make_batched

FAMILIES: dict[str, Callable[[], mujoco.MjModel]] = {
    "HalfCheetahVel": half_cheetah_model,
    "AntVel": ant_model,
}


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of this process plus that of the processes ``pids`` (from /proc)."""
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


def _rate(run: Callable[[], int], pids: Sequence[int] = ()) -> tuple[float, float]:
    """Env steps per second and per CPU-second of ``run`` (which returns its env steps)."""
    cpu, start = _cpu_seconds(pids), time.perf_counter()
    steps = run()
    wall, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
    return steps / wall, steps / cpu


def bench_batched_and_raw(
    name: str, num_envs: int, steps: int, repeats: int, nthread: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Alternate timings of the batched env and of raw ``mujoco.batch`` stepping."""
    env = make_batched(f"metarl/{name}-v0", num_envs, nthread=nthread)
    rng = np.random.default_rng(0)
    env.set_tasks(env.sample_tasks(num_envs, rng))
    env.reset(seed=0)
    low, high = env.single_action_space.low, env.single_action_space.high
    actions = rng.uniform(low, high, size=(steps, num_envs, len(low))).astype(np.float32)

    raw = mujoco.batch.Batch(FAMILIES[name](), num_envs, nthread)
    ctrl = raw.bind("ctrl")
    raw.forward()

    def run_batched() -> int:
        for a in actions:
            env.step(a)
        return steps * num_envs

    def run_raw() -> int:
        for a in actions:
            ctrl[:] = a
            raw.step(nstep=FRAME_SKIP)
        return steps * num_envs

    run_batched(), run_raw()  # warm up
    batched_rates, raw_rates = [], []
    for _ in range(repeats):
        raw_rates.append(_rate(run_raw))
        batched_rates.append(_rate(run_batched))
    return batched_rates, raw_rates


def bench_gym_vector(name: str, mode: str, num_envs: int, steps: int, repeats: int) -> tuple[float, float]:
    """Median env steps per second and per CPU-second of a Gymnasium vector env of the single env."""
    make = functools.partial(gym.make, f"envs:metarl/{name}-v0")  # importable in spawned workers
    pids: list[int] = []
    if mode == "sync":
        vec: gym.vector.VectorEnv = gym.vector.SyncVectorEnv([make] * num_envs)
    else:
        vec = gym.vector.AsyncVectorEnv([make] * num_envs, context="spawn")
        pids = [p.pid for p in vec.processes]
    try:
        vec.reset(seed=0)
        rng = np.random.default_rng(0)
        space = vec.single_action_space
        assert isinstance(space, gym.spaces.Box)
        actions = rng.uniform(space.low, space.high, size=(steps, num_envs, space.shape[0])).astype(np.float32)

        def run() -> int:
            for a in actions:
                vec.step(a)
            return steps * num_envs

        run()  # warm up
        rates = [_rate(run, pids) for _ in range(repeats)]
        return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)
    finally:
        vec.close()


def _median(pairs: Sequence[tuple[float, float]], k: int) -> float:
    return statistics.median(p[k] for p in pairs)


def main() -> None:
    """Run the benchmark and print markdown tables (wall clock, then CPU time)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=800, help="sub-environments of the batched env")
    parser.add_argument("--nthread", type=int, default=os.cpu_count() or 1, help="mujoco.batch threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (medians are reported)")
    parser.add_argument("--gym-envs", type=int, nargs="+", default=[2, 8], help="vector env sizes to try")
    args = parser.parse_args()

    # env steps per timed repeat: a second or two each on 2 idle cores
    batched_steps = {"HalfCheetahVel": 100, "AntVel": 20}
    gym_steps = {"HalfCheetahVel": 800, "AntVel": 240}

    print(
        f"# {os.cpu_count()} CPUs, mujoco {mujoco.__version__}, gymnasium {gym.__version__}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    results = {}
    for name in FAMILIES:
        batched, raw = bench_batched_and_raw(name, args.num_envs, batched_steps[name], args.repeats, args.nthread)
        vector = {
            (mode, n): bench_gym_vector(name, mode, n, gym_steps[name] // n, 3)
            for mode in ("sync", "async")
            for n in args.gym_envs
        }
        results[name] = (batched, raw, vector)
        print(f"{name}: batched (steps/s, steps/CPU-s) {[(round(w), round(c)) for w, c in batched]}", flush=True)
        print(f"{name}: raw     (steps/s, steps/CPU-s) {[(round(w), round(c)) for w, c in raw]}", flush=True)
        for (mode, n), (wall, cpu) in vector.items():
            print(f"{name}: {mode} x{n}: {wall:,.0f} steps/s, {cpu:,.0f} steps/CPU-s", flush=True)

    outputs.save(
        "locomotion_envs",
        {"num_envs": args.num_envs, "nthread": args.nthread, "repeats": args.repeats, "gym_envs": args.gym_envs},
        {
            "families": {
                name: {
                    "batched": _median(batched, 0),
                    "raw": _median(raw, 0),
                    "batched_over_raw": statistics.median(b[0] / r[0] for b, r in zip(batched, raw, strict=True)),
                    "gym_vector": {f"{mode} x{n}": wall for (mode, n), (wall, _) in vector.items()},
                }
                for name, (batched, raw, vector) in results.items()
            }
        },
    )
    for k, unit in [(0, "env-steps/s"), (1, "env-steps per CPU-second")]:
        print()
        print(
            f"| {unit} ({args.num_envs} sub-envs, {args.nthread} threads) | batched | raw mujoco.batch | "
            "batched / raw | SyncVectorEnv | AsyncVectorEnv | batched / best gym vector |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, (batched, raw, vector) in results.items():
            ratio_raw = statistics.median(b[k] / r[k] for b, r in zip(batched, raw, strict=True))
            best_key = max(vector, key=lambda key: vector[key][k])  # noqa: B023
            sync = ", ".join(f"{vector[('sync', n)][k]:,.0f} (x{n})" for n in args.gym_envs)
            asyn = ", ".join(f"{vector[('async', n)][k]:,.0f} (x{n})" for n in args.gym_envs)
            print(
                f"| {name} | {_median(batched, k):,.0f} | {_median(raw, k):,.0f} | {ratio_raw:.2f} | {sync} | "
                f"{asyn} | {_median(batched, k) / vector[best_key][k]:.1f} (vs {best_key[0]} x{best_key[1]}) |"
            )
    print(f"\n# load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
