"""One training per run folder: a second one stops before touching it, naming the holder's PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarl.runs.folder import holds_a_run
from metarl.runs.lock import LOCK_FILE, RunFolderInUseError, hold_run_folder
from metarl.runs.logs import read_metrics
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


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_run_on_a_held_folder_stops_naming_the_holder(tmp_path: Path, capsys) -> None:
    train = load_script("train")
    run = tmp_path / "run"
    assert train.main([*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path), "--run_name", "run"]) == 0
    before = _files(run)
    with hold_run_folder(run):  # as another training in this process would
        capsys.readouterr()
        assert train.main(["--resume", str(run), "--num_iterations", "2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ")
        assert f"run folder {run} is in use by another training (PID {os.getpid()})" in err
        assert _files(run) == before
        with pytest.raises(RunFolderInUseError):
            with hold_run_folder(run):
                pass
    assert train.main(["--resume", str(run), "--num_iterations", "2", "--no-progress"]) == 0  # released
    assert [r["iteration"] for r in read_metrics(run)] == [0, 1]


@pytest.mark.slow
def test_a_lock_held_by_another_process_and_then_left_by_a_dead_one(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from metarl.runs.lock import "
            "hold_run_folder; from pathlib import Path\nwith hold_run_folder(Path(sys.argv[2])):\n print('held', "
            "flush=True); time.sleep(60)",
            str(REPO),
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        train = load_script("train")
        argv = [*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path), "--run_name", "run"]
        assert train.main(argv) == 2
        assert f"in use by another training (PID {holder.pid})" in capsys.readouterr().err
        assert [p.name for p in run.iterdir()] == [LOCK_FILE] and not holds_a_run(run)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert train.main(argv) == 0  # the dead process's lock file is taken over
    assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert len(read_metrics(run)) == 1


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "runs"
    with pytest.raises(ZeroDivisionError):
        with hold_run_folder(out / "run"):
            raise ZeroDivisionError
    assert not (tmp_path / "deep").exists()


def test_resume_removes_orphaned_checkpoint_temp_files(tmp_path: Path) -> None:
    train = load_script("train")
    run = tmp_path / "run"
    assert train.main([*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path), "--run_name", "run"]) == 0
    orphan = run / "checkpoints" / ".iter_000002.pt.abc123.tmp"  # as a write killed mid-way leaves it
    orphan.write_bytes(b"half a checkpoint")
    assert train.main(["--resume", str(run), "--num_iterations", "2", "--no-progress"]) == 0
    assert not orphan.exists()
    assert "removed .iter_000002.pt.abc123.tmp" in (run / "train.log").read_text()
    assert not list(run.glob(".config.yaml.*.tmp"))  # config.yaml rewritten through a temp file, none left


def test_warnings_reach_the_console_as_well_as_train_log(tmp_path: Path, capsys, monkeypatch) -> None:
    import agents.maml_trpo as maml_trpo

    monkeypatch.setattr(maml_trpo, "natural_step", lambda g, *a, **k: g * float("nan"))  # every step non-finite
    train = load_script("train")
    assert train.main([*TINY, "--num_iterations", "1", "--out_dir", str(tmp_path), "--run_name", "run"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: meta-update skipped: non-finite conjugate-gradient step; parameters kept" in err
    assert "meta-update skipped" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_exactly_one_of_two_trainings_started_together_runs(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        *TINY,
        "--num_iterations",
        "3",
        "--out_dir",
        str(tmp_path),
        "--run_name",
        "race",
    ]
    env = {**os.environ, "METARL_DEFAULT_MALLOC": "1"}
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in runs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "is in use by another training (PID" in loser or "already holds a run" in loser, loser
    rows = read_metrics(tmp_path / "race")
    assert [r["iteration"] for r in rows] == [0, 1, 2]  # one header, one run's rows
