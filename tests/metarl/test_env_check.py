"""``python -m metarl check-env``: every check reported as it passes, the first failure named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs  # noqa: F401  (registers the shipped families)
from metarl import TaskEnvError, register_task_env
from metarl.cli.main import main
from metarl.tasks.env_check import check_env

REPO = Path(__file__).resolve().parents[2]
WIND = "scripts.examples.wind_point"


@pytest.mark.parametrize("env_id", ["metarl/Navigation2D-v1", "metarl/TabularMDP-v0", "metarl/HalfCheetahVel-v0"])
def test_shipped_envs_pass_every_check(env_id: str):
    seen: list[str] = []
    report = check_env(env_id, num_envs=3, steps=5, on_pass=seen.append)
    assert report.env_id == env_id and list(report.passed) == seen and len(seen) == 5
    assert "Gymnasium's check_env" in seen[2] and "3 sub-environments" in seen[4]


def test_cli_prints_each_check_and_passed_for_the_example(wind, capsys: pytest.CaptureFixture[str]):
    assert main(["check-env", "examples/WindPoint-v0", "--num_envs", "2", "--steps", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("ok    ") for line in out) == 5
    assert out[-1] == "passed: examples/WindPoint-v0 is a task environment metarl can train on (5 checks)"


@pytest.mark.slow
def test_cli_in_a_fresh_process_imports_the_named_module():
    """The documented command, from the repository root, with the module named in the id."""
    done = subprocess.run(
        [sys.executable, "-m", "metarl", "check-env", f"{WIND}:examples/WindPoint-v0", "--steps", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "passed: examples/WindPoint-v0" in done.stdout


def test_get_task_that_forgets_the_task_fails(wind, ids: list[str], capsys: pytest.CaptureFixture[str]):
    class Forgetful(wind.WindPointEnv):
        def get_task(self):
            return wind.WindTask(np.zeros(2))

    ids.append("test/Forgetful-v0")
    register_task_env("test/Forgetful-v0", Forgetful, max_episode_steps=5)
    with pytest.raises(TaskEnvError, match=r"test/Forgetful-v0: get_task\(\) returned .* after set_task"):
        check_env("test/Forgetful-v0")
    assert main(["check-env", "test/Forgetful-v0"]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("ok    id resolves") and "passed" not in captured.out
    assert captured.err.startswith("error: test/Forgetful-v0: get_task() returned")


def test_non_finite_reward_in_the_batched_env_fails(wind, ids: list[str]):
    class NaNReward(wind.WindPointEnv):
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            self._steps += 1
            return obs, float("nan") if self._steps > 2 else reward, terminated, truncated, info

        def reset(self, *, seed=None, options=None):
            self._steps = 0
            return super().reset(seed=seed, options=options)

    ids.append("test/NaNReward-v0")
    register_task_env("test/NaNReward-v0", NaNReward, max_episode_steps=50)
    with pytest.raises(TaskEnvError, match=r"test/NaNReward-v0: batched reward at step \d+ is not finite"):
        check_env("test/NaNReward-v0", steps=10)


def test_unknown_id_and_bad_kwargs_are_one_line_errors(capsys: pytest.CaptureFixture[str]):
    assert main(["check-env", "metarl/Navigaton2D-v1"]) == 2
    assert "Did you mean 'metarl/Navigation2D-v1'" in capsys.readouterr().err
    assert main(["check-env", "metarl/Navigation2D-v1", "--env-kwargs", "{no_such_arg: 1}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: metarl/Navigation2D-v1: gymnasium.make failed: TypeError") and err.count("\n") == 1
