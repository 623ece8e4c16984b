"""Train and evaluate a row's seeds and baselines: side by side on this machine, or as Ray tasks.

Each seed is the shipped preset changed only in its seed, its folder and its thread
counts; a seed whose folder already holds a run is resumed, one that finished is not
trained again, and an evaluation already made of the final checkpoint by the row's
protocol is kept. A *job* is the chain of commands of one seed (or baseline): train,
then evaluate — run as ``python -m metarl train`` and ``python -m metarl evaluate`` processes, each
with ``threads`` torch threads and as many MuJoCo threads, so that ``parallel`` jobs share
the cores deliberately. Their output goes to ``<row>/logs/<job>.log``; a progress bar per
job follows its ``metrics.csv``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from metarl.reproduction.layout import (
    preset_config,
    pretrained_dir,
    random_results,
    results_file,
    row_dir,
    seed_dir,
)
from metarl.reproduction.rows import BASELINE_LR_GRID, EVAL_SEED, NUM_STEPS, NUM_TASKS, PaperRow
from metarl.reproduction.summary import episodes_per_step, read_evaluation
from metarl.runs.checkpoint import list_checkpoints
from metarl.runs.folder import METRICS_FILE, holds_a_run
from metarl.runs.lock import run_folder_holder

REPOSITORY = Path(__file__).resolve().parents[2]
"""The checkout whose ``scripts/`` the jobs run."""
LOG_DIR = "logs"


@dataclass
class Job:
    """One seed or baseline of a row: its commands, planned when the job starts and run one after the other.

    Args:
        name: ``<row> seed1``, ``<row> pretrained``, ``<row> random``.
        plan: returns the command lines left to run (empty: nothing to do); called when the job
            starts, after any other training holding ``run_dir`` has ended.
        run_dir: the run folder whose ``metrics.csv`` shows its progress (``None``: no training).
        iterations: the run's ``num_iterations``.
        log: where the commands' output goes.
    """

    name: str
    plan: Callable[[], list[list[str]]]
    run_dir: Path | None
    iterations: int
    log: Path
    returncode: int | None = None
    last_line: str = field(default="", repr=False)
    waiting_for: str | None = field(default=None, repr=False)

    @property
    def commands(self) -> list[list[str]]:
        """The command lines the job would run now."""
        return self.plan()


def _command(name: str) -> list[str]:
    """The command line of ``metarl NAME`` run by this Python."""
    return [sys.executable, "-m", "metarl", name]


def _thread_options(row: PaperRow, threads: int, env_kwargs: dict) -> list[str]:
    options = ["--num_threads", str(threads)]
    if row.mujoco:
        kwargs = {**env_kwargs, "nthread": threads}
        options += ["--env_kwargs", yaml.safe_dump(kwargs, default_flow_style=True).strip()]
    return options


def _trained_iterations(run_dir: Path) -> int:
    found = list_checkpoints(run_dir) if run_dir.is_dir() else []
    return found[-1][0] if found else 0


def _evaluate_options(row: PaperRow, threads: int, choose_lr: bool = False) -> list[str]:
    options = [
        "--num-tasks",
        str(NUM_TASKS),
        "--num-steps",
        str(NUM_STEPS),
        "--seed",
        str(EVAL_SEED),
        "--episodes-per-step",
        str(episodes_per_step(row)),
        "--threads",
        str(threads),
    ]
    options += ["--choose-lr", ",".join(f"{lr:g}" for lr in BASELINE_LR_GRID)] if choose_lr else []
    return options + (["--step-budget"] if row.step_budget else [])


def _training_commands(
    row: PaperRow, run_dir: Path, overrides: list[str], iterations: int, method: str, threads: int
) -> list[list[str]]:
    """Train (or resume, or leave) ``run_dir``, then evaluate its final checkpoint unless that is done."""
    env_kwargs = dict(preset_config(row).env_kwargs)
    commands: list[list[str]] = []
    if holds_a_run(run_dir):
        if _trained_iterations(run_dir) < iterations:
            commands.append(
                [
                    *_command("train"),
                    "--resume",
                    str(run_dir),
                    "--no-progress",
                    *_thread_options(row, threads, env_kwargs),
                ]
            )
    else:
        commands.append(
            [
                *_command("train"),
                "--config",
                row.preset,
                *overrides,
                "--out_dir",
                str(run_dir.parent),
                "--run_name",
                run_dir.name,
                "--no-progress",
                *_thread_options(row, threads, env_kwargs),
            ]
        )
    baseline = method != "maml-trpo"
    grid = BASELINE_LR_GRID if baseline else ()
    done = read_evaluation(results_file(run_dir, method), row, episodes_per_step(row), grid)
    if commands or done is None or not done.protocol_ok or done.checkpoint_iteration != iterations:
        commands.append([*_command("evaluate"), str(run_dir), *_evaluate_options(row, threads, choose_lr=baseline)])
    return commands


def _random_commands(root: Path, row: PaperRow, threads: int) -> list[list[str]]:
    out = random_results(root, row)
    done = read_evaluation(out, row, episodes_per_step(row), BASELINE_LR_GRID)
    if done is not None and done.protocol_ok:
        return []
    options = _evaluate_options(row, threads, choose_lr=True)
    return [[*_command("evaluate"), row.preset, "--random", "--out", str(out.parent), *options]]


def plan(root: Path, row: PaperRow, seeds: Sequence[int], *, threads: int = 1, baselines: bool = True) -> list[Job]:
    """The jobs that bring ``row``'s reproduction under ``root`` to completion for ``seeds``.

    Args:
        root: the reproduction's root folder.
        row: the paper's row.
        seeds: the preset's seeds to train and evaluate.
        threads: torch and MuJoCo threads per job.
        baselines: also the pretrained baseline (seed 1) and the random initialisation.
    """
    logs = row_dir(root, row) / LOG_DIR
    iterations = preset_config(row).num_iterations
    jobs = [
        Job(
            f"{row.name} seed{s}",
            functools.partial(
                _training_commands, row, seed_dir(root, row, s), ["--seed", str(s)], iterations, "maml-trpo", threads
            ),
            seed_dir(root, row, s),
            iterations,
            logs / f"seed{s}.log",
        )
        for s in seeds
    ]
    if baselines:
        overrides = ["--seed", "1", "--algorithm", "pretrained", "--num_iterations", str(row.baseline_iterations)]
        jobs.append(
            Job(
                f"{row.name} pretrained",
                functools.partial(
                    _training_commands,
                    row,
                    pretrained_dir(root, row),
                    overrides,
                    row.baseline_iterations,
                    "pretrained",
                    threads,
                ),
                pretrained_dir(root, row),
                row.baseline_iterations,
                logs / "pretrained.log",
            )
        )
        jobs.append(
            Job(
                f"{row.name} random",
                functools.partial(_random_commands, root, row, threads),
                None,
                0,
                logs / "random.log",
            )
        )
    return jobs


def run_job(job: Job, poll: float = 10.0) -> tuple[int, str]:
    """Wait while another training holds the job's run folder, then plan and run its commands."""
    while job.run_dir is not None and (holder := run_folder_holder(job.run_dir)) is not None:
        job.waiting_for = holder
        time.sleep(poll)
    job.waiting_for = None
    return run_chain(job.plan(), job.log)


def run_chain(commands: Sequence[Sequence[str]], log: Path, cwd: Path = REPOSITORY) -> tuple[int, str]:
    """Run ``commands`` in order (stop at the first that fails), output appended to ``log``.

    Returns the last return code and the last line of output (a failing script's ``error:`` line).

    Args:
        commands: The command lines.
        log: The log file.
        cwd: Where they run.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if not commands:
        return 0, "nothing to do"
    code = 0
    for command in commands:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            code = subprocess.run(list(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            break
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def _metrics_rows(run_dir: Path | None) -> int:
    path = run_dir / METRICS_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return 0
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


class Progress:
    """One bar per job following its run folder's ``metrics.csv``; without bars, a line whenever a job's state
    changes.
    """

    def __init__(self, jobs: Sequence[Job], enabled: bool = True):
        self.jobs = jobs
        self.enabled = enabled
        self.states: dict[str, str] = {}
        self.bars = [
            tqdm(
                total=max(job.iterations, 1),
                desc=job.name,
                position=i,
                unit="it",
                disable=not enabled,
                dynamic_ncols=True,
                leave=True,
            )
            for i, job in enumerate(jobs)
        ]

    def update(self, started: Callable[[Job], bool]) -> None:
        """Move every bar to its job's iteration; say which jobs wait, run, evaluate, are done or failed."""
        for job, bar in zip(self.jobs, self.bars, strict=True):
            rows = _metrics_rows(job.run_dir)
            bar.n = job.iterations if job.returncode == 0 else min(rows, bar.total)
            if job.returncode is not None:
                state = "done" if job.returncode == 0 else "failed"
            elif job.waiting_for is not None:
                state = f"waiting for the training holding it (PID {job.waiting_for})"
            elif not started(job):
                state = "queued"
            else:
                state = "evaluating" if job.run_dir is None or rows >= job.iterations else "training"
            bar.set_postfix_str(state, refresh=False)
            bar.refresh()
            if not self.enabled and self.states.get(job.name) != state:
                print(
                    f"{time.strftime('%H:%M:%S')} {job.name}: {state}"
                    + (f" ({rows} of {job.iterations} iterations)" if job.run_dir is not None else ""),
                    flush=True,
                )
            self.states[job.name] = state

    def close(self) -> None:
        """Close the bars."""
        for bar in self.bars:
            bar.close()


def run_local(jobs: Sequence[Job], parallel: int, progress: bool = True, poll: float = 2.0) -> list[Job]:
    """Run ``jobs`` in order, ``parallel`` at a time on this machine; returns them with return codes set.

    Args:
        jobs: The jobs, in order.
        parallel: How many run at once.
        progress: Print each job's start and end.
        poll: Seconds between checks of the running jobs.
    """
    bars = Progress(jobs, progress)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = {pool.submit(run_job, job): job for job in jobs}
            pending = set(futures)
            while pending:
                finished, pending = concurrent.futures.wait(pending, timeout=poll)
                for future in finished:
                    job = futures[future]
                    job.returncode, job.last_line = future.result()
                bars.update(lambda j: _started(futures, j))
    finally:
        bars.update(lambda j: True)
        bars.close()
    return list(jobs)


def _started(futures: dict[concurrent.futures.Future, Job], job: Job) -> bool:
    """Whether ``job``'s future has started running."""
    return any(j is job and (f.running() or f.done()) for f, j in futures.items())


def run_on_ray(jobs: Sequence[Job], address: str, threads: int, progress: bool = True, poll: float = 5.0) -> list[Job]:
    """Run each job as a Ray task needing ``threads`` CPUs on the cluster at ``address``.

    The workers run the same checkout at the same path and see the reproduction's folder
    (a shared file system), as the Ray sampler's workers do; progress is read from there.

    Args:
        jobs: The jobs.
        address: The Ray cluster's address.
        threads: CPUs each job asks for.
        progress: Print each job's start and end.
        poll: Seconds between checks of the running jobs.
    """
    import ray  # the optional 'ray' extra

    ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False)
    remote: Any = ray.remote(num_cpus=threads, max_retries=0)(run_job)
    refs = {remote.remote(job): job for job in jobs}
    bars = Progress(jobs, progress)
    try:
        pending = list(refs)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1, timeout=poll)
            for ref in finished:
                job = refs[ref]
                job.returncode, job.last_line = ray.get(ref)
            bars.update(lambda j: True)
    finally:
        bars.close()
    return list(jobs)


__all__ = ["LOG_DIR", "REPOSITORY", "Job", "Progress", "plan", "run_chain", "run_job", "run_local", "run_on_ray"]
