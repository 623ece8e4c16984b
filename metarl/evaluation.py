"""Adaptation curves: returns after 0, 1, ..., K gradient steps on fixed held-out tasks.

The evaluation of any method (MAML, a pretrained or random policy, an oracle) is the
same: draw a fixed, seeded set of held-out tasks, roll the policy out on all of them
at once, take K inner gradient steps (each on fresh episodes of the current
parameters) and record each task's mean return per episode after every step. The
adaptation itself is a callable (:data:`AdaptFn`), so this module needs nothing of
``agents`` or ``envs``.

Uncertainty: the 95% confidence interval of a step's mean is the Student-t interval
over tasks, ``mean ± t(0.975, n-1) · sd / sqrt(n)`` of the ``n`` per-task means (each
task a draw from the task distribution; the episodes' own noise is inside each task's
mean). Results are written as JSON (:meth:`AdaptationResults.save`).

References: a task family whose environment has a method
``reference_returns(tasks, horizon, rng) -> {name: per-task expected return}`` (e.g. the
best bandit arm, UCB1, value iteration on a tabular MDP) gets those returns on the same
held-out tasks recorded beside the method's curve (:func:`reference_returns`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.episodes import Episodes
from metarl.sampler import Sampler, envs_per_task
from metarl.tasks import Task

RESULTS_FORMAT = "metarl-adaptation-results"
RESULTS_VERSION = 1
EVAL_SEED_TAG = 0x6D65_7461_6576_616C  # "metaeval": keeps evaluation streams apart from training's
"""Mixed into the evaluation seed so held-out tasks never share a stream with training."""

AdaptFn = Callable[[Sampler, np.random.Generator, Sequence[float]], Sequence[Episodes]]
"""``adapt(sampler, rng, lrs) -> episodes``: ``len(lrs) + 1`` batches; batch ``k`` sampled
on the sampler's tasks with the parameters after ``k`` inner steps (step ``k`` uses ``lrs[k]``)."""

ReferenceFn = Callable[[list[Task], int, np.random.Generator], Mapping[str, np.ndarray]]
"""A family's ``reference_returns(tasks, horizon, rng) -> {name: return per task, shape [T]}``."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvaluationSettings:
    """How an adaptation curve is measured."""

    num_tasks: int = 40
    """Held-out tasks."""
    num_steps: int = 3
    """Inner gradient steps K; returns are recorded after 0..K steps."""
    episodes_per_step: int = 20
    """Episodes per task sampled with each step's parameters (and used for the next step)."""
    step_budget: bool = False
    """Sample each step as the MAML paper's code did: ``episodes_per_step`` sub-environments per task,
    each running episodes back to back for the horizon (``TrainConfig.step_budget``)."""
    budget_lanes: int = 0
    """With ``step_budget``: sub-environments sharing each task's budget (``TrainConfig.budget_lanes``;
    0: ``episodes_per_step`` of them)."""
    lrs: tuple[float, ...] = (0.1, 0.05)
    """Inner learning rate of step 1, 2, ...; the last one repeats for later steps."""
    seed: int = 0
    """Evaluation seed: held-out tasks, env seeds, action noise, a random policy's init."""
    confidence: float = 0.95
    """Level of the confidence intervals."""

    def __post_init__(self) -> None:
        for name in ("num_tasks", "episodes_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluation setting {name!r} must be >= 1, got {getattr(self, name)}")
        if self.num_steps < 0:
            raise ValueError(f"evaluation setting 'num_steps' must be >= 0, got {self.num_steps}")
        if not self.lrs or not all(math.isfinite(lr) and lr > 0 for lr in self.lrs):
            raise ValueError(f"evaluation setting 'lrs' must be positive numbers, got {self.lrs}")
        if self.seed < 0:
            raise ValueError(f"evaluation setting 'seed' must be >= 0, got {self.seed}")
        try:
            envs_per_task(self.episodes_per_step, self.step_budget, self.budget_lanes)
        except ValueError as exc:
            raise ValueError(f"evaluation setting 'budget_lanes': {exc}") from None
        if not 0 < self.confidence < 1:
            raise ValueError(f"evaluation setting 'confidence' must be in (0, 1), got {self.confidence}")

    def step_lrs(self) -> list[float]:
        """The learning rate of each of the ``num_steps`` steps."""
        return [self.lrs[min(k, len(self.lrs) - 1)] for k in range(self.num_steps)]


@dataclass(frozen=True)
class EvaluationStreams:
    """The random streams of an evaluation, all split from its seed (never from training's)."""

    task_rng: np.random.Generator
    env_rng: np.random.Generator
    torch_seed: int


def evaluation_streams(seed: int) -> EvaluationStreams:
    """Independent generators for held-out tasks and rollouts, and a torch seed, from ``seed``."""
    tasks, env, torch_seq = np.random.SeedSequence([EVAL_SEED_TAG, seed]).spawn(3)
    return EvaluationStreams(
        np.random.default_rng(tasks), np.random.default_rng(env), int(torch_seq.generate_state(1)[0])
    )


def reference_rng(seed: int) -> np.random.Generator:
    """The generator an evaluation of ``seed`` hands to ``reference_returns`` (its own stream)."""
    return np.random.default_rng(np.random.SeedSequence([EVAL_SEED_TAG, seed]).spawn(4)[3])


def reference_returns(env: object, tasks: Sequence[Task], horizon: int, seed: int) -> dict[str, np.ndarray]:
    """``env.reference_returns(tasks, horizon, rng)``, checked; ``{}`` if ``env`` has no such method.

    ``rng`` is :func:`reference_rng` of the evaluation ``seed``, so the values depend
    only on the tasks, the horizon and the seed. Each value is a float64 array ``[T]``.
    """
    method: ReferenceFn | None = getattr(env, "reference_returns", None)
    if not callable(method):
        return {}
    refs: dict[str, np.ndarray] = {}
    for name, values in dict(method(list(tasks), horizon, reference_rng(seed))).items():
        array = np.asarray(values, dtype=np.float64)
        if not isinstance(name, str) or not name or array.shape != (len(tasks),) or not np.isfinite(array).all():
            raise ValueError(
                f"{type(env).__name__}.reference_returns: {name!r} must name {len(tasks)} finite "
                f"per-task returns, got shape {array.shape}"
            )
        refs[name] = array
    return refs


def heldout_tasks(
    sample_tasks: Callable[[int, np.random.Generator], list[Task]], num_tasks: int, seed: int
) -> list[Task]:
    """The fixed held-out task set of evaluation ``seed``: the same for every method and run."""
    return list(sample_tasks(num_tasks, evaluation_streams(seed).task_rng))


# -------------------------------------------------------------------------- statistics


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0 < q < 1 or not df > 0:
        raise ValueError(f"student_t_ppf needs 0 < q < 1 and df > 0, got q={q}, df={df}")
    if q < 0.5:
        return -student_t_ppf(1.0 - q, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < q:
        low, high = high, 2.0 * high
    for _ in range(200):
        mid = 0.5 * (low + high)
        if student_t_cdf(mid, df) < q:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def t_interval(values: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Student-t confidence half-width of ``values`` along ``axis`` (NaN half-width if n < 2)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    sem = values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, student_t_ppf(0.5 + confidence / 2.0, n - 1) * sem


# ----------------------------------------------------------------------------- results


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

    def to_json(self) -> dict[str, Any]:
        """Plain data: settings, per-task and per-step returns, mean and confidence interval."""
        mean, half = t_interval(self.returns, self.confidence)
        tasks = self.tasks or [None] * len(self.returns)
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
            "per_task": [
                {"task": task, "returns": row.tolist(), **self._task_references(i)}
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
        )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``: one line per key, and per task (diff-friendly)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> AdaptationResults:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        return cls.from_json(json.loads(path.read_text()), where=str(path))


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


# -------------------------------------------------------------------------- evaluation


def per_task_returns(episodes: Episodes) -> np.ndarray:
    """Mean undiscounted return per episode of each task, ``[T]`` (float64)."""
    return episodes.mean_returns().numpy()


def evaluate_adaptation(
    sampler: Sampler,
    tasks: Sequence[Task],
    adapt: AdaptFn,
    lrs: Sequence[float],
    rng: np.random.Generator,
    on_episodes: Callable[[list[Episodes]], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Adapt on ``tasks`` with ``len(lrs)`` steps; per-task mean returns ``[T, K+1]`` and env steps.

    ``on_episodes`` (if given) receives the sampled episodes, e.g. to inspect them.
    """
    sampler.set_tasks(tasks)
    episodes = list(adapt(sampler, rng, list(lrs)))
    if len(episodes) != len(lrs) + 1:
        raise ValueError(f"adapt returned {len(episodes)} episode batches for {len(lrs)} steps")
    for k, batch in enumerate(episodes):
        if batch.num_tasks != len(tasks):
            raise ValueError(f"adapt's batch {k} holds {batch.num_tasks} tasks, expected {len(tasks)}")
    if on_episodes is not None:
        on_episodes(episodes)
    returns = np.stack([per_task_returns(batch) for batch in episodes], axis=1)
    return returns, sum(batch.num_steps for batch in episodes)


def run_evaluation(
    sampler: Sampler,
    tasks: Sequence[Task],
    adapt: AdaptFn,
    settings: EvaluationSettings,
    *,
    method: str,
    env_id: str,
    flat: bool = False,
    label: str = "",
    source: str = "",
    extra_settings: Mapping[str, Any] | None = None,
    on_episodes: Callable[[list[Episodes]], None] | None = None,
    references: Mapping[str, np.ndarray] | None = None,
) -> AdaptationResults:
    """Evaluate one method on ``tasks`` with ``settings`` (``flat``: no adaptation steps).

    ``references`` (per-task returns, e.g. from :func:`reference_returns`) are stored as given.

    The rollouts (reset seeds and action noise, which the sampler derives per task and
    episode from its generator) come from ``settings.seed``, so the same seed gives the
    same curve; torch's global RNG is seeded too, for anything else that draws from it.
    """
    streams = evaluation_streams(settings.seed)
    torch.manual_seed(streams.torch_seed)
    lrs = [] if flat else settings.step_lrs()
    returns, env_steps = evaluate_adaptation(sampler, tasks, adapt, lrs, streams.env_rng, on_episodes)
    recorded = {**dataclasses.asdict(settings), "step_lrs": lrs, **dict(extra_settings or {})}
    recorded["lrs"] = list(settings.lrs)
    return AdaptationResults(
        method=method,
        env_id=env_id,
        returns=returns,
        settings=recorded,
        tasks=[task_to_json(t) for t in tasks],
        label=label,
        source=source,
        flat=flat,
        env_steps=env_steps,
        references={name: np.asarray(v, dtype=np.float64) for name, v in (references or {}).items()},
    )


__all__ = [
    "AdaptFn",
    "AdaptationResults",
    "EVAL_SEED_TAG",
    "EvaluationSettings",
    "EvaluationStreams",
    "ReferenceFn",
    "evaluate_adaptation",
    "evaluation_streams",
    "heldout_tasks",
    "per_task_returns",
    "reference_returns",
    "reference_rng",
    "run_evaluation",
    "student_t_cdf",
    "student_t_ppf",
    "t_interval",
    "task_to_json",
]
