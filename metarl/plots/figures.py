"""Comparison figures: adaptation curves and training curves of several methods and seeds.

Runs are grouped by their legend name (method or label). A group of one run is drawn
with its own 95% confidence band (adaptation: Student-t over tasks); a group of
several runs (seeds) is drawn as the mean over runs with a Student-t 95% band over
runs. A family's analytic references stored in the results (best bandit arm, UCB1,
value iteration, ...) are drawn as flat dashed lines at their mean over tasks. Drawn
on matplotlib's Agg canvas: no display, no pyplot state.
(:mod:`metarl.plots.training_curve` draws a single run's training curve at the end of training.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from metarl.evaluation.results import AdaptationResults
from metarl.evaluation.statistics import t_interval
from metarl.plots.curves import (
    DODGE,
    Curve,
    coinciding,
    draw_curves,
    results_return_bounds,
    within_noise,
    y_limits,
)
from metarl.system.files import save_figure

METHOD_STYLES: dict[str, dict[str, str]] = {
    "maml-trpo": {"color": "tab:blue", "marker": "o"},
    "pretrained": {"color": "tab:orange", "marker": "s"},
    "random": {"color": "tab:gray", "marker": "^"},
    "oracle": {"color": "black", "marker": ""},
}
"""Fixed colours for the known methods, so every figure reads the same way."""
REFERENCE_COLORS = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink"]
"""Colours of the reference lines, in the order the family names them."""
LEGEND_COLUMNS = 3
"""Columns of the legend below an adaptation figure's axes (it never covers a curve)."""
_CYCLE = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
TRAINING_KEYS = (("return_before", "before adaptation", "--"), ("return_after", "after adaptation", "-"))


def family_name(env_id: str) -> str:
    """A readable task-family name: ``metarl/Navigation2D-v0`` → ``Navigation2D-v0``."""
    return env_id.split("/")[-1]


@dataclass(frozen=True)
class Band:
    """A mean line with a confidence band, over ``x``."""

    name: str
    x: np.ndarray
    mean: np.ndarray
    half: np.ndarray  # NaN where no interval exists (one run, one task)
    count: int  # runs averaged
    flat: bool = False


def _style(name: str, index: int) -> dict[str, str]:
    """The fixed style of a known method's name; other names (custom labels) cycle colours."""
    return METHOD_STYLES.get(name, {"color": _CYCLE[index % len(_CYCLE)], "marker": "D"})


def _groups(items: Sequence[tuple[str, object]]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for name, item in items:
        groups.setdefault(name, []).append(item)
    return groups


def adaptation_bands(results: Sequence[AdaptationResults], success: bool = False) -> list[Band]:
    """One band per name: a single run's CI over tasks, or several runs' CI over runs.

    Args:
        results: The evaluations.
        success: Bands of the success rate instead of the return (results without success rates are left out).
    """
    bands = []
    for name, runs in _groups([(r.name, r) for r in results]).items():
        values = [r.success if success else r.returns for r in runs]
        if any(v is None for v in values):
            continue
        if len(runs) == 1:
            mean, half = t_interval(values[0], runs[0].confidence)
        else:
            widths = {v.shape[1] for v in values if v is not None}
            if len(widths) != 1:
                raise ValueError(f"runs of {name!r} have different numbers of steps ({sorted(widths)}); cannot average")
            mean, half = t_interval(np.stack([v.mean(axis=0) for v in values if v is not None]), runs[0].confidence)
        bands.append(Band(name, np.arange(len(mean)), mean, half, len(runs), flat=all(r.flat for r in runs)))
    return bands


def _band_curves(bands: Sequence[Band], max_step: int) -> list[Curve]:
    """The curves of ``bands``: a flat method as a dashed line across the steps."""
    curves = []
    for i, band in enumerate(bands):
        style = _style(band.name, i)
        label = band.name + (f" ({band.count} runs)" if band.count > 1 else "")
        if band.flat:
            x = np.array([0.0, max_step])
            curves.append(Curve(label, x, np.full(2, band.mean[0]), np.full(2, band.half[0]), style["color"], "--"))
        else:
            curves.append(
                Curve(label, band.x.astype(float), band.mean, band.half, style["color"], "-", style["marker"] or None)
            )
    return curves


def step_sizes_note(results: Sequence[AdaptationResults]) -> str:
    """``"inner step sizes: maml-trpo 0.1/0.05, pretrained 0.01 (chosen on validation tasks)"``, for a figure's notes.

    Args:
        results: the curves drawn.
    """
    found: dict[str, set[str]] = {}
    for r in results:
        lrs = r.settings.get("step_lrs") or []
        if not r.flat and lrs:
            steps = "/".join(f"{lr:g}" for lr in dict.fromkeys(lrs))
            found.setdefault(r.name, set()).add(
                steps + (" (chosen on validation tasks)" if r.settings.get("lr_choice") else "")
            )
    parts = [f"{name} {next(iter(v)) if len(v) == 1 else 'various'}" for name, v in found.items()]
    return "inner step sizes: " + ", ".join(parts) if parts else ""


def reference_levels(results: Sequence[AdaptationResults]) -> dict[str, float]:
    """Mean over tasks of every reference in ``results`` (averaged over the results holding it)."""
    levels: dict[str, list[float]] = {}
    for run in results:
        for name, values in run.references.items():
            levels.setdefault(name, []).append(float(np.mean(values)))
    return {name: float(np.mean(means)) for name, means in levels.items()}


def _save(fig: Figure, out_png: str | Path) -> Path:
    return save_figure(fig, out_png, dpi=110)


def _notes(ax: Axes, lines: Sequence[str]) -> None:
    ax.text(0.01, 0.01, "\n".join(lines), transform=ax.transAxes, fontsize=8, alpha=0.75, va="bottom")


def adaptation_figure(results: Sequence[AdaptationResults], title: str | None = None) -> Figure:
    """The adaptation figure of ``results`` (see :func:`plot_adaptation`), not yet saved."""
    if not results:
        raise ValueError("plot_adaptation: no results to plot")
    env_ids = sorted({r.env_id for r in results})
    if title is None:
        tasks = sorted({r.returns.shape[0] for r in results})
        title = f"Adaptation on {', '.join(map(family_name, env_ids))} ({'/'.join(map(str, tasks))} held-out tasks)"
    bands = adaptation_bands(results)
    max_step = max([len(b.x) - 1 for b in bands if not b.flat] or [1])
    curves = _band_curves(bands, max_step)
    for j, (name, level) in enumerate(reference_levels(results).items()):
        color = REFERENCE_COLORS[j % len(REFERENCE_COLORS)]
        curves.append(
            Curve(name, np.array([0.0, max_step]), np.full(2, level), np.full(2, np.nan), color, "--", band=False)
        )

    success_bands = adaptation_bands(results, success=True)
    fig = Figure(figsize=(10.4 if success_bands else 6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1) if success_bands else fig.add_subplot()
    if success_bands:
        _success_axes(fig.add_subplot(1, 2, 2), success_bands, max_step)
    notes = draw_curves(ax, curves, results_return_bounds(results), dodge=DODGE)
    quiet = [c.label for c in curves if within_noise(c)]
    if quiet:
        notes.append(f"no step moves the mean past the 95% CIs: {', '.join(quiet)}")
    over = "runs" if any(b.count > 1 for b in bands) else "tasks"
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("mean return per episode")
    ax.set_xticks(range(max_step + 1))
    ax.set_title(title)
    sizes = step_sizes_note(results)
    _notes(ax, [f"bands: 95% CI (Student-t over {over})", *([sizes] if sizes else []), *notes])
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    rows = math.ceil(len(labels) / LEGEND_COLUMNS)
    fig.set_figheight(fig.get_figheight() + 0.3 + 0.22 * rows)
    # below the axes, never over a curve
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), LEGEND_COLUMNS), fontsize=8)
    return fig


def _success_axes(ax: Axes, bands: Sequence[Band], max_step: int) -> None:
    """The success rate after 0..K steps beside the returns (an env that reports ``info["success"]``)."""
    draw_curves(ax, _band_curves(bands, max_step), (0.0, 1.0), dodge=DODGE)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("success rate (episodes that succeed)")
    ax.set_xticks(range(max_step + 1))
    ax.set_title("Success rate")
    ax.grid(alpha=0.3)


def plot_adaptation(results: Sequence[AdaptationResults], out_png: str | Path, title: str | None = None) -> Path:
    """Mean return per episode after 0..K gradient steps, one line per method, with 95% bands.

    Flat methods (the oracle) are drawn as a horizontal line across the figure, and so
    are the references the results carry (dashed, labelled by name). Bands stop at the
    return bounds the results record; the y-axis is never narrower than
    :data:`metarl.plots.curves.MIN_RELATIVE_SPAN` of the values; coinciding curves are offset and named in the
    legend; a curve whose steps all lie within each other's 95% CIs is named in a note. Results
    with success rates (an env that reports ``info["success"]``, such as Meta-World) get a second
    panel beside the returns: the success rate after 0..K steps, with its bands.

    Args:
        results: Evaluations to draw; those sharing a name (method or label) are averaged over runs.
        out_png: The PNG to write (folders are made).
        title: Figure title (default: the task families and the number of held-out tasks).
    """
    return _save(adaptation_figure(results, title), out_png)


def groups_figure(result: AdaptationResults) -> Figure:
    """One line per task group of ``result`` (a Meta-World task's environment): return and, if recorded, success rate.

    Args:
        result: An evaluation whose tasks have groups (``result.groups``).
    """
    names = list(dict.fromkeys(result.groups))
    if len(names) < 2:
        raise ValueError("groups_figure: the results have fewer than two task groups")
    panels = [("mean return per episode", result.returns, results_return_bounds([result]))]
    if result.success is not None:
        panels.append(("success rate (episodes that succeed)", result.success, (0.0, 1.0)))
    fig = Figure(figsize=(5.2 * len(panels), 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    steps = result.returns.shape[1]
    for i, (ylabel, values, bounds) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        curves = []
        for j, name in enumerate(names):
            rows = np.array([g == name for g in result.groups])
            mean, half = t_interval(values[rows], result.confidence)
            color = _CYCLE[j % len(_CYCLE)]
            curves.append(
                Curve(
                    f"{name} ({int(rows.sum())} task{'s' if rows.sum() != 1 else ''})",
                    np.arange(steps, dtype=float),
                    mean,
                    half,
                    color,
                    "-",
                    "o",
                )
            )
        draw_curves(ax, curves, bounds, dodge=DODGE)
        if bounds == (0.0, 1.0):
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(steps))
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.name} on {family_name(result.env_id)}, per task group (95% CI over its tasks)")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.set_figheight(fig.get_figheight() + 0.3 + 0.22 * math.ceil(len(labels) / LEGEND_COLUMNS))
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), LEGEND_COLUMNS), fontsize=8)
    return fig


def plot_groups(result: AdaptationResults, out_png: str | Path) -> Path:
    """Write :func:`groups_figure` of ``result`` to ``out_png``.

    Args:
        result: An evaluation whose tasks have two or more groups.
        out_png: The PNG to write (folders are made).
    """
    return _save(groups_figure(result), out_png)


def _aligned(rows_of_runs: Sequence[Sequence[Mapping[str, float]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Iterations logged with a finite ``key`` in every run, and the values ``[runs, iterations]``."""
    tables = [
        {int(r["iteration"]): float(r[key]) for r in rows if key in r and math.isfinite(r[key])}
        for rows in rows_of_runs
    ]
    common = sorted(set.intersection(*(set(t) for t in tables))) if tables else []
    return np.array(common), np.array([[t[i] for i in common] for t in tables]).reshape(len(tables), len(common))


def training_figure(
    runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]],
    title: str,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Figure:
    """The training figure of ``runs`` (see :func:`plot_training_runs`), not yet saved.

    Args:
        runs: Each curve's legend name and its runs' metric rows.
        title: The figure's title.
        bounds: The range the returns can take (bands are clipped to it).
    """
    if not runs:
        raise ValueError("plot_training_runs: no runs to plot")
    curves = []
    many = False
    for i, (name, group) in enumerate(_groups(list(runs)).items()):
        style = _style(name, i)
        adapted = any("return_after" in row for rows in group for row in rows)
        for key, what, linestyle in TRAINING_KEYS:
            x, values = _aligned(group, key)
            if x.size == 0:
                continue
            if not adapted:
                what, linestyle = "no adaptation", "-"
            mean, half = t_interval(values, 0.95)
            many |= len(group) > 1
            label = f"{name}, {what}" + (f" ({len(group)} runs)" if len(group) > 1 else "")
            curves.append(Curve(label, x.astype(float), mean, half, style["color"], linestyle))
    if not curves:
        raise ValueError("plot_training_runs: no return_before / return_after metrics in these runs")
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    notes = draw_curves(ax, curves, bounds)
    ax.set_xlabel("meta-iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean return per episode")
    ax.set_title(title)
    _notes(ax, (["bands: 95% CI (Student-t over runs)"] if many else []) + notes)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_training_runs(
    runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]],
    out_png: str | Path,
    title: str,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Path:
    """Return before (dashed) and after (solid) adaptation per meta-iteration for ``(name, rows)`` runs.

    Runs sharing a name are averaged (95% Student-t band over runs). A method that
    logs no return after adaptation (the TRPO baselines) is drawn solid, "no adaptation".

    Args:
        runs: ``(legend name, metric rows)`` per run.
        out_png: The PNG to write.
        title: Figure title.
        bounds: Bounds of an episode's return (:func:`metarl.tasks.protocol.return_bounds`): bands stop there.
    """
    return _save(training_figure(runs, title, bounds), out_png)


__all__ = [
    "METHOD_STYLES",
    "REFERENCE_COLORS",
    "Band",
    "Curve",
    "adaptation_bands",
    "adaptation_figure",
    "coinciding",
    "draw_curves",
    "family_name",
    "plot_adaptation",
    "plot_training_runs",
    "reference_levels",
    "results_return_bounds",
    "training_figure",
    "within_noise",
    "y_limits",
]
