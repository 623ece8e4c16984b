"""Env steps per second of metarl's Meta-World envs next to Meta-World's own vector envs and the physics.

Run from the repository root, on a quiet machine (the metaworld extra installed)::

    .venv/bin/python benchmarks/meta_world_envs.py --save

For ML1 environments (reach, push, pick-place) it measures, in one run, with random actions
drawn before timing and ``--num-envs`` sub-environments each:

* ``metarl``: ``make_batched("metarl/ML1-v3", ...)``, the single env vectorised by metarl,
  with the array version of ``touching_object`` and the plain-float object quaternion
  (:mod:`envs.meta_world.compat`);
* ``metarl, metaworld's own code``: the same with metaworld's own ``touching_object`` and
  scipy's ``Rotation``;
* ``sync`` / ``async``: Meta-World's own Gymnasium vector envs,
  ``gym.make_vec("Meta-World/ML1-train", vector_strategy=...)`` (metaworld's own code);
* ``physics``: only the ``frame_skip`` MuJoCo steps of each step, on the same models and data,
  one sub-environment after another: what is left when the observation, reward and success
  code costs nothing;
* ``batched physics``: the same physics of all sub-environments in one ``mujoco.batch`` call,
  what stepping them together could reach.

The paths are timed in turn, ``--repeats`` rounds; the table gives each path's median and the
median of the per-round ratios to ``metarl``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402,F401  (registers metarl/ML1-v3)
from benchmarks.outputs import save  # noqa: E402
from envs.meta_world.compat import REPLACED, MatrixQuaternion, patch_metaworld, touching_object  # noqa: E402
from metarl.tasks.build import make_batched  # noqa: E402

ENVS = ("reach-v3", "push-v3", "pick-place-v3")


def _own_code(own: bool) -> None:
    """Use metaworld's own ``touching_object`` and scipy's ``Rotation`` (``own``), or metarl's versions."""
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    SawyerXYZEnv.touching_object = REPLACED["touching_object"] if own else touching_object  # type: ignore[method-assign]
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("metaworld.envs.") and hasattr(module, "Rotation"):
            module.Rotation = REPLACED["Rotation"] if own else MatrixQuaternion


def _rate(step: Callable[[np.ndarray], object], actions: np.ndarray) -> float:
    """Env steps per second of ``step`` over ``actions`` ``[steps, n, 4]``."""
    start = time.perf_counter()
    for action in actions:
        step(action)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - start)


def _metarl(name: str, n: int, actions: np.ndarray) -> float:
    env = make_batched("metarl/ML1-v3", n, max_episode_steps=500, env_name=name)
    env.set_tasks(env.sample_tasks(n, np.random.default_rng(0)))
    env.reset(seed=0)
    rate = _rate(env.step, actions)
    env.close()
    return rate


def _metaworld(name: str, n: int, actions: np.ndarray, strategy: str) -> float:
    env = gym.make_vec("Meta-World/ML1-train", env_name=name, vector_strategy=strategy, meta_batch_size=n, seed=0)
    env.call("sample_tasks")  # metaworld's task-selection wrapper sets each sub-environment's first task and resets
    rate = _rate(env.step, actions)
    env.close()
    return rate


def _physics(name: str, n: int, actions: np.ndarray) -> tuple[float, float]:
    """Per-env physics steps and the same in one ``mujoco.batch`` call: env steps per second of each."""
    env = make_batched("metarl/ML1-v3", n, max_episode_steps=500, env_name=name)
    env.set_tasks(env.sample_tasks(n, np.random.default_rng(0)))
    env.reset(seed=0)
    inner = [e.unwrapped._env for e in env.envs]
    frame_skip = inner[0].frame_skip
    models, datas = [e.model for e in inner], [e.data for e in inner]

    def per_env(action: np.ndarray) -> None:
        for m, d, a in zip(models, datas, action, strict=True):
            d.ctrl[:] = (a[3], -a[3])
            mujoco.mj_step(m, d, nstep=frame_skip)

    rate = _rate(per_env, actions)
    batch = mujoco.batch.Batch(models[0], n, 1)
    for field in ("qpos", "qvel", "mocap_pos", "mocap_quat"):
        batch.bind(field)[:] = np.stack([getattr(d, field) for d in datas])
    batch.forward()
    ctrl = batch.bind("ctrl")
    everyone = np.arange(n)

    def batched(action: np.ndarray) -> None:
        ctrl[:, 0], ctrl[:, 1] = action[:, 3], -action[:, 3]
        batch.step(everyone, nstep=frame_skip)

    batched_rate = _rate(batched, actions)
    env.close()
    return rate, batched_rate


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=10, help="sub-environments (a divisor of 50, for metaworld's own)")
    p.add_argument("--steps", type=int, default=100, help="env steps of each sub-environment per measurement")
    p.add_argument("--repeats", type=int, default=3, help="rounds over the paths")
    p.add_argument("--envs", nargs="*", default=list(ENVS), help="ML1 environments")
    p.add_argument("--save", action="store_true", help="write benchmarks/results/meta_world_envs.json")
    args = p.parse_args(argv)
    patch_metaworld()
    n, steps = args.num_envs, args.steps
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, n, 4)).astype(np.float32)
    paths = ("metarl", "metarl, metaworld's own code", "sync", "async", "physics", "batched physics")
    results = {}
    for name in args.envs:
        rates: dict[str, list[float]] = {path: [] for path in paths}
        for _ in range(args.repeats):
            _own_code(False)
            rates["metarl"].append(_metarl(name, n, actions))
            _own_code(True)
            rates["metarl, metaworld's own code"].append(_metarl(name, n, actions))
            rates["sync"].append(_metaworld(name, n, actions, "sync"))
            rates["async"].append(_metaworld(name, n, actions, "async"))
            _own_code(False)
            physics, batched = _physics(name, n, actions)
            rates["physics"].append(physics)
            rates["batched physics"].append(batched)
        medians = {path: statistics.median(values) for path, values in rates.items()}
        ratios = {
            path: statistics.median(v / m for v, m in zip(values, rates["metarl"], strict=True))
            for path, values in rates.items()
        }
        results[name] = {"env_steps_per_second": medians, "over_metarl": ratios}
        print(name, "  ".join(f"{path}: {medians[path]:,.0f}/s ({ratios[path]:.2f}x)" for path in paths), flush=True)
    if args.save:
        settings = {"num_envs": n, "steps": steps, "repeats": args.repeats, "benchmark_seed": 0}
        save("meta_world_envs", settings, {"envs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
