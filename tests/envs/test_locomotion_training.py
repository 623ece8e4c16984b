"""Locomotion presets: the paper's settings, and a short training run through ``scripts/train.py``."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

import envs  # noqa: F401  (registers the ids)
from metarl.config import load_config
from metarl.runs.logs import read_metrics

REPO = Path(__file__).resolve().parents[2]
PRESETS = {
    "halfcheetah-vel": "metarl/HalfCheetahVel-v1",
    "halfcheetah-dir": "metarl/HalfCheetahDir-v1",
    "ant-vel": "metarl/AntVel-v1",
    "ant-dir": "metarl/AntDir-v1",
    "ant-goal": "metarl/AntGoal-v1",
}


def _train_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metarl_train_script_locomotion", REPO / "scripts" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_locomotion_presets_hold_the_papers_settings(preset: str) -> None:
    cfg = load_config(preset)
    assert cfg.env_id == PRESETS[preset] and cfg.algorithm == "maml-trpo"
    # the paper's ant-dir number came from its run with 40 episodes per task as a step budget
    episodes, step_budget = (40, True) if preset == "ant-dir" else (20, False)
    assert (cfg.meta_batch_size, cfg.episodes_per_task, cfg.horizon) == (40, episodes, 200)
    assert cfg.step_budget is step_budget
    # the paper code's cheetah network is ReLU; halfcheetah-dir takes it (its preset's comment says why)
    assert cfg.hidden_sizes == (100, 100) and cfg.nonlinearity == ("relu" if preset == "halfcheetah-dir" else "tanh")
    assert (cfg.fast_lr, cfg.num_inner_steps, cfg.first_order) == (0.1, 1, False)
    assert (cfg.max_kl, cfg.cg_iters, cfg.cg_damping, cfg.ls_max_steps, cfg.ls_backtrack_ratio) == (
        0.01,
        10,
        1e-5,
        15,
        0.8,
    )
    assert 0 < cfg.fvp_task_fraction <= 1


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "tasks", "episodes"), [("halfcheetah-vel", 2, 2), ("ant-goal", 2, 2)])
def test_short_locomotion_training_run(tmp_path: Path, preset: str, tasks: int, episodes: int) -> None:
    """2 iterations of a tiny batch via ``scripts/train.py``: finite metrics, the expected env steps, a checkpoint."""
    horizon, iterations = 20, 2
    argv = [
        "--config",
        preset,
        "--meta_batch_size",
        str(tasks),
        "--episodes_per_task",
        str(episodes),
        "--horizon",
        str(horizon),
        "--hidden_sizes",
        "16,16",
        "--fvp_task_fraction",
        "1.0",
        "--num_iterations",
        str(iterations),
        "--tensorboard",
        "false",
        "--out_dir",
        str(tmp_path),
        "--run_name",
        preset,
        "--no-progress",
    ]
    assert _train_script().main(argv) == 0
    run_dir = tmp_path / preset
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == list(range(iterations))
    for row in rows:
        assert all(math.isfinite(float(value)) for value in row.values()), row
        assert row["nonfinite_episodes"] == 0 and row["skipped_nonfinite"] == 0
        steps = 2 * tasks * episodes * horizon  # before and after adaptation
        if preset.startswith("halfcheetah"):
            assert row["env_steps"] == steps  # the cheetah never terminates: every episode runs to the horizon
        else:
            assert 2 * tasks * episodes <= row["env_steps"] <= steps  # the ant may fall
        assert row["kl_after"] <= 0.01 + 1e-6
    assert rows[-1]["total_env_steps"] == sum(r["env_steps"] for r in rows)
    assert (run_dir / "checkpoints" / f"iter_{iterations:06d}.pt").is_file()
    assert load_config(run_dir / "config.yaml").env_id == PRESETS[preset]


def test_the_direction_families_report_forward_and_backward_apart():
    import numpy as np

    from envs.locomotion.tasks import DirectionTask
    from metarl.tasks.build import make_batched
    from metarl.tasks.protocol import task_groups

    tasks = [DirectionTask(1), DirectionTask(-1)]
    for env_id in ("metarl/HalfCheetahDir-v0", "metarl/AntDir-v1"):
        env = make_batched(env_id, num_envs=2, max_episode_steps=5)
        assert task_groups(env, tasks) == ["forward", "backward"]
    velocity = make_batched("metarl/HalfCheetahVel-v0", num_envs=2, max_episode_steps=5)
    assert task_groups(velocity, velocity.sample_tasks(2, np.random.default_rng(0))) == []  # no groups
