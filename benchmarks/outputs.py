"""The benchmarks' machine-readable outputs: ``benchmarks/results/<name>.json``, from which BENCHMARKS.md's tables are
generated (``scripts/results_pages.py``, :mod:`metarl.reproduction.benchmark_tables`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from metarl.system.files import write_atomic
from metarl.system.machine import machine_record

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, settings: dict[str, Any], numbers: dict[str, Any]) -> Path:
    """Write ``results/<name>.json``: the benchmark, today's date, this machine, its settings and numbers."""
    result = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_record(),
        "settings": settings,
        **numbers,
    }
    path = write_atomic(RESULTS / f"{name}.json", json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return path
