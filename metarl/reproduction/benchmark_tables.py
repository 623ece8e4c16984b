"""BENCHMARKS.md's tables, generated from the benchmarks' committed machine-readable outputs.

Every benchmark that BENCHMARKS.md quotes writes ``benchmarks/results/<name>.json`` with the
machine it ran on (CPU kind, cores, package versions), the date, its settings and its numbers.
:func:`benchmark_blocks` renders one table per file, the block ``benchmark:<name>`` of the page
(:mod:`metarl.reproduction.pages` replaces and checks the blocks), so no figure is typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def _machine(result: Mapping[str, Any]) -> str:
    m = result.get("machine", {})
    return (
        f"{m.get('cpu', 'unknown CPU')}, {m.get('cores', '?')} cores; torch {m.get('torch', '?')}, "
        f"mujoco {m.get('mujoco', '?')}; {result.get('date', 'undated')}"
    )


def _mujoco_family(result: Mapping[str, Any]) -> str:
    s, rates, targets = result["settings"], result["env_steps_per_second"], result["targets"]
    lines = [
        f"{s['family']}, {s['num_envs']} sub-environments, {s['steps']} env steps, {s['threads']} MuJoCo "
        f"thread(s), medians of {s['repeats']} alternating repeats ({_machine(result)}):",
        "",
        "| path | env steps per second |",
        "|---|---|",
        f"| single env, vectorised by metarl (`SyncBatchedTaskEnv`) | {rates['single']:,.0f} |",
        f"| the family's `BatchedMujocoTaskEnv` | {rates['batched']:,.0f} |",
        f"| raw `mujoco.batch` physics of the same model | {rates['raw']:,.0f} |",
        "",
        f"Batched against raw physics: **{result['batched_over_raw']:.2f}×** (target ≥ "
        f"{targets['batched_over_raw']}×); against the single-env path: **{result['batched_over_single']:.1f}×** "
        f"(target ≥ {targets['batched_over_single']:g}×).",
    ]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {"mujoco_family": _mujoco_family}
"""The table of each benchmark whose output BENCHMARKS.md quotes."""


def benchmark_blocks(results_dir: Path) -> dict[str, str]:
    """``{"benchmark:<name>": table}`` for every benchmark output in ``results_dir`` with a renderer.

    Args:
        results_dir: the folder of the benchmarks' JSON outputs (``benchmarks/results``).
    """
    blocks = {}
    for name, render in RENDERERS.items():
        path = results_dir / f"{name}.json"
        blocks[f"benchmark:{name}"] = (
            render(json.loads(path.read_text()))
            if path.is_file()
            else (f"Not measured yet: run `benchmarks/{name}.py`.\n")
        )
    return blocks


__all__ = ["RENDERERS", "benchmark_blocks"]
