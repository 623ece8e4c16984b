"""Keep freed memory in the process, so that large tensors are not page-faulted in at every op.

glibc's ``malloc`` serves any request above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and returns it to the kernel on ``free``. A meta-update allocates and frees
activations of 160,000 × 100 floats (64 MB) hundreds of times, so every one of those ops
first takes ~16,000 page faults: a multiply that needs 6 ms on memory already mapped
takes 30 ms on fresh memory. :func:`keep_freed_memory` makes malloc serve every request
from its heap and never shrink it, so freed blocks are reused without faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("metarl")

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes: trim only past 2 GiB of free heap top
_applied = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (no mmap per allocation, no trimming).

    Process-wide and idempotent; a no-op returning ``False`` where the C library is not
    glibc. The process's resident memory then stays at its peak instead of shrinking
    between meta-iterations.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    if not ok:
        log.warning("mallopt refused the settings; large tensors are page-faulted in at every op")
        return False
    _applied = True
    return True
