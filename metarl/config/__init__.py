"""Training configuration: a typed dataclass, YAML presets, command-line overrides.

A run's settings come from, in order: the defaults of :class:`TrainConfig`, a preset
(``metarl/presets/<name>.yaml``) or a YAML file, then ``--key value`` overrides.
Every value is checked; a bad one raises :class:`ConfigError` naming the field and the source.

One job per module: :mod:`~metarl.config.schema` (the fields and their choices),
:mod:`~metarl.config.values` (YAML and one parser per field type),
:mod:`~metarl.config.rules` (ranges and combinations), :mod:`~metarl.config.loading`
(presets, overrides, saving, comparing).
"""

from metarl.config.loading import (
    PREDATED_FIELD_VALUES,
    config_diff,
    config_from_dict,
    config_to_dict,
    default_run_name,
    list_presets,
    load_config,
    parse_overrides,
    predated_fields,
    save_config,
)
from metarl.config.rules import check_config, check_memory, valid_ray_address
from metarl.config.schema import (
    ALGORITHMS,
    ESTIMATORS,
    FIELD_NAMES,
    META_UPDATES,
    NONLINEARITIES,
    PRECISIONS,
    PRESETS_DIR,
    SAMPLERS,
    WANDB_MODES,
    ConfigError,
    TrainConfig,
    field_docs,
)
from metarl.config.values import DuplicateKeyError, YamlLimitError, excerpt, load_yaml

__all__ = [
    "ALGORITHMS",
    "ESTIMATORS",
    "FIELD_NAMES",
    "META_UPDATES",
    "NONLINEARITIES",
    "PRECISIONS",
    "PREDATED_FIELD_VALUES",
    "PRESETS_DIR",
    "SAMPLERS",
    "WANDB_MODES",
    "ConfigError",
    "YamlLimitError",
    "DuplicateKeyError",
    "TrainConfig",
    "check_config",
    "check_memory",
    "config_diff",
    "config_from_dict",
    "config_to_dict",
    "default_run_name",
    "excerpt",
    "field_docs",
    "list_presets",
    "load_config",
    "load_yaml",
    "parse_overrides",
    "predated_fields",
    "save_config",
    "valid_ray_address",
]
