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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice."""

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
    """``yaml.safe_load`` that also refuses a key given twice in a mapping (:class:`yaml.YAMLError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


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
        except yaml.YAMLError:
            raise UnparsableError(" (not valid YAML/JSON)") from None
        value = {} if value is None else value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    raise UnparsableError()


_PARSERS: dict[Any, Any] = {
    bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, tuple: _to_int_tuple, dict: _to_mapping,
}
"""The parser of each field type (a YAML value or a command-line string in, the field's type out)."""
