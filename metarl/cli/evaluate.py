"""Evaluate adaptation on held-out tasks: ``metarl evaluate SOURCE [options]``.

SOURCE is a run folder (its latest checkpoint is used) or a checkpoint file. The run's
``algorithm`` decides how it is evaluated: ``maml-trpo`` and ``pretrained`` policies are
fine-tuned with ``--num-steps`` inner gradient steps (each on ``--episodes-per-step``
fresh episodes per task); an ``oracle`` is evaluated without adaptation (a flat line).
``--random`` evaluates a freshly initialised policy of SOURCE's architecture instead
(SOURCE may then also be a preset name or a YAML config), fine-tuned the same way.

The held-out tasks, rollouts and action noise come from ``--seed`` alone (a stream
kept apart from training's), so every method and run is evaluated on the same tasks.
Writes ``adaptation_<method>.json`` (per task and per step mean return, mean and 95%
Student-t confidence interval over tasks, the settings) and ``adaptation_<method>.png``
to ``--out`` (default: ``<run>/eval``). A family with analytic references (bandits: best
arm, UCB1, Thompson sampling; tabular MDPs: value iteration, uniform random) has them
computed on the same tasks, written beside the curve and drawn as dashed lines. A family
whose held-out tasks come from its own test split (``sample_heldout_tasks``: Meta-World) is
evaluated on those; one whose env reports ``info["success"]`` gets success rates too, and one
whose tasks fall into groups (``task_group``: Meta-World's environments) gets results per group
and ``adaptation_<method>_by_group.png``.

Default episodes per step: the run's own ``episodes_per_task``, what its inner loop adapted
from in training. The MAML paper used 40 trajectories per step for 2D navigation; pass
``--episodes-per-step 40`` to match it (twice the sampling time of the preset's 20).
``--step-budget`` samples each step as the paper's code did, ``episodes-per-step × horizon``
steps of back-to-back episodes per task (its Ant test scripts: 20 for goal velocity, 40 for
forward/backward); it matters only where episodes end early. ``--budget-lanes K`` shares each
task's budget among K sub-environments (1: one per task, as the paper's code ran).

``--video N`` also films the first N held-out tasks: one video per task with the policy's
episode before adaptation and after each of the K steps side by side (the parameters of
this evaluation, mean actions), written as ``adaptation_task<i>.gif`` (or ``.mp4`` with
``--video-format mp4`` and the ``video`` extra) beside the results. The locomotion
families render with MuJoCo off screen (EGL by default, ``MUJOCO_GL=osmesa`` for OSMesa;
Debian's ``libegl1 libgl1-mesa-dri`` or ``libosmesa6``), 2D navigation with matplotlib.

Options may be spelled with hyphens or underscores (``--num-tasks``, ``--num_tasks``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.cli.arguments import ArgumentParser
from metarl.cli.plugins import load_agents
from metarl.config import ConfigError, TrainConfig, check_memory, config_from_dict, load_config
from metarl.evaluation.protocol import (
    AdaptationResults,
    EvaluationSettings,
    evaluation_streams,
    heldout_tasks,
    reference_returns,
    run_evaluation,
    validation_tasks,
)
from metarl.plots.figures import plot_adaptation, plot_groups
from metarl.plots.video import (
    FORMATS,
    RenderError,
    adaptation_videos,
    check_renderable,
    check_video_format,
    use_headless_gl,
)
from metarl.runs.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from metarl.runs.folder import (
    CONFIG_FILE,
    EVAL_DIR,
    describe_differences,
    incompatible_fields,
    saved_config_with_predated,
)
from metarl.runs.trust import trusted_modules
from metarl.sampling import Sampler
from metarl.sampling.episodes import Episodes
from metarl.system.files import check_writable_folder, os_error_message
from metarl.tasks.build import make_batched, registered_return_bounds
from metarl.tasks.protocol import EnvFaultError, Task, heldout_sampler, task_groups
from metarl.tasks.resolve import check_env_id, check_trusted_env_id

log = logging.getLogger("metarl")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one learning rate")
    return values


MAX_TASKS = 10_000
MAX_STEPS = 100
MAX_EPISODES = 10_000


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high:,}, got {value:,}")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) >= 16 and int(height) >= 16):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 240x180 (each at least 16), got {text!r}")
    return int(width), int(height)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = ArgumentParser(
        prog="metarl evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", help="run folder or checkpoint file (with --random also a preset name or YAML)")
    p.add_argument("--random", action="store_true", help="evaluate a fresh, untrained policy of SOURCE's architecture")
    p.add_argument("--num-tasks", type=_bounded(1, MAX_TASKS), default=40, help="held-out tasks (default 40)")
    p.add_argument("--num-steps", type=_bounded(0, MAX_STEPS), default=3, help="inner gradient steps K (default 3)")
    p.add_argument(
        "--episodes-per-step",
        type=_bounded(1, MAX_EPISODES),
        default=None,
        help="episodes per task and step (default: the run's episodes_per_task, as it trained)",
    )
    p.add_argument(
        "--step-budget",
        action="store_true",
        help="each of a task's episodes-per-step sub-environments runs episodes back to back "
        "for the horizon (the MAML paper code's sampling)",
    )
    p.add_argument(
        "--budget-lanes",
        type=_bounded(0, MAX_EPISODES),
        default=0,
        help="with --step-budget: sub-environments sharing each task's budget of episodes-per-step x "
        "horizon steps; must divide episodes-per-step (1: one per task, the paper code's sampler; "
        "default 0: one per episode)",
    )
    p.add_argument(
        "--lrs",
        type=_floats,
        default=None,
        help="inner learning rate per step, the last repeats (default: the run's fast_lr, then half "
        "of it — 0.1,0.05 for 2d-navigation, as in the MAML paper)",
    )
    p.add_argument(
        "--choose-lr",
        type=_floats,
        default=None,
        metavar="GRID",
        help="choose the inner learning rate from these (e.g. 0.001,0.01,0.1,1): the best mean return after one "
        "step on validation tasks drawn apart from the held-out ones, then used for every step; recorded in the "
        "results (a fair comparison for baselines)",
    )
    p.add_argument(
        "--seed",
        type=_bounded(0, 2**63 - 1),
        default=0,
        help="evaluation seed: tasks, rollouts, random init (default 0)",
    )
    p.add_argument("--label", default="", help="legend name (default: the method)")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/eval, or runs/eval for a preset)")
    p.add_argument("--threads", type=_bounded(1, 1024), help="torch threads (default: the run's num_threads)")
    p.add_argument(
        "--video",
        type=_bounded(0, MAX_TASKS),
        default=0,
        metavar="N",
        help="also write videos of the first N held-out tasks adapting (default 0: none)",
    )
    p.add_argument("--video-format", choices=FORMATS, default="gif", help="gif (default) or mp4 (the video extra)")
    p.add_argument(
        "--video-size",
        type=_size,
        default=(320, 240),
        metavar="WxH",
        help="size of one panel of a video (default 320x240)",
    )
    p.add_argument(
        "--trust-env-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE if SOURCE's env id names it (a run folder's or checkpoint's config "
        "imports no module unless you vouch for it); repeatable",
    )
    return p


def checkpoint_config(state: dict[str, Any], path: Path) -> TrainConfig:
    """The config a checkpoint was written with (its own copy, not the run folder's ``config.yaml``)."""
    try:
        return config_from_dict(saved_config_with_predated(state["config"]), source=str(path))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} carries no usable config: {type(exc).__name__}: {exc}") from exc


def check_folder_config(run_dir: Path, saved: TrainConfig, ckpt: Path) -> None:
    """Refuse a run folder whose ``config.yaml`` says something else than its checkpoint's own config.

    Only the settings a resume may change (iterations, threads, logging, where the folder is)
    may differ; anything else — an edited learning rate, env id or algorithm, an emptied file,
    a checkpoint copied in from another run — would label the results wrongly.

    Args:
        run_dir: The run folder.
        saved: The config the checkpoint carries.
        ckpt: The checkpoint (named in the error).
    """
    path = run_dir / CONFIG_FILE
    try:
        folder = load_config(path)
    except ConfigError as exc:
        raise CheckpointError(f"{path} does not read as the config of checkpoint {ckpt.name}: {exc}") from exc
    changed = incompatible_fields(saved, folder, resume=True)
    if changed:
        raise CheckpointError(
            f"{path} disagrees with the config checkpoint {ckpt.name} was written with "
            f"({describe_differences(saved, folder, changed)}); evaluate the checkpoint file itself to use its own "
            f"config, or restore {CONFIG_FILE}"
        )


def load_source(
    source: str, random: bool, trust_env_modules: Sequence[str] = ()
) -> tuple[TrainConfig, dict[str, Any] | None, Path | None, Path]:
    """``(config, checkpoint state or None, checkpoint path or None, default output folder)`` of SOURCE.

    A checkpoint is evaluated with the config it carries; a run folder's ``config.yaml`` that
    disagrees with it is a :class:`CheckpointError` naming the fields. A run folder's or
    checkpoint's env id that would import a module not in ``trust_env_modules`` is a
    :class:`TaskEnvError` (:func:`check_trusted_env_id`).

    Args:
        source: A run folder, a checkpoint file or, with ``random``, a preset name or config file.
        random: Evaluate a fresh policy of the source's architecture.
        trust_env_modules: Modules the user vouches for, which the source's env id may import.
    """
    path = Path(source)
    if path.is_dir():
        ckpt = latest_checkpoint(path)
        if random:
            cfg = load_config(path / CONFIG_FILE)
            check_trusted_env_id(
                cfg.env_id, [*trust_env_modules, *trusted_modules(path, cfg.env_id)], f"run folder {path}"
            )
            return cfg, None, None, path / EVAL_DIR
        if ckpt is None:
            raise FileNotFoundError(f"{path} holds no checkpoint (checkpoints/iter_*.pt); train it first")
        state = load_checkpoint(ckpt)
        cfg = checkpoint_config(state, ckpt)
        check_trusted_env_id(cfg.env_id, [*trust_env_modules, *trusted_modules(path, cfg.env_id)], f"run folder {path}")
        check_folder_config(path, cfg, ckpt)
        return cfg, state, ckpt, path / EVAL_DIR
    if path.is_file() and path.suffix == ".pt":
        state = load_checkpoint(path)
        cfg = checkpoint_config(state, path)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        check_trusted_env_id(
            cfg.env_id, [*trust_env_modules, *trusted_modules(run_dir, cfg.env_id)], f"checkpoint {path}"
        )
        return cfg, (None if random else state), (None if random else path), run_dir / EVAL_DIR
    if random:
        return load_config(source), None, None, Path("runs") / EVAL_DIR
    raise FileNotFoundError(
        f"{source!r} is neither a run folder nor a checkpoint file (.pt); "
        "a preset or YAML config is only a source for --random"
    )


def evaluate(
    cfg: TrainConfig,
    state: dict[str, Any] | None,
    settings: EvaluationSettings,
    *,
    random: bool = False,
    label: str = "",
    source: str = "",
    on_episodes: Any = None,
    on_adapted: Callable[[Any, Sequence[Task], list[Any]], None] | None = None,
) -> AdaptationResults:
    """Evaluate the policy in ``state`` (or a fresh one with ``random``) as ``cfg.algorithm`` prescribes.

    ``on_adapted(policy, tasks, params)`` (if given) receives the policy, the held-out tasks and
    the per-task parameters before adaptation and after each step (to film them).

    Args:
        cfg: The run's config (env, architecture, algorithm).
        state: The checkpoint's state, or ``None`` with ``random``.
        settings: The evaluation protocol: held-out tasks, steps, episodes, step sizes, seed.
        random: Evaluate a fresh policy of ``cfg``'s architecture.
        label: The legend name (default: the method).
        source: What was evaluated, recorded in the results.
        on_episodes: Receives each step's sampled episodes.
        on_adapted: Receives the policy, the tasks and the parameters after each step.
    """
    method = "random" if random else cfg.algorithm
    algorithm = "maml-trpo" if random else cfg.algorithm  # a random policy sees plain observations
    agents = load_agents()  # and the installed task families
    check_env_id(cfg.env_id)
    sampling = settings.sampling()
    base = make_batched(cfg.env_id, sampling.num_envs, max_episode_steps=cfg.horizon, **cfg.env_kwargs)
    env = agents.observation_env(algorithm, base)
    tasks = heldout_tasks(heldout_sampler(env), settings.num_tasks, settings.seed)
    validation = validation_tasks(env.sample_tasks, settings.num_tasks, settings.seed) if settings.lr_grid else None
    torch.manual_seed(evaluation_streams(settings.seed).torch_seed)  # a random policy's init
    policy = agents.policy_for(cfg, env)
    if state is not None:
        try:
            policy.load_state_dict(state["learner"]["policy"])
        except (RuntimeError, KeyError, TypeError) as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            env.close()
            raise CheckpointError(
                f"{source or 'the checkpoint'} does not fit the policy of its config (hidden_sizes "
                f"{list(cfg.hidden_sizes)}, {cfg.nonlinearity}, {cfg.env_id}): {type(exc).__name__}: {detail}"
            ) from exc
    if method == "maml-trpo" and settings.num_steps and settings.step_lrs()[0] != cfg.fast_lr:
        log.warning("evaluating with inner lr %s; the run was trained with fast_lr %s", settings.lrs, cfg.fast_lr)
    adaptation = agents.evaluation_adapter(cfg)  # the run's own inner step and advantages
    sampler = Sampler.from_settings(env, policy, sampling)

    def adapt(sampler: Sampler, rng: np.random.Generator, lrs: Sequence[float]) -> list[Episodes]:
        episodes, params = adaptation(policy, sampler, rng, lrs)
        if on_adapted is not None:
            on_adapted(policy, tasks, params)
        return episodes

    try:
        return run_evaluation(
            sampler,
            tasks,
            adapt,
            settings,
            method=method,
            env_id=cfg.env_id,
            flat=algorithm == "oracle",
            label=label,
            source=source,
            extra_settings={
                "horizon": cfg.horizon,
                "gamma": cfg.gamma,
                "gae_lambda": cfg.gae_lambda,
                "normalize_advantages": cfg.normalize_advantages,
                "bootstrap_truncated": cfg.bootstrap_truncated,
                "env_kwargs": dict(cfg.env_kwargs),
                "hidden_sizes": list(cfg.hidden_sizes),
                "training_seed": None if random else cfg.seed,
                "training_iterations": None if state is None else int(state.get("iteration", 0)),
                "training_fast_lr": cfg.fast_lr,
                "return_bounds": [
                    None if not np.isfinite(b) else b
                    for b in registered_return_bounds(check_env_id(cfg.env_id), cfg.horizon)
                ],
            },
            on_episodes=on_episodes,
            references=reference_returns(base, tasks, cfg.horizon, settings.seed),
            validation=validation,
            groups=task_groups(env, tasks),
        )
    finally:
        env.close()


def _print_summary(results: AdaptationResults, env_id: str, settings: EvaluationSettings, seconds: float) -> None:
    """The evaluation's table on the console: return (and success rate) after each step, references, groups."""
    data = results.to_json()
    lrs = [None, *data["settings"]["step_lrs"]]
    print(
        f"{results.name} on {env_id}: {settings.num_tasks} held-out tasks (seed {settings.seed}), "
        f"{settings.episodes_per_step} episodes per step, {results.env_steps} env steps in {seconds:.1f} s"
    )
    success = data.get("success_rate")
    print("step  lr      mean return  95% CI" + ("                success rate  95% CI" if success else ""))
    for k, mean, low, high in zip(data["steps"], data["mean"], data["ci_low"], data["ci_high"], strict=True):
        lr = "-" if lrs[k] is None else f"{lrs[k]:g}"
        line = f"{k:>4}  {lr:<6}  {mean:11.2f}  {f'[{low:.2f}, {high:.2f}]':<20}"
        if success:
            rate, low, high = success["mean"][k], success["ci_low"][k], success["ci_high"][k]
            line += f"  {rate:12.2f}  [{max(low, 0.0):.2f}, {min(high, 1.0):.2f}]"
        print(line.rstrip())
    for name, ref in data.get("references", {}).items():
        print(f"reference {name}: {ref['mean']:.2f} [{ref['ci_low']:.2f}, {ref['ci_high']:.2f}]")
    for name, group in data.get("by_group", {}).items():
        after = " / ".join(f"{m:.1f}" for m in group["mean"])
        rates = group.get("success_rate")
        rate_text = f"; success {' / '.join(f'{r:.2f}' for r in rates)}" if rates else ""
        tasks = f"{group['tasks']} task" + ("s" if group["tasks"] != 1 else "")
        print(f"{name} ({tasks}): return after 0..{len(group['mean']) - 1} steps {after}{rate_text}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    filmed: list[tuple[Any, Sequence[Task], list[Any]]] = []
    try:
        if args.choose_lr and args.lrs is not None:
            raise ValueError("--choose-lr chooses the learning rate that --lrs would set: give one of them")
        if args.video and args.video > args.num_tasks:
            raise ValueError(f"--video {args.video}: only {args.num_tasks} held-out tasks are evaluated")
        cfg, state, ckpt, default_out = load_source(args.source, args.random, args.trust_env_module)
        out = check_writable_folder(args.out or default_out)  # before the work, not after it
        check_memory(cfg)
        if args.video:
            check_video_format(args.video_format)
        if args.video:
            load_agents()  # the installed task families, whose ids the check resolves
            check_renderable(check_env_id(cfg.env_id))
        if args.video and cfg.algorithm == "oracle" and not args.random:
            raise ValueError("--video: an oracle's policy sees task features the rendering env does not give it")
        settings = EvaluationSettings(
            num_tasks=args.num_tasks,
            num_steps=args.num_steps,
            episodes_per_step=cfg.episodes_per_task if args.episodes_per_step is None else args.episodes_per_step,
            step_budget=args.step_budget,
            budget_lanes=args.budget_lanes,
            lrs=args.lrs if args.lrs is not None else (cfg.fast_lr, cfg.fast_lr / 2),
            lr_grid=tuple(args.choose_lr or ()),
            seed=args.seed,
        )
        torch.set_num_threads(args.threads or cfg.num_threads)
        start = time.perf_counter()
        results = evaluate(
            cfg,
            state,
            settings,
            random=args.random,
            label=args.label,
            source=str(ckpt or args.source),
            on_adapted=(lambda *shot: filmed.append(shot)) if args.video else None,
        )
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, TypeError, RenderError, EnvFaultError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_message(exc, option='--out')}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    stem = "adaptation_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in results.name)
    try:
        json_path = results.save(out / f"{stem}.json")
        png_path = plot_adaptation([results], out / f"{stem}.png")
        group_png = plot_groups(results, out / f"{stem}_by_group.png") if len(set(results.groups)) > 1 else None
    except OSError as exc:
        print(f"error: {os_error_message(exc, option='--out')}", file=sys.stderr)
        return 2
    videos: list[Path] = []
    if args.video:
        use_headless_gl()
        policy, tasks, params = filmed[-1]
        try:
            videos = adaptation_videos(
                cfg.env_id,
                policy,
                list(tasks)[: args.video],
                params,
                out,
                horizon=cfg.horizon,
                env_kwargs=cfg.env_kwargs,
                video_format=args.video_format,
                size=args.video_size,
                seed=settings.seed,
            )
        except (RenderError, OSError) as exc:
            message = os_error_message(exc, option="--out") if isinstance(exc, OSError) else str(exc)
            print(f"error: {message} (the results are written: {json_path})", file=sys.stderr)
            return 2
    _print_summary(results, cfg.env_id, settings, seconds)
    print(f"results: {json_path}\nfigure:  {png_path}")
    if group_png is not None:
        print(f"figure:  {group_png} (per task group)")
    for path in videos:
        print(f"video:   {path}")
    return 0
