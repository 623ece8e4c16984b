"""Fails loudly, loses nothing (issue 8), each promise checked on tiny real runs.

1. bad input: one clear error (exit 2, stderr) from ``scripts/train.py`` before anything is written;
2. numerical faults: broken sub-environments are ended, counted and masked out; a non-finite
   loss, gradient or CG step, or a line search outside the KL bound, keeps θ and logs it;
3. SIGTERM/SIGINT checkpoint the last completed iteration and exit 130; so does (then
   re-raising) any error in the loop; a crash mid-write leaves the previous checkpoint intact;
4. resume is exact: metrics and parameters bit-for-bit those of an uninterrupted run, on a
   deterministic family and on stochastic ones (whose batched envs depend on the reset seeds only);
5. checkpoints load with ``weights_only`` (no code runs); a bad one is a clear error on resume;
6. determinism: the same seed and config give identical metrics and parameters.

Determinism and threads: all runs here use ``num_threads 1``. On this 2-core machine the
2d-navigation preset (20 x 20 x 100 steps, 64x64 policy) also gave bit-identical parameters
after 3 iterations with 1 and with 2 torch threads, in separate processes; tiny runs like
these are too small for torch to split a reduction across threads at all.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
import envs  # noqa: F401  (registers the shipped families)
import metarl.learner.trpo as trpo
import metarl.training.trainer as trainer
from agents import maml_trpo
from agents.maml import sample_adaptation
from envs.navigation import BatchedNavigation2D, Navigation2DEnv, NavigationTask
from metarl.config import TrainConfig, load_config
from metarl.runs.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint
from metarl.runs.logs import read_metrics
from metarl.sampling import Sampler
from metarl.tasks.build import make_batched
from metarl.tasks.registry import register_task_env, task_env_ids, unregister_task_env
from metarl.training.run_state import initialise_learner

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--meta_batch_size",
    "4",
    "--episodes_per_task",
    "4",
    "--horizon",
    "20",
    "--hidden_sizes",
    "8,8",
    "--checkpoint_every",
    "1",
    "--tensorboard",
    "false",
    "--num_threads",
    "1",
    "--seed",
    "3",
]
REFERENCE_ITERATIONS = 8


def _load_train_script() -> Any:
    spec = importlib.util.spec_from_file_location("metarl_train_script_robustness", REPO / "scripts" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_script = _load_train_script()


def _train(out: Path, name: str, iterations: int, *extra: str) -> int:
    """``scripts/train.py`` with the tiny config into ``out/name``; its exit code."""
    argv = [*TINY, "--num_iterations", str(iterations), "--out_dir", str(out), "--run_name", name, *extra]
    return train_script.main([*argv, "--no-progress"])


def _resume(run_dir: Path, iterations: int, *extra: str) -> int:
    return train_script.main(["--resume", str(run_dir), "--num_iterations", str(iterations), *extra, "--no-progress"])


def _is_timing(name: str) -> bool:
    return name == "seconds_per_iteration" or name.endswith(("_seconds", "_per_s"))


def _metrics(run_dir: Path) -> list[dict[str, float | int]]:
    """The rows of ``metrics.csv`` without the wall-clock columns."""
    return [{k: v for k, v in row.items() if not _is_timing(k)} for row in read_metrics(run_dir)]


def _assert_same_metrics(run_a: Path, run_b: Path, iterations: int) -> None:
    """The first ``iterations`` rows of both runs' metrics agree exactly (wall-clock columns aside)."""
    a, b = _metrics(run_a), _metrics(run_b)
    assert len(a) == iterations and len(b) >= iterations, (len(a), len(b))
    for row_a, row_b in zip(a, b[:iterations], strict=True):
        diff = {k: (row_a.get(k), row_b.get(k)) for k in set(row_a) | set(row_b) if row_a.get(k) != row_b.get(k)}
        assert not diff, f"iteration {row_a['iteration']}: {diff}"


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Bitwise equality of nested checkpoint data (tensors: same dtype, shape and bits)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _assert_same_run_state(run_a: Path, run_b: Path, iteration: int) -> None:
    """The checkpoints of ``iteration`` agree on θ, every RNG state and the step count."""
    a = load_checkpoint(checkpoint_path(run_a, iteration))
    b = load_checkpoint(checkpoint_path(run_b, iteration))
    for key in ("iteration", "total_env_steps", "learner", "rng"):
        _assert_same(a[key], b[key], key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted tiny 2D-navigation run of 8 iterations, every checkpoint kept."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "KEEP_CHECKPOINTS", 100)
        assert _train(out, "ref", REFERENCE_ITERATIONS) == 0
    return out / "ref"


# ----------------------------------------------------------------------------- 1. bad input

BAD_COMMAND_LINES = [
    (["--config", "2d-navigaton"], "unknown preset '2d-navigaton'; valid presets (closest first): 2d-navigation"),
    (
        ["--env_id", "metarl/Navigation2d-v0"],
        "unknown task environment id 'metarl/Navigation2d-v0'. Did you mean 'metarl/Navigation2D-v0'",
    ),
    (
        ["--meta_batch_sise", "4"],
        "unknown key 'meta_batch_sise' (from --meta_batch_sise); did you mean meta_batch_size",
    ),
    (["--horizon", "ten"], "config field 'horizon': expected an integer, got 'ten'"),
    (["--fast_lr", "-0.1"], "config field 'fast_lr': must be > 0, got -0.1"),
    (["--meta_batch_size", "0"], "config field 'meta_batch_size': must be >= 1, got 0"),
    (["--horizon", "0"], "config field 'horizon': must be >= 1, got 0"),
    (["--max_kl", "nan"], "config field 'max_kl': must be a finite number"),
    (
        ["--env_kwargs", "{goal_radius: 0.1}"],
        "config field 'env_kwargs': metarl/Navigation2D-v1 rejects {'goal_radius': 0.1}: TypeError",
    ),
]

BAD_YAML = [
    ("horizon: [20, 30\n", "does not parse at line 2"),
    ("meta_batch_size: 4\nhorizn: 20\n", "unknown key 'horizn' (in "),
    ("fast_lr: fast\n", "config field 'fast_lr': expected a number, got 'fast' (in "),
    ("- just\n- a list\n", "must hold a mapping of settings, got list"),
]


def _assert_one_error(capsys: pytest.CaptureFixture[str], rc: int, expected: str) -> str:
    """Exit code 2 and one line on stderr holding ``expected``; returns that line."""
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("error: ") and expected in err, err
    assert err.strip().count("\n") == 0, err  # one line
    assert "run folder" not in out
    return err


@pytest.mark.parametrize(("argv", "expected"), BAD_COMMAND_LINES, ids=[a[0] for a, _ in BAD_COMMAND_LINES])
def test_bad_command_line_is_one_clear_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    out = tmp_path / "runs"
    rc = train_script.main([*TINY, *argv, "--out_dir", str(out), "--no-progress"])
    _assert_one_error(capsys, rc, expected)
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(("text", "expected"), BAD_YAML, ids=["parse", "key", "type", "not-a-mapping"])
def test_bad_yaml_file_is_one_clear_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "runs"
    rc = train_script.main(["--config", str(path), "--out_dir", str(out), "--no-progress"])
    assert str(path) in _assert_one_error(capsys, rc, expected)
    assert not out.exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_folder_holding_another_run_is_refused_unless_resuming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert _train(tmp_path, "run", 1) == 0
    before = _files(run_dir)
    capsys.readouterr()

    _assert_one_error(capsys, _train(tmp_path, "run", 1, "--seed", "9"), f"run folder {run_dir} already holds a run")
    assert _files(run_dir) == before  # untouched

    # the run's settings are fixed, apart from the resumable ones
    _assert_one_error(capsys, _resume(run_dir, 2, "--fast_lr", "0.2"), "cannot change fast_lr when resuming")
    _assert_one_error(capsys, _resume(run_dir, 2, "--out_dir", "elsewhere"), "cannot change out_dir when resuming")
    _assert_one_error(capsys, _resume(tmp_path / "nothing", 2), "is not a metarl run folder (no config.yaml)")
    assert _files(run_dir) == before

    # resuming is allowed, and a moved run folder resumes where it is now
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(run_dir, moved)
    assert _resume(moved, 2) == 0
    assert [r["iteration"] for r in read_metrics(moved)] == [0, 1]
    assert [i for i, _ in list_checkpoints(moved)] == [1, 2]
    assert _files(run_dir) == before  # the original folder is not written to


# ----------------------------------------------------------------------- 2. numerical faults

# sub-environment index -> (fault, step at which it happens)
FAULTS = {1: ("nan_obs", 3), 6: ("inf_reward", 5), 11: ("diverged", 2), 12: ("huge_obs", 4), 14: ("nan_reset", 0)}
FAULTY_ID = "test/FaultyNavigation-v0"


class FaultyNavigation(BatchedNavigation2D):
    """2D navigation whose sub-environments listed in ``FAULTS`` break at a fixed step.

    Faults: a NaN observation, an infinite reward, ``info["diverged"]`` (what a physics
    engine reports on instability), an observation beyond float32's range, a NaN
    observation at reset. Goals lie far from the start, so no episode ends before its fault.
    """

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[NavigationTask]:
        goals = rng.uniform(0.4, 0.5, size=(n, 2)) * rng.choice([-1.0, 1.0], size=(n, 2))
        return [NavigationTask(goal=(float(x), float(y))) for x, y in goals]

    def _reset_subenvs(self, indices: np.ndarray, seeds: list[int | None]) -> np.ndarray:
        obs = super()._reset_subenvs(indices, seeds).copy()
        for i, (kind, _) in FAULTS.items():
            if kind == "nan_reset" and i < self.num_envs:
                obs[i] = np.nan
        return obs

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, info = super()._step_all(actions)
        obs, reward = obs.astype(np.float64), np.array(reward, np.float64)
        diverged = np.zeros(self.num_envs, bool)
        for i, (kind, step) in FAULTS.items():
            if i >= self.num_envs or self._elapsed[i] != step:
                continue
            if kind == "nan_obs":
                obs[i, 0] = np.nan
            elif kind == "inf_reward":
                reward[i] = np.inf
            elif kind == "diverged":
                diverged[i] = True
            elif kind == "huge_obs":
                obs[i, 1] = 1e39  # finite in float64, inf in float32
        return obs, reward, terminated, {**info, "diverged": diverged}


@pytest.fixture
def faulty_id() -> Iterator[str]:
    register_task_env(
        FAULTY_ID, entry_point=Navigation2DEnv, batched_entry_point=FaultyNavigation, max_episode_steps=100
    )
    yield FAULTY_ID
    if FAULTY_ID in task_env_ids():
        unregister_task_env(FAULTY_ID)


def test_sampler_ends_and_counts_broken_subenvs_and_masks_them_out(
    faulty_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    horizon, num_tasks, per_task = 20, 4, 4
    env = make_batched(faulty_id, num_tasks * per_task, max_episode_steps=horizon)
    torch.manual_seed(0)
    policy = agents.make_policy(env.single_observation_space, env.single_action_space, (8, 8))
    sampler = Sampler(env, policy, num_tasks, per_task)
    sampler.set_tasks(env.sample_tasks(num_tasks, np.random.default_rng(0)))
    with caplog.at_level(logging.WARNING, logger="metarl"):
        episodes = sampler.sample(policy.task_params(num_tasks), np.random.default_rng(1))

    flat = {
        name: getattr(episodes, name).reshape(num_tasks * per_task)
        for name in ("lengths", "nonfinite", "terminated", "truncated")
    }
    mask = episodes.mask.reshape(horizon, -1)
    broken, healthy = list(FAULTS), [i for i in range(num_tasks * per_task) if i not in FAULTS]
    assert flat["lengths"][broken].tolist() == [step for _, step in FAULTS.values()]  # ended before the fault
    assert flat["nonfinite"].tolist() == [i in FAULTS for i in range(num_tasks * per_task)]
    assert not (flat["terminated"] | flat["truncated"])[broken].any()  # neither a goal nor a time limit
    assert (flat["terminated"] | flat["truncated"])[healthy].all()
    assert (flat["lengths"][healthy] > max(step for _, step in FAULTS.values())).all()
    assert torch.equal(mask.sum(0).long(), flat["lengths"])
    assert torch.equal(mask, (torch.arange(horizon)[:, None] < flat["lengths"][None]).float())
    # nothing non-finite reaches the learner, and the dropped steps hold zeros
    for tensor in (episodes.observations, episodes.rewards, episodes.final_observations):
        assert torch.isfinite(tensor).all()
    assert episodes.rewards[episodes.mask == 0].eq(0).all()
    assert episodes.observations[episodes.mask == 0].eq(0).all()
    assert torch.isfinite(agents.AdvantageSettings().estimate(episodes)).all()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 episode(s) ended at reset" in messages and "at step 3" in messages and "non-finite" in messages


def test_training_on_broken_subenvs_counts_them_and_stays_finite(faulty_id: str, tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "--env_id", faulty_id, "--num_iterations", "2", "--out_dir", str(tmp_path)])
    run_dir = trainer.train(cfg, agents.build_learner, progress=False)
    rows = read_metrics(run_dir)
    assert len(rows) == 2
    for row in rows:
        assert row["nonfinite_episodes"] == 2 * len(FAULTS)  # before and after adaptation
        assert row["skipped_nonfinite"] == 0  # the faults never reached the update
        assert all(math.isfinite(v) for v in row.values()), row
    state = load_checkpoint(checkpoint_path(run_dir, 2))["learner"]
    assert all(torch.isfinite(t).all() for t in state["policy"].values())
    assert "non-finite observations/rewards or unstable physics" in (run_dir / "train.log").read_text()


def _learner_and_batch() -> tuple[maml_trpo.MAMLTRPO, Any]:
    cfg = TrainConfig(meta_batch_size=4, episodes_per_task=4, horizon=20, hidden_sizes=(8, 8), num_threads=1)
    env = make_batched(cfg.env_id, 16, max_episode_steps=cfg.horizon)
    torch.manual_seed(0)
    learner = agents.build_maml_trpo(cfg, env)
    rng = np.random.default_rng(0)
    learner.sampler.set_tasks(env.sample_tasks(4, rng))
    batch = sample_adaptation(learner.policy, learner.sampler, rng, learner.inner_lrs, learner.advantage)
    return learner, batch


def _theta(learner: maml_trpo.MAMLTRPO) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in learner.policy.state_dict().items()}


def _nan_outer_advantages(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    batch.advantages[-1] = torch.full_like(batch.advantages[-1], math.nan)


def _nan_inner_advantages(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    batch.advantages[0] = batch.advantages[0].clone()
    batch.advantages[0][0, 0, 0] = math.nan  # one step of one task: its adapted θ' is NaN


def _nan_cg_result(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        trpo,
        "conjugate_gradient_with_product",
        lambda matvec, b, *a, **k: (torch.full_like(b, math.nan), torch.full_like(b, math.nan)),
    )


@pytest.mark.parametrize(
    ("inject", "message"),
    [
        (_nan_outer_advantages, "non-finite loss or gradient"),
        (_nan_inner_advantages, "non-finite loss or gradient"),
        (_nan_cg_result, "non-finite conjugate-gradient step"),
    ],
    ids=["loss", "inner-loop", "cg"],
)
def test_nonfinite_update_is_skipped_and_keeps_theta(
    inject: Callable[[Any, pytest.MonkeyPatch], None],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    learner, batch = _learner_and_batch()
    before = _theta(learner)
    inject(batch, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="metarl"):
        metrics = learner.step(batch, np.random.default_rng(0))
    assert metrics["skipped_nonfinite"] == 1.0 and metrics["step_accepted"] == 0.0
    _assert_same(_theta(learner), before)
    assert any("meta-update skipped" in r.getMessage() and message in r.getMessage() for r in caplog.records)


def test_line_search_that_never_meets_the_kl_bound_keeps_theta(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    learner, batch = _learner_and_batch()
    before = _theta(learner)
    real_step = maml_trpo.natural_step
    kls: list[float] = []
    real_search = maml_trpo.backtracking_line_search

    def recording_search(evaluate: Callable, *args: Any, **kwargs: Any) -> Any:
        def spy(candidate: torch.Tensor) -> tuple[float, float]:
            loss, kl = evaluate(candidate)
            kls.append(kl)
            return loss, kl

        return real_search(spy, *args, **kwargs)

    # a step 1000x too long: even after 15 backtracks (0.8^14 ≈ 0.044) it is ~44x too long
    monkeypatch.setattr(maml_trpo, "natural_step", lambda *a, **k: 1000.0 * real_step(*a, **k))
    monkeypatch.setattr(maml_trpo, "backtracking_line_search", recording_search)
    with caplog.at_level(logging.WARNING, logger="metarl"):
        metrics = learner.step(batch, np.random.default_rng(0))
    assert len(kls) == learner.settings.ls_max_steps
    assert all(not kl <= learner.settings.max_kl for kl in kls)  # (NaN counts as outside too)
    assert metrics["step_accepted"] == 0.0 and metrics["skipped_nonfinite"] == 0.0
    assert metrics["ls_steps"] == learner.settings.ls_max_steps
    _assert_same(_theta(learner), before)
    assert any("line search found no improving step" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------- 3. interruption


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_last_iteration_exits_130_and_resumes_exactly(
    reference: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    run_dir = tmp_path / "sig"
    argv = [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        *TINY,
        "--num_iterations",
        "200",
        "--out_dir",
        str(tmp_path),
        "--run_name",
        "sig",
        "--no-progress",
    ]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_path(run_dir, 2).exists():  # two iterations done: stop in the third
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    found = list_checkpoints(run_dir)
    k = found[-1][0]
    rows = read_metrics(run_dir)
    assert 2 <= k < REFERENCE_ITERATIONS and len(rows) - 1 <= k <= len(rows)  # at most the iteration in progress lost
    assert load_checkpoint(found[-1][1])["iteration"] == k
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [p.name for _, p in found]  # no temp files
    assert f"{sig.name} received: wrote" in (run_dir / "train.log").read_text()

    assert _resume(run_dir, k + 1) == 0
    _assert_same_metrics(run_dir, reference, k + 1)
    _assert_same_run_state(run_dir, reference, k + 1)


@pytest.mark.slow
def test_error_in_the_loop_checkpoints_the_last_completed_iteration(reference: Path, tmp_path: Path) -> None:
    calls = 0

    def build(cfg: TrainConfig, env: Any) -> Any:
        learner = agents.build_learner(cfg, env)
        real = learner.train_iteration

        def flaky(tasks: Any, rng: np.random.Generator) -> dict[str, float]:
            nonlocal calls
            calls += 1
            metrics = real(tasks, rng)  # θ and the generators move on ...
            if calls == 3:
                raise RuntimeError("boom")  # ... and then the iteration dies
            return metrics

        learner.train_iteration = flaky
        return learner

    cfg = load_config(
        None,
        [*TINY, "--checkpoint_every", "10", "--num_iterations", "6", "--out_dir", str(tmp_path), "--run_name", "crash"],
    )
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(cfg, build, progress=False)
    run_dir = tmp_path / "crash"
    assert [i for i, _ in list_checkpoints(run_dir)] == [2]  # not due before iteration 10
    assert "training failed; wrote" in (run_dir / "train.log").read_text()
    assert _resume(run_dir, 4) == 0
    _assert_same_metrics(run_dir, reference, 4)
    _assert_same_run_state(run_dir, reference, 4)


@pytest.mark.slow
def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save

    def crashing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, f, *args, **kwargs)
        if obj["state"]["iteration"] >= 3:
            f.write(b"partial")
            raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    assert _train(tmp_path, "disk", 5) == 2  # one error: line (the OSError), the last checkpoint kept
    monkeypatch.undo()
    run_dir = tmp_path / "disk"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["iter_000001.pt", "iter_000002.pt"]
    assert load_checkpoint(checkpoint_path(run_dir, 2))["iteration"] == 2
    assert _resume(run_dir, 5) == 0
    _assert_same_metrics(run_dir, reference, 5)
    _assert_same_run_state(run_dir, reference, 5)


# ------------------------------------------------------------------ 4 and 6. exact resume, determinism


@pytest.mark.slow
def test_a_session_records_the_machine_and_the_precision_its_learner_computes_in(reference: Path) -> None:
    from metarl.runs.folder import read_sessions

    (session,) = read_sessions(reference)
    assert session["first_iteration"] == 0 and session["cpu"] and session["num_threads"] >= 1
    assert session["arithmetic"] == {"products": "fp32", "inner_step": "fp32"}  # 2d-navigation's fisher_precision


def test_same_seed_same_metrics_and_parameters(reference: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "again", 3) == 0
    _assert_same_metrics(tmp_path / "again", reference, 3)
    _assert_same_run_state(tmp_path / "again", reference, 3)
    assert _train(tmp_path, "other", 1, "--seed", "4") == 0  # the comparison has teeth
    assert _metrics(tmp_path / "other")[0] != _metrics(reference)[0]


RESUME_CASES = {
    "navigation": ["--env_id", "metarl/Navigation2D-v0"],
    # Fisher-vector products on a random half of the tasks (drawn from the env generator), 2 inner steps
    "navigation-subsample": ["--fvp_task_fraction", "0.5", "--num_inner_steps", "2", "--first_order"],
    "tabular-mdp": ["--env_id", "metarl/TabularMDP-v0"],
    "bandit": ["--env_id", "metarl/Bandit-K5-N10-v0", "--horizon", "10"],
    "half-cheetah": ["--env_id", "metarl/HalfCheetahVel-v0", "--cg_iters", "3"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_after_stop_equals_uninterrupted_run(tmp_path: Path, case: str) -> None:
    extra = RESUME_CASES[case]
    assert _train(tmp_path, "whole", 4, *extra) == 0
    assert _train(tmp_path, "split", 2, *extra) == 0
    assert _resume(tmp_path / "split", 4) == 0
    _assert_same_metrics(tmp_path / "split", tmp_path / "whole", 4)
    _assert_same_run_state(tmp_path / "split", tmp_path / "whole", 4)


@pytest.mark.slow
def test_resume_with_another_mujoco_thread_count_equals_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``env_kwargs``' nthread may change on resume (a machine with more cores), nothing else of it."""
    cheetah = ["--env_id", "metarl/HalfCheetahVel-v0", "--cg_iters", "3"]
    assert _train(tmp_path, "whole", 4, *cheetah, "--env_kwargs", "{nthread: 2}") == 0
    assert _train(tmp_path, "split", 2, *cheetah, "--env_kwargs", "{nthread: 1}") == 0
    capsys.readouterr()
    _assert_one_error(
        capsys,
        _resume(tmp_path / "split", 4, "--env_kwargs", "{nthread: 2, forward_reward_weight: 2.0}"),
        "cannot change env_kwargs when resuming",
    )
    assert _resume(tmp_path / "split", 4, "--env_kwargs", "{nthread: 2}") == 0
    _assert_same_metrics(tmp_path / "split", tmp_path / "whole", 4)
    _assert_same_run_state(tmp_path / "split", tmp_path / "whole", 4)


def _episode(env: Any, tasks: list[Any], seeds: list[int], actions: list[np.ndarray]) -> list[np.ndarray]:
    env.set_tasks(tasks)
    obs, _ = env.reset(seed=seeds)
    out = [np.array(obs)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out += [np.array(obs), np.array(reward), np.array(terminated), np.array(truncated)]
    return out


@pytest.mark.parametrize("env_id", [i for i in task_env_ids() if i.startswith("metarl/")])
def test_batched_env_episode_depends_only_on_its_reset_seeds(env_id: str) -> None:
    """No env-internal RNG state survives a seeded reset: the checkpointed env generator covers it."""
    # a bandit's episode length is the N of its id; 8 steps for the others
    horizon = gym.spec(env_id).max_episode_steps if env_id.startswith("metarl/Bandit") else 8
    fresh, used = make_batched(env_id, 4, max_episode_steps=horizon), make_batched(env_id, 4, max_episode_steps=horizon)
    rng = np.random.default_rng(0)
    tasks, other_tasks = fresh.sample_tasks(4, rng), fresh.sample_tasks(4, rng)
    fresh.action_space.seed(1)
    actions = [fresh.action_space.sample() for _ in range(8)]
    _episode(used, other_tasks, [7, 8, 9, 10], actions[:5])  # some history on one env only
    _episode(used, other_tasks, [1, 2, 3, 4], actions[::-1])
    a = _episode(fresh, tasks, [11, 12, 13, 14], actions)
    b = _episode(used, tasks, [11, 12, 13, 14], actions)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    fresh.close()
    used.close()


# ---------------------------------------------------------------------- 5. checkpoint errors


class _RunsCode:
    """Unpickling this would create a folder: a safe load must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a checkpoint" * 100)


def _unsafe(path: Path) -> None:
    torch.save({"format": "metarl-checkpoint", "version": 1, "state": {"x": _RunsCode(path.parent / "pwned")}}, path)


def _edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        state = load_checkpoint(path)
        edit(state)
        save_checkpoint(path, state)

    return damage


def _other_config(state: dict[str, Any]) -> None:
    state["config"]["hidden_sizes"] = [16, 16]


def _other_shape(state: dict[str, Any]) -> None:
    name = next(iter(state["learner"]["policy"]))
    state["learner"]["policy"][name] = torch.zeros(3, 3)


def _no_rng(state: dict[str, Any]) -> None:
    del state["rng"]


BAD_CHECKPOINTS = [
    (_truncate, "is corrupt or truncated"),
    (_garbage, "is corrupt or truncated"),
    (_unsafe, "holds objects that cannot be loaded safely (weights_only)"),
    (_edited(_other_config), "was written with a different config (hidden_sizes: (16, 16) there, (8, 8) here)"),
    (_edited(_other_shape), "does not fit this model"),
    (_edited(_no_rng), "is not a usable metarl training checkpoint: KeyError: 'rng'"),
]


@pytest.mark.parametrize(
    ("damage", "expected"), BAD_CHECKPOINTS, ids=["truncated", "garbage", "unsafe", "config", "shape", "no-rng"]
)
def test_bad_checkpoint_is_a_clear_error_on_resume(
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    expected: str,
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(reference, run_dir)
    latest = checkpoint_path(run_dir, REFERENCE_ITERATIONS)
    damage(latest)
    before = _files(run_dir)
    capsys.readouterr()
    rc = _resume(run_dir, REFERENCE_ITERATIONS + 1)
    assert str(latest) in _assert_one_error(capsys, rc, expected)  # names the file and the problem
    assert _files(run_dir) == before  # refused before anything was written
    assert not (run_dir / "checkpoints" / "pwned").exists()  # no code ran


def test_bad_checkpoint_error_names_the_file_the_problem_and_the_way_out(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(reference, run_dir)
    _truncate(checkpoint_path(run_dir, REFERENCE_ITERATIONS))
    capsys.readouterr()
    assert _resume(run_dir, REFERENCE_ITERATIONS + 1) == 2
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err
    assert f"delete it to resume from the previous checkpoint, iter_{REFERENCE_ITERATIONS - 1:06d}.pt" in err


# ------------------------------------------------------------------ starting a run from a checkpoint


def test_init_from_loads_the_checkpoints_policy_exactly(reference: Path) -> None:
    source = checkpoint_path(reference, 4)
    cfg = load_config(None, [*TINY, "--init_from", str(source)])
    env = make_batched(cfg.env_id, cfg.meta_batch_size * cfg.episodes_per_task, max_episode_steps=cfg.horizon)
    learner = agents.build_learner(cfg, env)
    fresh = {k: v.clone() for k, v in learner.state_dict()["policy"].items()}
    assert initialise_learner(cfg, learner) == source
    saved = load_checkpoint(source)["learner"]["policy"]
    loaded = learner.state_dict()["policy"]
    assert loaded.keys() == saved.keys()
    for name, value in saved.items():
        assert torch.equal(loaded[name], value), name
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)  # a real change from the fresh θ
    env.close()


@pytest.mark.slow
def test_run_started_from_a_run_folder_records_it_and_starts_afresh(reference: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "fresh", 1) == 0
    assert _train(tmp_path, "warm", 1, "--init_from", str(reference)) == 0
    warm, fresh = read_metrics(tmp_path / "warm"), read_metrics(tmp_path / "fresh")
    assert [row["iteration"] for row in warm] == [0]  # iterations start afresh
    assert warm[0]["total_env_steps"] == warm[0]["env_steps"]  # the step count starts afresh too
    assert warm[0]["return_before"] != fresh[0]["return_before"]  # same seed and tasks, another policy
    assert load_config(tmp_path / "warm" / "config.yaml").init_from == str(reference)
    latest = checkpoint_path(reference, REFERENCE_ITERATIONS)
    assert f"learner initialised from {latest}" in (tmp_path / "warm" / "train.log").read_text()


def test_run_started_from_a_checkpoint_resumes_after_the_source_moved(reference: Path, tmp_path: Path) -> None:
    """A committed run folder names its source by where it is now: resume loads its own checkpoint."""
    source = tmp_path / "source"
    shutil.copytree(reference, source)
    assert _train(tmp_path, "warm", 1, "--init_from", str(source)) == 0
    moved = tmp_path / "results" / "source"
    shutil.move(source, moved)
    config = tmp_path / "warm" / "config.yaml"
    config.write_text(config.read_text().replace(str(source), str(moved)))
    assert _resume(tmp_path / "warm", 2) == 0
    assert [row["iteration"] for row in read_metrics(tmp_path / "warm")] == [0, 1]
    assert "resumed" in (tmp_path / "warm" / "train.log").read_text()


@pytest.mark.parametrize(
    ("source", "extra", "expected"),
    [
        ("missing.pt", [], "no checkpoint file at"),
        ("empty", [], "the run folder holds no checkpoint"),
        (
            "reference",
            ["--hidden_sizes", "16,16"],
            "has another policy architecture (hidden_sizes: (8, 8) there, (16, 16) here)",
        ),
        (
            "reference",
            ["--nonlinearity", "relu"],
            "has another policy architecture (nonlinearity: 'tanh' there, 'relu' here)",
        ),
        ("reference", ["--env_id", "metarl/TabularMDP-v0"], "does not fit this model"),
    ],
    ids=["missing", "empty-folder", "hidden-sizes", "nonlinearity", "other-shapes"],
)
def test_bad_init_from_is_one_clear_error_before_anything_is_written(
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    extra: list[str],
    expected: str,
) -> None:
    (tmp_path / "empty").mkdir()
    path = reference if source == "reference" else tmp_path / source
    capsys.readouterr()
    rc = _train(tmp_path, "warm", 1, "--init_from", str(path), *extra)
    _assert_one_error(capsys, rc, expected)
    assert not (tmp_path / "warm").exists()
