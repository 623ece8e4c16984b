"""Draw training and adaptation curves of one or more runs.

    metarl plot training RUN_DIR [RUN_DIR ...] [--out training.png]
    metarl plot adaptation RESULTS [RESULTS ...] [--out adaptation.png] [--by-group]

``training`` reads each run's ``metrics.csv`` and draws the mean return per episode
before (dashed) and after (solid) adaptation per meta-iteration. ``adaptation`` reads
results files written by ``metarl evaluate`` (a ``.json`` file, or a folder such
as ``<run>/eval`` holding ``adaptation_*.json``) and draws the mean return after
0..K gradient steps. Runs are grouped by method (the run's ``algorithm``, or the
results' label); several runs of one method (seeds) are averaged with a 95%
Student-t band over runs, different methods are overlaid with a legend. Give a run
its own legend name with ``NAME=PATH``. Results with success rates (an env that reports
``info["success"]``, such as Meta-World) get a second panel with them; ``--by-group`` draws
one results file's task groups instead (Meta-World: one line per held-out environment).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from metarl.cli.arguments import ArgumentParser
from metarl.evaluation.results import AdaptationResults
from metarl.plots.figures import family_name, plot_adaptation, plot_groups, plot_training_runs
from metarl.runs.folder import CONFIG_FILE
from metarl.runs.logs import read_metrics
from metarl.system.files import os_error_message
from metarl.tasks.build import registered_return_bounds
from metarl.tasks.registry import load_task_families


def _named(arg: str) -> tuple[str, Path]:
    """``NAME=PATH`` → ``(NAME, PATH)``; a plain path gets an empty name."""
    name, eq, path = arg.partition("=")
    if eq and name and not Path(arg).exists():
        return name, Path(path)
    return "", Path(arg)


def _run_config(run_dir: Path) -> dict:
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def plot_training(args: Sequence[str], out: Path, title: str | None) -> Path:
    """Training curves of the run folders ``args``.

    Args:
        args: The run folders.
        out: The figure's file.
        title: The figure's title (a default naming the env if ``None``).
    """
    runs, env_ids, bounds = [], set(), []
    for arg in args:
        name, run_dir = _named(arg)
        config = _run_config(run_dir)
        name = name or str(config.get("algorithm", "maml-trpo"))
        env_id = str(config.get("env_id", "unknown environment"))
        env_ids.add(env_id)
        horizon = config.get("horizon")
        bounds.append(registered_return_bounds(env_id, horizon) if isinstance(horizon, int) else (-np.inf, np.inf))
        runs.append((name, read_metrics(run_dir)))
    title = title or f"Training on {', '.join(sorted(map(family_name, env_ids)))}"
    tightest = (max(b[0] for b in bounds), min(b[1] for b in bounds))
    return plot_training_runs(runs, out, title, tightest)


def _results_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("adaptation_*.json"))
        if not files:
            raise FileNotFoundError(f"{path} holds no adaptation_*.json results")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    return [path]


def plot_adaptation_files(args: Sequence[str], out: Path, title: str | None, by_group: bool = False) -> Path:
    """Adaptation curves of the results files (or folders of them) ``args``.

    Args:
        args: Results files or folders of them.
        out: The figure's file.
        title: The figure's title (a default naming the env if ``None``).
        by_group: Draw one results file's task groups (a Meta-World evaluation's environments) instead.
    """
    results = []
    for arg in args:
        name, path = _named(arg)
        for file in _results_files(path):
            result = AdaptationResults.load(file)
            if name:
                result = AdaptationResults(**{**result.__dict__, "label": name})
            results.append(result)
    if by_group:
        if len(results) != 1:
            raise ValueError(f"--by-group draws the task groups of one results file, got {len(results)}")
        return plot_groups(results[0], out)
    _warn_if_settings_differ(results)
    return plot_adaptation(results, out, title)


COMPARED_SETTINGS = ("num_tasks", "seed", "episodes_per_step", "step_lrs", "horizon", "gamma")


def _warn_if_settings_differ(results: Sequence[AdaptationResults]) -> None:
    """Say on stderr when the curves were not measured alike (other tasks, horizon, ...)."""
    for key in COMPARED_SETTINGS:
        values = {
            str(r.settings.get(key)) for r in results if not (r.flat and key in ("step_lrs", "episodes_per_step"))
        }
        if len(values) > 1:
            print(f"warning: results were evaluated with different {key}: {', '.join(sorted(values))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = ArgumentParser(
        prog="metarl plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=("training", "adaptation"), help="which curves to draw")
    parser.add_argument("paths", nargs="+", help="run folders (training) or results files/folders (adaptation)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: training.png or adaptation.png)")
    parser.add_argument("--title", help="figure title (default names the task family)")
    parser.add_argument(
        "--by-group",
        action="store_true",
        help="adaptation: one line per task group of one results file (Meta-World: per environment)",
    )
    args = parser.parse_args(argv)
    load_task_families()  # the shipped families' return bounds bound the bands
    out = args.out or Path(f"{args.kind}.png")
    try:
        if args.kind == "training":
            path = plot_training(args.paths, out, args.title)
        else:
            path = plot_adaptation_files(args.paths, out, args.title, by_group=args.by_group)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_message(exc, option='--out')}", file=sys.stderr)
        return 2
    print(f"figure: {path}")
    return 0
