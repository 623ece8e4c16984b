"""Building a config: presets and YAML files, command-line overrides, saving and comparing configs."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from metarl.config.rules import check_config
from metarl.config.schema import _TYPES, FIELD_NAMES, PRESETS_DIR, RENAMED_FIELDS, ConfigError, TrainConfig
from metarl.config.values import (
    _PARSERS,
    MAX_YAML_CHARS,
    UnparsableError,
    YamlLimitError,
    _type_name,
    excerpt,
    load_yaml,
)
from metarl.system.files import write_atomic


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if path.is_file():
        return path
    known = list_presets()
    close = difflib.get_close_matches(name, known, n=len(known), cutoff=0.0)
    raise ConfigError(
        f"config: unknown preset {name!r}; valid presets (closest first): {', '.join(close) or 'none'}",
        field="config",
    )


def _is_path(config: str | Path) -> bool:
    s = str(config)
    return isinstance(config, Path) or "/" in s or "\\" in s or s.endswith((".yaml", ".yml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config: file {str(path)!r} does not exist (or is not a file)", field="config")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_CHARS * 4:
            raise YamlLimitError(f"{size:,} bytes, more than a config's {MAX_YAML_CHARS:,} characters")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config: {str(path)!r} is not a UTF-8 text file ({exc.reason} at byte {exc.start})", field="config"
        ) from None
    except YamlLimitError as exc:
        raise ConfigError(f"config: YAML file {str(path)!r} is too large: {exc.problem}", field="config") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        key = getattr(exc, "key", None)
        raise ConfigError(
            f"config: YAML file {str(path)!r} does not parse at{where}: {problem}",
            field=key if key in FIELD_NAMES else "config",
        ) from exc
    if data is None:
        raise ConfigError(
            f"config: YAML file {str(path)!r} is empty; it must hold a mapping of settings", field="config"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"config: YAML file {str(path)!r} must hold a mapping of settings, got {type(data).__name__}",
            field="config",
        )
    return data


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to the type of field ``name``."""
    tp = _TYPES[name]
    parse = _PARSERS[typing.get_origin(tp) or tp]
    try:
        return parse(value)
    except UnparsableError as exc:
        raise ConfigError(
            f"config field {name!r}: expected {_type_name(tp)}, got {excerpt(value)}{exc.extra} ({source})", field=name
        ) from None


def _canonical_key(key: str, source: str) -> str:
    name = key.strip().replace("-", "_")
    name = RENAMED_FIELDS.get(name, name)  # a field's earlier name still reads (saved runs, old configs)
    if name in FIELD_NAMES:
        return name
    close = difflib.get_close_matches(name, FIELD_NAMES, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(FIELD_NAMES)}"
    raise ConfigError(f"config: unknown key {key!r} ({source}){hint}", field=key)


def _coerce_mapping(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    values = {}
    for key, value in data.items():
        name = _canonical_key(str(key), source)
        if name in values:
            raise ConfigError(
                f"config field {name!r} is given twice ({source}: under its earlier name too)", field=name
            )
        values[name] = _coerce(name, value, source)
    return values


def config_from_dict(data: Mapping[str, Any], source: str = "dict") -> TrainConfig:
    """Build and validate a config from a mapping (unknown keys, types and ranges checked)."""
    cfg = TrainConfig(**_coerce_mapping(data, source))
    check_config(cfg)
    return cfg


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """Split command-line tokens (``--key value``, ``--key=value``, bare ``--flag``) into raw strings.

    A bare boolean flag (``--first_order`` with no value following) means ``true``.
    """
    out: dict[str, str] = {}
    tokens = list(overrides)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise ConfigError(f"config: expected an option like --key value, got {tok!r}", field=None)
        key, eq, value = tok[2:].partition("=")
        name = _canonical_key(key, f"from --{key}")
        if not eq:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or (nxt.startswith("--") and len(nxt) > 2):
                if _TYPES[name] is not bool:
                    raise ConfigError(f"config field {name!r}: --{key} needs a value", field=name)
                value = "true"
            else:
                value = nxt
                i += 1
        out[name] = value
        i += 1
    return out


def default_run_name(preset: str, seed: int) -> str:
    """The run folder name used when ``run_name`` is empty: ``<preset>_seed<seed>``."""
    return f"{preset}_seed{seed}"


def load_config(config: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a preset name or a YAML path (``None``: defaults), apply overrides, validate.

    ``overrides`` are command-line tokens such as ``["--fast_lr", "0.05", "--hidden_sizes=100,100"]``.
    An empty ``run_name`` is replaced by :func:`default_run_name` of the preset/file stem.
    """
    data: dict[str, Any] = {}
    source_name = "default"
    if config is not None:
        path = Path(config) if _is_path(config) else _preset_path(str(config))
        data = _coerce_mapping(_read_yaml(path), f"in {path}")
        source_name = path.stem
    for name, raw in parse_overrides(overrides).items():
        data[name] = _coerce(name, raw, f"from --{name}")
    cfg = TrainConfig(**data)
    if not cfg.run_name:
        cfg = dataclasses.replace(cfg, run_name=default_run_name(source_name, cfg.seed))
    check_config(cfg)
    return cfg


PREDATED_FIELD_VALUES: dict[str, Any] = {"meta_update": "exact"}
"""What a saved run (a run folder's config or a checkpoint's) means by a field it predates:
runs written before ``meta_update`` existed made the exact meta-update, and resume so."""


def predated_fields(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`PREDATED_FIELD_VALUES` that the saved config mapping ``saved`` lacks."""
    return {name: value for name, value in PREDATED_FIELD_VALUES.items() if name not in saved}


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-data view of ``cfg`` (tuples become lists): safe for YAML, JSON and checkpoints."""
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = getattr(cfg, name)
        if isinstance(value, tuple | dict):
            value = list(value) if isinstance(value, tuple) else dict(value)
        out[name] = value
    return out


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (field order kept) to ``path`` atomically; returns the path.

    The text goes to a temporary file beside ``path`` that then replaces it, so a crash
    or a full disk mid-write leaves the previous file whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# metarl TrainConfig\n" + yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
    return write_atomic(path, text)


def config_diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between ``a`` and ``b``: ``{name: (a_value, b_value)}``."""
    return {n: (getattr(a, n), getattr(b, n)) for n in FIELD_NAMES if getattr(a, n) != getattr(b, n)}
