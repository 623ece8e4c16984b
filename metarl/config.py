"""Training configuration: a typed dataclass, YAML presets, command-line overrides.

A run's settings come from, in order: the defaults of :class:`TrainConfig`, a preset
(``metarl/presets/<name>.yaml``) or a YAML file, then ``--key value`` overrides.
Every value is checked; a bad one raises :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import os
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
"""Folder holding the shipped YAML presets."""


class ConfigError(ValueError):
    """A configuration value, key, preset or file is invalid; the message names it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one MAML-TRPO training run (defaults: the 2D-navigation reference)."""

    algorithm: str = "maml-trpo"
    """Learner: ``maml-trpo``; or a baseline trained with plain TRPO on pre-adaptation
    episodes of all tasks, ``pretrained`` (no meta-learning) or ``oracle`` (the policy
    also observes the task's features)."""
    env_id: str = "metarl/Navigation2D-v1"
    """Registered id of the task-distribution environment."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the environment constructor."""
    seed: int = 1
    """Run seed; every generator is split from it with ``numpy.random.SeedSequence``."""
    num_iterations: int = 100
    """Number of meta-iterations (outer-loop updates)."""
    meta_batch_size: int = 20
    """Tasks per meta-batch."""
    episodes_per_task: int = 20
    """Episodes rolled out per task for each inner step and for the outer loss."""
    horizon: int = 100
    """Maximum episode length (time steps); episodes are truncated after it."""
    step_budget: bool = False
    """Sample as the MAML paper's code did: each of a task's ``episodes_per_task`` sub-environments
    steps for the whole horizon, starting a new episode whenever one ends early (the unfinished
    one at the end is dropped), so a task gets ``episodes_per_task × horizon`` steps of episodes.
    The same physics steps per iteration; more, shorter episodes where they end early (Ant), the
    same where they never do. Off: exactly ``episodes_per_task`` episodes per task."""
    budget_lanes: int = 0
    """With ``step_budget``: how many sub-environments share each task's budget of
    ``episodes_per_task × horizon`` steps, each running ``episodes_per_task / budget_lanes``
    horizons of steps back to back; it must divide ``episodes_per_task``. Fewer lanes drop
    fewer unfinished episodes (one per lane); 1 is the MAML paper code's sampler (one
    environment per task), at the cost of less batching across sub-environments.
    0 (default): one per episode."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy MLP (empty: a linear policy)."""
    nonlinearity: str = "tanh"
    """Hidden-layer activation: ``tanh`` or ``relu``."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy."""
    fast_lr: float = 0.1
    """Inner-loop (adaptation) step size alpha."""
    num_inner_steps: int = 1
    """Gradient steps of adaptation per task, each on fresh rollouts."""
    first_order: bool = False
    """Use first-order MAML (no gradients through the inner loop)."""
    max_kl: float = 0.01
    """TRPO trust region: bound on the mean KL divergence of a meta-update."""
    cg_iters: int = 10
    """Conjugate-gradient iterations per meta-update."""
    cg_damping: float = 1e-5
    """Damping added to the Hessian/Fisher-vector products."""
    ls_max_steps: int = 15
    """Maximum backtracking line-search steps."""
    ls_backtrack_ratio: float = 0.8
    """Step shrink factor per line-search step, in (0, 1)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: float = 1.0
    """GAE lambda, in [0, 1] (1.0: Monte-Carlo returns minus the baseline)."""
    normalize_advantages: bool = True
    """Normalise advantages per task to zero mean and unit variance."""
    bootstrap_truncated: bool = False
    """Bootstrap the value of truncated (horizon-reached) episodes from the baseline."""
    hvp_subsample: float = 1.0
    """Fraction of tasks used for the Fisher-vector products, in (0, 1]."""
    meta_update: str = "fast"
    """How the conjugate gradient's Fisher-vector products are computed: ``fast`` (on random
    shares of the steps, ``fvp_step_subsample`` and ``fvp_inner_subsample``, in
    ``fisher_precision``) or ``exact`` (fp32 on every step: the reference). Either way the
    line search judges every step by the exact fp32 surrogate and KL."""
    fvp_step_subsample: float = 0.1
    """With ``meta_update: fast``: fraction of each task's post-adaptation steps that the
    Fisher-vector products use, in (0, 1]."""
    fvp_inner_subsample: float = 0.1
    """With ``meta_update: fast``: fraction of the steps of each inner step that the inner
    loop's Hessian inside the Fisher-vector products uses, in (0, 1]."""
    inner_estimator: str = "reinforce"
    """Inner loss the second-order meta-update differentiates through: ``reinforce`` (log π·A),
    ``lvc`` (π/⊥π·A, ProMP's low-variance curvature) or ``dice`` (DiCE over each episode's causal
    log-probabilities). The same first derivative, so the same adaptation; they differ in the
    curvature the meta-gradient sees (agents/maml.py)."""
    fisher_precision: str = "auto"
    """With ``meta_update: fast``: arithmetic of the Fisher-vector products, ``auto`` (bf16 on a
    CPU with AMX, fp32 elsewhere: ``metarl/precision.py``), ``bf16`` or ``fp32``."""
    num_threads: int = 2
    """Torch intra-op threads."""
    sampler: str = "local"
    """Sampling backend: ``local`` (one batched env in this process) or ``ray`` (Ray actors that
    each own a contiguous shard of the iteration's (task, episode) pairs; the same seed gives
    exactly the same episodes). ``ray`` needs the extra: ``pip install -e ".[ray]"``."""
    num_workers: int = 2
    """Ray actors sampling in parallel (``sampler: ray``), one CPU and one shard each."""
    ray_address: str = ""
    """Ray cluster to join (``sampler: ray``): ``host:port`` of the head node (``ray start --head``
    prints it), ``ray://host:10001`` (Ray Client) or ``auto``; empty: start a local Ray instance."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many meta-iterations."""
    tensorboard: bool = True
    """Also log metrics to TensorBoard (``<run>/tb``)."""
    wandb: bool = False
    """Also log the config and the metrics to Weights & Biases (the ``wandb`` extra; files in
    ``<run>/wandb``, the W&B run id in ``<run>/wandb_run_id`` so a resumed run continues it)."""
    wandb_project: str = "metarl"
    """W&B project of the run (``wandb: true``)."""
    wandb_mode: str = "online"
    """``online`` (needs a W&B login) or ``offline`` (no network; ``wandb sync <run>/wandb/offline-run-*``
    uploads it later)."""
    out_dir: str = "runs"
    """Folder that holds run folders."""
    run_name: str = ""
    """Run folder name inside ``out_dir`` (empty: derived from preset name + seed)."""
    init_from: str = ""
    """Checkpoint file, or run folder (its latest checkpoint), whose learner state (the policy θ)
    starts this run; iterations, generators and metrics start afresh. Its ``hidden_sizes`` and
    ``nonlinearity`` must be this run's. Empty: a freshly initialised policy."""


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TYPES: dict[str, Any] = typing.get_type_hints(TrainConfig)
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
NONLINEARITIES = ("tanh", "relu")
ALGORITHMS = ("maml-trpo", "pretrained", "oracle")
SAMPLERS = ("local", "ray")
META_UPDATES = ("fast", "exact")
ESTIMATORS = ("reinforce", "lvc", "dice")
PRECISIONS = ("auto", "bf16", "fp32")
WANDB_MODES = ("online", "offline")


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring of each :class:`TrainConfig` field (for ``--help`` texts)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = str(nxt.value.value)
    return docs


# --------------------------------------------------------------------------- presets


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
        data = load_yaml(path.read_text())
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
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config: YAML file {str(path)!r} must hold a mapping of settings, got {type(data).__name__}",
            field="config",
        )
    return data


# ----------------------------------------------------------------- parsing & checks


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


class _UnparsableError(ValueError):
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
    raise _UnparsableError(" (use true/false, yes/no or 1/0)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _UnparsableError()
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            value = _to_float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise _UnparsableError()


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _UnparsableError()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _UnparsableError() from None
    raise _UnparsableError()


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _UnparsableError()


def _to_int_tuple(value: Any) -> tuple[int, ...]:
    items = value
    if isinstance(value, str):
        items = _split_int_list(value)
        if items is None:
            raise _UnparsableError(" (write it as 64,64 or [64, 64]; [] or an empty string for none)")
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    if not isinstance(items, list | tuple):
        raise _UnparsableError()
    out = []
    for item in items:
        if isinstance(item, bool) or (isinstance(item, float) and not item.is_integer()):
            raise _UnparsableError()
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            raise _UnparsableError() from None
    return tuple(out)


def _to_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = load_yaml(value) if value.strip() else {}
        except DuplicateKeyError as exc:
            raise _UnparsableError(f" ({exc.problem})") from None
        except yaml.YAMLError:
            raise _UnparsableError(" (not valid YAML/JSON)") from None
        value = {} if value is None else value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    raise _UnparsableError()


_PARSERS: dict[Any, Any] = {
    bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, tuple: _to_int_tuple, dict: _to_mapping,
}
"""The parser of each field type (a YAML value or a command-line string in, the field's type out)."""


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to the type of field ``name``."""
    tp = _TYPES[name]
    parse = _PARSERS[typing.get_origin(tp) or tp]
    try:
        return parse(value)
    except _UnparsableError as exc:
        raise ConfigError(
            f"config field {name!r}: expected {_type_name(tp)}, got {value!r}{exc.extra} ({source})", field=name
        ) from None


_AT_LEAST_ONE = (
    "num_iterations", "meta_batch_size", "episodes_per_task", "horizon", "num_inner_steps", "cg_iters",
    "ls_max_steps", "num_threads", "num_workers", "checkpoint_every",
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": ALGORITHMS, "sampler": SAMPLERS, "nonlinearity": NONLINEARITIES, "meta_update": META_UPDATES,
    "inner_estimator": ESTIMATORS, "fisher_precision": PRECISIONS, "wandb_mode": WANDB_MODES,
}
_INTERVALS: dict[str, tuple[str, Any]] = {
    "init_std": ("must be > 0", lambda v: v > 0),
    "fast_lr": ("must be > 0", lambda v: v > 0),
    "max_kl": ("must be > 0", lambda v: v > 0),
    "cg_damping": ("must be >= 0", lambda v: v >= 0),
    "ls_backtrack_ratio": ("must be in (0, 1)", lambda v: 0 < v < 1),
    "gamma": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "gae_lambda": ("must be in [0, 1]", lambda v: 0 <= v <= 1),
    "hvp_subsample": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "fvp_step_subsample": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "fvp_inner_subsample": ("must be in (0, 1]", lambda v: 0 < v <= 1),
}
"""Float fields: the rule (besides being finite) and the message when it fails."""


def _problems(cfg: TrainConfig) -> Iterator[tuple[str, str]]:
    """``(field, problem)`` of every rule ``cfg`` breaks, in a fixed order."""
    yield from ((name, "must be >= 1") for name in _AT_LEAST_ONE if getattr(cfg, name) < 1)
    if cfg.seed < 0:
        yield "seed", "must be >= 0"
    if cfg.budget_lanes < 0:
        yield "budget_lanes", "must be >= 0 (0: one sub-environment per episode)"
    if cfg.budget_lanes and not cfg.step_budget:
        yield "budget_lanes", "needs step_budget true"
    if cfg.budget_lanes and cfg.episodes_per_task % cfg.budget_lanes:
        yield "budget_lanes", f"must divide episodes_per_task ({cfg.episodes_per_task})"
    if any(h < 1 for h in cfg.hidden_sizes):
        yield "hidden_sizes", "every layer width must be >= 1"
    yield from ((name, f"must be one of {', '.join(choices)}") for name, choices in _CHOICES.items()
                if getattr(cfg, name) not in choices)
    if cfg.ray_address and not valid_ray_address(cfg.ray_address):
        yield "ray_address", "must be empty (a local Ray instance), 'auto', 'host:port' or 'ray://host:port'"
    for name, (problem, holds) in _INTERVALS.items():
        value = getattr(cfg, name)
        if not math.isfinite(value):
            yield name, "must be a finite number"
        elif not holds(value):
            yield name, problem
    if cfg.wandb and not cfg.wandb_project.strip():
        yield "wandb_project", "must not be empty with wandb: true"
    yield from ((name, "must not be empty") for name in ("env_id", "out_dir") if not getattr(cfg, name).strip())
    if any(c in cfg.run_name for c in "/\\") or cfg.run_name in (".", ".."):
        yield "run_name", "must be a plain folder name (no path separators)"


def _check_ranges(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` naming the first rule ``cfg`` breaks."""
    for name, problem in _problems(cfg):
        raise ConfigError(f"config field {name!r}: {problem}, got {getattr(cfg, name)!r}", field=name)


def valid_ray_address(address: str) -> bool:
    """Whether ``address`` has the form ``auto``, ``host:port`` or ``ray://host:port``."""
    if address == "auto":
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return bool(sep and host) and not any(c.isspace() or c == "/" for c in host) and port.isdigit() and (
        0 < int(port) < 65536
    )


def _canonical_key(key: str, source: str) -> str:
    name = key.strip().replace("-", "_")
    if name in FIELD_NAMES:
        return name
    close = difflib.get_close_matches(name, FIELD_NAMES, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(FIELD_NAMES)}"
    raise ConfigError(f"config: unknown key {key!r} ({source}){hint}", field=key)


def _coerce_mapping(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    values = {}
    for key, value in data.items():
        name = _canonical_key(str(key), source)
        values[name] = _coerce(name, value, source)
    return values


def config_from_dict(data: Mapping[str, Any], source: str = "dict") -> TrainConfig:
    """Build and validate a config from a mapping (unknown keys, types and ranges checked)."""
    cfg = TrainConfig(**_coerce_mapping(data, source))
    _check_ranges(cfg)
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
    _check_ranges(cfg)
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def config_diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between ``a`` and ``b``: ``{name: (a_value, b_value)}``."""
    return {n: (getattr(a, n), getattr(b, n)) for n in FIELD_NAMES if getattr(a, n) != getattr(b, n)}


__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "PRESETS_DIR",
    "SAMPLERS",
    "TrainConfig",
    "config_diff",
    "config_from_dict",
    "config_to_dict",
    "default_run_name",
    "field_docs",
    "list_presets",
    "load_config",
    "parse_overrides",
    "predated_fields",
    "save_config",
    "valid_ray_address",
]
