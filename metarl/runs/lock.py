"""One training per run folder: an OS file lock held for the run's whole life.

``<run>/.lock`` is locked with ``flock`` while a training runs in the folder and holds
that process's PID. The OS releases the lock when the process ends, however it ends, so
a lock file left by a dead process is simply taken over. The file itself stays (removing
a lock file others may be waiting on would let two runs hold "the" lock at once); it
does not count as the folder holding a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from metarl.runs.folder import LOCK_FILE


class RunFolderInUseError(RuntimeError):
    """Another training holds the run folder's lock; the message names its PID."""


@contextlib.contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the ``with`` block, creating the folder if needed; yields the folder.

    Raises :class:`RunFolderInUseError` at once, having changed nothing, if another process (or
    another run in this one) holds it. A folder this call created (and its parents) that
    holds nothing but the lock file at the end is removed again, so a run that failed
    before writing anything leaves nothing and does not take its run name.

    Args:
        run_dir: the run folder.
    """
    run_dir = Path(run_dir)
    created = []  # the folders this call makes, deepest first
    folder = run_dir
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunFolderInUseError(
                f"run folder {run_dir} is in use by another training (PID {holder}); wait for it to end or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield run_dir
        finally:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                path.unlink(missing_ok=True)
                for made in created:
                    with contextlib.suppress(OSError):  # not empty: something else lives there now
                        made.rmdir()
    finally:
        os.close(fd)  # releases the flock


def run_folder_holder(run_dir: Path) -> str | None:
    """The PID (as written) of the training that holds ``run_dir``'s lock, or ``None`` if none does.

    Takes and releases the lock at once when it is free, so it never blocks a training.
    """
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
