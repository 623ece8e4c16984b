"""Where a reproduction keeps its files, and whether a run is the shipped preset.

Under a reproduction's root (``results/`` for the committed one), row ``R`` has::

    R/seed<N>/                     the preset trained with seed N (a run folder)
    R/seed<N>/eval/adaptation_maml-trpo.json   its final checkpoint on the held-out tasks
    R/pretrained/                  the pretrained baseline (a run folder) and its eval/
    R/random/adaptation_random.json            a freshly initialised policy
    R/reproduction.json            the aggregate over seeds (metarl.reproduction.summary)
    R/adaptation.png, R/training.png           its figures
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metarl.config import TrainConfig, config_diff, load_config
from metarl.reproduction.rows import PaperRow
from metarl.runs.folder import EVAL_DIR, RESUMABLE_ENV_KWARGS

SUMMARY_FILE = "reproduction.json"
ADAPTATION_FIGURE = "adaptation.png"
TRAINING_FIGURE = "training.png"
PRETRAINED = "pretrained"
RANDOM = "random"

HOW_FIELDS = frozenset(
    {
        "seed",
        "out_dir",
        "run_name",
        "num_threads",
        "checkpoint_every",
        "tensorboard",
        "sampler",
        "num_workers",
        "ray_address",
        "wandb",
        "wandb_project",
        "wandb_mode",
        "step_timeout",
    }
)
"""Fields a reproduction may set besides the preset's: the seed, where the run lies, and how (not what) it
computes. Everything else must equal the shipped preset for a run to be reported as the preset."""


def seed_dir(root: Path, row: PaperRow, seed: int) -> Path:
    """The run folder of ``row``'s preset trained with ``seed``.

    Args:
        root: The reproduction's root folder.
        row: The paper's row.
        seed: The training seed.
    """
    return root / row.name / f"seed{seed}"


def results_file(run_dir: Path, method: str) -> Path:
    """The evaluation results a run folder's default evaluation writes for ``method``."""
    return run_dir / EVAL_DIR / f"adaptation_{method}.json"


def pretrained_dir(root: Path, row: PaperRow) -> Path:
    """The run folder of ``row``'s pretrained baseline."""
    return root / row.name / PRETRAINED


def random_results(root: Path, row: PaperRow) -> Path:
    """The results file of ``row``'s random initialisation."""
    return root / row.name / RANDOM / "adaptation_random.json"


def row_dir(root: Path, row: PaperRow) -> Path:
    """The folder of ``row``'s reproduction."""
    return root / row.name


def preset_config(row: PaperRow, *, pretrained: bool = False) -> TrainConfig:
    """The shipped preset of ``row`` (as its pretrained baseline trains it with ``pretrained``)."""
    overrides = ["--algorithm", "pretrained", "--num_iterations", str(row.baseline_iterations)] if pretrained else []
    return load_config(row.preset, overrides)


def differences_from_preset(cfg: TrainConfig, preset: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{field: (preset's value, run's value)}`` for every way ``cfg`` is not ``preset`` but for how it ran.

    ``env_kwargs`` compare without the keyword arguments that set how fast, not what, is simulated.
    """
    diff = {k: v for k, v in config_diff(preset, cfg).items() if k not in HOW_FIELDS}
    if "env_kwargs" in diff:
        fixed = [{k: v for k, v in c.env_kwargs.items() if k not in RESUMABLE_ENV_KWARGS} for c in (preset, cfg)]
        if fixed[0] == fixed[1]:
            del diff["env_kwargs"]
        else:
            diff["env_kwargs"] = (fixed[0], fixed[1])
    return diff


__all__ = [
    "ADAPTATION_FIGURE",
    "HOW_FIELDS",
    "PRETRAINED",
    "RANDOM",
    "SUMMARY_FILE",
    "TRAINING_FIGURE",
    "differences_from_preset",
    "preset_config",
    "pretrained_dir",
    "random_results",
    "results_file",
    "row_dir",
    "seed_dir",
]
