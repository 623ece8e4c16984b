"""Opening someone else's run folder or checkpoint runs no code from it unless the user vouches for the module."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest
import torch

from metarl.config import TrainConfig, config_to_dict, save_config
from metarl.runs.checkpoint import checkpoint_path, save_checkpoint
from metarl.tasks.registry import TaskEnvError
from metarl.tasks.resolve import check_trusted_env_id
from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hostile_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, Path]:
    """A run folder whose config names ``<payload module>:Evil-v0``, the payload ``.py`` beside it in the cwd."""
    module = f"payload_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "payload-ran"
    (tmp_path / f"{module}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(
        env_id=f"{module}:Evil-v0",
        out_dir=str(tmp_path),
        run_name="run",
        meta_batch_size=2,
        episodes_per_task=2,
        horizon=5,
        hidden_sizes=(4,),
        num_iterations=1,
    )
    run = tmp_path / "run"
    save_config(cfg, run / "config.yaml")
    save_checkpoint(
        checkpoint_path(run, 1),
        {"iteration": 1, "config": config_to_dict(cfg), "learner": {"policy": {"w0": torch.zeros(2, 4)}}},
    )
    yield run, module, marker
    sys.modules.pop(module, None)


def test_evaluate_refuses_to_import_a_run_folders_module(hostile_run, capsys: pytest.CaptureFixture[str]) -> None:
    run, module, marker = hostile_run
    evaluate = load_script("evaluate")
    for source in (run, checkpoint_path(run, 1)):
        assert evaluate.main([str(source)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert f"would import module {module!r}" in err and f"--trust-env-module {module}" in err
        assert not marker.exists()
    assert evaluate.main([str(run), "--random"]) == 2  # a fresh policy of the run's architecture: the same env
    assert not marker.exists()


def test_resume_refuses_to_import_a_run_folders_module(hostile_run, capsys: pytest.CaptureFixture[str]) -> None:
    run, module, marker = hostile_run
    train = load_script("train")
    assert train.main(["--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"run folder {run} names its environment" in err and f"--trust-env-module {module}" in err
    assert not marker.exists()


def test_naming_the_module_opts_in(hostile_run, capsys: pytest.CaptureFixture[str]) -> None:
    run, module, marker = hostile_run
    assert load_script("evaluate").main([str(run), "--trust-env-module", module]) == 2  # imported, registers nothing
    assert marker.exists() and "registered no new task environment" in capsys.readouterr().err
    marker.unlink()
    sys.modules.pop(module, None)
    assert load_script("train").main(["--resume", str(run), "--env_id", f"{module}:Evil-v0", "--no-progress"]) == 2
    assert marker.exists()


def test_registered_and_already_imported_modules_need_no_opt_in() -> None:
    check_trusted_env_id("metarl/Navigation2D-v1", (), "run folder x")
    check_trusted_env_id("envs.navigation:metarl/Navigation2D-v1", (), "run folder x")  # imported already
    check_trusted_env_id("some_module:Id-v0", ("some_module",), "run folder x")
    with pytest.raises(TaskEnvError, match="pass --trust-env-module not_imported_yet"):
        check_trusted_env_id("not_imported_yet:Id-v0", (), "checkpoint c.pt")


def test_a_run_trained_here_evaluates_without_the_flag_but_a_moved_or_edited_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs this user trained are recognised by a keyed signature (metarl.runs.trust); copies and edits are not."""
    module = f"own_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from metarl import register_task_env\n"
        f"register_task_env('{module}/Nav-v0', entry_point='envs.navigation:Navigation2DEnv', max_episode_steps=5)\n"
    )
    monkeypatch.chdir(tmp_path)
    env_id = f"{module}:{module}/Nav-v0"
    argv = [
        *"--config 2d-navigation --num_iterations 1 --meta_batch_size 2 --episodes_per_task 2 --horizon 5".split(),
        "--hidden_sizes",
        "[4]",
        "--num_threads",
        "1",
        "--tensorboard",
        "false",
        "--no-progress",
        "--env_id",
        env_id,
        "--out_dir",
        str(tmp_path / "runs"),
        "--run_name",
        "own",
    ]
    assert load_script("train").main(argv) == 0
    run = tmp_path / "runs" / "own"
    sys.modules.pop(module, None)  # as in a new process: nothing imported yet
    evaluate = load_script("evaluate")
    eval_args = ["--num-tasks", "1", "--num-steps", "1", "--threads", "1"]
    assert evaluate.main([str(run), *eval_args]) == 0
    assert load_script("train").main(["--resume", str(run), "--num_iterations", "2", "--no-progress"]) == 0
    capsys.readouterr()
    # a copy elsewhere (downloaded) and an edited env id: no signature matches, no code runs
    copy = tmp_path / "downloads" / "own"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", ".lock"))
    sys.modules.pop(module, None)
    assert evaluate.main([str(copy), *eval_args]) == 2
    assert f"--trust-env-module {module}" in capsys.readouterr().err
    assert module not in sys.modules
    assert evaluate.main([str(copy), *eval_args, "--trust-env-module", module]) == 0
