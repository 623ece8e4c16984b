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

from metarl.config import config_from_dict, load_config
from metarl.reproduction.layout import differences_from_preset


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


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _check_environment(benchmark: str, settings: Mapping[str, Any]) -> None:
    """Raise ValueError if ``settings`` were measured on another environment than their preset's today."""
    env_id = load_config(settings["config"], list(settings.get("overrides") or [])).env_id
    if settings.get("env_id", env_id) != env_id:
        raise ValueError(
            f"{benchmark}_{settings['config']}: measured on {settings['env_id']}, the preset now trains on {env_id}: "
            f"run benchmarks/{benchmark}.py --config {settings['config']} --save"
        )


def _check_preset(benchmark: str, settings: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``settings`` record the whole configuration measured and it is the preset's today.

    The preset may differ only in how it runs (:data:`~metarl.reproduction.layout.HOW_FIELDS`) and in
    ``num_iterations``, which a benchmark of single iterations does not use.
    """
    rerun = f"run benchmarks/{benchmark}.py --config {settings['config']} --save"
    if "config_values" not in settings:
        raise ValueError(f"{benchmark}_{settings['config']}: the output records no configuration: {rerun}")
    preset = load_config(settings["config"], list(settings.get("overrides") or []))
    measured = config_from_dict(settings["config_values"], f"{benchmark}_{settings['config']}")
    diff = {k: v for k, v in differences_from_preset(measured, preset).items() if k != "num_iterations"}
    if diff:
        changes = ", ".join(f"{k} {old!r} (preset now {new!r})" for k, (new, old) in sorted(diff.items()))
        raise ValueError(f"{benchmark}_{settings['config']}: measured with {changes}: {rerun}")


def _meta_iteration(results: list[Mapping[str, Any]]) -> str:
    """One row per preset measured by ``benchmarks/meta_iteration.py --save``.

    Raises:
        ValueError: a result was measured with other settings than its preset's today (or records none).
    """
    lines = [
        "| preset | environment | batch (tasks × episodes × horizon) | per meta-iteration | sampling | meta-update | "
        "physics of its samples | iteration / physics | threads (torch, MuJoCo) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    machines = []
    for r in sorted(results, key=lambda r: r["settings"]["config"]):
        s = r["settings"]
        _check_environment("meta_iteration", s)
        _check_preset("meta_iteration", s)
        physics = r.get("sample_physics_seconds") or r.get("physics_seconds")
        ratio = f"**{r['seconds_per_iteration'] / physics:.2f}×**" if physics else "—"
        overrides = f" {' '.join(s['overrides'])}" if s.get("overrides") else ""
        measured_on = f"`{s['env_id']}`" if "env_id" in s else "—"
        lines.append(
            f"| `{s['config']}`{overrides} | {measured_on} | "
            f"{s['meta_batch_size']} × {s['episodes_per_task']} × {s['horizon']} | "
            f"{_seconds(r['seconds_per_iteration'])} | {_seconds(r['sampling_seconds'])} | "
            f"{_seconds(r['meta_update_seconds'])} | {_seconds(physics)} | {ratio} | "
            f"{s['torch_threads']}, {s.get('mujoco_threads') or '—'} |"
        )
        machines.append(_machine(r))
    repeats = sorted({str(r["settings"]["repeats"]) for r in results})
    where = "; ".join(sorted(set(machines)))
    lines += ["", f"Medians of {'/'.join(repeats)} iterations after a warm-up; {where}."]
    return "\n".join(lines) + "\n"


def _fast_meta_update(results: list[Mapping[str, Any]]) -> str:
    """One table per preset measured by ``benchmarks/fast_meta_update.py --save``: each option against ``exact``.

    Raises:
        ValueError: a result was measured on another environment than its preset's today.
    """
    parts = []
    for r in sorted(results, key=lambda r: r["settings"]["config"]):
        s = r["settings"]
        _check_environment("fast_meta_update", s)
        overrides = f" {' '.join(s['overrides'])}" if s.get("overrides") else ""
        theta = f"θ of `{s['checkpoint']}`" if s.get("checkpoint") else "θ at initialisation (seed 0)"
        lines = [
            f"`{s['config']}`{overrides} on `{s['env_id']}`, {s['meta_batch_size']} × {s['episodes_per_task']} × "
            f"{s['horizon']}, {theta}; medians over {s['batches']} meta-batches, {s['torch_threads']} torch "
            f"threads ({_machine(r)}):",
            "",
            "| option | meta-update | speed-up | cosine to the exact step (lowest) | surrogate gain (of exact's) | "
            "KL after | line-search steps |",
            "|---|---|---|---|---|---|---|",
        ]
        exact = r["options"]["exact"]
        for name, o in r["options"].items():
            lines.append(
                f"| `{name}` | {o['update_seconds']:.2f} s | {exact['update_seconds'] / o['update_seconds']:.2f}× | "
                f"{o['cosine']:.4f} ({o['cosine_min']:.4f}) | {o['surrogate_gain']:.5f} "
                f"({o['surrogate_gain'] / exact['surrogate_gain']:.0%}) | "
                f"{o['kl_after']:.5f} | {o['ls_steps']:g} |"
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _peer_comparison(result: Mapping[str, Any]) -> str:
    s = result["settings"]
    return (
        "| | seconds per meta-iteration (median) |\n|---|---|\n"
        f"| metarl, `2d-navigation` preset | {result['metarl_median']:.3f} |\n"
        f"| {s['peer']}, its 2d-navigation config | {result['peer_median']:.3f} |\n\n"
        f"metarl is **{result['speedup']:.1f}×** as fast, in {s['rounds']} alternating rounds ({_machine(result)}).\n"
    )


def _locomotion_envs(result: Mapping[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"Env steps per second, {s['num_envs']} sub-environments, {s['nthread']} MuJoCo threads, medians of "
        f"{s['repeats']} ({_machine(result)}):",
        "",
        "| family | batched (`make_batched`) | raw `mujoco.batch` | batched / raw | Gymnasium vector envs |",
        "|---|---|---|---|---|",
    ]
    for name, f in result["families"].items():
        vector = ", ".join(f"{k}: {v:,.0f}" for k, v in f["gym_vector"].items())
        lines.append(f"| {name} | {f['batched']:,.0f} | {f['raw']:,.0f} | {f['batched_over_raw']:.2f} | {vector} |")
    return "\n".join(lines) + "\n"


def _meta_world_envs(result: Mapping[str, Any]) -> str:
    s = result["settings"]
    paths = next(iter(result["envs"].values()))["env_steps_per_second"]
    lines = [
        f"Env steps per second of ML1 environments, {s['num_envs']} sub-environments, 1 thread, medians of "
        f"{s['repeats']} rounds; in brackets the median ratio to metarl's env ({_machine(result)}):",
        "",
        "| environment | " + " | ".join(paths) + " |",
        "|---" * (len(paths) + 1) + "|",
    ]
    for name, e in result["envs"].items():
        rates, ratios = e["env_steps_per_second"], e["over_metarl"]
        cells = [f"{rates[p]:,.0f}" + ("" if p == "metarl" else f" ({ratios[p]:.2f}×)") for p in paths]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "mujoco_family": _mujoco_family,
    "peer_comparison": _peer_comparison,
    "locomotion_envs": _locomotion_envs,
    "meta_world_envs": _meta_world_envs,
}
"""The table of each benchmark whose one output BENCHMARKS.md quotes."""
GROUPED: dict[str, Callable[[list[Mapping[str, Any]]], str]] = {
    "meta_iteration": _meta_iteration,
    "fast_meta_update": _fast_meta_update,
}
"""Benchmarks with one output per configuration (``<name>_<config>.json``), quoted as one table."""


def benchmark_blocks(results_dir: Path) -> dict[str, str]:
    """``{"benchmark:<name>": table}`` for every benchmark output in ``results_dir`` with a renderer.

    Args:
        results_dir: the folder of the benchmarks' JSON outputs (``benchmarks/results``).
    """
    missing = "Not measured yet on a machine of this project: run `benchmarks/{}.py` (with `--save`).\n"
    blocks = {}
    for name, render in RENDERERS.items():
        path = results_dir / f"{name}.json"
        blocks[f"benchmark:{name}"] = render(json.loads(path.read_text())) if path.is_file() else missing.format(name)
    for name, render_all in GROUPED.items():
        found = [json.loads(p.read_text()) for p in sorted(results_dir.glob(f"{name}_*.json"))]
        blocks[f"benchmark:{name}"] = render_all(found) if found else missing.format(name)
    return blocks


__all__ = ["GROUPED", "RENDERERS", "benchmark_blocks"]
