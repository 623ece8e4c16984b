"""A row's training per task group: each run's returns on its training tasks, direction by direction.

A seed that adapts one way only is made during training: its pre-update policy settles into
one direction while one inner step cannot yet reach the other. The training metrics per task
group (``return_before@<group>``, ``return_after@<group>`` in metrics.csv) show when; this
module reads them for the row's seeds and its comparisons, averaged over fixed windows of
iterations, so that a page can set the runs side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metarl.config import load_config
from metarl.reproduction.layout import differences_from_preset, preset_config, row_dir
from metarl.reproduction.rows import PaperRow
from metarl.runs.folder import CONFIG_FILE, METRICS_FILE
from metarl.runs.logs import GROUP_MARK, metric_groups, read_metrics

WINDOW = 10
"""Iterations averaged into one figure: ``[start, start + WINDOW)``."""
SPACING = 20
"""The windows start every ``SPACING`` iterations (0, 20, 40, ...)."""


@dataclass(frozen=True)
class GroupCurve:
    """One run's training-task returns per task group, over windows of iterations.

    Args:
        folder: The run folder, relative to the row's folder.
        seed: The run's seed.
        differences: How its settings differ from the preset, ``{field: (preset's, run's)}``.
        groups: The task groups, sorted.
        before: ``{window start: {group: mean return before adaptation}}``, complete windows only.
        after: The same after adaptation.
    """

    folder: str
    seed: int
    differences: dict[str, tuple[object, object]]
    groups: tuple[str, ...]
    before: dict[int, dict[str, float]]
    after: dict[int, dict[str, float]]


def run_group_curve(run_dir: Path, row: PaperRow, label: str) -> GroupCurve | None:
    """``run_dir``'s :class:`GroupCurve`, or ``None`` if its metrics have no task groups.

    A window counts only when all its iterations are logged with group metrics, so the
    figures of a run in training change only when it completes a window.

    Args:
        run_dir: A run folder of the row.
        row: The paper's row.
        label: How the run is named (its folder relative to the row's).
    """
    if not (run_dir / METRICS_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        return None
    rows = read_metrics(run_dir)
    groups = tuple(metric_groups(k for r in rows for k in r))
    if len(groups) < 2:
        return None
    by_iteration = {int(r["iteration"]): r for r in rows if all(f"return_after{GROUP_MARK}{g}" in r for g in groups)}
    before: dict[int, dict[str, float]] = {}
    after: dict[int, dict[str, float]] = {}
    last = max(by_iteration, default=-1)
    for start in range(0, last + 1, SPACING):
        window = [by_iteration.get(i) for i in range(start, start + WINDOW)]
        if any(r is None for r in window):
            continue
        full = [r for r in window if r is not None]
        for stage, out in (("before", before), ("after", after)):
            out[start] = {g: sum(float(r[f"return_{stage}{GROUP_MARK}{g}"]) for r in full) / WINDOW for g in groups}
    if not after:
        return None
    cfg = load_config(run_dir / CONFIG_FILE)
    diff = differences_from_preset(cfg, preset_config(row))
    return GroupCurve(label, cfg.seed, diff, groups, before, after)


def row_group_curves(root: Path, row: PaperRow) -> list[GroupCurve]:
    """The :class:`GroupCurve` of every run of ``row`` under ``root`` that logged task groups.

    The preset's seeds (``seed<N>/``) first, then the comparisons (``comparisons/<name>/``), each by name.

    Args:
        root: The reproduction's root folder.
        row: The paper's row.
    """
    folder = row_dir(root, row)
    if not folder.is_dir():
        return []
    seeds = sorted(p for p in folder.glob("seed*") if p.is_dir())
    comparisons = sorted(p for p in (folder / "comparisons").glob("*") if p.is_dir())
    curves = [run_group_curve(p, row, p.relative_to(folder).as_posix()) for p in seeds + comparisons]
    return [c for c in curves if c is not None]


__all__ = ["SPACING", "WINDOW", "GroupCurve", "row_group_curves", "run_group_curve"]
