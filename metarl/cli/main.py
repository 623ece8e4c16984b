"""The ``metarl`` command: ``metarl train | evaluate | plot | check-env | reproduce [options]``.

Each subcommand has its own ``--help``. ``python -m metarl`` is the same command, and
``scripts/train.py``, ``scripts/evaluate.py``, ``scripts/plot.py`` and ``scripts/reproduce.py``
run the subcommands of their names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from metarl.cli import check_env, evaluate, plot, reproduce, train
from metarl.system.memory import restart_with_tuned_malloc

COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "train": (train.main, "train a meta-learner from a preset or YAML config, or resume a run folder"),
    "evaluate": (evaluate.main, "adaptation curves of a run on held-out tasks (and videos)"),
    "plot": (plot.main, "training or adaptation curves of runs and seeds"),
    "check-env": (check_env.main, "check a task environment against metarl's protocol and Gymnasium's"),
    "reproduce": (reproduce.main, "reproduce rows of the MAML paper's Figure 5 from the shipped presets"),
}
"""Each subcommand's entry point and one line about it."""
TUNED_MALLOC = ("train", "evaluate", "reproduce")
"""Subcommands whose large tensors want glibc malloc to keep freed memory (metarl.system.memory)."""


def usage() -> str:
    """The command's help text."""
    lines = [__doc__.strip().splitlines()[0], "", "commands:"]
    lines += [f"  {name:<10}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "metarl COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metarl COMMAND [options]``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; the commands are {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if argv is None and name in TUNED_MALLOC:
        restart_with_tuned_malloc()  # re-executes this command once with the tuned settings
    return COMMANDS[name][0](rest)


__all__ = ["COMMANDS", "main", "usage"]
