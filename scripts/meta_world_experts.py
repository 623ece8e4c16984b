"""Meta-World's scripted expert policies, run on whatever MuJoCo this Python has: success per environment.

    python scripts/meta_world_experts.py --out results/meta-world/experts_mujoco-4.json
    /tmp/mw33/bin/python scripts/meta_world_experts.py --out results/meta-world/experts_mujoco-3.3.0.json

For each of metaworld's 50 environments, the expert of ``metaworld.policies`` runs one
episode (at most 500 steps, stopped at the first ``success``) on each of the first
``--episodes`` tasks of ``metaworld.MT1(env, seed=--seed)``: the same goal and object
positions as ML1's training tasks of that seed, with the goal in the observation, which the
experts read. The episodes are deterministic: the same tasks give the same episodes on one
MuJoCo version. Writes a JSON file (atomically) with the versions, the CPU and, per
environment, the successes and the steps to success. ``scripts/results_pages.py`` tabulates
two such files, one per MuJoCo version, in docs/meta-world.md.

This script imports no metarl module (only numpy, mujoco, metaworld and the compatibility
patch, loaded by path), so it runs in the reference environment with metaworld's own pin
(``scripts/meta_world_reference_env.sh``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import date
from importlib.metadata import version
from pathlib import Path

COMPAT = Path(__file__).resolve().parents[1] / "envs" / "meta_world" / "compat.py"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _patch() -> None:
    spec = importlib.util.spec_from_file_location("meta_world_compat", COMPAT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.patch_metaworld(fast_contacts=False)  # metaworld's own code but the weld row


def run_env(name: str, episodes: int, seed: int, disable: tuple[str, ...] = ()) -> dict:
    """The expert's episodes on the first ``episodes`` MT1 tasks of ``name``: successes and steps.

    Args:
        name: The environment.
        episodes: How many tasks, one episode each.
        seed: The seed of ``metaworld.MT1``'s tasks.
        disable: MuJoCo features to switch off (``mjDSBL_<NAME>`` flags, e.g. ``MULTICCD``).
    """
    import metaworld
    import mujoco
    from metaworld.policies import ENV_POLICY_MAP

    benchmark = metaworld.MT1(name, seed=seed)
    env = benchmark.train_classes[name]()
    for flag in disable:
        env.model.opt.disableflags |= int(getattr(mujoco.mjtDisableBit, f"mjDSBL_{flag}"))
    policy = ENV_POLICY_MAP[name]()
    steps_to_success: list[int | None] = []
    start = time.perf_counter()
    for task in benchmark.train_tasks[:episodes]:
        env.set_task(task)
        obs, _ = env.reset()
        reached = None
        for step in range(env.max_path_length):
            obs, _, _, truncated, info = env.step(policy.get_action(obs))
            if info["success"]:
                reached = step + 1
                break
            if truncated:
                break
        steps_to_success.append(reached)
    env.close()
    return {
        "episodes": len(steps_to_success),
        "successes": sum(s is not None for s in steps_to_success),
        "steps_to_success": steps_to_success,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    p.add_argument("--episodes", type=int, default=50, help="tasks (one episode each) per environment (at most 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of metaworld.MT1's tasks")
    p.add_argument("--envs", nargs="*", help="environment names (default: all 50)")
    p.add_argument("--disable", nargs="*", default=[], help="MuJoCo features to switch off, e.g. MULTICCD (mjDSBL_*)")
    args = p.parse_args(argv)
    if not 1 <= args.episodes <= 50:
        p.error("--episodes must be in 1..50")
    _patch()
    import metaworld
    import mujoco

    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
    missing = [f for f in args.disable if not hasattr(mujoco.mjtDisableBit, f"mjDSBL_{f}")]
    if missing:
        p.error(f"MuJoCo {mujoco.__version__} has no disable flag(s) {', '.join(missing)}")
    names = args.envs or list(metaworld.MT1.ENV_NAMES)
    unknown = sorted(set(names) - set(metaworld.MT1.ENV_NAMES))
    if unknown:
        p.error(f"unknown Meta-World environment(s): {', '.join(unknown)}")
    results = {}
    for name in names:
        results[name] = run_env(name, args.episodes, args.seed, tuple(args.disable))
        r = results[name]
        print(f"{name}: {r['successes']}/{r['episodes']} in {r['seconds']:.0f} s", flush=True)
    out = {
        "check": "meta_world_experts",
        "date": date.today().isoformat(),
        "machine": {"cpu": _cpu_model(), "python": platform.python_version()},
        "versions": {"mujoco": mujoco.__version__, "metaworld": version("metaworld"), "numpy": version("numpy")},
        "settings": {
            "episodes": args.episodes,
            "seed": args.seed,
            "tasks": "metaworld.MT1(env, seed).train_tasks",
            "disabled": list(args.disable),
        },
        "envs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
