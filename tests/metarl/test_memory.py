"""Tuned malloc: a freed large tensor's memory is reused without page faults."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from metarl.system.memory import OPT_OUT_VARIABLE, TUNED_MALLOC_ENV

# restarts itself with the tuned settings (unless opted out), then counts the page faults
# of 64 MB multiplies whose result is freed before the next one
CHILD = """
import resource
import statistics
import torch
from metarl.system.memory import malloc_is_tuned, restart_with_tuned_malloc
restart_with_tuned_malloc()
x = torch.ones(160_000, 100)
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total = float((x * x).sum())
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# the first rounds grow the heap until freed blocks coalesce into one that fits
print(malloc_is_tuned(), statistics.median(faults[-8:]), total, faults)
"""


def _run_child(opt_out: bool) -> tuple[str, float, float, str]:
    env = {n: v for n, v in os.environ.items() if n not in TUNED_MALLOC_ENV and n != OPT_OUT_VARIABLE}
    if opt_out:
        env[OPT_OUT_VARIABLE] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True, text=True, env=env)
    tuned, faults, total, rounds = out.stdout.split(maxsplit=3)
    return tuned, float(faults), float(total), rounds


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
def test_restart_tunes_malloc_and_large_tensors_reuse_freed_memory():
    tuned, kept, total, rounds = _run_child(opt_out=False)
    assert tuned == "True"
    assert total == 16_000_000.0  # same result, same arguments after the restart
    default_tuned, default, _, default_rounds = _run_child(opt_out=True)
    assert default_tuned == "False"
    # 64 MB of fresh pages: ~15,600 faults of 4 KiB each with glibc's defaults (fewer where
    # transparent huge pages are always on), none when the freed block is reused
    assert kept < 100, rounds
    assert kept <= default / 10, (rounds, default_rounds)


def test_no_restart_when_already_tuned(monkeypatch):
    from metarl.system import memory

    for name, value in TUNED_MALLOC_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("restarted although tuned"))
    memory.restart_with_tuned_malloc()
    assert memory.malloc_is_tuned()
