"""The Ray sampler: the same episodes as the local sampler, through worker deaths; clear start-up errors.

The tests that need Ray share one local instance (``ray.init(num_cpus=2)``) and skip
when Ray is not installed (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import agents
import envs  # noqa: F401
from agents import make_sampler
from agents.policies import GaussianMLPPolicy
from metarl import make_batched
from metarl.config import ConfigError, load_config, save_config
from metarl.runs.checkpoint import list_checkpoints, load_checkpoint
from metarl.runs.folder import load_run_config
from metarl.sampling import Sampler, Shard, draw_phase_key
from metarl.sampling.ray_sampler import RaySampler, ShardEnvFactory, ShardWorker
from metarl.tasks.oracle import TaskFeatureObservation
from metarl.training.trainer import train

HAS_RAY = importlib.util.find_spec("ray") is not None
requires_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed (pip install -e ".[ray]")')
FIELDS = (
    "observations",
    "actions",
    "rewards",
    "mask",
    "lengths",
    "terminated",
    "truncated",
    "nonfinite",
    "final_observations",
)
NAV = "metarl/Navigation2D-v0"
REPO = Path(__file__).resolve().parents[2]


def assert_same_episodes(a, b) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def small_config(tmp_path: Path, *overrides: str):
    return load_config(
        None,
        [
            "--meta_batch_size",
            "3",
            "--episodes_per_task",
            "4",
            "--horizon",
            "20",
            "--hidden_sizes",
            "16",
            "--num_iterations",
            "2",
            "--tensorboard",
            "false",
            "--out_dir",
            str(tmp_path),
            *overrides,
        ],
    )


# ------------------------------------------------------------------------ without a Ray instance


def test_config_validates_the_sampler_fields() -> None:
    assert load_config(None, ["--sampler", "ray", "--num_workers", "4", "--ray_address", "10.0.0.5:6379"])
    for address in ("auto", "ray://head.example:10001", "head:6379"):
        assert load_config(None, ["--ray_address", address]).ray_address == address
    for args, name in (
        (["--sampler", "dask"], "sampler"),
        (["--num_workers", "0"], "num_workers"),
        (["--ray_address", "10.0.0.5"], "ray_address"),
        (["--ray_address", "head:99999"], "ray_address"),
        (["--ray_address", "http://head:6379"], "ray_address"),
    ):
        with pytest.raises(ConfigError, match=name) as info:
            load_config(None, args)
        assert info.value.field == name


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    cfg = small_config(tmp_path, "--sampler", "ray")
    env = make_batched(NAV, 12, max_episode_steps=20)
    with pytest.raises(ConfigError, match=r"'sampler'.*not installed.*pip install .*\.\[ray\]") as info:
        make_sampler(cfg, env, GaussianMLPPolicy(2, 2, (8,)))
    assert info.value.field == "sampler"


def test_a_worker_body_samples_its_shard_as_the_local_sampler_does() -> None:
    """ShardWorker (the actor's body) rebuilt from its factory, here in-process: its part of the local batch."""
    env, policy, tasks, factory = nav_setup()
    local = Sampler(env, policy, 3, 5)
    local.set_tasks(tasks)
    params = {n: p + 0.1 * torch.randn(3, *p.shape[1:]) for n, p in policy.task_params(3).items()}
    expected = local.sample(params, np.random.default_rng(4))
    threads = torch.get_num_threads()
    try:
        worker = ShardWorker(factory, policy, num_envs=6)
        part, seconds = worker.sample(tasks, params, 5, Shard(4, 10), draw_phase_key(np.random.default_rng(4)))
    finally:
        torch.set_num_threads(threads)
    assert seconds > 0 and part.shard == Shard(4, 10)
    flat = expected.actions.reshape(expected.horizon, 15, -1)
    assert np.array_equal(part.actions, flat[:, 4:10].numpy())
    assert np.array_equal(part.lengths, expected.lengths.reshape(15)[4:10].numpy())


def test_worker_env_factory_rebuilds_the_trainers_env(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "--algorithm", "oracle")
    env = agents.observation_env(cfg.algorithm, make_batched(NAV, 12, max_episode_steps=cfg.horizon))
    factory = ShardEnvFactory.for_config(cfg, env)
    assert factory.task_features and factory.modules == ("envs.navigation",) and factory.max_episode_steps == 20
    shard_env = factory(5)
    assert isinstance(shard_env, TaskFeatureObservation) and shard_env.num_envs == 5
    assert shard_env.single_observation_space == env.single_observation_space


def test_a_run_can_be_resumed_on_another_sampling_backend(tmp_path: Path) -> None:
    save_config(small_config(tmp_path), tmp_path / "run" / "config.yaml")
    cfg = load_run_config(tmp_path / "run", ["--sampler", "ray", "--num_workers", "3", "--ray_address", "auto"])
    assert (cfg.sampler, cfg.num_workers, cfg.ray_address) == ("ray", 3, "auto")


@requires_ray
def test_unreachable_cluster_is_a_clear_error_at_start_up(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import ray

    spec = importlib.util.spec_from_file_location("metarl_train_script_ray", REPO / "scripts" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert not ray.is_initialized()
    start = time.perf_counter()
    code = script.main(
        [
            "--config",
            "2d-navigation",
            "--out_dir",
            str(tmp_path),
            "--num_iterations",
            "1",
            "--sampler",
            "ray",
            "--ray_address",
            "127.0.0.1:1",
            "--no-progress",
        ]
    )
    assert code == 2 and time.perf_counter() - start < 60
    err = capsys.readouterr().err
    assert "ray_address" in err and "cannot reach a Ray cluster at '127.0.0.1:1'" in err and "ray start --head" in err
    assert not any(tmp_path.iterdir())  # nothing written
    assert not ray.is_initialized()


# ------------------------------------------------------------------------ on a local Ray instance


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class ExitOnMarker(GaussianMLPPolicy):
    """A Gaussian policy whose process exits when it finds (and takes) a marker file: a worker crash."""

    marker: str = ""

    def actions_from_noise(self, obs, params, noise):
        if self.marker and os.path.exists(self.marker):
            try:
                os.remove(self.marker)
            except FileNotFoundError:  # the other worker took it
                pass
            else:
                os._exit(1)
        return super().actions_from_noise(obs, params, noise)


def nav_setup(num_tasks: int = 3, episodes: int = 5, horizon: int = 30):
    env = make_batched(NAV, num_tasks * episodes, max_episode_steps=horizon)
    torch.manual_seed(0)
    policy = ExitOnMarker(2, 2, (16,))
    tasks = env.sample_tasks(num_tasks, np.random.default_rng(0))
    factory = ShardEnvFactory(NAV, max_episode_steps=horizon, modules=("envs.navigation",))
    return env, policy, tasks, factory


@requires_ray
def test_ray_equals_local_also_when_workers_die(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shards cut through a task; a worker exits mid-phase, another is killed mid-phase: same episodes."""
    import ray

    env, policy, tasks, factory = nav_setup()
    policy.marker = str(tmp_path / "exit-now")
    local = Sampler(env, policy, 3, 5)
    local.set_tasks(tasks)
    sampler = RaySampler(env, policy, 3, 5, env_factory=factory, num_workers=2)
    try:
        assert [(s.start, s.stop) for s in sampler.shards] == [(0, 8), (8, 15)]  # task 1 is split
        sampler.set_tasks(tasks)
        params = {n: p + 0.1 * torch.randn(3, *p.shape[1:]) for n, p in policy.task_params(3).items()}
        phases = [np.random.default_rng(seed) for seed in (1, 2, 3)]
        expected = [local.sample(params, np.random.default_rng(seed)) for seed in (1, 2, 3)]

        assert_same_episodes(sampler.sample(params, phases[0]), expected[0])

        # a worker process exits while sampling
        (tmp_path / "exit-now").touch()
        assert_same_episodes(sampler.sample(params, phases[1]), expected[1])
        assert sampler.stats.resampled_shards == 1 and sampler.stats.replaced_workers == 1
        assert not (tmp_path / "exit-now").exists()

        # worker 0 is killed once its shard has been submitted
        real_wait, victim = ray.wait, sampler.workers[0]

        def wait_after_kill(*args, **kwargs):
            if victim is sampler.workers[0]:
                ray.kill(victim)
            return real_wait(*args, **kwargs)

        monkeypatch.setattr(ray, "wait", wait_after_kill)
        with caplog.at_level("WARNING", logger="metarl"):
            assert_same_episodes(sampler.sample(params, phases[2]), expected[2])
        assert sampler.stats.resampled_shards == 2 and sampler.stats.replaced_workers == 2
        assert "worker 0 died while sampling shard 0" in caplog.text
    finally:
        sampler.close()
    assert sampler.workers == []


STEP_BUDGET_ANT = [
    "--env_id",
    "metarl/AntVel-v1",
    "--env_kwargs",
    "{nthread: 1}",
    "--horizon",
    "150",
    "--step_budget",
    "true",
    "--budget_lanes",
    "2",
    "--cg_iters",
    "3",
]


@requires_ray
@pytest.mark.parametrize("case", ["navigation", "ant-step-budget"])
def test_training_with_ray_equals_local_training(local_ray: None, tmp_path: Path, case: str) -> None:
    """Same seed, same metrics and parameters: 2 meta-iterations, adapted per-task parameters sent to workers.

    With a step budget on an ant, whose episodes end early, shared by 2 sub-environments per task,
    the shards' episode rows are assembled into the same padded batch as the local sampler's.
    """
    runs = {}
    extra = STEP_BUDGET_ANT if case == "ant-step-budget" else []
    for backend in ("local", "ray"):
        cfg = small_config(tmp_path, "--sampler", backend, "--num_workers", "2", "--run_name", backend, *extra)
        runs[backend] = train(cfg, agents.build_learner, progress=False)
    rows = {}
    for backend, run_dir in runs.items():
        with open(run_dir / "metrics.csv") as f:
            rows[backend] = [
                {k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k} for row in csv.DictReader(f)
            ]
    assert len(rows["local"]) == 2 and rows["local"] == rows["ray"]
    if case == "ant-step-budget":  # episodes did end early and were refilled: more than 4 per task
        assert all(float(row["episodes_before"]) > 4 for row in rows["local"])
    params = [load_checkpoint(list_checkpoints(run)[-1][1])["learner"]["policy"] for run in runs.values()]
    assert all(torch.equal(params[0][name], params[1][name]) for name in params[0])


@pytest.mark.slow
def test_metarl_imports_and_trains_locally_without_ray() -> None:
    import subprocess

    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import agents, envs, metarl, metarl.sampling.ray_sampler, metarl.training.trainer\n"
        "from metarl.config import load_config\n"
        "cfg = load_config(None, ['--meta_batch_size', '2', '--episodes_per_task', '2'])\n"
        "env = metarl.make_batched(cfg.env_id, 4, max_episode_steps=5)\n"
        "print(type(agents.build_learner(cfg, env).sampler).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Sampler"
