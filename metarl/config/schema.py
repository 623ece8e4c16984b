"""The settings of a training run: :class:`TrainConfig`, one documented field per setting, and its choices."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
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
    init_output_scale: float = 1.0
    """Factor on the policy's output-layer initial weights (Glorot-uniform): a small one
    starts every seed from near-zero action means instead of a seed-specific gait."""
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
    fvp_task_fraction: float = 1.0
    """Fraction of the meta-batch's tasks the Fisher-vector products use, in (0, 1] (earlier name:
    ``hvp_subsample``)."""
    meta_update: str = "fast"
    """How the meta-update is computed: ``fast`` (the MLP's derivatives written out, the
    conjugate gradient's Fisher-vector products on random shares of the steps,
    ``fvp_transition_fraction`` and ``fvp_inner_fraction``, and the inner loop's Hessians in
    ``fisher_precision``) or ``exact`` (autograd, fp32 on every step: the reference). Either
    way the line search judges every step by the exact fp32 surrogate and KL."""
    fvp_transition_fraction: float = 0.1
    """With ``meta_update: fast``: fraction of each task's post-adaptation transitions that the
    Fisher-vector products use, in (0, 1] (earlier name: ``fvp_step_subsample``)."""
    fvp_inner_fraction: float = 0.1
    """With ``meta_update: fast``: fraction of the transitions each inner step learnt from that the
    inner loop's Hessian inside the Fisher-vector products uses, in (0, 1] (earlier name:
    ``fvp_inner_subsample``)."""
    inner_estimator: str = "reinforce"
    """Inner loss the second-order meta-update differentiates through: ``reinforce`` (log π·A),
    ``lvc`` (π/⊥π·A, ProMP's low-variance curvature) or ``dice`` (DiCE over each episode's causal
    log-probabilities). The same first derivative, so the same adaptation; they differ in the
    curvature the meta-gradient sees (agents/maml.py)."""
    fisher_precision: str = "fp32"
    """With ``meta_update: fast``: arithmetic of the Fisher-vector products and of the inner
    loop's Hessian in the meta-gradient (whose ``∇_θ' L`` stays fp32), ``fp32``, ``bf16`` or
    ``auto`` (bf16 on a CPU with AMX, or with AVX-512 BF16 where a start-up probe finds bf16
    matmuls faster; fp32 elsewhere: ``metarl/learner/precision.py``)."""
    adaptation_precision: str = "fp32"
    """With ``meta_update: fast`` and the ``reinforce`` or ``lvc`` inner loss: arithmetic of the
    inner step's gradient (the adaptation) wherever it is taken — the sampler, the line search,
    the evaluation: ``fp32`` (autograd), ``bf16`` (the MLP's passes written out in bf16; when
    ``fisher_precision`` is bf16 too, the sampler's inner step also builds the Hessian the
    meta-gradient needs) or ``auto`` (as ``fisher_precision``). The exact path and ``dice``
    adapt in fp32."""
    num_threads: int = 2
    """Torch intra-op threads."""
    step_timeout: float = 0.0
    """Seconds one batched environment step may take before training stops with an error naming the
    environment (a simulator that hangs); 0: no limit. Local sampling only."""
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
RENAMED_FIELDS: dict[str, str] = {
    "hvp_subsample": "fvp_task_fraction",
    "fvp_step_subsample": "fvp_transition_fraction",
    "fvp_inner_subsample": "fvp_inner_fraction",
}
"""Earlier names of renamed fields, still accepted in YAML, on the command line and in saved runs
(docs/training.md, "Words")."""
_TYPES: dict[str, Any] = typing.get_type_hints(TrainConfig)
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
