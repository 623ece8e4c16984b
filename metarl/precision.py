"""Which arithmetic the learner's reduced-precision parts use, chosen from what the CPU has.

bf16 pays only where the CPU multiplies bf16 matrices faster than fp32 ones. With AMX
tiles it does by a wide margin; with AVX-512 BF16 alone it need not: on this project's
2-core Xeon (AVX-512 BF16, no AMX) torch's fp32 matmuls (MKL) run 1.1-1.8× faster than
its bf16 ones (oneDNN), and a bf16 meta-update was slower than the fp32 one
(BENCHMARKS.md, "Meta-update: exact and fast"). So ``auto`` picks bf16 with AMX only; ``bf16``
forces it on any CPU (worth it where ``benchmarks/fast_meta_update.py`` measures a
faster bf16 peak), with a warning where the CPU has no bf16 instructions at all.
"""

from __future__ import annotations

import logging

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


def resolve_precision(requested: str) -> str:
    """``bf16`` or ``fp32`` for ``requested``: ``auto`` is bf16 on a CPU with AMX and fp32 elsewhere.

    Args:
        requested: ``auto``, or ``bf16`` / ``fp32`` to override the detection (bf16 on a CPU
            without bf16 instructions is emulated: allowed, with a warning).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    amx, avx512_bf16 = cpu_bf16()
    chosen = ("bf16" if amx else "fp32") if requested == "auto" else requested
    if chosen == "bf16" and not (amx or avx512_bf16):
        log.warning("bf16 requested on a CPU with no native bf16: emulated, slower than fp32")
    return chosen
