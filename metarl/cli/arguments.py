"""The scripts' command-line conventions, in one place.

Every long option is accepted spelled with hyphens or with underscores (``--num-tasks`` and
``--num_tasks``, ``--fast_lr`` and ``--fast-lr``): :class:`ArgumentParser` rewrites the
other spelling to the declared one before argparse sees it. :func:`config_fields_help`
writes the ``--help`` section that lists every :class:`~metarl.config.TrainConfig` field
with its type, its value and its docstring.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
import typing
from collections.abc import Sequence
from typing import Any

from metarl.config import TrainConfig, field_docs


def _other_spelling(option: str) -> tuple[str, str]:
    """``--a-b`` and ``--a_b`` of a long option (the leading ``--`` kept)."""
    body = option[2:]
    return "--" + body.replace("_", "-"), "--" + body.replace("-", "_")


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` that accepts each long option with ``-`` or ``_``.

    Unknown options pass through unchanged (``parse_known_args`` returns them), so a
    caller that reads config overrides from the rest still sees them as typed.
    """

    def canonical_args(self, args: Sequence[str]) -> list[str]:
        """``args`` with every long option spelled as it was declared."""
        declared = {s for action in self._actions for s in action.option_strings if s.startswith("--")}
        out: list[str] = []
        for i, token in enumerate(args):
            if token == "--":
                return out + list(args[i:])
            key, eq, value = token.partition("=")
            if key.startswith("--") and len(key) > 2 and key not in declared:
                key = next((s for s in _other_spelling(key) if s in declared), key)
            out.append(key + eq + value)
        return out

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, after :meth:`canonical_args`."""
        return super().parse_known_args(self.canonical_args(sys.argv[1:] if args is None else args), namespace)


def _type_label(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return "INTS"
    return {str: "TEXT", int: "INT", float: "FLOAT", bool: "BOOL"}.get(tp, "YAML")


def config_fields_help(cfg: TrainConfig, source: str, width: int = 92) -> str:
    """Help text listing every config field: ``--name TYPE (source: value)`` and its docstring.

    Args:
        cfg: The config whose values are shown (``TrainConfig()`` for the defaults, or a preset's).
        source: What the values are, e.g. ``"default"`` or ``"preset 2d-navigation"``.
        width: Line width the docstrings are wrapped to.
    """
    hints = typing.get_type_hints(TrainConfig)
    docs = field_docs()
    lines = [f"config fields (--name value, or --name=value; values shown: {source}):"]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        shown = list(value) if isinstance(value, tuple) else value
        lines.append(f"  --{f.name} {_type_label(hints[f.name])}  ({shown!r})")
        doc = " ".join(docs.get(f.name, "").split())
        lines.extend(textwrap.wrap(doc, width=width, initial_indent=" " * 8, subsequent_indent=" " * 8))
    return "\n".join(lines)
