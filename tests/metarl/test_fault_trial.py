"""The second fault trial: each case a hostile or unlucky user found, and what metarl does now."""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import envs  # noqa: F401  (registers the shipped families)
from metarl import register_task_env, task_env_ids, unregister_task_env
from metarl.runs import checkpoint
from metarl.runs.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from metarl.system import files
from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--config",
    "2d-navigation",
    "--num_iterations",
    "2",
    "--meta_batch_size",
    "2",
    "--episodes_per_task",
    "2",
    "--horizon",
    "5",
    "--hidden_sizes",
    "[8]",
    "--num_threads",
    "1",
    "--no-progress",
    "--tensorboard",
    "false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-iteration 2D-navigation run."""
    out = tmp_path_factory.mktemp("trial")
    assert load_script("train").main([*TINY, "--out_dir", str(out), "--run_name", "run"]) == 0
    return out / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("eval", ".lock"))
    return dest


def _edit_config(run: Path, **changes: object) -> None:
    path = run / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


EVAL = ["--num-tasks", "2", "--num-steps", "1", "--threads", "1"]


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"fast_lr": 0.5}, "fast_lr: 0.1 there, 0.5 here"),
        ({"env_id": "metarl/Navigation2D-v0"}, "env_id: 'metarl/Navigation2D-v1' there, 'metarl/Navigation2D-v0' here"),
        ({"algorithm": "pretrained"}, "algorithm: 'maml-trpo' there, 'pretrained' here"),
        ({"seed": 7}, "seed: 1 there, 7 here"),
    ],
)
def test_evaluate_refuses_a_folder_config_that_disagrees_with_the_checkpoint(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict, named: str
):
    run = _copy(trained, tmp_path)
    _edit_config(run, **changes)
    assert load_script("evaluate").main([str(run), *EVAL]) == 2
    err = _one_error_line(capsys)
    assert "disagrees with the config checkpoint iter_000002.pt was written with" in err and named in err
    assert not (run / "eval").exists()


def test_evaluate_refuses_an_emptied_config_and_a_checkpoint_from_another_run(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    evaluate = load_script("evaluate")
    run = _copy(trained, tmp_path)
    (run / "config.yaml").write_text("")
    assert evaluate.main([str(run), *EVAL]) == 2
    assert "does not read as the config of checkpoint iter_000002.pt" in _one_error_line(capsys)
    # another run's checkpoint (seed 3, same architecture) copied into this folder
    other = _copy(trained, tmp_path / "o")
    _edit_config(other, seed=3)
    path = checkpoint_path(other, 2)
    state = load_checkpoint(path)
    state["config"]["seed"] = 3
    save_checkpoint(path, state)
    shutil.copy(path, checkpoint_path(_copy(trained, tmp_path / "t"), 2))
    assert evaluate.main([str(tmp_path / "t" / "run"), *EVAL]) == 2
    assert "seed: 3 there, 1 here" in _one_error_line(capsys)
    # the checkpoint file itself is evaluated under its own config
    assert evaluate.main([str(path), *EVAL, "--out", str(tmp_path / "ev")]) == 0
    assert '"training_seed": 3' in (tmp_path / "ev" / "adaptation_maml-trpo.json").read_text()


def test_evaluate_accepts_what_a_resume_may_change(trained: Path, tmp_path: Path):
    run = _copy(trained, tmp_path)
    _edit_config(run, num_iterations=50, num_threads=2, checkpoint_every=5)
    assert load_script("evaluate").main([str(run), *EVAL]) == 0


def _rewrite_archive(src: Path, dest: Path, compression: int) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", compression=compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def test_checkpoint_tensors_beyond_their_stored_bytes_are_refused_before_any_is_read(tmp_path: Path):
    # a stride-0 view declaring 10**12 floats over one stored float (27 kB files in the trial)
    for declared in (10**12, 10**9):
        path = tmp_path / f"view{declared}.pt"
        state = {"iteration": 1, "learner": {"policy": {"w": torch.zeros(1).expand(declared)}}}
        torch.save({"format": "metarl-checkpoint", "version": 1, "state": state}, path)
        assert path.stat().st_size < 4000
        shape = rf"a tensor of shape \({declared},\) and strides \(0,\) over 4 stored"
        with pytest.raises(CheckpointError, match=shape):
            load_checkpoint(path)


def test_compressed_and_oversized_checkpoints_are_refused(trained: Path, tmp_path: Path, monkeypatch):
    good = checkpoint_path(trained, 2)
    packed = tmp_path / "iter_000002.pt"
    _rewrite_archive(good, packed, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="holds compressed entries"):
        load_checkpoint(packed)
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", good.stat().st_size - 1)
    with pytest.raises(CheckpointError, match=r"bytes, more than the [\d,]+ a metarl checkpoint may have"):
        load_checkpoint(good)
    monkeypatch.undo()
    assert load_checkpoint(good)["iteration"] == 2


def test_a_file_that_is_no_archive_is_a_checkpoint_error(tmp_path: Path):
    path = tmp_path / "iter_000001.pt"
    path.write_bytes(b"\x80\x04junk" * 100)
    with pytest.raises(CheckpointError, match="not a torch archive"):
        load_checkpoint(path)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def test_a_resume_with_no_checkpoint_is_an_error_and_changes_nothing(trained: Path, tmp_path: Path, capsys):
    run = _copy(trained, tmp_path)
    shutil.rmtree(run / "checkpoints")
    before = _snapshot(run)
    assert load_script("train").main(["--resume", str(run), "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert "holds no checkpoint; its metrics.csv records 2 iterations, which a restart would lose" in err
    assert _snapshot(run) == before


def test_a_resume_over_a_damaged_metrics_file_changes_nothing(trained: Path, tmp_path: Path, capsys):
    run = _copy(trained, tmp_path)
    with open(run / "metrics.csv", "a") as f:
        f.write("garbage,row\n")
    before = _snapshot(run)
    assert load_script("train").main(["--resume", str(run), "--num_iterations", "3", "--no-progress"]) == 2
    assert "metrics.csv is damaged" in _one_error_line(capsys)
    assert _snapshot(run) == before


def test_deleted_metrics_rows_are_named_on_resume(trained: Path, tmp_path: Path, capsys):
    run = _copy(trained, tmp_path)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text(lines[0] + lines[2])  # iteration 0's row deleted
    assert load_script("train").main(["--resume", str(run), "--num_iterations", "3", "--no-progress"]) == 0
    assert "lacks the rows of 1 iterations below the checkpoint's 2 (first: 0)" in capsys.readouterr().err


def test_resuming_through_a_symbolic_link_keeps_the_folders_own_name(trained: Path, tmp_path: Path):
    run = _copy(trained, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run)
    assert load_script("train").main(["--resume", str(link), "--num_iterations", "3", "--no-progress"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["run_name"] == "run"


def test_evaluate_checks_its_output_folder_before_the_work(trained: Path, tmp_path: Path, capsys):
    evaluate = load_script("evaluate")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert evaluate.main([str(trained), *EVAL, "--out", str(blocker)]) == 2
    assert f"({blocker}); a part of the path is a file, not a folder: choose another --out" in _one_error_line(capsys)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if not os.access(readonly, os.W_OK):  # root may write anywhere
            assert evaluate.main([str(trained), *EVAL, "--out", str(readonly)]) == 2
            assert "choose --out you may write to" in _one_error_line(capsys)
    finally:
        readonly.chmod(0o700)


def test_a_results_file_is_replaced_whole_or_not_at_all(trained: Path, tmp_path: Path, monkeypatch):
    evaluate = load_script("evaluate")
    out = tmp_path / "ev"
    assert evaluate.main([str(trained), *EVAL, "--out", str(out)]) == 0
    good = (out / "adaptation_maml-trpo.json").read_bytes()

    def dying_fsync(fd: int) -> None:  # the process dies after writing the temporary, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main([str(trained), *EVAL, "--out", str(out), "--num-steps", "2"])
    monkeypatch.undo()
    assert (out / "adaptation_maml-trpo.json").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == ["adaptation_maml-trpo.json", "adaptation_maml-trpo.png"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--threads", "-1", "expected an integer from 1 to 1,024, got -1"),
        ("--num-tasks", "1e8", "expected an integer, got '1e8'"),
        ("--num-tasks", "100000000", "expected an integer from 1 to 10,000, got 100,000,000"),
    ],
)
def test_evaluate_bounds_its_numbers(trained: Path, option: str, value: str, message: str, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script("evaluate").main([str(trained), option, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_plot_names_an_unreadable_results_file(tmp_path: Path, capsys):
    bad = tmp_path / "adaptation_x.json"
    bad.write_bytes(b"\xff\xfe not json")
    assert load_script("plot").main(["adaptation", str(bad), "--out", str(tmp_path / "a.png")]) == 2
    assert f"error: {bad} is not a readable results file" in _one_error_line(capsys)


class FaultyPoint(gym.Env):
    """A task env whose step goes wrong from its third step on, as ``FaultyPoint.fault`` says."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (4,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    fault = ""

    def __init__(self):
        self._goal, self._t = 0.0, 0

    def sample_tasks(self, n: int) -> list[float]:
        return [float(g) for g in self.np_random.uniform(-1, 1, n)]

    def set_task(self, task: float) -> None:
        self._goal = float(task)

    def get_task(self) -> float:
        return self._goal

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self._t += 1
        obs, reward = np.full(4, 0.1, np.float32), -abs(self._goal)
        if self._t >= 3:
            if self.fault == "shape":
                obs = np.zeros(1, np.float32)
            elif self.fault == "raise":
                raise RuntimeError("the simulator gave up")
            elif self.fault == "string":
                obs = "four numbers"
            elif self.fault == "array-reward":
                reward = np.ones(3)
            elif self.fault == "hang":
                while True:
                    pass
        return obs, reward, False, False, {}


@pytest.fixture(scope="module")
def faulty_id() -> str:
    id = "trial/FaultyPoint-v0"
    if id not in task_env_ids():
        register_task_env(id, FaultyPoint, max_episode_steps=5)
    yield id
    unregister_task_env(id)


@pytest.mark.parametrize(
    "fault, message",
    [
        ("shape", "returned an observation of shape (1,), the observation space's is (4,)"),
        ("raise", "step: raised RuntimeError: the simulator gave up"),
        ("string", "returned an observation that is not numbers: 'four numbers'"),
        ("array-reward", "returned a reward that is not one number: array([1., 1., 1.])"),
    ],
)
def test_an_env_fault_mid_training_is_one_line_naming_the_kept_checkpoint(
    faulty_id: str, fault: str, message: str, tmp_path: Path, capsys, monkeypatch
):
    train = load_script("train")
    argv = [*TINY, "--env_id", faulty_id, "--horizon", "5", "--out_dir", str(tmp_path), "--run_name", "r"]
    assert train.main([*argv, "--num_iterations", "1"]) == 0
    capsys.readouterr()
    run = tmp_path / "r"
    monkeypatch.setattr(FaultyPoint, "fault", fault)  # from the resumed run's iteration 1 on
    assert train.main(["--resume", str(run), "--num_iterations", "3", "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert f"error: training stopped in iteration 1: {faulty_id}: sub-environment" in err
    assert message in err and f"the last checkpoint kept is {run / 'checkpoints' / 'iter_000001.pt'}" in err


@pytest.mark.slow
def test_a_full_disk_mid_training_is_one_line_and_the_resume_is_exact(
    trained: Path, tmp_path: Path, capsys, monkeypatch
):
    train = load_script("train")
    run = _copy(trained, tmp_path)
    reference = _copy(trained, tmp_path / "ref")
    assert train.main(["--resume", str(reference), "--num_iterations", "4", "--no-progress"]) == 0

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 0))
    argv = ["--resume", str(run), "--num_iterations", "4", "--checkpoint_every", "1", "--no-progress"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: training stopped in iteration 3: ")
    assert f"No space left on device ({run / 'checkpoints' / 'iter_000003.pt'}); free some space" in err
    assert f"the last checkpoint kept is {run / 'checkpoints' / 'iter_000002.pt'}" in err
    assert not list((run / "checkpoints").glob(".*.tmp"))
    monkeypatch.undo()
    assert train.main(["--resume", str(run), "--num_iterations", "4", "--no-progress"]) == 0
    ours, theirs = load_checkpoint(checkpoint_path(run, 4)), load_checkpoint(checkpoint_path(reference, 4))
    assert checkpoint.state_checksum(ours["learner"]) == checkpoint.state_checksum(theirs["learner"])


@pytest.mark.slow
def test_a_step_that_never_returns_is_stopped_by_the_step_timeout(faulty_id: str, tmp_path: Path, capsys, monkeypatch):
    train = load_script("train")
    argv = [
        *TINY,
        "--env_id",
        faulty_id,
        "--horizon",
        "5",
        "--out_dir",
        str(tmp_path),
        "--run_name",
        "r",
        "--step_timeout",
        "0.5",
    ]
    assert train.main([*argv, "--num_iterations", "1"]) == 0
    capsys.readouterr()

    monkeypatch.setattr(FaultyPoint, "fault", "hang")
    assert train.main(["--resume", str(tmp_path / "r"), "--num_iterations", "2", "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert "a step did not return within step_timeout 0.5 s" in err and "iter_000001.pt" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "BINARY"], "is not a UTF-8 text file"),
        (["--config", "EMPTY"], "is empty; it must hold a mapping of settings"),
        (["--config", "ALIASES"], "YAML aliases (*name) are not accepted in a config"),
        (["--config", "DEEP"], "nested deeper than 16 levels"),
        (["--config", "2d-navigation", "--seed", "1e30"], "too large to be an exact integer"),
        (["--config", "2d-navigation", "--hidden_sizes", "[100000, 100000]"], "has at least 10,000,200,000 weights"),
        (["--config", "2d-navigation", "--env_id", "../../etc:passwd"], "'../../etc' is not a Python module name"),
    ],
)
def test_hostile_values_are_one_error_line(tmp_path: Path, argv: list[str], message: str, capsys):
    files_ = {
        "BINARY": bytes(range(256)) * 4,
        "EMPTY": b"",
        "ALIASES": b"env_kwargs: {a: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\nseed: 1\nhorizon: *x\n",
        "DEEP": ("env_kwargs: {a: " + "[" * 600 + "]" * 600 + "}\n").encode(),
    }
    for name, content in files_.items():
        (tmp_path / f"{name}.yaml").write_bytes(content)
    argv = [str(tmp_path / f"{a}.yaml") if a in files_ else a for a in argv]
    assert load_script("train").main([*argv, "--out_dir", str(tmp_path / "runs")]) == 2
    err = _one_error_line(capsys)
    assert message in err and len(err) < 400
    assert not (tmp_path / "runs").exists()


def test_a_full_evaluation_output_is_one_line(trained: Path, tmp_path: Path, capsys, monkeypatch):
    def full(path, data, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("metarl.evaluation.results.write_atomic", full)
    assert load_script("evaluate").main([str(trained), *EVAL, "--out", str(tmp_path / "ev")]) == 2
    err = _one_error_line(capsys)
    assert f"No space left on device ({tmp_path / 'ev' / 'adaptation_maml-trpo.json'}); free some space" in err


def test_a_dying_tensorboard_writer_prints_no_thread_traceback(trained: Path, tmp_path: Path, capsys, monkeypatch):
    from tensorboard.summary.writer import record_writer

    run = _copy(trained, tmp_path)
    real_write = record_writer.RecordWriter.write

    def full(self, data):
        if b"return_after" in data:
            raise OSError(errno.ENOSPC, "No space left on device", "events.out.tfevents")
        return real_write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    argv = ["--resume", str(run), "--num_iterations", "4", "--tensorboard", "true", "--no-progress"]
    assert load_script("train").main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception in thread" not in err
    assert err.splitlines()[-1].startswith("error: training stopped in iteration")


def test_a_full_disk_under_the_run_log_prints_no_logging_traceback(trained: Path, tmp_path: Path, capsys, monkeypatch):
    from metarl.runs import logs

    run = _copy(trained, tmp_path)

    def full(self):  # train.log's writes fail as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logs._RunLogFile, "flush", full)
    assert load_script("train").main(["--resume", str(run), "--num_iterations", "3", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "--- Logging error ---" not in err and "Traceback" not in err
