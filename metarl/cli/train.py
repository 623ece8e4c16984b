"""Train a meta-learner: ``metarl train --config 2d-navigation [--key value ...]``.

``--config`` takes a preset name (see ``--list-presets``) or a YAML file; any
``TrainConfig`` field can be overridden as ``--field value``. ``--resume RUN_DIR``
continues a stopped run from its latest checkpoint (only the fields listed under
"may change on resume" below, and env_kwargs' nthread, may be changed then).

A task environment of your own: name the module that registers it in the id,
``--env_id my_pkg.my_envs:MyEnv-v0``; the module is imported (from ``sys.path``, then
the current directory) before the env is made, and the id is saved with the run. Resuming
a run whose id names a module imports it if you trained the run here, else only with
``--trust-env-module MODULE`` (or the same ``--env_id`` given again): a run folder may come
from someone else.

Options may be spelled with hyphens or underscores (``--fast_lr``, ``--fast-lr``); ``--help``
lists every config field with its docstring and its value in the ``--config`` preset.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from metarl.cli.arguments import ArgumentParser, config_fields_help
from metarl.cli.plugins import load_agents
from metarl.config import ConfigError, TrainConfig, list_presets, load_config
from metarl.runs.checkpoint import CheckpointError
from metarl.runs.folder import RESUMABLE_ENV_KWARGS, RESUMABLE_FIELDS, RunFolderError, load_run_config
from metarl.runs.lock import RunFolderInUseError
from metarl.sampling.ray_cluster import SamplerError
from metarl.system.files import os_error_message
from metarl.tasks.protocol import EnvFaultError
from metarl.tasks.registry import TaskEnvError
from metarl.training.trainer import TrainingError, train


def _fields_help(argv: Sequence[str] | None) -> str:
    """The ``--help`` list of config fields, with the values of the ``--config`` preset if it loads."""
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config", default="2d-navigation")
    name = pre.parse_known_args(argv)[0].config
    resumable = (
        f"\n\nmay change on resume: {', '.join(sorted(RESUMABLE_FIELDS))}, and env_kwargs' "
        f"{', '.join(sorted(RESUMABLE_ENV_KWARGS))}; any other difference from the run's config is an error"
    )
    try:
        return config_fields_help(load_config(name), f"--config {name}") + resumable
    except ConfigError:
        return config_fields_help(TrainConfig(), "TrainConfig's defaults") + resumable


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    tokens = sys.argv[1:] if argv is None else argv
    wants_help = any(t in ("-h", "--help") for t in tokens)
    parser = ArgumentParser(
        prog="metarl train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_fields_help(tokens) if wants_help else None,  # the preset is read only for --help
    )
    parser.add_argument("--config", default="2d-navigation", help="preset name or YAML path (default: 2d-navigation)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--list-presets", action="store_true", help="print the preset names and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--trust-env-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="with --resume: import MODULE if the run's env id names it (a run folder's own "
        "config imports no module unless you vouch for it); repeatable",
    )
    args, overrides = parser.parse_known_args(argv)
    if args.list_presets:
        print("\n".join(list_presets()))
        return 0
    try:
        if args.resume is not None:
            cfg = load_run_config(args.resume, overrides, trust_env_modules=args.trust_env_module)
        else:
            cfg = load_config(args.config, overrides)
        agents = load_agents()
        run_dir = train(cfg, agents.build_learner, resume=args.resume is not None, progress=not args.no_progress)
    except (
        ConfigError,
        TaskEnvError,
        CheckpointError,
        FileExistsError,
        FileNotFoundError,
        RunFolderInUseError,
        RunFolderError,
        SamplerError,
        TrainingError,
        EnvFaultError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, a read-only file system, a full disk, a path through a file
        print(
            f"error: {os_error_message(exc, resume=' with --resume (the last checkpoint written is kept)')}",
            file=sys.stderr,
        )
        return 2
    print(f"run folder: {run_dir}")
    print(f"  metrics:    {run_dir / 'metrics.csv'}")
    print(f"  checkpoint: {run_dir / 'checkpoints'}")
    print(f"  plot:       {run_dir / 'training_curve.png'}")
    return 0
