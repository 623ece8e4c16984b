"""A row's reproduction in numbers: each seed, the aggregate over seeds, the baselines and the paper's checks.

Everything here is read from the run folders' own files — ``config.yaml``, ``metrics.csv``,
``sessions.jsonl`` and the evaluation's ``adaptation_*.json`` — never from a page, so the
results pages (:mod:`metarl.reproduction.pages`) and ``reproduction.json`` cannot drift
from the runs.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarl.config import load_config
from metarl.evaluation.results import AdaptationResults
from metarl.evaluation.statistics import t_interval
from metarl.reproduction.layout import (
    SUMMARY_FILE,
    differences_from_preset,
    preset_config,
    pretrained_dir,
    random_results,
    results_file,
    row_dir,
    seed_dir,
)
from metarl.reproduction.rows import BASELINE_LR_GRID, EVAL_SEED, NUM_STEPS, NUM_TASKS, PaperRow
from metarl.runs.folder import CONFIG_FILE, METRICS_FILE, read_sessions
from metarl.runs.logs import read_metrics
from metarl.system.files import write_atomic


@dataclass
class Training:
    """What a run folder's files say about its training.

    Args:
        iterations: completed meta-iterations (rows of ``metrics.csv``).
        target: the run's ``num_iterations``.
        env_steps: environment steps over all iterations.
        seconds: the sum of the iterations' wall-clock seconds.
        median_seconds: median seconds per iteration.
        cpus: the CPU kinds of its training sessions (``sessions.jsonl``), each with the iterations it ran
            (metrics.csv's numbering) when there were several kinds; ``[]`` if unrecorded.
        differences: fields in which its config is not the shipped preset (``{field: [preset, run]}``).
    """

    iterations: int
    target: int
    env_steps: int
    seconds: float
    median_seconds: float
    cpus: list[str]
    differences: dict[str, list[Any]]

    @property
    def finished(self) -> bool:
        """Whether it ran its ``num_iterations``."""
        return self.iterations >= self.target


@dataclass
class Evaluation:
    """An evaluation's mean return over the held-out tasks after 0..K steps and its 95 % interval over tasks.

    Args:
        mean: the mean over tasks after each step.
        half_width: the Student-t half-width over tasks after each step.
        checkpoint_iteration: the iteration of the evaluated checkpoint.
        protocol_ok: whether it used the row's protocol (tasks, seed, steps, episodes, step-size choice).
        step_lrs: the inner learning rate of each step.
        lr_chosen: whether that rate was chosen on validation tasks.
        by_group: per task group (a direction family's forward and backward), the mean over the
            group's tasks after each step and its half-width; empty for an env without groups.
    """

    mean: list[float]
    half_width: list[float]
    checkpoint_iteration: int | None
    protocol_ok: bool
    step_lrs: list[float] = field(default_factory=list)
    lr_chosen: bool = False
    by_group: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


@dataclass
class SeedResult:
    """One seed of the preset: its training and (once it finished) the evaluation of its final checkpoint."""

    seed: int
    training: Training
    evaluation: Evaluation | None

    @property
    def reportable(self) -> bool:
        """The shipped preset, trained to its end, its final checkpoint evaluated by the row's protocol."""
        return (
            self.training.finished
            and not self.training.differences
            and self.evaluation is not None
            and self.evaluation.protocol_ok
            and self.evaluation.checkpoint_iteration == self.training.target
        )


@dataclass
class RowSummary:
    """A row's reproduction: seeds, aggregate over the reportable seeds, baselines, the paper's checks."""

    row: str
    preset: str
    paper: list[float]
    seeds: list[SeedResult]
    missing: list[int]
    aggregate_mean: list[float] | None = None
    aggregate_half_width: list[float] | None = None
    pretrained: Evaluation | None = None
    pretrained_training: Training | None = None
    random: Evaluation | None = None
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every seed the row reports is reportable."""
        return not self.missing and all(s.reportable for s in self.seeds)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``reproduction.json``."""
        data = asdict(self)
        data["complete"] = self.complete
        return data


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _machine_and_arithmetic(session: dict[str, Any]) -> str:
    """``"CPU kind"``, with the learner's precision where the session recorded it (``"CPU kind, bf16"``)."""
    cpu = str(session.get("cpu", "")) or "unrecorded CPU"
    arithmetic = session.get("arithmetic")
    if not isinstance(arithmetic, dict) or not arithmetic:
        return cpu
    values = {str(v) for v in arithmetic.values()}
    if len(values) == 1:
        return f"{cpu}, {values.pop()}"
    return f"{cpu}, " + ", ".join(f"{str(k).replace('_', ' ')} {v}" for k, v in arithmetic.items())


def cpu_spans(sessions: list[dict[str, Any]], iterations: int) -> list[str]:
    """The CPU kinds (and recorded precisions) that trained a run, as ``"kind for iterations a–b"`` when
    there were several.

    A session ran from its ``first_iteration`` to the next session's start (a session resumed from an
    earlier checkpoint redoes what it overlaps); sessions that completed no iteration are left out,
    and consecutive spans on one kind and precision are merged.

    Args:
        sessions: the run's session records (:func:`~metarl.runs.folder.read_sessions`), in order.
        iterations: the run's completed iterations (rows of ``metrics.csv``).
    """
    owned: list[tuple[str, int, int]] = []  # (kind, first, last), latest session first
    limit = iterations  # where the iterations of the sessions after this one begin
    for session in reversed(sessions):
        first = int(session["first_iteration"])
        if first < limit:
            owned.append((_machine_and_arithmetic(session), first, limit - 1))
        limit = min(limit, first)
    spans: list[list[Any]] = []  # [kind, first, last], consecutive spans of one kind merged
    for kind, first, last in reversed(owned):
        if spans and spans[-1][0] == kind:
            spans[-1][2] = last
        else:
            spans.append([kind, first, last])
    if len({kind for kind, _, _ in spans}) <= 1:
        return [spans[0][0]] if spans else list(dict.fromkeys(_machine_and_arithmetic(s) for s in sessions))
    return [f"{kind} for iterations {first}–{last}" for kind, first, last in spans]


def read_training(run_dir: Path, preset_cfg: Any) -> Training:
    """The :class:`Training` of ``run_dir`` (its config compared with ``preset_cfg``)."""
    cfg = load_config(run_dir / CONFIG_FILE)
    rows = read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else []
    seconds = [float(r["seconds_per_iteration"]) for r in rows if "seconds_per_iteration" in r]
    cpus = cpu_spans(read_sessions(run_dir), len(rows))
    return Training(
        iterations=len(rows),
        target=cfg.num_iterations,
        env_steps=int(rows[-1].get("total_env_steps", 0)) if rows else 0,
        seconds=float(sum(seconds)),
        median_seconds=_median(seconds),
        cpus=cpus,
        differences={k: [_plain(a), _plain(b)] for k, (a, b) in differences_from_preset(cfg, preset_cfg).items()},
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def read_evaluation(
    path: Path, row: PaperRow, episodes_per_step: int, lr_grid: tuple[float, ...] = ()
) -> Evaluation | None:
    """The :class:`Evaluation` in results file ``path``, or ``None`` if there is none.

    Args:
        path: the results file.
        row: the paper's row (its protocol).
        episodes_per_step: the protocol's episodes per task and step.
        lr_grid: the grid the inner learning rate must have been chosen from (empty: none chosen).
    """
    if not path.is_file():
        return None
    results = AdaptationResults.load(path)
    mean, half = t_interval(results.returns, results.confidence)
    settings = results.settings
    protocol_ok = (
        settings.get("num_tasks") == NUM_TASKS
        and settings.get("seed") == EVAL_SEED
        and (results.flat or settings.get("num_steps") == NUM_STEPS)
        and (results.flat or settings.get("episodes_per_step") == episodes_per_step)
        and bool(settings.get("step_budget", False)) == row.step_budget
        and (results.flat or list(settings.get("lr_grid") or []) == list(lr_grid))
    )
    iteration = settings.get("training_iterations")
    return Evaluation(
        mean=[float(v) for v in np.atleast_1d(mean)],
        half_width=[float(v) for v in np.atleast_1d(half)],
        checkpoint_iteration=int(iteration) if isinstance(iteration, int) else None,
        protocol_ok=protocol_ok,
        step_lrs=[float(v) for v in settings.get("step_lrs") or []],
        lr_chosen=bool(settings.get("lr_choice")),
        by_group={
            name: (list(map(float, group["mean"])), list(map(float, group["ci_half"])))
            for name, group in results.by_group().items()
        },
    )


def _by_protocol(evaluation: Evaluation | None) -> Evaluation | None:
    """A baseline's evaluation if it followed the row's protocol (its step size chosen on the grid), else none."""
    return evaluation if evaluation is not None and evaluation.protocol_ok else None


def episodes_per_step(row: PaperRow) -> int:
    """Evaluation episodes per task and step of ``row``."""
    return row.episodes_per_step or preset_config(row).episodes_per_task


def summarise(root: Path, row: PaperRow) -> RowSummary:
    """The :class:`RowSummary` of ``row``'s reproduction under ``root`` (seeds not started are ``missing``)."""
    preset = preset_config(row)
    episodes = episodes_per_step(row)
    seeds, missing = [], []
    for seed in row.seeds:
        run_dir = seed_dir(root, row, seed)
        if not (run_dir / CONFIG_FILE).is_file():
            missing.append(seed)
            continue
        training = read_training(run_dir, preset)
        evaluation = read_evaluation(results_file(run_dir, "maml-trpo"), row, episodes)
        seeds.append(SeedResult(seed, training, evaluation))
    summary = RowSummary(row.name, row.preset, list(row.paper), seeds, missing)
    done = [s for s in seeds if s.reportable]
    if done:
        per_seed = np.array([s.evaluation.mean for s in done if s.evaluation is not None])
        mean, half = t_interval(per_seed)
        summary.aggregate_mean = [float(v) for v in mean]
        summary.aggregate_half_width = [float(v) for v in half]
    base = pretrained_dir(root, row)
    if (base / CONFIG_FILE).is_file():
        summary.pretrained_training = read_training(base, preset_config(row, pretrained=True))
        summary.pretrained = _by_protocol(
            read_evaluation(results_file(base, "pretrained"), row, episodes, BASELINE_LR_GRID)
        )
    summary.random = _by_protocol(read_evaluation(random_results(root, row), row, episodes, BASELINE_LR_GRID))
    if summary.complete and summary.aggregate_mean is not None:
        bound = row.one_step_bound()
        summary.checks = {
            "mean_at_least_paper": summary.aggregate_mean[1] >= row.paper[0],
            "every_seed_within_25_percent": all(s.evaluation.mean[1] >= bound for s in done if s.evaluation),
        }
        if summary.pretrained is not None:
            summary.checks["above_pretrained"] = summary.aggregate_mean[1] > summary.pretrained.mean[1]
    return summary


def write_summary(root: Path, row: PaperRow) -> Path:
    """Write ``row``'s :func:`summarise` to ``<root>/<row>/reproduction.json``; returns the path."""
    summary = summarise(root, row)
    return write_atomic(row_dir(root, row) / SUMMARY_FILE, json.dumps(summary.to_json(), indent=1) + "\n")


__all__ = [
    "Evaluation",
    "RowSummary",
    "SeedResult",
    "Training",
    "cpu_spans",
    "episodes_per_step",
    "read_evaluation",
    "read_training",
    "summarise",
    "write_summary",
]
