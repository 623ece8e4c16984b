"""Per-iteration metrics to ``metrics.csv`` (and TensorBoard), and the ``metarl`` text log.

``metrics.csv`` has one row per meta-iteration: an ``iteration`` column, then one column
per metric in order of first appearance. A metric that first appears in a later row
widens the header: the file is rewritten atomically with the new column (earlier rows
get an empty cell), so the file is always one consistent table. Empty cells mean "not
logged at that iteration" and are left out of the dicts :func:`read_metrics` returns.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import logging.handlers
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tqdm import tqdm

from metarl.runs.folder import LOG_FILE, METRICS_FILE, TB_DIR

LOGGER_NAME = "metarl"

logger = logging.getLogger(__name__)


GROUP_MARK = "@"
"""Joins a metric and a task group in a logged metric's name: ``return_after@forward``."""


def metric_groups(keys: Iterable[str], metric: str = "return_after") -> list[str]:
    """The task groups ``keys`` log ``metric`` for (``return_after@forward`` → ``forward``), sorted."""
    prefix = f"{metric}{GROUP_MARK}"
    return sorted({k[len(prefix) :] for k in keys if k.startswith(prefix)})


def _metrics_path(run_dir: str | Path) -> Path:
    p = Path(run_dir)
    return p if p.is_file() or p.suffix == ".csv" else p / METRICS_FILE


def _read_table(path: Path) -> tuple[list[str], list[dict[str, float | int]]]:
    """Header and rows of a metrics file; a torn last line (crash mid-write) is dropped."""
    if not path.is_file():
        return [], []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        logger.warning("dropping an incomplete last line of %s", path)
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    rows: list[dict[str, float | int]] = []
    for line_no, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise ValueError(f"{path}, line {line_no}: {len(cells)} cells for {len(header)} columns")
        row: dict[str, float | int] = {"iteration": int(cells[0])}
        row.update({k: float(v) for k, v in zip(header[1:], cells[1:], strict=True) if v != ""})
        rows.append(row)
    return header, rows


def read_metrics(run_dir: str | Path) -> list[dict[str, float | int]]:
    """Rows of ``<run_dir>/metrics.csv`` (or of a given ``.csv`` path): ``iteration`` is an int."""
    path = _metrics_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}")
    return _read_table(path)[1]


def _write_table(path: Path, header: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``path`` atomically with ``header`` and ``rows``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows([[row.get(k, "") for k in header] for row in rows])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunLogger:
    """Appends one row of metrics per meta-iteration to ``metrics.csv`` and TensorBoard.

    ``resume_iteration``: continue an existing run whose next iteration is this one; rows
    (and TensorBoard events) with ``iteration >= resume_iteration`` are dropped first.
    Without it, an existing non-empty ``metrics.csv`` is an error (it belongs to another run).
    ``wandb``: a :class:`metarl.runs.wandb_log.WandbLogger` that receives the same rows (closed with this).
    """

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = True,
        resume_iteration: int | None = None,
        wandb: Any = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self._columns: list[str] = []
        self._last: int | None = None
        if resume_iteration is None:
            if self.path.is_file() and self.path.stat().st_size > 0:
                raise FileExistsError(
                    f"{self.path} already holds metrics of a run; resume it or choose another run folder"
                )
        elif self.path.is_file():
            header, rows = _read_table(self.path)
            kept = [r for r in rows if r["iteration"] < resume_iteration]
            if header:
                _write_table(self.path, header, kept)
            self._columns = header
            self._last = max((int(r["iteration"]) for r in kept), default=None)
        self._closed = False
        self._tb = None
        self._wandb = wandb
        self._previous_hook: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / TB_DIR), purge_step=resume_iteration)
            self._previous_hook = threading.excepthook
            threading.excepthook = self._quiet_writer_errors

    def log(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` (scalars: floats, ints, 0-d tensors/arrays) for ``iteration``."""
        if self._closed:
            raise RuntimeError("RunLogger is closed")
        if self._last is not None and iteration <= self._last:
            raise ValueError(f"iteration {iteration} logged after iteration {self._last}; log each once, in order")
        row: dict[str, Any] = {"iteration": int(iteration)}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key or key == "iteration":
                raise ValueError(f"invalid metric name {key!r}")
            try:
                row[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"metric {key!r} is not a scalar number: {value!r}") from exc
        new = [k for k in row if k not in self._columns]
        if new:
            self._widen(new)
        self._append([row.get(k, "") for k in self._columns])
        self._last = int(iteration)
        if self._tb is not None:
            for key, value in row.items():
                if key != "iteration" and math.isfinite(value):
                    self._tb.add_scalar(key, value, global_step=int(iteration))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(int(iteration), row)

    def _append(self, cells: list[Any]) -> None:
        """Append one row to ``metrics.csv``, opening it by name each time: a file replaced meanwhile (a
        ``git checkout`` or ``git stash`` of the run folder) gets the row, not the replaced file's orphan.
        """
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerow(cells)

    def _widen(self, new: list[str]) -> None:
        columns = (self._columns or ["iteration"]) + [k for k in new if k != "iteration"]
        if self._columns:  # rewrite existing rows under the wider header
            _write_table(self.path, columns, _read_table(self.path)[1])
        else:
            self._append(columns)
        self._columns = columns

    def _quiet_writer_errors(self, args: threading.ExceptHookArgs) -> None:
        """TensorBoard's writer thread dies on a full disk and re-raises its OSError in the next ``flush`` of
        this thread, where training stops with one line: the thread's own traceback is not printed.
        """
        if not (isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread"):
            (self._previous_hook or threading.__excepthook__)(args)

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        """Show the run's settings as a table in TensorBoard's text tab (no-op without TensorBoard)."""
        if self._tb is None:
            return
        table = "|setting|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in params.items())
        self._tb.add_text("hyperparameters", table)
        self._tb.flush()

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer (idempotent)."""
        self._closed = True
        if self._tb is not None:
            try:
                self._tb.close()
            except OSError as exc:  # a full disk: the run's own error says so; closing must not hide it
                logger.warning("TensorBoard's events could not be written: %s", exc)
            finally:
                self._tb = None
                if threading.excepthook == self._quiet_writer_errors:
                    threading.excepthook = self._previous_hook
        if self._wandb is not None:
            self._wandb.close()
            self._wandb = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _ConsoleWarnings(logging.Handler):
    """Warnings (only: an error reaches the console as the script's ``error:`` line) to stderr through
    ``tqdm.write``, one line each, so that a progress bar stays whole.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno != logging.WARNING:
            return
        try:
            tqdm.write(f"{record.levelname}: {record.getMessage()}", file=sys.stderr)
        except Exception:  # a logging handler must not raise
            self.handleError(record)


class _RunLogFile(logging.handlers.WatchedFileHandler):
    """``train.log``: a write that fails (a full disk) stops the file quietly instead of printing a traceback
    per record; the run's own writes (metrics, checkpoints) then fail loudly with the path. A file replaced
    meanwhile (a ``git checkout`` of the run folder) is reopened by name before the next record.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        logging.getLogger(LOGGER_NAME).removeHandler(self)
        with contextlib.suppress(OSError):  # closing flushes the same full disk
            self.close()


_HANDLER_NAMES = ("metarl-run-log", "metarl-console")


def setup_logging(run_dir: str | Path, level: int = logging.INFO) -> logging.Logger:
    """Send the ``metarl`` logger (and its children) to ``<run_dir>/train.log`` (appending), and its
    warnings also to the console (one line each, through ``tqdm.write``, above a progress bar).

    Calling it again moves the file handler to the new run folder.
    """
    close_logging()
    root = logging.getLogger(LOGGER_NAME)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    handler = _RunLogFile(Path(run_dir) / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name(_HANDLER_NAMES[0])
    root.addHandler(handler)
    console = _ConsoleWarnings(logging.WARNING)
    console.set_name(_HANDLER_NAMES[1])
    root.addHandler(console)
    root.setLevel(level)
    return root


def close_logging() -> None:
    """Detach and close the handlers added by :func:`setup_logging`, if any."""
    root = logging.getLogger(LOGGER_NAME)
    for handler in list(root.handlers):
        if handler.get_name() in _HANDLER_NAMES:
            root.removeHandler(handler)
            with contextlib.suppress(OSError):  # a full disk: the log's last lines are lost, nothing else
                handler.close()


__all__ = ["RunLogger", "close_logging", "read_metrics", "setup_logging"]
