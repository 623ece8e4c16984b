"""Check a task environment: ``metarl check-env ID [--env-kwargs YAML] [--horizon H]``.

``check-env`` checks a task environment (yours or a shipped one) the way training will use
it and prints each check as it passes (:mod:`metarl.tasks.env_check`). An id naming its module,
``my_pkg.my_envs:MyEnv-v0``, imports that module: you named it, so you vouch for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metarl.cli.arguments import ArgumentParser
from metarl.config import ConfigError, load_yaml
from metarl.tasks.env_check import check_env
from metarl.tasks.registry import TaskEnvError, load_task_families


def _mapping(text: str) -> dict:
    try:
        value = load_yaml(text)
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"not a YAML mapping: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{goal_scale: 2}}', got {text!r}")
    return value


def parser() -> ArgumentParser:
    """The command-line interface."""
    p = ArgumentParser(
        prog="metarl check-env", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("env_id", help="task-env id, or 'module:Id' naming the module that registers it")
    p.add_argument(
        "--env-kwargs",
        type=_mapping,
        default={},
        metavar="YAML",
        help="constructor keyword arguments, as a config's env_kwargs (e.g. '{goal_scale: 2}')",
    )
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="episode length for the batched check (default: the id's max_episode_steps)",
    )
    p.add_argument("--num-envs", type=int, default=4, help="sub-environments of the batched check (default 4)")
    p.add_argument("--steps", type=int, default=20, help="random-action steps of the batched check (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        load_task_families()  # the shipped families, and those of any installed package that declares some
        report = check_env(
            args.env_id,
            args.env_kwargs,
            num_envs=args.num_envs,
            steps=args.steps,
            horizon=args.horizon,
            on_pass=lambda line: print(f"ok    {line}", flush=True),
        )
    except (TaskEnvError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.warnings:
        print(f"note  Gymnasium's check_env warned: {line}")
    print(f"passed: {report.env_id} is a task environment metarl can train on ({len(report.passed)} checks)")
    return 0
