"""Evaluate adaptation on held-out tasks: ``python scripts/evaluate.py SOURCE [options]``.

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
computed on the same tasks, written beside the curve and drawn as dashed lines.

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

import agents
import envs  # noqa: F401  (registers the task environments)
from agents.policies import Params, Policy
from metarl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from metarl.cli import ArgumentParser
from metarl.config import ConfigError, TrainConfig, config_from_dict, load_config
from metarl.episodes import Episodes
from metarl.evaluation import (
    AdaptationResults,
    EvaluationSettings,
    evaluation_streams,
    heldout_tasks,
    reference_returns,
    run_evaluation,
)
from metarl.figures import plot_adaptation
from metarl.memory import restart_with_tuned_malloc
from metarl.registry import check_env_id, check_trusted_env_id, make_batched, registered_return_bounds
from metarl.run_folder import CONFIG_FILE, EVAL_DIR
from metarl.sampling import Sampler
from metarl.tasks import Task
from metarl.video import (
    FORMATS,
    RenderError,
    adaptation_videos,
    check_renderable,
    check_video_format,
    use_headless_gl,
)

log = logging.getLogger("metarl")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one learning rate")
    return values


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) >= 16 and int(height) >= 16):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 240x180 (each at least 16), got {text!r}")
    return int(width), int(height)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run folder or checkpoint file (with --random also a preset name or YAML)")
    p.add_argument("--random", action="store_true", help="evaluate a fresh, untrained policy of SOURCE's architecture")
    p.add_argument("--num-tasks", type=int, default=40, help="held-out tasks (default 40)")
    p.add_argument("--num-steps", type=int, default=3, help="inner gradient steps K (default 3)")
    p.add_argument("--episodes-per-step", type=int, default=None,
                   help="episodes per task and step (default: the run's episodes_per_task, as it trained)")
    p.add_argument("--step-budget", action="store_true",
                   help="each of a task's episodes-per-step sub-environments runs episodes back to back "
                        "for the horizon (the MAML paper code's sampling)")
    p.add_argument("--budget-lanes", type=int, default=0,
                   help="with --step-budget: sub-environments sharing each task's budget of episodes-per-step x "
                        "horizon steps; must divide episodes-per-step (1: one per task, the paper code's sampler; "
                        "default 0: one per episode)")
    p.add_argument("--lrs", type=_floats, default=None,
                   help="inner learning rate per step, the last repeats (default: the run's fast_lr, then half "
                        "of it — 0.1,0.05 for 2d-navigation, as in the MAML paper)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed: tasks, rollouts, random init (default 0)")
    p.add_argument("--label", default="", help="legend name (default: the method)")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/eval, or runs/eval for a preset)")
    p.add_argument("--threads", type=int, help="torch threads (default: the run's num_threads)")
    p.add_argument("--video", type=int, default=0, metavar="N",
                   help="also write videos of the first N held-out tasks adapting (default 0: none)")
    p.add_argument("--video-format", choices=FORMATS, default="gif", help="gif (default) or mp4 (the video extra)")
    p.add_argument("--video-size", type=_size, default=(240, 180), metavar="WxH",
                   help="size of one panel of a video (default 240x180)")
    p.add_argument("--trust-env-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE if SOURCE's env id names it (a run folder's or checkpoint's config "
                        "imports no module unless you vouch for it); repeatable")
    return p


def load_source(
    source: str, random: bool, trust_env_modules: Sequence[str] = ()
) -> tuple[TrainConfig, dict[str, Any] | None, Path | None, Path]:
    """``(config, checkpoint state or None, checkpoint path or None, default output folder)`` of SOURCE.

    A run folder's or checkpoint's env id that would import a module not in
    ``trust_env_modules`` is a :class:`TaskEnvError` (:func:`check_trusted_env_id`).
    """
    path = Path(source)
    if path.is_dir():
        cfg = load_config(path / CONFIG_FILE)
        check_trusted_env_id(cfg.env_id, trust_env_modules, f"run folder {path}")
        ckpt = latest_checkpoint(path)
        if ckpt is None and not random:
            raise FileNotFoundError(f"{path} holds no checkpoint (checkpoints/iter_*.pt); train it first")
        return cfg, (None if random else load_checkpoint(ckpt)), (None if random else ckpt), path / EVAL_DIR
    if path.is_file() and path.suffix == ".pt":
        state = load_checkpoint(path)
        cfg = config_from_dict(state["config"], source=str(path))
        check_trusted_env_id(cfg.env_id, trust_env_modules, f"checkpoint {path}")
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
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
    on_adapted: Callable[[Policy, Sequence[Task], list[Params]], None] | None = None,
) -> AdaptationResults:
    """Evaluate the policy in ``state`` (or a fresh one with ``random``) as ``cfg.algorithm`` prescribes.

    ``on_adapted(policy, tasks, params)`` (if given) receives the policy, the held-out tasks and
    the per-task parameters before adaptation and after each step (to film them).
    """
    method = "random" if random else cfg.algorithm
    algorithm = "maml-trpo" if random else cfg.algorithm  # a random policy sees plain observations
    check_env_id(cfg.env_id)
    sampling = settings.sampling()
    base = make_batched(cfg.env_id, sampling.num_envs, max_episode_steps=cfg.horizon, **cfg.env_kwargs)
    env = agents.observation_env(algorithm, base)
    tasks = heldout_tasks(env.sample_tasks, settings.num_tasks, settings.seed)
    torch.manual_seed(evaluation_streams(settings.seed).torch_seed)  # a random policy's init
    policy: Policy = agents.policy_for(cfg, env)
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
    advantage = agents.AdvantageSettings.from_config(cfg)
    step = agents.MetaUpdateSettings.from_config(cfg).adaptation_step()  # the inner step the run trained with
    sampler = Sampler.from_settings(env, policy, sampling)

    def adapt(sampler: Sampler, rng: np.random.Generator, lrs: Sequence[float]) -> list[Episodes]:
        batch = agents.sample_adaptation(policy, sampler, rng, lrs, advantage, step=step)
        if on_adapted is not None:
            on_adapted(policy, tasks, batch.params)
        return batch.episodes

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
                "return_bounds": [None if not np.isfinite(b) else b
                                  for b in registered_return_bounds(check_env_id(cfg.env_id), cfg.horizon)],
            },
            on_episodes=on_episodes,
            references=reference_returns(base, tasks, cfg.horizon, settings.seed),
        )
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    filmed: list[tuple[Policy, Sequence[Task], list[Params]]] = []
    try:
        if args.video and args.video > args.num_tasks:
            raise ValueError(f"--video {args.video}: only {args.num_tasks} held-out tasks are evaluated")
        cfg, state, ckpt, default_out = load_source(args.source, args.random, args.trust_env_module)
        if args.video:
            check_video_format(args.video_format)
        if args.video:
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
            seed=args.seed,
        )
        torch.set_num_threads(args.threads or cfg.num_threads)
        start = time.perf_counter()
        results = evaluate(
            cfg, state, settings, random=args.random, label=args.label, source=str(ckpt or args.source),
            on_adapted=(lambda *shot: filmed.append(shot)) if args.video else None,
        )
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, TypeError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    out = args.out or default_out
    stem = "adaptation_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in results.name)
    json_path = results.save(out / f"{stem}.json")
    png_path = plot_adaptation([results], out / f"{stem}.png")
    videos: list[Path] = []
    if args.video:
        use_headless_gl()
        policy, tasks, params = filmed[-1]
        try:
            videos = adaptation_videos(cfg.env_id, policy, list(tasks)[: args.video], params, out,
                                       horizon=cfg.horizon, env_kwargs=cfg.env_kwargs,
                                       video_format=args.video_format, size=args.video_size, seed=settings.seed)
        except RenderError as exc:
            print(f"error: {exc} (the results are written: {json_path})", file=sys.stderr)
            return 2
    data = results.to_json()
    lrs = [None, *data["settings"]["step_lrs"]]
    print(f"{results.name} on {cfg.env_id}: {settings.num_tasks} held-out tasks (seed {settings.seed}), "
          f"{settings.episodes_per_step} episodes per step, {results.env_steps} env steps in {seconds:.1f} s")
    print("step  lr      mean return  95% CI")
    for k, mean, low, high in zip(data["steps"], data["mean"], data["ci_low"], data["ci_high"], strict=True):
        lr = "-" if lrs[k] is None else f"{lrs[k]:g}"
        print(f"{k:>4}  {lr:<6}  {mean:11.2f}  [{low:.2f}, {high:.2f}]")
    for name, ref in data.get("references", {}).items():
        print(f"reference {name}: {ref['mean']:.2f} [{ref['ci_low']:.2f}, {ref['ci_high']:.2f}]")
    print(f"results: {json_path}\nfigure:  {png_path}")
    for path in videos:
        print(f"video:   {path}")
    return 0


if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/memory.py)
    sys.exit(main())
