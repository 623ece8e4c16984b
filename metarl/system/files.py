"""Writing files so that a crash, a kill or a full disk never leaves a torn one.

:func:`write_atomic` writes to a temporary file beside the target, flushes it to disk and
renames it over the target: readers see the old file or the new one, never a part.
:func:`append_line` adds one line with a single ``write`` to a file opened for appending,
then syncs it: a line is either there whole or (on a failed write) the error is raised.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def write_atomic(path: str | Path, data: str | bytes, *, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) atomically; returns the path.

    Args:
        path: the file to write; its folder is created if missing.
        data: the whole new content.
        mode: permission bits of the new file.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return write_atomic_with(path, lambda f: f.write(payload), mode=mode)


def write_atomic_with(path: str | Path, write: Callable[[BinaryIO], object], *, mode: int = 0o644) -> Path:
    """Replace ``path`` atomically with what ``write(file)`` writes into a binary file; returns the path.

    A temporary file beside ``path`` is written, flushed to disk and renamed over ``path``;
    on any failure (a kill, a full disk, an error in ``write``) it is removed and ``path``
    keeps its previous content.

    Args:
        path: the file to write; its folder is created if missing.
        write: writes the whole new content into the open file it is given.
        mode: permission bits of the new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_folder(path.parent)
    return path


def append_line(path: str | Path, line: str) -> Path:
    """Append ``line`` (a newline is added) to ``path`` in one write, then sync it; returns the path.

    Args:
        path: the file to append to (created if missing).
        line: one line of text, without its newline.
    """
    if "\n" in line:
        raise ValueError("append_line takes one line")
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        payload = (line + "\n").encode("utf-8")
        if os.write(fd, payload) != len(payload):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Render a matplotlib figure to PNG in memory, then :func:`write_atomic` it to ``path``.

    Args:
        fig: the figure (drawn on the Agg canvas).
        path: the PNG to write.
        dpi: its resolution.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name; renamed onto ``path`` on success.

    The temporary keeps ``path``'s suffix (writers choose the format by it) and is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_folder(path.parent)


def check_writable_folder(folder: str | Path) -> Path:
    """Make ``folder`` (and its parents) if needed and check a file can be created in it, before any work.

    Raises the ``OSError`` that writing would raise (a file in the way, no permission, a
    read-only or full file system), so that a long job fails at its start, not its end.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.")
    try:
        os.write(fd, b"x")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(probe)
    return folder


_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space and run it again{resume}",
    errno.EDQUOT: "free some space and run it again{resume}",
    errno.EROFS: "choose {option} on a writable file system",
    errno.EACCES: "choose {option} you may write to",
    errno.EPERM: "choose {option} you may write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another {option}",
    errno.EEXIST: "a part of the path is a file, not a folder: choose another {option}",
    errno.EISDIR: "the path is a folder: choose another {option}",
}


def os_error_message(exc: OSError, option: str = "--out_dir", resume: str = "") -> str:
    """One line for an ``OSError`` of an output: what failed, on which path, and what to do.

    Args:
        exc: the error.
        option: the command-line option that chose the location (named in the hint).
        resume: how to continue after freeing space (e.g. `` with --resume RUN``; the last checkpoint is kept).
    """
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, "").format(option=option, resume=resume)
    return f"{exc.strerror or exc}{where}" + (f"; {hint}" if hint else "")


def sync_folder(folder: str | Path) -> None:
    """Make renames in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


__all__ = [
    "append_line",
    "atomic_path",
    "check_writable_folder",
    "os_error_message",
    "save_figure",
    "sync_folder",
    "write_atomic",
    "write_atomic_with",
]
