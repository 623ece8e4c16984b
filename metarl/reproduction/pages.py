"""The results pages' generated blocks: every number in them comes from the run folders.

A page marks each generated block with a pair of comments::

    <!-- generated: NAME (scripts/results_pages.py) -->
    ...
    <!-- end generated: NAME -->

:func:`render_blocks` computes every block from the reproduction's files
(:func:`metarl.reproduction.summary.summarise`), :func:`update_page` replaces a page's
blocks with them, and :func:`stale_blocks` names the blocks a committed page has let
drift (a test fails on any). Text outside the blocks is prose and carries no run's numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from metarl.config import load_config
from metarl.evaluation.results import AdaptationResults
from metarl.evaluation.statistics import t_interval
from metarl.reproduction.group_curves import WINDOW, GroupCurve, row_group_curves
from metarl.reproduction.layout import (
    ADAPTATION_FIGURE,
    TRAINING_FIGURE,
    differences_from_preset,
    preset_config,
    row_dir,
)
from metarl.reproduction.rows import EVAL_SEED, NUM_TASKS, ROWS, PaperRow
from metarl.reproduction.summary import (
    Evaluation,
    RowSummary,
    Training,
    episodes_per_step,
    read_evaluation,
    read_training,
    summarise,
)
from metarl.runs.folder import CONFIG_FILE
from metarl.runs.logs import read_metrics

COMPARISONS = "comparisons"
"""A row's folder of runs with other settings (``<row>/comparisons/<name>/``, each a run folder with ``eval/``)."""

_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w:./-]+) \(scripts/results_pages\.py\) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end generated: (?P=name) -->)",
    re.S,
)


def _num(value: float, digits: int = 1) -> str:
    text = f"{abs(value):.{digits}f}"
    return "−" + text if value < 0 and float(text) != 0 else text


def _pm(mean: float, half: float | None, digits: int = 1) -> str:
    if half is None or not math.isfinite(half):
        return _num(mean, digits)
    return f"{_num(mean, digits)} ± {half:.{digits}f}"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.1f} days"


def _steps(value: int) -> str:
    return f"{value / 1e6:.0f} M" if value >= 1e7 else f"{value / 1e6:.1f} M"


def _cpus(training: Training) -> str:
    return ", ".join(training.cpus) if training.cpus else "not recorded"


def _evaluation_cells(ev: Evaluation | None, steps: int = 4) -> list[str]:
    if ev is None:
        return [""] * steps
    if len(ev.mean) == 1:  # a flat method
        return [_pm(ev.mean[0], ev.half_width[0])] + [""] * (steps - 1)
    return [_pm(m, h) for m, h in zip(ev.mean, ev.half_width, strict=True)]


def _training_cells(t: Training) -> list[str]:
    return [f"{t.iterations}", _steps(t.env_steps), _duration(t.seconds), f"{t.median_seconds:.1f} s", _cpus(t)]


def _chosen(ev: Evaluation) -> str:
    """``inner step 0.01, chosen on validation tasks`` (or the steps used, if none was chosen)."""
    steps = "/".join(f"{lr:g}" for lr in dict.fromkeys(ev.step_lrs)) or "none"
    return f"inner step {steps}" + (", chosen on validation tasks" if ev.lr_chosen else "")


def _paper(row: PaperRow) -> str:
    return " / ".join(_num(v) for v in row.paper)


def _progress(summary: RowSummary) -> str:
    parts = [
        f"seed {s.seed}: {'in training' if not s.training.finished else 'not evaluated'}"
        for s in summary.seeds
        if not s.reportable
    ]
    parts += [f"seed {seed}: not started" for seed in summary.missing]
    return "; ".join(parts)


def summary_block(summaries: Sequence[tuple[PaperRow, RowSummary]]) -> str:
    """The results page's summary: each row's paper numbers and the preset's mean over seeds."""
    lines = [
        "| task | paper: 1 / 2 / 3 steps | metarl, the preset: 1 / 2 / 3 steps | seeds after 1 step | "
        "pretrained, 1 step | at least the paper? | every seed within 25 %? |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, s in summaries:
        link = f"[{row.title}](#{_anchor(row.title)})"
        if not s.complete or s.aggregate_mean is None or s.aggregate_half_width is None:
            lines.append(f"| {link} | {_paper(row)} | not yet reproduced ({_progress(s)}) | | | | |")
            continue
        metarl = " / ".join(_pm(m, h) for m, h in zip(s.aggregate_mean[1:], s.aggregate_half_width[1:], strict=True))
        seeds = ", ".join(_num(x.evaluation.mean[1]) for x in s.seeds if x.evaluation is not None)
        pretrained = _num(s.pretrained.mean[1]) if s.pretrained is not None else "—"
        lines.append(
            f"| {link} | {_paper(row)} | **{metarl}** ({len(s.seeds)} seeds) | {seeds} | {pretrained} | "
            f"{_yes(s.checks.get('mean_at_least_paper'))} | {_yes(s.checks.get('every_seed_within_25_percent'))} |"
        )
    return "\n".join(lines) + "\n"


def _yes(value: bool | None) -> str:
    return "—" if value is None else "yes" if value else "**no**"


def _anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def row_block(root: Path, row: PaperRow, s: RowSummary, page_dir: Path) -> str:
    """A row's section: each seed, the mean over seeds, the baselines, cost, the checks, figures, comparisons.

    Args:
        root: The reproduction's root folder.
        row: The paper's row.
        s: The row's summary.
        page_dir: The page's folder (links are relative to it).
    """
    preset = preset_config(row)
    folder = row_dir(root, row)
    rel = _relative(folder, page_dir)
    lines = [
        f"The `{row.preset}` preset as shipped, {preset.num_iterations} meta-iterations, its final checkpoint "
        f"evaluated on {NUM_TASKS} held-out tasks (evaluation seed {EVAL_SEED}), {episodes_per_step(row)} "
        f"episodes per step{' as a step budget' if row.step_budget else ''}, inner steps of {preset.fast_lr:g} "
        f"then {preset.fast_lr / 2:g} (the preset's `fast_lr`, then half of it). ± is a 95 % Student-t half-width "
        "over the tasks for one run, over the seeds for their mean.",
        "",
        "| run | 0 steps | 1 step | 2 steps | 3 steps | iterations | env steps | training time | "
        "median per iteration | CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in s.seeds:
        if not result.training.finished:  # a training in progress: its files change with every iteration
            lines.append(f"| seed {result.seed} | in training | | | | | | | | |")
            continue
        cells = _evaluation_cells(result.evaluation if result.reportable else None)
        if result.training.differences:
            cells[0] = "not the preset: " + "; ".join(
                f"{k} {_value(b)}" for k, (_, b) in result.training.differences.items()
            )
        lines.append(f"| seed {result.seed} | " + " | ".join(cells + _training_cells(result.training)) + " |")
    for seed in s.missing:
        lines.append(f"| seed {seed} | not started | | | | | | | | |")
    if s.aggregate_mean is not None and s.aggregate_half_width is not None:
        done = sum(1 for x in s.seeds if x.reportable)
        cells = [_pm(m, h) for m, h in zip(s.aggregate_mean, s.aggregate_half_width, strict=True)]
        label = f"mean over {done} seed" + ("s" if done != 1 else "")
        bold_cells = " | ".join(f"**{c}**" for c in cells)
        lines.append(f"| **{label}** | {bold_cells} | | | | | |")
    if s.pretrained is not None and s.pretrained_training is not None:
        lines.append(
            f"| pretrained (TRPO on all tasks, seed 1; {_chosen(s.pretrained)}) | "
            + " | ".join(_evaluation_cells(s.pretrained) + _training_cells(s.pretrained_training))
            + " |"
        )
    if s.random is not None:
        lines.append(
            f"| random initialisation ({_chosen(s.random)}) | "
            + " | ".join(_evaluation_cells(s.random))
            + " | | | | | |"
        )
    lines.append("| paper (Finn et al. 2017, Fig. 5) | | " + " | ".join(_num(v) for v in row.paper) + " | | | | | |")
    lines.append("")
    if s.complete and s.aggregate_mean is not None:
        bound = row.one_step_bound()
        lines.append(
            f"After one step: the mean over seeds is {_num(s.aggregate_mean[1])} against the paper's "
            f"{_num(row.paper[0])} (at least the paper's: {_yes(s.checks.get('mean_at_least_paper'))}); every seed "
            f"at {_num(bound)} or better (within 25 %): {_yes(s.checks.get('every_seed_within_25_percent'))}; "
            f"above the pretrained baseline: {_yes(s.checks.get('above_pretrained'))}."
        )
    else:
        lines.append(f"Not yet reproduced by the preset: {_progress(s)}.")
    lines.append("")
    lines += _group_lines(s)
    figures = [name for name in (ADAPTATION_FIGURE, TRAINING_FIGURE) if (folder / name).is_file()]
    if figures:
        lines += [" ".join(f"![{row.title}: {name[:-4]}]({rel}/{name})" for name in figures), ""]
    lines += [
        "```bash",
        f".venv/bin/metarl reproduce {row.name} --out-dir results   # "
        f"seeds {' '.join(map(str, row.seeds))}, the baselines, the summary",
        "```",
    ]
    comparisons = comparison_block(root, row, page_dir)
    if comparisons:
        lines += ["", comparisons.rstrip("\n")]
    by_group = group_training_block(row_group_curves(root, row))
    if by_group:
        lines += ["", by_group.rstrip("\n")]
    return "\n".join(lines) + "\n"


def group_training_block(curves: Sequence[GroupCurve]) -> str:
    """The runs' training-task returns per task group, before → after adaptation, side by side.

    One line per window of :data:`WINDOW` iterations, one column per run; each cell gives the
    groups' mean returns in the groups' order, before and after adaptation. Empty when no run
    logged task groups.

    Args:
        curves: The runs' :class:`GroupCurve` (see :func:`metarl.reproduction.group_curves.row_group_curves`).
    """
    if not curves:
        return ""
    starts = sorted({start for c in curves for start in c.after})
    order = " / ".join(curves[0].groups)
    lines = [
        f"Training, per task group ({order}): each run's mean return on its training tasks before → after "
        f"adaptation, over the {WINDOW} iterations from the line's; from the runs' metrics.csv.",
        "",
        "| iterations | " + " | ".join(f"`{c.folder}`" for c in curves) + " |",
        "|---|" + "---|" * len(curves),
    ]
    for start in starts:
        cells = []
        for c in curves:
            if start in c.after:
                before = "/".join(_num(c.before[start][g], 0) for g in c.groups)
                after = "/".join(_num(c.after[start][g], 0) for g in c.groups)
                cells.append(f"{before} → {after}")
            else:
                cells.append("")
        lines.append(f"| {start}–{start + WINDOW - 1} | " + " | ".join(cells) + " |")
    lines.append("")
    for c in curves:
        described = "; ".join(f"{k} {_value(b)} (preset {_value(a)})" for k, (a, b) in c.differences.items())
        lines.append(f"- `{c.folder}`: seed {c.seed}; {described or 'the preset'}.")
    return "\n".join(lines) + "\n"


def _after_one_step_by_group(ev: Evaluation) -> str:
    """``ev``'s mean return after one step on each task group, with its interval, e.g. ``backward 1.0 ± 0.1``."""
    return ", ".join(f"{name} {_pm(m[1], h[1])}" for name, (m, h) in sorted(ev.by_group.items()))


def _group_lines(s: RowSummary) -> list[str]:
    """Each reported seed's (and the pretrained baseline's) mean per task group after one step.

    A direction family's seed that adapts one way only shows here, where the mean over both hides it.
    """
    evaluated = [(f"seed {x.seed}", x.evaluation) for x in s.seeds if x.reportable and x.evaluation is not None]
    if s.pretrained is not None:
        evaluated.append(("pretrained", s.pretrained))
    parts = []
    for label, ev in evaluated:
        if ev.by_group and len(ev.mean) > 1:
            parts.append(f"{label}: {_after_one_step_by_group(ev)}")
    return ["After one step, per task group: " + "; ".join(parts) + ".", ""] if parts else []


def comparison_block(root: Path, row: PaperRow, page_dir: Path) -> str:
    """Runs of the row with other settings (``<row>/comparisons/*``), grouped by how they differ from the preset.

    A group of several seeds shows the mean over seeds with its 95 % interval over seeds, and each seed's
    return after one step; under the table, each run's return after one step per task group.

    Args:
        root: The reproduction's root folder.
        row: The paper's row.
        page_dir: The page's folder (links are relative to it).
    """
    folder = row_dir(root, row) / COMPARISONS
    runs = sorted(p for p in folder.glob("*") if (p / CONFIG_FILE).is_file()) if folder.is_dir() else []
    if not runs:
        return ""
    preset = preset_config(row)
    groups: dict[tuple[str, int | None], list[tuple[int, str, Evaluation]]] = {}
    for run in runs:
        cfg = load_config(run / CONFIG_FILE)
        diff = differences_from_preset(cfg, preset)
        described = "; ".join(f"{k} {_value(b)} (preset {_value(a)})" for k, (a, b) in diff.items()) or "nothing"
        files = sorted((run / "eval").glob("adaptation_*.json")) if (run / "eval").is_dir() else []
        ev = read_evaluation(files[-1], row, episodes_per_step(row)) if files else None
        if ev is not None:
            groups.setdefault((described, ev.checkpoint_iteration), []).append((cfg.seed, run.name, ev))
    if not groups:  # none evaluated yet (a comparison in training)
        return ""
    lines = [
        f"Runs with other settings (folder `{_relative(folder, page_dir)}/`), on the same held-out tasks; "
        "several seeds: their mean and its interval over seeds:",
        "",
        "| differs from the preset in | seeds | seeds after 1 step | iterations "
        "| 0 steps | 1 step | 2 steps | 3 steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_group: list[str] = []
    for (described, iterations), members in groups.items():
        if len(members) == 1:
            cells = _evaluation_cells(members[0][2])
        else:
            mean, half = t_interval(np.array([ev.mean for _, _, ev in members]))
            cells = [_pm(float(m), float(h)) for m, h in zip(mean, half, strict=True)]
        protocol = "" if all(ev.protocol_ok for _, _, ev in members) else " (another evaluation protocol)"
        seeds = ", ".join(str(seed) for seed, _, _ in members)
        after_one = ", ".join(_num(ev.mean[1]) if len(ev.mean) > 1 else "" for _, _, ev in members)
        lines.append(
            f"| {described}{protocol} | {seeds} | {after_one} | {iterations if iterations is not None else ''} | "
            + " | ".join(cells)
            + " |"
        )
        for _, name, ev in members:
            if ev.by_group and len(ev.mean) > 1:
                by_group.append(f"`{name}`: {_after_one_step_by_group(ev)}")
    if by_group:
        lines += ["", "After one step, per task group: " + "; ".join(by_group) + "."]
    return "\n".join(lines) + "\n"


def _value(value: object) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value}"


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def readme_block(summaries: Sequence[tuple[PaperRow, RowSummary]]) -> str:
    """The README's reproduction table: the paper's one-step number and the preset's mean over seeds."""
    lines = ["| task | paper, 1 step | metarl, the preset, 1 step |", "|---|---|---|"]
    for row, s in summaries:
        if s.complete and s.aggregate_mean is not None and s.aggregate_half_width is not None:
            seeds = ", ".join(_num(x.evaluation.mean[1]) for x in s.seeds if x.evaluation is not None)
            value = (
                f"{_pm(s.aggregate_mean[1], s.aggregate_half_width[1])} (`{row.preset}`, {len(s.seeds)} seeds: {seeds})"
            )
        else:
            value = f"not yet reproduced by `{row.preset}` ({_progress(s)})"
        lines.append(f"| {row.title} | {_num(row.paper[0])} | {value} |")
    return "\n".join(lines) + "\n"


def render_blocks(root: Path, page_dir: Path, rows: Sequence[PaperRow] = ROWS) -> dict[str, str]:
    """Every generated block, by name: ``summary``, ``readme``, and ``row:<name>`` for each row.

    Args:
        root: The reproduction's root folder.
        page_dir: The page's folder (links are relative to it).
        rows: The paper's rows.
    """
    summaries = [(row, summarise(root, row)) for row in rows]
    blocks = {"summary": summary_block(summaries), "readme": readme_block(summaries)}
    for row, s in summaries:
        blocks[f"row:{row.name}"] = row_block(root, row, s, page_dir)
    return blocks


_METHOD_ORDER = ("maml-trpo", "pretrained", "random", "oracle")


def adaptation_block(folder: Path, shown_as: str) -> str:
    """A table of the adaptation results files (``adaptation_*.json``) in ``folder``, one row each.

    Args:
        folder: The folder of the results files.
        shown_as: How the page names the folder (in the caption).
    """
    files = sorted(folder.glob("adaptation_*.json"))
    if not files:
        raise ValueError(f"no adaptation results files (adaptation_*.json) in {folder}")
    results = [AdaptationResults.load(f) for f in files]
    rank = {m: i for i, m in enumerate(_METHOD_ORDER)}
    results.sort(key=lambda r: (rank.get(r.method, len(rank)), r.name))
    steps = max(len(r.steps) for r in results)
    level = round(100 * results[0].confidence)
    digits = 2 if max(float(np.abs(r.mean()).max()) for r in results) < 20 else 1
    head = " | ".join("1 step" if k == 1 else f"{k} steps" for k in range(steps))
    lines = [f"| mean return per episode (± {level} % half-width over tasks) | {head} |", "|---" * (steps + 1) + "|"]
    for r in results:
        cells = [_pm(m, h, digits) for m, h in zip(r.mean(), r.ci_halfwidth(), strict=True)]
        lines.append(f"| {r.name} | {' | '.join(cells + [''] * (steps - len(cells)))} |")
    references: dict[str, str] = {}
    for r in results:
        for name, values in r.references.items():
            mean, half = t_interval(values, r.confidence)
            references.setdefault(name, _pm(float(mean), float(half), digits))
    for name, cell in references.items():
        lines.append(f"| *{name}* | *{cell}* |{' |' * (steps - 1)}")
    first = results[0].settings
    iterations = {r.settings.get("training_iterations") for r in results}
    trained = sorted(str(i) for i in iterations if i is not None)
    lines += [
        "",
        ("References in italics do not adapt by gradient steps. " if references else "")
        + f"{results[0].env_id}, {first.get('num_tasks')} held-out tasks (evaluation seed {first.get('seed')}), "
        f"{first.get('episodes_per_step')} episodes per step; trained for {' / '.join(trained)} meta-iterations; "
        f"the results files are in `{shown_as}`.",
    ]
    return "\n".join(lines) + "\n"


def training_cost_block(folder: Path, shown_as: str) -> str:
    """What a meta-iteration of a preset costs, from short runs: one run folder per preset, named after it.

    Each run is its preset unchanged but for ``num_iterations`` (and how it ran: threads,
    folder); the table gives its env steps and its median wall-clock seconds per meta-iteration
    (sampling and meta-update), and what the preset's own ``num_iterations`` take at that pace.

    Args:
        folder: The folder holding ``<preset>/config.yaml`` and ``<preset>/metrics.csv``.
        shown_as: How the page names the folder.
    """
    lines = [
        f"Short runs in `{shown_as}/`, each its preset unchanged but for `num_iterations` "
        "(median over the iterations run):",
        "",
        "| preset | tasks × episodes × horizon | iterations run | env steps per iteration | "
        "seconds per iteration (sampling + meta-update) | the preset's iterations at this pace | torch threads | CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in sorted(p for p in folder.iterdir() if (p / CONFIG_FILE).is_file()):
        preset = load_config(run.name)
        cfg = load_config(run / CONFIG_FILE)
        training = read_training(run, preset)
        other = sorted(k for k in training.differences if k != "num_iterations")
        if other:
            raise ValueError(f"{run}: not the preset {run.name!r} but for num_iterations: it differs in {other}")
        rows = read_metrics(run)
        sample = float(np.median([r["sample_seconds"] for r in rows]))
        update = float(np.median([r["update_seconds"] for r in rows]))
        steps = float(np.median([r["env_steps"] for r in rows]))
        lines.append(
            f"| `{run.name}` | {cfg.meta_batch_size} × {cfg.episodes_per_task} × {cfg.horizon} | "
            f"{training.iterations} | {steps:,.0f} | {training.median_seconds:.0f} ({sample:.0f} + {update:.0f}) | "
            f"{preset.num_iterations} × {training.median_seconds:.0f} s = "
            f"{_duration(preset.num_iterations * training.median_seconds)} | {cfg.num_threads} | {_cpus(training)} |"
        )
    return "\n".join(lines) + "\n"


def update_page(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with each generated block it marks replaced by ``blocks[name]`` (unknown names are an error)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            raise ValueError(f"the page marks a generated block {name!r} that nothing generates")
        return match.group(1) + blocks[name] + match.group(4)

    return _BLOCK.sub(replace, text)


def stale_blocks(text: str, blocks: Mapping[str, str]) -> list[str]:
    """Names of the generated blocks in ``text`` whose content differs from ``blocks``."""
    return [m.group("name") for m in _BLOCK.finditer(text) if blocks.get(m.group("name")) != m.group("body")]


def block_names(text: str) -> list[str]:
    """The generated blocks ``text`` marks, in order."""
    return [m.group("name") for m in _BLOCK.finditer(text)]


__all__ = [
    "COMPARISONS",
    "adaptation_block",
    "block_names",
    "comparison_block",
    "group_training_block",
    "readme_block",
    "render_blocks",
    "row_block",
    "stale_blocks",
    "summary_block",
    "update_page",
]
