"""keep_freed_memory: a freed large tensor's memory is reused without page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import torch
from metarl.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.ones(160_000, 100)
for _ in range(3):
    y = x * x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    y = x * x
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(applied, faults, float(y.sum()))
"""


def _faults_per_multiply(setting: str) -> tuple[str, float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, setting], check=True, capture_output=True, text=True)
    applied, faults, total = out.stdout.split()
    return applied, float(faults), float(total)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_large_tensors_reuse_freed_memory_without_page_faults():
    applied, kept, total = _faults_per_multiply("keep")
    assert applied == "True"
    assert total == 16_000_000.0  # the result is still right
    default_applied, default, _ = _faults_per_multiply("default")
    assert default_applied == "False"
    # 64 MB of fresh pages: ~15,600 faults of 4 KiB each with glibc's defaults (fewer where
    # transparent huge pages are always on), none when the freed block is reused
    assert kept < 100
    assert kept <= default / 10


def test_keep_freed_memory_is_idempotent():
    from metarl.memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() == first
