"""RunLogger: metrics.csv contents, widening, resume without duplicates, TensorBoard, train.log."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.runs.logs import RunLogger, close_logging, read_metrics, setup_logging

ROWS = [
    {"return_before": -40.25, "return_after": -30.5, "kl": 0.0031, "step_size": 1.0},
    {"return_before": -35.0, "return_after": -22.125, "kl": 0.0098, "step_size": 0.8},
    {"return_before": -31.0, "return_after": -19.0, "kl": 0.0, "step_size": 0.0},
    {"return_before": -28.5, "return_after": -17.75, "kl": 0.005, "step_size": 0.64},
]


def _log_all(run_dir: Path, rows=ROWS, start: int = 0, **kwargs) -> None:
    with RunLogger(run_dir, tensorboard=False, **kwargs) as log:
        for i, row in enumerate(rows, start=start):
            log.log(i, row)


def test_csv_equals_what_was_logged(tmp_path: Path):
    _log_all(tmp_path)
    assert read_metrics(tmp_path) == [{"iteration": i, **row} for i, row in enumerate(ROWS)]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "iteration,return_before,return_after,kl,step_size"
    assert lines[1] == "0,-40.25,-30.5,0.0031,1.0"
    assert read_metrics(tmp_path / "metrics.csv") == read_metrics(tmp_path)


def test_values_are_converted_exactly(tmp_path: Path):
    third = 1.0 / 3.0
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log(0, {"a": torch.tensor(0.25), "b": np.float32(1.5), "c": 7, "d": third, "e": float("nan")})
    (row,) = read_metrics(tmp_path)
    assert row["a"] == 0.25 and row["b"] == 1.5 and row["c"] == 7.0 and row["d"] == third
    assert np.isnan(row["e"])
    assert isinstance(row["iteration"], int)


def test_new_keys_later_widen_the_header(tmp_path: Path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log(0, {"return_before": -40.0})
        log.log(1, {"return_before": -30.0, "eval_return": -12.5})
        log.log(2, {"eval_return": -11.0})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "iteration,return_before,eval_return",
        "0,-40.0,",
        "1,-30.0,-12.5",
        "2,,-11.0",
    ]
    assert read_metrics(tmp_path) == [
        {"iteration": 0, "return_before": -40.0},
        {"iteration": 1, "return_before": -30.0, "eval_return": -12.5},
        {"iteration": 2, "eval_return": -11.0},
    ]


def test_resume_drops_later_rows_and_appends(tmp_path: Path):
    _log_all(tmp_path)  # iterations 0..3
    _log_all(
        tmp_path,
        rows=[{"return_before": -1.0, "return_after": -0.5, "kl": 0.0, "step_size": 0.0}],
        start=2,
        resume_iteration=2,
    )
    rows = read_metrics(tmp_path)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[:2] == [{"iteration": i, **ROWS[i]} for i in range(2)]
    assert rows[2]["return_before"] == -1.0


def test_resume_after_crash_mid_line(tmp_path: Path):
    _log_all(tmp_path, rows=ROWS[:2])
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("2,-31.0,-1")  # torn write: no newline
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [0, 1]
    _log_all(tmp_path, rows=ROWS[2:3], start=2, resume_iteration=2)
    assert read_metrics(tmp_path) == [{"iteration": i, **ROWS[i]} for i in range(3)]


def test_fresh_logger_refuses_existing_metrics(tmp_path: Path):
    _log_all(tmp_path, rows=ROWS[:1])
    with pytest.raises(FileExistsError, match="already holds metrics"):
        RunLogger(tmp_path, tensorboard=False)


def test_iterations_must_increase_and_values_be_scalars(tmp_path: Path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log(0, {"a": 1.0})
        with pytest.raises(ValueError, match="iteration 0 logged after iteration 0"):
            log.log(0, {"a": 2.0})
        with pytest.raises(TypeError, match="'a' is not a scalar"):
            log.log(1, {"a": [1.0, 2.0]})
        with pytest.raises(ValueError, match="invalid metric name 'iteration'"):
            log.log(1, {"iteration": 1.0})
    with pytest.raises(RuntimeError, match="closed"):
        log.log(5, {"a": 1.0})


def test_read_missing_metrics(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path)


def test_tensorboard_events_written(tmp_path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger(tmp_path, tensorboard=True) as log:
        for i, row in enumerate(ROWS[:3]):
            log.log(i, row)
        log.log_hparams({"fast_lr": 0.1})
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    events = acc.Scalars("return_after")
    assert [e.step for e in events] == [0, 1, 2]
    assert [e.value for e in events] == pytest.approx([r["return_after"] for r in ROWS[:3]])


def test_setup_logging_writes_train_log(tmp_path: Path):
    logger = setup_logging(tmp_path / "a")
    try:
        logging.getLogger("metarl.training.trainer").info("iteration %d done", 3)
        setup_logging(tmp_path / "b")  # moves the handler; does not duplicate it
        logger.warning("second run")
    finally:
        close_logging()
    logger.warning("after close")
    a = (tmp_path / "a" / "train.log").read_text()
    b = (tmp_path / "b" / "train.log").read_text()
    assert "INFO metarl.training.trainer: iteration 3 done" in a and "second run" not in a
    assert b.count("second run") == 1 and "after close" not in b


def test_rows_and_log_lines_reach_a_file_replaced_while_the_run_writes(tmp_path):
    """A ``git checkout``/``git stash`` of a run folder replaces its files; the run must keep writing to them."""
    import os
    import shutil

    from metarl.runs.logs import RunLogger, close_logging, read_metrics, setup_logging

    log = setup_logging(tmp_path)
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"return_after": 1.0})
        log.info("first line")
        for name in ("metrics.csv", "train.log"):  # what git does: a new file under the old name
            shutil.copy(tmp_path / name, tmp_path / f"{name}.new")
            os.replace(tmp_path / f"{name}.new", tmp_path / name)
        logger.log(1, {"return_after": 2.0})
        log.info("second line")
    close_logging()
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [0, 1]
    text = (tmp_path / "train.log").read_text()
    assert "first line" in text and "second line" in text
