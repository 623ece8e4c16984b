"""Optional Weights & Biases logging (``wandb: true``): the config once, the same metrics as metrics.csv."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import agents
import envs  # noqa: F401
from metarl.config import load_config
from metarl.runs.logs import read_metrics
from metarl.runs.wandb_log import INSTALL_HINT, WANDB_ID_FILE
from metarl.training.trainer import train
from tests.conftest import load_script


def _tiny(tmp_path: Path, *extra: str, iterations: int = 2):
    return load_config(
        "2d-navigation",
        [
            "--num_iterations",
            str(iterations),
            "--meta_batch_size",
            "3",
            "--episodes_per_task",
            "3",
            "--horizon",
            "10",
            "--hidden_sizes",
            "8",
            "--num_threads",
            "1",
            "--tensorboard",
            "false",
            "--out_dir",
            str(tmp_path),
            "--run_name",
            "wb",
            *extra,
        ],
    )


class _FakeRun:
    def __init__(self, calls: dict, kwargs: dict):
        self.calls, self.kwargs = calls, kwargs

    def log(self, row: dict, step: int) -> None:
        self.calls["log"].append((step, row))

    def finish(self) -> None:
        self.calls["finished"] += 1


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> dict:
    calls: dict = {"init": [], "log": [], "finished": 0}
    module = types.ModuleType("wandb")

    def init(**kwargs):
        calls["init"].append(kwargs)
        return _FakeRun(calls, kwargs)

    module.init = init
    module.Settings = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


@pytest.mark.slow
def test_config_and_the_same_metrics_as_the_csv_and_resume_continues_the_run(tmp_path: Path, fake_wandb: dict):
    run_dir = train(_tiny(tmp_path, "--wandb", "true", "--wandb_mode", "offline"), agents.build_learner, progress=False)
    (first,) = fake_wandb["init"]
    assert first["mode"] == "offline" and first["project"] == "metarl" and first["dir"] == str(run_dir)
    assert first["config"]["meta_batch_size"] == 3 and first["config"]["env_id"] == "metarl/Navigation2D-v1"
    rows = read_metrics(run_dir)
    assert [step for step, _ in fake_wandb["log"]] == [0, 1]
    for (step, logged), row in zip(fake_wandb["log"], rows, strict=True):
        assert step == row["iteration"] and logged == {k: v for k, v in row.items() if k != "iteration"}
    assert fake_wandb["finished"] == 1
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    assert first["id"] == run_id

    resumed = load_config(str(run_dir / "config.yaml"), ["--num_iterations", "3"])
    train(resumed, agents.build_learner, resume=True, progress=False)
    assert fake_wandb["init"][1]["id"] == run_id and fake_wandb["init"][1]["resume"] == "allow"
    assert [step for step, _ in fake_wandb["log"]] == [0, 1, 2]


def test_without_the_package_training_stops_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    train_script = load_script("train")
    args = [
        "--config",
        "2d-navigation",
        "--num_iterations",
        "1",
        "--meta_batch_size",
        "2",
        "--episodes_per_task",
        "2",
        "--horizon",
        "5",
        "--tensorboard",
        "false",
        "--out_dir",
        str(tmp_path),
        "--wandb",
        "true",
        "--no-progress",
    ]
    assert train_script.main(args) == 2
    assert capsys.readouterr().err.strip() == f"error: {INSTALL_HINT}"
    assert not list(tmp_path.glob("*/metrics.csv")) or not read_metrics(next(tmp_path.glob("*")))


def test_bad_mode_is_a_config_error():
    from metarl.config import ConfigError

    with pytest.raises(ConfigError, match="config field 'wandb_mode': must be one of online, offline, got 'offlin'"):
        load_config("2d-navigation", ["--wandb_mode", "offlin"])


def test_real_offline_run_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The real package in offline mode: its run file holds the config and the metric names."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    run_dir = train(_tiny(tmp_path, "--wandb", "true", "--wandb_mode", "offline"), agents.build_learner, progress=False)
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    (record,) = list((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    data = record.read_bytes()
    for name in (b"return_after", b"return_before", b"kl_after", b"meta_batch_size", b"Navigation2D-v1"):
        assert name in data, name
