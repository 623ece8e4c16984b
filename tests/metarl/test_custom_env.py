"""A task environment of one's own: registration, protocol errors, the batched fallback, training.

The README's example family (``scripts/examples/wind_point.py``) trains through the
Python API and from the command line; every protocol violation gives its error.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the shipped families)
from envs.navigation import BatchedNavigation2D
from metarl import (
    SyncBatchedTaskEnv,
    TaskEnvError,
    check_env_id,
    check_task_env,
    make_batched,
    register_task_env,
    task_env_ids,
)
from metarl.config import TrainConfig
from metarl.training.trainer import train

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_MODULE = "scripts.examples.wind_point"
WIND_ID = "examples/WindPoint-v0"
TINY = {
    "horizon": 10,
    "meta_batch_size": 2,
    "episodes_per_task": 2,
    "hidden_sizes": (8,),
    "cg_iters": 3,
    "num_threads": 1,
    "tensorboard": False,
}


def _read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_returns(rows: list[dict[str, str]], iterations: int, horizon: int) -> None:
    # Start near the origin, goal at (1, 0), the mass barely moves in 10 steps of 0.1 s:
    # every reward is about -1 (distance) minus at most 0.02 (control cost).
    assert [int(r["iteration"]) for r in rows] == list(range(iterations))
    for row in rows:
        for key in ("return_before", "return_after"):
            value = float(row[key])
            assert math.isfinite(value)
            assert -1.1 * horizon < value < -0.85 * horizon, (key, value)


# ------------------------------------------------------------------------------ the example


def test_example_trains_through_python_api(wind: Any, tmp_path: Path) -> None:
    cfg = TrainConfig(env_id=WIND_ID, num_iterations=2, out_dir=str(tmp_path), run_name="wind", **TINY)
    run_dir = train(cfg, agents.build_maml_trpo, progress=False)
    _assert_returns(_read_metrics(run_dir), iterations=2, horizon=10)
    assert (run_dir / "training_curve.png").is_file()


def test_example_passes_gymnasium_check_env(wind: Any) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(WIND_ID)
    env.unwrapped.set_task(wind.WindTask(wind=(0.3, -0.2)))
    with pytest.warns(UserWarning, match="infinity"):  # unbounded observations, on purpose
        check_env(env.unwrapped, skip_render_check=True)
    check_task_env(WIND_ID)


@pytest.mark.slow
def test_custom_env_id_from_the_command_line(wind: Any, tmp_path: Path) -> None:
    """``module:Id`` from the YAML reaches the env: imported from the current directory."""
    out = tmp_path / "runs"
    args = [
        sys.executable,
        "scripts/train.py",
        "--config",
        "scripts/examples/wind_point.yaml",
        "--num_iterations",
        "1",
        "--meta_batch_size",
        "2",
        "--episodes_per_task",
        "2",
        "--horizon",
        "10",
        "--hidden_sizes",
        "8",
        "--cg_iters",
        "3",
        "--num_threads",
        "1",
        "--tensorboard",
        "false",
        "--out_dir",
        str(out),
        "--run_name",
        "cli",
        "--no-progress",
    ]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = out / "cli"
    assert f"run folder: {run_dir}" in done.stdout
    assert "env_id: scripts.examples.wind_point:examples/WindPoint-v0" in (run_dir / "config.yaml").read_text()
    _assert_returns(_read_metrics(run_dir), iterations=1, horizon=10)

    # The saved module:Id is all a resume needs (no extra option).
    train_script = _load_train_script()
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert train_script.main(["--resume", str(run_dir), "--num_iterations", "2", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    _assert_returns(_read_metrics(run_dir), iterations=2, horizon=10)


def _load_train_script() -> Any:
    spec = importlib.util.spec_from_file_location("metarl_train_script", REPO / "scripts" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unknown_module_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_script = _load_train_script()
    rc = train_script.main(["--env_id", "no_such_pkg_xyz.envs:Wind-v0", "--out_dir", str(tmp_path), "--no-progress"])
    assert rc == 2
    assert "error: cannot import module 'no_such_pkg_xyz.envs'" in capsys.readouterr().err


def test_module_ids(wind: Any) -> None:
    assert check_env_id(f"{EXAMPLE_MODULE}:{WIND_ID}") == WIND_ID
    with pytest.raises(
        TaskEnvError,
        match=r"unknown task environment id 'examples/Nope-v0' \(module "
        r"'scripts.examples.wind_point' was imported; it registered no new task environment\)",
    ):
        check_env_id(f"{EXAMPLE_MODULE}:examples/Nope-v0")
    with pytest.raises(TaskEnvError, match=r"'CartPole-v1'.*a Gymnasium env but not a task environment"):
        check_env_id("CartPole-v1")


# ------------------------------------------------------------------------------ the batched fallback


def test_fallback_equals_single_envs_step_for_step(wind: Any) -> None:
    n, horizon = 4, 8
    batched = make_batched(WIND_ID, n, max_episode_steps=horizon)
    assert isinstance(batched, SyncBatchedTaskEnv)
    tasks = batched.sample_tasks(n, np.random.default_rng(7))
    sampler = gym.make(WIND_ID).unwrapped
    sampler.np_random = np.random.default_rng(7)
    assert tasks == sampler.sample_tasks(n)  # same draws as the single env's sample_tasks
    assert len(set(tasks)) == n

    singles = [gym.make(WIND_ID, max_episode_steps=horizon) for _ in range(n)]
    for env, task in zip(singles, tasks, strict=True):
        env.unwrapped.set_task(task)
    batched.set_tasks(tasks)
    assert batched.get_tasks() == tasks

    def check_step(actions: np.ndarray, active: list[int]) -> tuple[np.ndarray, np.ndarray]:
        obs, reward, terminated, truncated, _ = batched.step(actions)
        for i in active:
            o, r, te, tr, _ = singles[i].step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert reward[i] == r and terminated[i] == te and truncated[i] == tr
        return obs, truncated

    seeds = [10, 11, 12, 13]
    obs, _ = batched.reset(seed=seeds)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seeds[i])[0])
    assert len({tuple(o) for o in obs}) == n  # the seeds matter: random start positions
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(horizon + 4, n, 2)).astype(np.float32)
    for t in range(5):
        check_step(actions[t], active=[0, 1, 2, 3])

    # Reset only sub-environments 1 and 3 (with their own seeds); 0 and 2 go on.
    obs, _ = batched.reset(seed=[None, 21, None, 23], options={"reset_mask": [False, True, False, True]})
    np.testing.assert_array_equal(obs[1], singles[1].reset(seed=21)[0])
    np.testing.assert_array_equal(obs[3], singles[3].reset(seed=23)[0])
    for t in range(5, horizon):
        obs, truncated = check_step(actions[t], active=[0, 1, 2, 3])
    assert truncated.tolist() == [True, False, True, False]

    # Ended sub-environments are no longer stepped: last observation, reward 0.
    last = obs.copy()
    obs, reward, _, _, _ = batched.step(actions[horizon])
    np.testing.assert_array_equal(obs[[0, 2]], last[[0, 2]])
    assert reward[0] == 0.0 and reward[2] == 0.0
    for i in (1, 3):
        o, r, *_ = singles[i].step(actions[horizon][i])
        np.testing.assert_array_equal(obs[i], o)
        assert reward[i] == r
    batched.close()


def test_fallback_equals_native_navigation() -> None:
    """The fallback over single 2D-navigation envs reproduces the natively batched env."""
    n, horizon = 5, 12
    fallback = SyncBatchedTaskEnv("metarl/Navigation2D-v0", n, max_episode_steps=horizon)
    native = BatchedNavigation2D(n, max_episode_steps=horizon)
    tasks = fallback.sample_tasks(n, np.random.default_rng(3))
    assert tasks == native.sample_tasks(n, np.random.default_rng(3))
    for env in (fallback, native):
        env.set_tasks(tasks)
    np.testing.assert_array_equal(fallback.reset(seed=1)[0], native.reset(seed=1)[0])
    actions = np.random.default_rng(4).uniform(-0.1, 0.1, size=(horizon, n, 2)).astype(np.float32)
    for a in actions:
        for x, y in zip(fallback.step(a)[:4], native.step(a)[:4], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_fallback_passes_on_diverged(wind: Any, ids: list[str]) -> None:
    """A single env's info["diverged"] reaches the sampler, and that sub-env stops."""

    class Unstable(wind.WindPointEnv):
        def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            obs, reward, terminated, truncated, _ = super().step(action)
            return obs, reward, terminated, truncated, {"diverged": self.get_task().wind[0] > 0}

    ids.append("test/Unstable-v0")
    register_task_env("test/Unstable-v0", Unstable, max_episode_steps=5)
    batched = make_batched("test/Unstable-v0", 2)
    batched.set_tasks([wind.WindTask(wind=(0.1, 0.0)), wind.WindTask(wind=(-0.1, 0.0))])
    batched.reset(seed=0)
    _, reward, _, _, info = batched.step(np.zeros((2, 2), np.float32))
    assert info["diverged"].tolist() == [True, False]
    _, reward, _, _, info = batched.step(np.zeros((2, 2), np.float32))
    assert info["diverged"].tolist() == [False, False] and reward[0] == 0.0 and reward[1] < 0


def test_fallback_forwards_task_features(wind: Any) -> None:
    batched = make_batched(WIND_ID, 2, max_episode_steps=5)
    np.testing.assert_array_equal(batched.task_features(wind.WindTask(wind=(0.25, -0.5))), [0.25, -0.5])


# ------------------------------------------------------------------------------ protocol errors


def test_registration_as_decorator_and_reregistration(wind: Any, ids: list[str]) -> None:
    ids.append("test/Decorated-v0")

    @register_task_env("test/Decorated-v0", max_episode_steps=3)
    class Decorated(wind.WindPointEnv):
        pass

    assert Decorated.__name__ == "Decorated" and "test/Decorated-v0" in task_env_ids()
    register_task_env("test/Decorated-v0", Decorated, max_episode_steps=3)  # the same class again: fine
    assert make_batched("test/Decorated-v0", 2).max_episode_steps == 3


def test_id_taken(wind: Any) -> None:
    with pytest.raises(TaskEnvError, match=r"task environment id 'metarl/Navigation2D-v0' is already registered"):
        register_task_env("metarl/Navigation2D-v0", wind.WindPointEnv)
    with pytest.raises(TaskEnvError, match=r"task environment id 'CartPole-v1' is already registered"):
        register_task_env("CartPole-v1", wind.WindPointEnv)


def test_missing_protocol_method_at_registration(wind: Any) -> None:
    class NoGetTask(gym.Env):
        def sample_tasks(self, n: int) -> list[Any]:
            return []

        def set_task(self, task: Any) -> None:
            pass

    missing = r"test/NoGetTask-v0: .*NoGetTask misses the task-protocol method\(s\) get_task"
    with pytest.raises(TaskEnvError, match=missing):
        register_task_env("test/NoGetTask-v0", NoGetTask)
    with pytest.raises(TaskEnvError, match=r"test/NotAnEnv-v0: entry point .*Plain is not a gymnasium.Env subclass"):

        @register_task_env("test/NotAnEnv-v0")
        class Plain:
            pass

    assert "test/NoGetTask-v0" not in task_env_ids() and "test/NotAnEnv-v0" not in gym.registry


def test_missing_protocol_method_at_first_use(wind: Any, ids: list[str]) -> None:
    """A factory cannot be checked at registration; the first make_batched does it."""

    class NoSampleTasks(wind.WindPointEnv):
        sample_tasks = None  # type: ignore[assignment]

    ids.append("test/Factory-v0")
    register_task_env("test/Factory-v0", lambda: NoSampleTasks(), max_episode_steps=5)
    missing = r"test/Factory-v0: .*NoSampleTasks misses the task-protocol method\(s\) sample_tasks"
    with pytest.raises(TaskEnvError, match=missing):
        make_batched("test/Factory-v0", 2)


def test_set_task_rejects_sampled_tasks(wind: Any, ids: list[str]) -> None:
    class ArrayTasks(wind.WindPointEnv):
        def sample_tasks(self, n: int) -> list[np.ndarray]:
            return list(self.np_random.uniform(-0.5, 0.5, size=(n, 2)))  # set_task wants WindTask

    ids.append("test/ArrayTasks-v0")
    register_task_env("test/ArrayTasks-v0", ArrayTasks, max_episode_steps=5)
    with pytest.raises(
        TaskEnvError,
        match=r"test/ArrayTasks-v0: set_task does not accept a task that sample_tasks "
        r"returned \(array\(.*\)\): TypeError: WindPoint: expected a WindTask, got ndarray",
    ):
        make_batched("test/ArrayTasks-v0", 2)


def test_dict_tasks(wind: Any, ids: list[str]) -> None:
    class DictTasks(wind.WindPointEnv):
        def sample_tasks(self, n: int) -> list[dict[str, float]]:
            return [{"wind": 0.1} for _ in range(n)]

    ids.append("test/DictTasks-v0")
    register_task_env("test/DictTasks-v0", DictTasks, max_episode_steps=5)
    with pytest.raises(
        TaskEnvError,
        match=r"test/DictTasks-v0: sample_tasks returned a dict task \{'wind': 0.1\}; "
        "tasks must be frozen dataclasses or numpy arrays, never dicts",
    ):
        check_task_env("test/DictTasks-v0")


@pytest.mark.parametrize(
    ("name", "space", "message"),
    [
        ("ImageObs", "obs", r"observation space Box\(0.0, 1.0, \(4, 4\), float32\) is not supported; .*flat"),
        ("DiscreteObs", "obs", r"observation space Discrete\(5\) is not supported"),
        ("MultiDiscreteAct", "act", r"action space MultiDiscrete\(\[3 3\]\) is not supported; .*flat \(1-D\) Box"),
        ("ShiftedDiscreteAct", "act", r"action space Discrete\(3, start=1\) is not supported"),
    ],
)
def test_unsupported_spaces(wind: Any, ids: list[str], name: str, space: str, message: str) -> None:
    spaces = {
        "ImageObs": gym.spaces.Box(0.0, 1.0, shape=(4, 4), dtype=np.float32),
        "DiscreteObs": gym.spaces.Discrete(5),
        "MultiDiscreteAct": gym.spaces.MultiDiscrete([3, 3]),
        "ShiftedDiscreteAct": gym.spaces.Discrete(3, start=1),
    }

    class Odd(wind.WindPointEnv):
        def __init__(self) -> None:
            super().__init__()
            setattr(self, "observation_space" if space == "obs" else "action_space", spaces[name])

    env_id = f"test/{name}-v0"
    ids.append(env_id)
    register_task_env(env_id, Odd, max_episode_steps=5)
    with pytest.raises(TaskEnvError, match=rf"{env_id}: {message}"):
        make_batched(env_id, 2)


def test_bad_batched_entry_point(wind: Any) -> None:
    with pytest.raises(
        TaskEnvError,
        match=r"test/BadBatched-v0: batched entry point WindPointEnv is not a "
        r"metarl.BatchedTaskEnv subclass",
    ):
        register_task_env("test/BadBatched-v0", wind.WindPointEnv, batched_entry_point=wind.WindPointEnv)
    with pytest.raises(
        TaskEnvError,
        match=r"test/BadString-v0: entry point 'scripts.examples.wind_point' is not "
        r"of the form 'module:Class'",
    ):
        register_task_env("test/BadString-v0", "scripts.examples.wind_point")


def test_no_episode_length(wind: Any, ids: list[str]) -> None:
    ids.append("test/NoHorizon-v0")
    register_task_env("test/NoHorizon-v0", wind.WindPointEnv)
    with pytest.raises(TaskEnvError, match=r"test/NoHorizon-v0: no episode length; pass max_episode_steps"):
        make_batched("test/NoHorizon-v0", 2)
    assert make_batched("test/NoHorizon-v0", 2, max_episode_steps=4).max_episode_steps == 4


def test_readme_example_is_the_example_file() -> None:
    """Every code line of the guide's example (docs/custom-envs.md) is in scripts/examples/wind_point.py."""
    readme = (REPO / "docs" / "custom-envs.md").read_text()
    section = readme[readme.index("## Your own task environment") :]
    block = section[section.index("```python\n") + len("```python\n") :]
    block = block[: block.index("```")]
    source = {line.strip() for line in (REPO / "scripts" / "examples" / "wind_point.py").read_text().splitlines()}
    code = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith('"""')]
    assert len(code) >= 45  # the whole class, not a fragment
    assert [line for line in code if line not in source] == []
