"""Training-curve figures (matplotlib's Agg canvas: no display, no pyplot state)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from metarl.plots.curves import Curve, draw_curves
from metarl.runs.folder import CONFIG_FILE
from metarl.runs.logs import GROUP_MARK, metric_groups, read_metrics
from metarl.system.files import save_figure

_STEP_KEY = re.compile(r"^return_after_step(\d+)$")


def _series_keys(rows: Sequence[Mapping[str, float]]) -> list[tuple[str, str]]:
    """``(metric key, legend label)`` to draw: before, after step 1..k, after adaptation."""
    keys = {k for row in rows for k in row}
    steps = sorted((int(m.group(1)), k) for k in keys if (m := _STEP_KEY.match(k)))
    out = [("return_before", "before adaptation")] if "return_before" in keys else []
    out += [(k, f"after {n} step{'s' if n != 1 else ''}") for n, k in steps]
    if "return_after" in keys:
        out.append(("return_after", "after adaptation"))
    groups = metric_groups(keys)
    if len(groups) <= _MAX_GROUP_LINES:  # forward / backward; Meta-World's ten or more would crowd it
        out += [(f"return_after{GROUP_MARK}{g}", f"after adaptation, {g} tasks") for g in groups]
    return out


_MAX_GROUP_LINES = 4


_SUCCESS_KEYS = (("success_before", "before adaptation"), ("success_after", "after adaptation"))
"""Success rates per meta-iteration, logged for envs that report ``info["success"]`` (drawn in a second panel)."""


def _curves(rows: Sequence[Mapping[str, float]], series: Sequence[tuple[str, str]]) -> list[Curve]:
    """One line per ``(key, label)`` of ``series`` over the iterations where ``key`` is finite."""
    curves = []
    for i, (key, label) in enumerate(series):
        points = [(r["iteration"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
        if points:
            xs, ys = (np.array(v, dtype=float) for v in zip(*points, strict=True))
            marker = "o" if len(xs) <= 30 else None
            curves.append(Curve(label, xs, ys, np.full(len(xs), np.nan), f"C{i}", marker=marker, band=False))
    return curves


def _env_id_of(run_dir: Path) -> str | None:
    path = run_dir / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data.get("env_id") if isinstance(data, dict) else None


def plot_training_curve(
    source: Sequence[Mapping[str, float]] | str | Path,
    out_png: str | Path,
    title: str | None = None,
    env_id: str | None = None,
) -> Path:
    """Plot mean return before and after adaptation per meta-iteration to ``out_png``.

    ``source`` is a list of metric rows (with ``iteration``) or a run folder holding
    ``metrics.csv``. Keys drawn: ``return_before``, ``return_after_step<k>`` and
    ``return_after`` (and ``return_after@<group>`` for up to four task groups), and in a second
    panel ``success_before`` and ``success_after`` when the run logged them. The default title
    names ``env_id`` (or the run's ``config.yaml``).

    Args:
        source: Metric rows or a run folder.
        out_png: The figure's file.
        title: The figure's title.
        env_id: The env named in the default title.
    """
    if isinstance(source, str | Path):
        run_dir = Path(source)
        rows = read_metrics(run_dir)
        env_id = env_id or _env_id_of(run_dir)
    else:
        rows = [dict(r) for r in source]
    series = _series_keys(rows)
    if not series:
        raise ValueError("no return_before / return_after metrics to plot")
    if title is None:
        title = f"MAML-TRPO on {env_id}" if env_id else "MAML-TRPO training curve"

    success = _curves(rows, [(k, label) for k, label in _SUCCESS_KEYS if any(k in r for r in rows)])
    fig = Figure(figsize=(11.0 if success else 7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1) if success else fig.add_subplot()
    if success:
        success_ax = fig.add_subplot(1, 2, 2)
        draw_curves(success_ax, success, (0.0, 1.0))
        success_ax.set_ylim(-0.02, 1.02)
        success_ax.set_xlabel("meta-iteration")
        success_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        success_ax.set_ylabel("success rate (episodes that succeed)")
        success_ax.grid(alpha=0.3)
        success_ax.legend(loc="lower right")
    curves = _curves(rows, series)
    notes = draw_curves(ax, curves) if curves else []
    if notes:
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=8, alpha=0.75)
    ax.set_xlabel("meta-iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean return per episode")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, out_png, dpi=120)


__all__ = ["plot_training_curve"]
