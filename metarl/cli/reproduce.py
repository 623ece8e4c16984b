"""Reproduce rows of the MAML paper's Figure 5 from the shipped presets: ``metarl reproduce ROW``.

For each ROW (2d-navigation, halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir) and each
``--seeds`` seed (all rows' jobs share one queue, in the order given), trains the row's
preset unchanged but for its seed, folder and thread counts — resuming a folder that holds a
run, skipping one that finished — then evaluates the final checkpoint (no checkpoint
selection) on the 40 held-out tasks of evaluation seed 0 after 0..3 inner steps, as
results/README.md describes. Beside the seeds it trains and evaluates the pretrained
baseline (``--algorithm pretrained``, seed 1) and evaluates a random initialisation. A seed
whose folder another training holds waits for it to end, then resumes it. ``--parallel``
jobs run side by side with ``--threads`` torch and MuJoCo threads each (default: two at one
thread each on a 2-core machine), or each as a Ray task with ``--ray-address`` (the workers
see this checkout and ``--out-dir`` at the same paths). Writes ``<out-
dir>/<row>/reproduction.json`` (each seed, the mean over seeds with a 95 % Student-t
interval over seeds, the baselines, the paper's checks), an adaptation and a training
figure, and prints the table. Logs: ``<out-dir>/<row>/logs/``.

``--out-dir results`` updates the committed reproduction; ``scripts/results_pages.py`` then
regenerates the results pages from it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from metarl.cli.arguments import ArgumentParser
from metarl.config import ConfigError
from metarl.evaluation.results import AdaptationResults
from metarl.plots.figures import plot_adaptation, plot_training_runs
from metarl.reproduction import ROWS, PaperRow, row_named
from metarl.reproduction.layout import (
    ADAPTATION_FIGURE,
    TRAINING_FIGURE,
    pretrained_dir,
    random_results,
    results_file,
    row_dir,
    seed_dir,
)
from metarl.reproduction.runner import plan, run_local, run_on_ray
from metarl.reproduction.summary import RowSummary, summarise, write_summary
from metarl.runs.logs import read_metrics


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = ArgumentParser(
        prog="metarl reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("rows", nargs="+", metavar="ROW", help=f"rows to reproduce: {', '.join(r.name for r in ROWS)}")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the row's reported seeds)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/reproduce"), help="root folder (default runs/reproduce)")
    p.add_argument(
        "--parallel", type=int, default=None, help="jobs side by side on this machine (default: cores / threads)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch and MuJoCo threads per job (default 1)")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="run each seed as a task on this Ray cluster ('auto' to find it; the ray extra)",
    )
    p.add_argument("--no-baselines", action="store_true", help="only the preset's seeds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _fmt(mean: float, half: float | None = None) -> str:
    if half is None or not math.isfinite(half):
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {half:.1f}"


def report(summary: RowSummary, row: PaperRow) -> str:
    """The row's table as text: each seed, the mean over seeds, the baselines, the paper, the checks."""
    lines = [f"{row.title} ({row.preset} preset): mean return after 0 / 1 / 2 / 3 inner steps"]
    for s in summary.seeds:
        if s.evaluation is None:
            lines.append(f"  seed {s.seed}: {s.training.iterations} of {s.training.target} iterations, not evaluated")
            continue
        note = "" if s.reportable else "  (not the finished preset)"
        lines.append(f"  seed {s.seed}: " + " / ".join(f"{v:.1f}" for v in s.evaluation.mean) + note)
    if summary.aggregate_mean is not None and summary.aggregate_half_width is not None:
        lines.append(
            "  mean over seeds: "
            + " / ".join(_fmt(m, h) for m, h in zip(summary.aggregate_mean, summary.aggregate_half_width, strict=True))
        )
    for name, ev in (("pretrained", summary.pretrained), ("random", summary.random)):
        if ev is not None:
            lines.append(f"  {name}: " + " / ".join(f"{v:.1f}" for v in ev.mean))
    lines.append("  paper (1 / 2 / 3 steps): " + " / ".join(f"{v:g}" for v in row.paper))
    lines += [f"  {name.replace('_', ' ')}: {'yes' if ok else 'NO'}" for name, ok in summary.checks.items()]
    if summary.missing:
        lines.append(f"  seeds not started: {', '.join(map(str, summary.missing))}")
    return "\n".join(lines)


def draw_figures(root: Path, row: PaperRow, seeds: Sequence[int]) -> list[Path]:
    """The row's adaptation figure (seeds averaged, baselines) and training figure (seeds averaged).

    Args:
        root: The reproduction's root folder.
        row: The paper's row.
        seeds: The seeds whose runs are averaged.
    """
    results = [
        AdaptationResults.load(p)
        for p in [
            *(results_file(seed_dir(root, row, s), "maml-trpo") for s in seeds),
            results_file(pretrained_dir(root, row), "pretrained"),
            random_results(root, row),
        ]
        if p.is_file()
    ]
    written = []
    if results:
        written.append(
            plot_adaptation(
                results, row_dir(root, row) / ADAPTATION_FIGURE, f"{row.title}: {row.preset} preset, {len(seeds)} seeds"
            )
        )
    runs = [
        ("maml-trpo", read_metrics(seed_dir(root, row, s)))
        for s in seeds
        if (seed_dir(root, row, s) / "metrics.csv").is_file()
    ]
    if runs:
        written.append(
            plot_training_runs(
                runs, row_dir(root, row) / TRAINING_FIGURE, f"{row.title}: {row.preset} preset, training"
            )
        )
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        rows = [row_named(name) for name in args.rows]
        if args.threads < 1 or (args.parallel is not None and args.parallel < 1):
            raise ValueError("--threads and --parallel must be at least 1")
        parallel = args.parallel or max(1, (os.cpu_count() or 1) // args.threads)
        jobs = [
            job
            for row in rows
            for job in plan(
                args.out_dir, row, args.seeds or list(row.seeds), threads=args.threads, baselines=not args.no_baselines
            )
        ]
        if args.ray_address is not None:
            jobs = run_on_ray(jobs, args.ray_address, args.threads, not args.no_progress)
        else:
            jobs = run_local(jobs, parallel, not args.no_progress)
        failed = [f"{job.name}: {job.last_line} (log: {job.log})" for job in jobs if job.returncode]
        for row in rows:
            seeds = args.seeds or list(row.seeds)
            path = write_summary(args.out_dir, row)
            figures = draw_figures(args.out_dir, row, seeds)
            print(report(summarise(args.out_dir, row), row))
            print(f"summary: {path}" + "".join(f"\nfigure:  {f}" for f in figures))
    except (ValueError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0
