"""One training per run folder: an OS file lock held for the run's whole life.

``<run>/.lock`` is locked with ``flock`` while a training runs in the folder and holds
that process's PID. The OS releases the lock when the process ends, however it ends, so
a lock file left by a dead process is simply taken over. The file itself stays (removing
a lock file others may be waiting on would let two runs hold "the" lock at once); it
does not count as the folder holding a run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from metarl.run_folder import LOCK_FILE

"""Name of the lock file inside a run folder."""


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



_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space (the last checkpoint written is kept) and --resume the run",
    errno.EDQUOT: "free some space (the last checkpoint written is kept) and --resume the run",
    errno.EROFS: "choose an --out_dir on a writable file system",
    errno.EACCES: "choose an --out_dir you may write to",
    errno.EPERM: "choose an --out_dir you may write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another --out_dir / --run_name",
    errno.EEXIST: "a part of the path is a file, not a folder: choose another --out_dir / --run_name",
}


def os_error_message(exc: OSError) -> str:
    """One line for an OSError of the run folder's files: what failed, on which path, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}{where}" + (f"; {hint}" if hint else "")
