"""The Meta-World expert check's table (no metaworld needed)."""

from __future__ import annotations

import json

import pytest

from envs.meta_world.expert_table import expert_table_block, fisher_exact, moved_envs


def test_fisher_exact_matches_known_values():
    assert fisher_exact(3, 10, 3, 10) == pytest.approx(1.0)
    assert fisher_exact(50, 50, 45, 50) == pytest.approx(0.0562845, rel=1e-5)  # scipy.stats.fisher_exact
    assert fisher_exact(50, 50, 30, 50) == pytest.approx(1.7586e-07, rel=1e-3)
    assert fisher_exact(0, 5, 5, 5) == pytest.approx(2 / 252)


def _write(folder, name, mujoco, successes, disabled=()):
    envs = {
        env: {"episodes": 50, "successes": s, "steps_to_success": [10 + k for k in range(s)] + [None] * (50 - s)}
        for env, s in successes.items()
    }
    data = {
        "machine": {"cpu": "Test CPU"},
        "versions": {"mujoco": mujoco, "metaworld": "3.1.1", "numpy": "2"},
        "settings": {"episodes": 50, "seed": 0, "disabled": list(disabled)},
        "envs": envs,
    }
    (folder / name).write_text(json.dumps(data))


def test_the_table_compares_each_version_with_mujoco_3_and_bolds_what_moved(tmp_path):
    _write(tmp_path, "experts_mujoco-4.0.0.json", "4.0.0", {"reach-v3": 50, "push-v3": 20, "sweep-v3": 47})
    _write(tmp_path, "experts_mujoco-3.3.0.json", "3.3.0", {"reach-v3": 50, "push-v3": 49, "sweep-v3": 50})
    _write(tmp_path, "experts_mujoco-4.0.0_no-multiccd.json", "4.0.0", {"push-v3": 48}, disabled=("MULTICCD",))
    block = expert_table_block(tmp_path, "results/meta-world")
    lines = block.splitlines()
    assert lines[0].startswith("| environment | MuJoCo 3.3.0 | MuJoCo 4.0.0 | MuJoCo 4.0.0, no MULTICCD |")
    assert lines[3].startswith("| **push-v3** | 49/50 | 20/50 | 48/50 |") and lines[3].endswith("| 34 / 19.5 / 33.5 |")
    assert lines[2].startswith("| reach-v3 | 50/50 | 50/50 |  | 1 |")
    assert moved_envs(
        [json.loads((tmp_path / f).read_text()) for f in ("experts_mujoco-3.3.0.json", "experts_mujoco-4.0.0.json")]
    ) == ["push-v3"]


def test_the_table_needs_a_mujoco_3_reference(tmp_path):
    _write(tmp_path, "experts_mujoco-4.0.0.json", "4.0.0", {"reach-v3": 50})
    with pytest.raises(ValueError, match="MuJoCo 3.x"):
        expert_table_block(tmp_path, "x")


def test_no_committed_environment_moved_between_mujoco_versions():
    """What docs/meta-world.md and envs.meta_world.family say, held to the committed check."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "results" / "meta-world"
    from envs.meta_world.expert_table import load_results

    results = load_results(sorted(folder.glob("experts_*.json")))
    assert len(results) >= 2 and len(results[0]["envs"]) == 50
    assert moved_envs(results) == []
