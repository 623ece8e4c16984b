"""Faults that are the user's to fix end in one ``error:`` line naming the cause, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.config import ConfigError, check_memory, load_config
from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--config",
    "2d-navigation",
    "--meta_batch_size",
    "2",
    "--episodes_per_task",
    "2",
    "--horizon",
    "5",
    "--hidden_sizes",
    "4",
    "--tensorboard",
    "false",
    "--no-progress",
]


def _one_error(capsys: pytest.CaptureFixture[str], rc: int, expected: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and expected in err, err
    assert err.strip().count("\n") == 0, err
    return err


def test_an_absurd_batch_is_refused_before_anything_is_allocated(tmp_path: Path, capsys) -> None:
    argv = [*TINY, "--meta_batch_size", "2000000", "--episodes_per_task", "100", "--out_dir", str(tmp_path / "runs")]
    _one_error(capsys, load_script("train").main(argv), "steps per sampling phase need at least")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError) as info:
        check_memory(load_config("ant-dir"), available=2**28)  # 256 MiB: less than its 0.5 GiB lower bound
    assert info.value.field == "meta_batch_size"
    check_memory(load_config("ant-dir"), available=24 * 2**30)  # the presets fit this machine


def test_evaluating_a_checkpoint_that_does_not_fit_its_config(tmp_path: Path, capsys) -> None:
    from metarl.runs.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

    argv = [*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path), "--run_name", "run"]
    assert load_script("train").main(argv) == 0
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("hidden_sizes: [4]", "hidden_sizes: [8]"))
    capsys.readouterr()
    _one_error(
        capsys,
        load_script("evaluate").main([str(tmp_path / "run"), "--num-tasks", "2"]),
        "disagrees with the config checkpoint iter_000001.pt was written with (hidden_sizes: (4,) there, (8,) here)",
    )
    # a checkpoint whose own config does not fit its weights
    path = checkpoint_path(tmp_path / "run", 1)
    state = load_checkpoint(path)
    state["config"]["hidden_sizes"] = [8]
    save_checkpoint(path, state)
    _one_error(
        capsys,
        load_script("evaluate").main([str(path), "--num-tasks", "2"]),
        "does not fit the policy of its config (hidden_sizes [8], tanh, metarl/Navigation2D-v1)",
    )


def test_an_env_that_is_nonfinite_from_reset_is_one_error_and_blocks_nothing(tmp_path: Path, capsys, monkeypatch):
    import numpy as np

    from envs.navigation import BatchedNavigation2D

    real_reset = BatchedNavigation2D.reset

    def nan_reset(self, *args, **kwargs):
        obs, info = real_reset(self, *args, **kwargs)
        return np.full_like(obs, np.nan), info

    monkeypatch.setattr(BatchedNavigation2D, "reset", nan_reset)
    train = load_script("train")
    argv = [*TINY, "--num_iterations", "2", "--out_dir", str(tmp_path), "--run_name", "run"]
    rc, err = train.main(argv), capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()  # the sampler's warning about the episodes, then the error
    assert lines[0].startswith("WARNING: sampler: 4 episode(s) ended at reset on non-finite")
    assert lines[-1].startswith("error: no usable step in a whole sampling phase: 4 of 4 episodes ended")
    run = tmp_path / "run"
    log = (run / "train.log").read_text()
    assert "failed at iteration 0, before completing it; no checkpoint written" in log
    assert "last completed one" not in log and not (run / "checkpoints").exists()
    monkeypatch.setattr(BatchedNavigation2D, "reset", real_reset)
    assert train.main(argv) == 0  # the failed run's folder does not block its name
    assert len((run / "metrics.csv").read_text().splitlines()) == 3


def test_an_out_dir_that_is_a_file_and_a_full_disk_are_one_error(tmp_path: Path, capsys, monkeypatch) -> None:
    import errno

    import metarl.training.trainer as trainer

    train = load_script("train")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _one_error(capsys, train.main([*TINY, "--num_iterations", "1", "--out_dir", str(blocker)]), "a-file")

    for code, text, hint in (
        (errno.ENOSPC, "No space left on device", "free some space"),
        (errno.EROFS, "Read-only file system", "on a writable file system"),
        (errno.EACCES, "Permission denied", "you may write to"),
    ):

        def failing(cfg, path, code=code, text=text):
            raise OSError(code, text, str(path))

        monkeypatch.setattr(trainer, "save_config", failing)
        argv = [*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path / "runs"), "--run_name", "full"]
        err = _one_error(capsys, train.main(argv), f"{text} ({tmp_path / 'runs' / 'full' / 'config.yaml'}); ")
        assert hint in err
        assert not (tmp_path / "runs").exists()  # nothing was written, nothing left behind


def test_an_oracle_on_an_env_without_task_features_is_a_clear_error() -> None:
    from metarl.tasks.oracle import task_features_of
    from metarl.tasks.registry import TaskEnvError

    class Vectorised:  # as metarl vectorises a single env of the user's that has no task_features
        env_id = "my_pkg.envs:Wind-v0"

    with pytest.raises(TaskEnvError) as info:
        task_features_of(Vectorised())  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("my_pkg.envs:Wind-v0 has no task_features(task) method")
    assert "Vectorised" not in message and "--algorithm oracle" in message


def test_a_lost_ray_shard_is_one_error_and_keeps_the_last_completed_iteration(tmp_path: Path, capsys, monkeypatch):
    import agents.maml_trpo as maml_trpo
    from metarl.runs.checkpoint import list_checkpoints
    from metarl.sampling.ray_cluster import SamplerError

    real = maml_trpo.sample_adaptation
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SamplerError("Ray sampler: shard 0 (sub-environments 0..3) was lost 3 times; last error: gone")
        return real(*args, **kwargs)

    monkeypatch.setattr(maml_trpo, "sample_adaptation", flaky)
    argv = [*TINY, "--num_iterations", "3", "--out_dir", str(tmp_path), "--run_name", "run"]
    _one_error(capsys, load_script("train").main(argv), "shard 0 (sub-environments 0..3) was lost 3 times")
    assert [i for i, _ in list_checkpoints(tmp_path / "run")] == [1]  # the completed iteration is kept
