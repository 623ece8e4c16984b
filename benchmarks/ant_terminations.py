"""Why Ant episodes end early: episode length and cause of termination under random torques.

Runs the registered Ant forward/backward env (``-v0`` and ``-v1``) with actions
``clip(N(0, std^2), -1, 1)`` (a fresh policy with the presets' init_std of 1, and a
narrower one), and counts episodes ended by the torso rising above z = 1 (a jump)
or sinking below z = 0.2 (a fall). Each setting runs twice: with metarl's contacts
(Gymnasium's ant.xml, MuJoCo's default solimp) and with every geom's solimp set to
rllab's ``.8 .8 .01`` (the MAML paper's ant.xml).

    .venv/bin/python benchmarks/ant_terminations.py
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the metarl ids)


def measure(env_id: str, std: float, soft_contacts: bool, episodes: int, seed: int) -> dict[str, float]:
    """Mean episode length and the number of jumps (z > 1) and falls (z < 0.2)."""
    env = gym.make(env_id)
    model = env.unwrapped.model
    if soft_contacts:
        model.geom_solimp[:, :3] = (0.8, 0.8, 0.01)
    rng = np.random.default_rng(seed)
    lengths, jumps, falls = [], 0, 0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        length = 0
        while True:
            length += 1
            action = np.clip(std * rng.standard_normal(8), -1.0, 1.0).astype(np.float32)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated:
                z = float(env.unwrapped.data.qpos[2])
                jumps += z > 1.0
                falls += z < 0.2
            if terminated or truncated:
                break
        lengths.append(length)
    env.close()
    return {"length": float(np.mean(lengths)), "jumps": jumps, "falls": falls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    header = f"{'env':22s} {'contacts':8s} {'std':>4s} {'mean length':>11s} {'jumps':>6s} {'falls':>6s}"
    print(f"{header}  (of {args.episodes})")
    for env_id in ("metarl/AntDir-v0", "metarl/AntDir-v1"):
        for soft in (False, True):
            for std in (1.0, 0.5):
                r = measure(env_id, std, soft, args.episodes, args.seed)
                contacts = "rllab" if soft else "default"
                print(f"{env_id:22s} {contacts:8s} {std:4.1f} {r['length']:11.1f} {r['jumps']:6d} {r['falls']:6d}")


if __name__ == "__main__":
    main()
