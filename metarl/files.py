"""Writing files so that a crash, a kill or a full disk never leaves a torn one.

:func:`write_atomic` writes to a temporary file beside the target, flushes it to disk and
renames it over the target: readers see the old file or the new one, never a part.
:func:`append_line` adds one line with a single ``write`` to a file opened for appending,
then syncs it: a line is either there whole or (on a failed write) the error is raised.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes, *, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) atomically; returns the path.

    Args:
        path: the file to write; its folder is created if missing.
        data: the whole new content.
        mode: permission bits of the new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
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


def sync_folder(folder: str | Path) -> None:
    """Make renames in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


__all__ = ["append_line", "sync_folder", "write_atomic"]
