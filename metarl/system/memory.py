"""Keep freed memory in the process, so that large tensors are not page-faulted in at every op.

glibc's ``malloc`` serves any request above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and gives freed memory back to the kernel. A meta-update allocates and
frees activations of 160,000 × 100 floats (64 MB) hundreds of times, so each of those ops
first takes ~16,000 page faults: a multiply that needs 6 ms on memory already mapped
takes 30 ms on fresh memory. With ``MALLOC_MMAP_MAX_=0`` and a high
``MALLOC_TRIM_THRESHOLD_`` malloc serves everything from its heap and keeps freed blocks
for reuse. glibc reads these only at start-up (``mallopt`` in a running process does not
have the same effect on torch's allocations), so the command-line entry points restart
themselves once with them set: :func:`restart_with_tuned_malloc`.
"""

from __future__ import annotations

import os
import platform
import sys

TUNED_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
"""glibc malloc settings: no mmap per allocation, trim the heap only past 2 GiB free at its top."""

OPT_OUT_VARIABLE = "METARL_DEFAULT_MALLOC"
"""Set to ``1`` to keep glibc's default malloc settings (no restart)."""


def malloc_is_tuned() -> bool:
    """Whether this process started with :data:`TUNED_MALLOC_ENV`."""
    return all(os.environ.get(name) == value for name, value in TUNED_MALLOC_ENV.items())


def restart_with_tuned_malloc() -> None:
    """Re-execute this Python process (same interpreter, flags and arguments) with :data:`TUNED_MALLOC_ENV`.

    Call it first thing in a command-line entry point, before work is done. Returns
    without restarting when the settings are already in place, the C library is not
    glibc, or :data:`OPT_OUT_VARIABLE` is ``1``. The process's resident memory then
    stays near its peak instead of shrinking between meta-iterations.
    """
    if malloc_is_tuned() or os.environ.get(OPT_OUT_VARIABLE) == "1":
        return
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **TUNED_MALLOC_ENV})
