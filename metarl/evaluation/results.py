"""The results file of an evaluation: adaptation curves per held-out task, as JSON.

:class:`AdaptationResults` holds each task's mean return after 0..K inner steps with the
settings that produced it; :meth:`AdaptationResults.save` writes it (``adaptation_<method>.json``,
one line per task) and :meth:`AdaptationResults.load` reads it back, checking the format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarl.evaluation.statistics import t_interval
from metarl.system.files import write_atomic
from metarl.tasks.protocol import Task

RESULTS_FORMAT = "metarl-adaptation-results"
RESULTS_VERSION = 1


def task_to_json(task: Task) -> Any:
    """A task as plain JSON data: its own ``to_json()`` if it has one, else dataclass fields, lists, numbers."""
    own = getattr(task, "to_json", None)
    if callable(own) and not isinstance(task, type):
        return own()
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return {f.name: task_to_json(getattr(task, f.name)) for f in dataclasses.fields(task)}
    if isinstance(task, np.ndarray | np.generic):
        return task.tolist()
    if isinstance(task, Mapping):
        return {str(k): task_to_json(v) for k, v in task.items()}
    if isinstance(task, list | tuple):
        return [task_to_json(v) for v in task]
    if task is None or isinstance(task, bool | int | float | str):
        return task
    return repr(task)


@dataclass(frozen=True)
class AdaptationResults:
    """Mean return per episode of every held-out task after 0..K gradient steps.

    ``returns[i, k]`` is task ``i``'s mean return over the episodes sampled after
    ``k`` steps. An oracle (no adaptation) has one column, ``k = 0``, and ``flat``.
    ``references[name][i]`` is a reference's expected return on task ``i`` (see
    :func:`reference_returns`).
    """

    method: str
    env_id: str
    returns: np.ndarray  # [num_tasks, num_steps + 1]
    settings: dict[str, Any]
    tasks: list[Any] = field(default_factory=list)
    label: str = ""
    source: str = ""
    flat: bool = False
    env_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    references: dict[str, np.ndarray] = field(default_factory=dict)
    success: np.ndarray | None = None  # [num_tasks, num_steps + 1]: fraction of episodes that succeeded
    groups: list[str] = field(default_factory=list)  # each task's group (a Meta-World task's environment), or []

    @property
    def steps(self) -> list[int]:
        """Gradient steps at which returns were recorded: ``0..K``."""
        return list(range(self.returns.shape[1]))

    @property
    def name(self) -> str:
        """The legend name: ``label`` or ``method``."""
        return self.label or self.method

    @property
    def confidence(self) -> float:
        """Level of the confidence intervals."""
        return float(self.settings.get("confidence", 0.95))

    def mean(self) -> np.ndarray:
        """Mean over tasks after each step, ``[K + 1]``."""
        return self.returns.mean(axis=0)

    def ci_halfwidth(self) -> np.ndarray:
        """Student-t confidence half-width over tasks after each step, ``[K + 1]``."""
        return t_interval(self.returns, self.confidence)[1]

    def success_summary(self) -> dict[str, list[float]] | None:
        """Success rate after each step: mean over tasks and its Student-t interval (``None`` without successes)."""
        if self.success is None:
            return None
        mean, half = t_interval(self.success, self.confidence)
        return {"mean": mean.tolist(), "ci_low": (mean - half).tolist(), "ci_high": (mean + half).tolist()}

    def by_group(self) -> dict[str, dict[str, Any]]:
        """Per task group: its tasks, mean return and (with successes) success rate after each step, with intervals."""
        summary: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(self.groups):
            rows = np.array([g == name for g in self.groups])
            mean, half = t_interval(self.returns[rows], self.confidence)
            entry: dict[str, Any] = {"tasks": int(rows.sum()), "mean": mean.tolist(), "ci_half": half.tolist()}
            if self.success is not None:
                rate, rate_half = t_interval(self.success[rows], self.confidence)
                entry["success_rate"] = rate.tolist()
                entry["success_ci_half"] = rate_half.tolist()
            summary[name] = entry
        return summary

    def to_json(self) -> dict[str, Any]:
        """Plain data: settings, per-task and per-step returns, mean and confidence interval."""
        mean, half = t_interval(self.returns, self.confidence)
        tasks = self.tasks or [None] * len(self.returns)
        success = self.success_summary()
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "method": self.method,
            "label": self.name,
            "env_id": self.env_id,
            "source": self.source,
            "flat": self.flat,
            "settings": dict(self.settings),
            "ci_method": f"Student-t interval over the {self.returns.shape[0]} tasks' mean returns",
            "steps": self.steps,
            "mean": mean.tolist(),
            "ci_low": (mean - half).tolist(),
            "ci_high": (mean + half).tolist(),
            "std_over_tasks": self.returns.std(axis=0, ddof=1).tolist() if len(self.returns) > 1 else None,
            "env_steps": self.env_steps,
            **({"references": self._reference_summary()} if self.references else {}),
            **({"success_rate": success} if success is not None else {}),
            **({"by_group": self.by_group()} if self.groups else {}),
            "per_task": [
                {
                    "task": task,
                    "returns": row.tolist(),
                    **self._task_references(i),
                    **self._task_success(i),
                    **({"group": self.groups[i]} if self.groups else {}),
                }
                for i, (task, row) in enumerate(zip(tasks, self.returns, strict=True))
            ],
            **({"extra": self.extra} if self.extra else {}),
        }

    def _reference_summary(self) -> dict[str, dict[str, float]]:
        """Mean and confidence interval over tasks of every reference."""
        summary = {}
        for name, values in self.references.items():
            mean, half = t_interval(values, self.confidence)
            summary[name] = {"mean": float(mean), "ci_low": float(mean - half), "ci_high": float(mean + half)}
        return summary

    def _task_references(self, i: int) -> dict[str, dict[str, float]]:
        """``{"references": {name: value on task i}}``, or ``{}`` without references."""
        return {"references": {k: float(v[i]) for k, v in self.references.items()}} if self.references else {}

    def _task_success(self, i: int) -> dict[str, list[float]]:
        """``{"success": rate after each step}`` of task ``i``, or ``{}`` without successes."""
        return {"success": self.success[i].tolist()} if self.success is not None else {}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "results") -> AdaptationResults:
        """Inverse of :meth:`to_json` (raises ``ValueError`` on a file of another kind)."""
        if data.get("format") != RESULTS_FORMAT:
            raise ValueError(f"{where} is not a metarl adaptation-results file")
        if data.get("version") != RESULTS_VERSION:
            raise ValueError(f"{where} has results version {data.get('version')!r}, expected {RESULTS_VERSION}")
        per_task = data["per_task"]
        return cls(
            method=data["method"],
            env_id=data["env_id"],
            returns=np.array([row["returns"] for row in per_task], dtype=np.float64),
            settings=dict(data["settings"]),
            tasks=[row["task"] for row in per_task],
            label=data.get("label", ""),
            source=data.get("source", ""),
            flat=bool(data.get("flat", False)),
            env_steps=int(data.get("env_steps", 0)),
            extra=dict(data.get("extra", {})),
            references={
                name: np.array([row["references"][name] for row in per_task], dtype=np.float64)
                for name in data.get("references", {})
            },
            success=(
                np.array([row["success"] for row in per_task], dtype=np.float64) if "success_rate" in data else None
            ),
            groups=[str(row["group"]) for row in per_task] if "by_group" in data else [],
        )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``: one line per key, and per task (diff-friendly)."""
        return write_atomic(path, _dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> AdaptationResults:
        """Read a file written by :meth:`save`; a file that is not one is a ``ValueError`` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable results file: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a metarl adaptation-results file")
        try:
            return cls.from_json(data, where=str(path))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"{path} is a damaged results file: {type(exc).__name__}: {exc}") from None


def _dumps(data: Mapping[str, Any]) -> str:
    """JSON with one line per top-level key and one line per entry of ``per_task``."""
    lines = []
    for key, value in data.items():
        if key == "per_task":
            rows = ",\n".join(f"  {json.dumps(row)}" for row in value)
            text = f"[\n{rows}\n ]" if value else "[]"
        else:
            text = json.dumps(value)
        lines.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


__all__ = ["RESULTS_FORMAT", "RESULTS_VERSION", "AdaptationResults", "task_to_json"]
