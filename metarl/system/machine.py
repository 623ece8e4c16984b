"""What machine a run or a benchmark ran on: CPU model, cores and package versions.

Seconds are comparable only between runs on the same CPU model, so every run folder
records the machine of each training session it was trained in (``sessions.jsonl``, see
:func:`metarl.runs.folder.record_session`) and the results pages quote times with it.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "numpy", "mujoco", "gymnasium")
"""Packages whose versions a machine record lists."""


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), else the platform's string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where the kernel does not list them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_kind() -> str:
    """The CPU model with the vector extensions that set its speed here, e.g. ``AMD EPYC (AVX2)``.

    Machines of one model name may differ (the same "AMD EPYC" with and without AVX-512),
    so seconds are compared only between equal kinds.
    """
    flags = cpu_flags()
    if "amx_tile" in flags:
        ext = "AMX"
    elif "avx512_bf16" in flags:
        ext = "AVX-512 BF16"
    elif "avx512f" in flags:
        ext = "AVX-512"
    elif "avx2" in flags:
        ext = "AVX2"
    else:
        ext = ""
    return f"{cpu_model()} ({ext})" if ext else cpu_model()


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"-"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_record() -> dict[str, Any]:
    """``{"cpu": kind, "cores": n, "python": ..., <package>: version ...}`` of this machine."""
    return {
        "cpu": cpu_kind(),
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        **{name: package_version(name) for name in PACKAGES},
    }


__all__ = ["PACKAGES", "cpu_flags", "cpu_kind", "cpu_model", "machine_record", "package_version"]
