"""Which arithmetic the learner's reduced-precision parts use, chosen from what the CPU has and does.

bf16 pays only where the CPU multiplies bf16 matrices faster than fp32 ones. AMX tiles
always do. AVX-512 BF16 alone may or may not: on a 2-core Intel Xeon (no AMX) torch's fp32
matmuls (MKL) ran 1.1-1.8× faster than its bf16 ones (oneDNN), while on a 2-core AMD EPYC
with AVX-512 BF16 bf16 ran 3-6× faster than fp32 (``git show 7e49a18:BENCHMARKS.md``,
"Meta-update: exact and fast"). So ``auto`` picks bf16 with AMX, and with AVX-512 BF16 when a start-up probe (one
matmul of a policy layer's shape in each precision, a fraction of a second) finds bf16 at
least :data:`PROBE_MARGIN` times faster; fp32 elsewhere. ``bf16`` forces it on any CPU, with
a warning where the CPU has no bf16 instructions at all; ``fp32`` forces fp32.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time

import torch

from metarl.config import PRECISIONS

log = logging.getLogger("metarl")


def cpu_bf16() -> tuple[bool, bool]:
    """``(amx, avx512_bf16)``: whether this CPU has AMX tiles, and AVX-512 BF16 instructions."""
    return bool(torch.cpu._is_amx_tile_supported()), bool(torch.cpu._is_avx512_bf16_supported())


def cpu_description() -> str:
    """What this CPU offers for bf16, in words for a log line."""
    amx, avx512_bf16 = cpu_bf16()
    return "AMX" if amx else "AVX-512 BF16 but no AMX" if avx512_bf16 else "no native bf16"


PROBE_MARGIN = 1.5
"""How many times faster than fp32 a bf16 matmul must run in the probe for ``auto`` to pick bf16."""


@functools.cache
def bf16_matmul_speedup(rows: int = 2000, width: int = 100, batch: int = 40, repeats: int = 5) -> float:
    """fp32 time over bf16 time of ``[batch, rows, width] @ [batch, width, width]``, medians of ``repeats``.

    Measured once per process at torch's current thread count (after one warm-up call of each).

    Args:
        rows: rows of each matrix in the batch (a task's steps).
        width: the layer width.
        batch: matrices in the batch (tasks).
        repeats: timed calls per precision.
    """
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(batch, rows, width).to(dtype)
        b = torch.randn(batch, width, width).to(dtype)
        seconds[dtype] = matmul_seconds(a, b, repeats)
    return seconds[torch.float32] / seconds[torch.bfloat16]


def matmul_seconds(a: torch.Tensor, b: torch.Tensor, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``torch.matmul(a, b)`` over ``repeats`` calls after ``warmup`` untimed ones.

    Args:
        a: the left operand.
        b: the right operand.
        repeats: timed calls.
        warmup: untimed calls first (kernel selection, caches).
    """
    for _ in range(warmup):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def choose_precision(requested: str) -> tuple[str, str]:
    """``(precision, reason)`` for ``requested``: ``bf16`` or ``fp32``, and why, in words for a log line.

    ``auto``: bf16 with AMX; with AVX-512 BF16 alone, bf16 if :func:`bf16_matmul_speedup` is at
    least :data:`PROBE_MARGIN`; fp32 elsewhere.

    Args:
        requested: ``auto``, or ``bf16`` / ``fp32`` to override the detection (bf16 on a CPU
            without bf16 instructions is emulated: allowed, with a warning).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    amx, avx512_bf16 = cpu_bf16()
    if requested != "auto":
        if requested == "bf16" and not (amx or avx512_bf16):
            log.warning("bf16 requested on a CPU with no native bf16: emulated, slower than fp32")
        return requested, f"as configured; CPU with {cpu_description()}"
    if amx:
        return "bf16", "auto: the CPU has AMX"
    if avx512_bf16:
        speedup = bf16_matmul_speedup()
        chosen = "bf16" if speedup >= PROBE_MARGIN else "fp32"
        return chosen, f"auto: AVX-512 BF16 without AMX, and a bf16 matmul ran {speedup:.2f}x as fast as fp32 here"
    return "fp32", "auto: the CPU has no native bf16"
