"""A short seeded MAML-TRPO run on 2D navigation learns: adaptation helps, returns rise."""

import numpy as np
import pytest

import agents
import envs  # noqa: F401
from metarl.config import load_config
from metarl.runs.logs import read_metrics
from metarl.training.trainer import train


@pytest.mark.slow
def test_short_seeded_training_run_learns(tmp_path):
    cfg = load_config(
        "2d-navigation",
        [
            "--num_iterations",
            "6",
            "--meta_batch_size",
            "10",
            "--episodes_per_task",
            "10",
            "--hidden_sizes",
            "32,32",
            "--seed",
            "1",
            "--tensorboard",
            "false",
            "--out_dir",
            str(tmp_path),
            "--run_name",
            "nav",
        ],
    )
    run_dir = train(cfg, agents.build_maml_trpo, progress=False)
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == list(range(6))
    before = np.array([r["return_before"] for r in rows])
    after = np.array([r["return_after"] for r in rows])
    # one policy-gradient step on a task's own episodes improves the return on that task ...
    assert (after > before).all()
    # ... and the meta-update makes the post-adaptation return rise over iterations
    assert after[-2:].mean() > after[:2].mean() + 10.0
    assert all(r["step_accepted"] == 1.0 and r["kl_after"] <= cfg.max_kl for r in rows)
    assert all(0 < r["env_steps"] <= 2 * 10 * 10 * 100 for r in rows)  # two phases, 100 episodes each
    assert (run_dir / "training_curve.png").stat().st_size > 10_000
    assert (run_dir / "checkpoints" / "iter_000006.pt").is_file()
    assert (run_dir / "config.yaml").is_file()
