"""The table of docs/meta-world.md: Meta-World's scripted experts on MuJoCo 3.3.0 against MuJoCo 4.

Reads the JSON files ``scripts/meta_world_experts.py`` wrote (one per MuJoCo version, and
optionally more with MuJoCo features disabled) and writes a Markdown table: successes per
environment in each, and Fisher's exact test of the first file against each other one. An
environment "moves" when that test gives p < 0.001 (0.05 over 50 environments, Bonferroni).
Imports neither metaworld nor MuJoCo.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MOVED_P = 0.001
"""Two-sided p-value below which a success rate counts as moved (0.05 / 50 environments)."""


def fisher_exact(a: int, n1: int, b: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test: ``a`` of ``n1`` against ``b`` of ``n2`` successes.

    Args:
        a: Successes in the first sample.
        n1: Size of the first sample.
        b: Successes in the second sample.
        n2: Size of the second sample.
    """
    total, successes = n1 + n2, a + b

    def probability(k: int) -> float:
        return math.comb(n1, k) * math.comb(n2, successes - k) / math.comb(total, successes)

    observed = probability(a)
    ks = range(max(0, successes - n2), min(n1, successes) + 1)
    return min(1.0, sum(p for p in map(probability, ks) if p <= observed * (1 + 1e-9)))


def _label(result: dict[str, Any]) -> str:
    disabled = result["settings"].get("disabled") or []
    return f"MuJoCo {result['versions']['mujoco']}" + "".join(f", no {flag}" for flag in disabled)


def _median_steps(entry: dict[str, Any] | None) -> str:
    """The median number of steps of an environment's successful episodes ("—" without any)."""
    steps = sorted(s for s in (entry or {}).get("steps_to_success", []) if s is not None)
    if not steps:
        return "—"
    mid = len(steps) // 2
    median = steps[mid] if len(steps) % 2 else (steps[mid - 1] + steps[mid]) / 2
    return f"{median:g}"


def load_results(files: Sequence[Path]) -> list[dict[str, Any]]:
    """The check's results files, the reference (MuJoCo 3.x, nothing disabled) first.

    Args:
        files: ``experts_*.json`` files written by ``scripts/meta_world_experts.py``.
    """
    results = [json.loads(Path(f).read_text(encoding="utf-8")) for f in files]
    results.sort(key=lambda r: (not r["versions"]["mujoco"].startswith("3."), len(r["settings"].get("disabled") or [])))
    if not results or not results[0]["versions"]["mujoco"].startswith("3."):
        raise ValueError("the expert check needs a results file from MuJoCo 3.x (scripts/meta_world_reference_env.sh)")
    return results


def moved_envs(results: Sequence[dict[str, Any]], other: int = 1) -> list[str]:
    """Environments whose success rate in ``results[other]`` differs from the reference's (p < :data:`MOVED_P`).

    Args:
        results: From :func:`load_results`.
        other: Which result to compare with the reference.
    """
    ref, cmp = results[0]["envs"], results[other]["envs"]
    return [
        name
        for name in ref
        if name in cmp
        and fisher_exact(ref[name]["successes"], ref[name]["episodes"], cmp[name]["successes"], cmp[name]["episodes"])
        < MOVED_P
    ]


def expert_table_block(folder: Path, shown_as: str) -> str:
    """The Markdown table of the expert check's results files in ``folder``.

    Args:
        folder: The folder holding ``experts_*.json``.
        shown_as: How the page names the folder (in the caption).
    """
    results = load_results(sorted(folder.glob("experts_*.json")))
    ref = results[0]
    head = " | ".join(_label(r) for r in results)
    lines = [
        f"| environment | {head} | p (Fisher, {_label(ref)} against {_label(results[1])}) | median steps to success |",
        "|---" * (len(results) + 3) + "|",
    ]
    moved = set(moved_envs(results)) if len(results) > 1 else set()
    for name, base in ref["envs"].items():
        cells = []
        for r in results:
            e = r["envs"].get(name)
            cells.append(f"{e['successes']}/{e['episodes']}" if e else "")
        other = results[1]["envs"].get(name) if len(results) > 1 else None
        p = fisher_exact(base["successes"], base["episodes"], other["successes"], other["episodes"]) if other else None
        shown = f"**{name}**" if name in moved else name
        steps = " / ".join(_median_steps(r["envs"].get(name)) for r in results)
        lines.append(f"| {shown} | {' | '.join(cells)} | {'' if p is None else f'{p:.2g}'} | {steps} |")
    machine = {r["machine"]["cpu"] for r in results}
    lines += [
        "",
        f"Successful episodes of metaworld {ref['versions']['metaworld']}'s scripted expert, one episode on each of "
        f"the first {ref['settings']['episodes']} tasks of `metaworld.MT1(env, seed={ref['settings']['seed']})`; "
        f"in bold, p < {MOVED_P} (moved beyond noise); steps to success in the same column order (— where "
        f"no episode succeeded). Measured on {', '.join(sorted(machine))}; "
        f"the results files are in `{shown_as}`.",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["MOVED_P", "expert_table_block", "fisher_exact", "load_results", "moved_envs"]
