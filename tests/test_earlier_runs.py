"""A run folder written before the reorganisation and the renames still resumes and evaluates.

``results/2d-navigation/comparisons/exact-seed1`` was trained by an earlier layout of metarl
(its config names ``hvp_subsample``, its checkpoint was written by the modules before they moved).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import load_script

EARLIER_RUN = Path(__file__).resolve().parents[1] / "results/2d-navigation/comparisons/exact-seed1"


@pytest.mark.slow
def test_an_earlier_run_folder_resumes_and_evaluates(tmp_path: Path):
    assert "hvp_subsample" in (EARLIER_RUN / "config.yaml").read_text()
    run = tmp_path / "run"
    shutil.copytree(EARLIER_RUN, run, ignore=shutil.ignore_patterns("eval", ".lock", "tb"))
    evaluate = load_script("evaluate")
    argv = [str(run), "--num-tasks", "2", "--num-steps", "1", "--threads", "1", "--out", str(tmp_path / "ev")]
    assert evaluate.main(argv) == 0
    resume = ["--resume", str(run), "--num_iterations", "101", "--num_threads", "1", "--no-progress"]
    assert load_script("train").main([*resume, "--tensorboard", "false"]) == 0
    assert (run / "checkpoints" / "iter_000101.pt").is_file()
    assert "fvp_task_fraction: 1.0" in (run / "config.yaml").read_text()
