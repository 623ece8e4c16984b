"""Reading values: YAML that refuses duplicate keys, and one parser per field type.

A parser takes a YAML value or a command-line string and returns the field's type, or
raises :class:`UnparsableError` with a hint; :func:`metarl.config.loading` names the field
and the source in the message.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

import yaml

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(
        tp, "a comma-separated list of integers" if typing.get_origin(tp) is tuple else "a mapping"
    )


def _split_int_list(text: str) -> list[str] | None:
    """The items of ``"64,64"``, ``"[64, 64]"`` or ``"(64, 64)"`` (``[]``/empty: none); None if malformed.

    One optional pair of matching brackets around comma-separated items, none of them empty.
    """
    text = text.strip()
    if text and text[0] in "[(":
        closing = {"[": "]", "(": ")"}[text[0]]
        if not text.endswith(closing) or len(text) < 2:
            return None
        text = text[1:-1].strip()
    if any(c in text for c in "[]()"):
        return None
    if not text:
        return []
    parts = [part.strip() for part in text.split(",")]
    return None if any(not part for part in parts) else parts


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping gives one key twice; ``key`` is that key."""

    def __init__(self, key: Any, problem: str, mark: yaml.Mark):
        super().__init__(None, None, problem, mark)
        self.key = key


MAX_YAML_CHARS = 200_000
"""The longest config text read (a preset is about 3,000 characters)."""
MAX_YAML_DEPTH = 16
"""The deepest nesting of mappings and lists in a config."""
MAX_YAML_NODES = 20_000
"""The most values in a config."""


class YamlLimitError(yaml.YAMLError):
    """A config text beyond :data:`MAX_YAML_CHARS`, :data:`MAX_YAML_DEPTH` or :data:`MAX_YAML_NODES`, or with
    an alias; ``problem`` says which.
    """

    def __init__(self, problem: str, mark: yaml.Mark | None = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice, aliases, and input beyond the limits.

    Aliases (``*name``) are refused because each one repeats a whole subtree: a few hundred
    bytes of them expand to gigabytes when the value is copied or printed.
    """

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):  # type: ignore[no-untyped-call]
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlLimitError("YAML aliases (*name) are not accepted in a config", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise YamlLimitError(f"more than {MAX_YAML_NODES:,} values", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                lines = f"lines {seen[key] + 1} and {key_node.start_mark.line + 1}"
                raise DuplicateKeyError(key, f"key {key!r} given twice ({lines})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also refuses a key given twice, aliases, and text, depth or size beyond the limits.

    Every refusal is a :class:`yaml.YAMLError` (:class:`DuplicateKeyError`, :class:`YamlLimitError`).
    """
    if len(text) > MAX_YAML_CHARS:
        raise YamlLimitError(f"{len(text):,} characters, more than a config's {MAX_YAML_CHARS:,}")
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def excerpt(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for messages about untrusted input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} chars)"


class UnparsableError(ValueError):
    """A value a field's parser cannot take; ``extra`` is a hint for the message."""

    def __init__(self, extra: str = "") -> None:
        super().__init__(extra)
        self.extra = extra


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise UnparsableError(" (use true/false, yes/no or 1/0)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise UnparsableError()
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            value = _to_float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if abs(value) > 2**53:  # beyond this a float no longer holds every integer: 1e30 is not 10**30
            raise UnparsableError(" (too large to be an exact integer written as a number with an exponent)")
        return int(value)
    raise UnparsableError()


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise UnparsableError()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise UnparsableError() from None
    raise UnparsableError()


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise UnparsableError()


def _to_int_tuple(value: Any) -> tuple[int, ...]:
    items = value
    if isinstance(value, str):
        items = _split_int_list(value)
        if items is None:
            raise UnparsableError(" (write it as 64,64 or [64, 64]; [] or an empty string for none)")
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    if not isinstance(items, list | tuple):
        raise UnparsableError()
    out = []
    for item in items:
        if isinstance(item, bool) or (isinstance(item, float) and not item.is_integer()):
            raise UnparsableError()
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            raise UnparsableError() from None
    return tuple(out)


def _to_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = load_yaml(value) if value.strip() else {}
        except DuplicateKeyError as exc:
            raise UnparsableError(f" ({exc.problem})") from None
        except YamlLimitError as exc:
            raise UnparsableError(f" ({exc.problem})") from None
        except yaml.YAMLError:
            raise UnparsableError(" (not valid YAML/JSON)") from None
        value = {} if value is None else value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    raise UnparsableError()


_PARSERS: dict[Any, Any] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    tuple: _to_int_tuple,
    dict: _to_mapping,
}
"""The parser of each field type (a YAML value or a command-line string in, the field's type out)."""
