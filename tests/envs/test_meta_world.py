"""Meta-World on MuJoCo 4: the compatibility patch, the task families, the expert check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

pytest.importorskip("metaworld", reason="the metaworld extra is not installed")

from envs.meta_world.compat import (  # noqa: E402
    REPLACED,
    WELD_ROW,
    MatrixQuaternion,
    matrix_quaternion,
    patch_metaworld,
    reset_mocap_welds,
)
from envs.meta_world.family import MetaWorldTask, MetaWorldTaskEnv, benchmark_tasks  # noqa: E402
from metarl.evaluation.results import task_to_json  # noqa: E402
from metarl.tasks.build import check_task_env, make_batched  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
_WELD_XML = """<mujoco><worldbody><body name='mocap' mocap='true' pos='0 0 1'/>
<body name='hand' pos='0.1 0 1'><freejoint/><geom size='.1' mass='1'/></body></worldbody>
<equality><weld body1='mocap' body2='hand' solref='0.02 1'/></equality></mujoco>"""


class _Env:
    def __init__(self) -> None:
        self.model = mujoco.MjModel.from_xml_string(_WELD_XML)


def _weld_trajectory(model: mujoco.MjModel) -> np.ndarray:
    data = mujoco.MjData(model)
    for t in range(200):
        data.mocap_pos[0] = [0.3 * np.sin(0.05 * t), 0.0, 1.0]
        mujoco.mj_step(model, data)
    return data.qpos.copy()


def test_the_weld_patch_writes_metaworlds_row_and_keeps_the_rest():
    env = _Env()
    compiled = env.model.eq_data.copy()
    reset_mocap_welds(env)
    assert env.model.eq_data.shape[1] == mujoco.mjNEQDATA >= len(WELD_ROW) == 11
    np.testing.assert_array_equal(env.model.eq_data[0, :11], WELD_ROW)
    np.testing.assert_array_equal(env.model.eq_data[0, 11:], compiled[0, 11:])
    # what the patch leaves alone does not move the weld: the same motion whatever it holds
    other = _Env()
    reset_mocap_welds(other)
    other.model.eq_data[0, 11:] = 1.0 - other.model.eq_data[0, 11:]
    np.testing.assert_array_equal(_weld_trajectory(env.model), _weld_trajectory(other.model))


def test_the_quaternion_stand_in_is_scipys_conversion_bit_for_bit():
    from scipy.spatial.transform import Rotation

    matrices = Rotation.random(4000, rng=1).as_matrix()
    branches = set()
    for m in matrices:
        np.testing.assert_array_equal(MatrixQuaternion.from_matrix(m).as_quat(), Rotation.from_matrix(m).as_quat())
        branches.add(int(np.argmax([m[0, 0], m[1, 1], m[2, 2], np.trace(m)])))
    assert branches == {0, 1, 2, 3}
    # not a proper orthonormal matrix: scipy's own answer (orthogonalised) or its error
    skewed = matrices[0] * 1.01
    assert matrix_quaternion(skewed) is None
    np.testing.assert_array_equal(
        MatrixQuaternion.from_matrix(skewed).as_quat(), Rotation.from_matrix(skewed).as_quat()
    )
    with pytest.raises(ValueError, match="determinant"):
        MatrixQuaternion.from_matrix(-matrices[0])
    assert matrix_quaternion(matrices[:2]) is None  # a stack of matrices goes to scipy


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["reach-v3", "pick-place-v3", "door-open-v3"])
def test_the_patched_quaternion_leaves_metaworlds_observations_unchanged(env_name):
    patch_metaworld()
    import metaworld
    from metaworld.policies import ENV_POLICY_MAP

    module = sys.modules[type(metaworld.MT1(env_name, seed=0).train_classes[env_name]()).__module__]
    assert module.Rotation is MatrixQuaternion

    def episode() -> np.ndarray:
        bench = metaworld.MT1(env_name, seed=0)
        env = bench.train_classes[env_name]()
        env.set_task(bench.train_tasks[0])
        policy = ENV_POLICY_MAP[env_name]()
        obs, _ = env.reset(seed=0)
        rows = [obs]
        for _ in range(150):
            obs, *_ = env.step(policy.get_action(obs))
            rows.append(obs)
        return np.array(rows)

    patched = episode()
    module.Rotation = REPLACED["Rotation"]
    try:
        original = episode()
    finally:
        module.Rotation = MatrixQuaternion
    np.testing.assert_array_equal(patched, original)
    assert np.ptp(patched[:, 7:11], axis=0).max() > 0 or env_name == "reach-v3"  # the quaternion moved


@pytest.mark.slow
def test_metaworld_builds_and_reads_contacts_on_this_mujoco():
    patch_metaworld()
    import metaworld
    from metaworld.policies import ENV_POLICY_MAP

    bench = metaworld.MT1("pick-place-v3", seed=0)
    env = bench.train_classes["pick-place-v3"]()
    env.set_task(bench.train_tasks[0])
    policy = ENV_POLICY_MAP["pick-place-v3"]()
    obs, _ = env.reset()
    pads = [env.data.geom(n).id for n in ("leftpad_geom", "rightpad_geom")]
    obj = env._get_id_main_object()
    touched = 0
    for _ in range(120):
        obs, *_ = env.step(policy.get_action(obs))
        force = np.zeros(6)
        pressed = []
        for pad in pads:
            total = 0.0
            for k in range(env.data.ncon):
                c = env.data.contact[k]
                if {int(c.geom1), int(c.geom2)} == {pad, obj}:
                    mujoco.mj_contactForce(env.model, env.data, k, force)
                    total += force[0]
            pressed.append(total > 0)
        assert env.touching_main_object == all(pressed)  # metaworld's contact reading = MuJoCo's contact force
        assert env.touching_main_object == REPLACED["touching_object"](env, obj)  # the fast patch = metaworld's own
        touched += all(pressed)
    assert touched > 20  # the expert grasps the object


@pytest.mark.slow
def test_ml1_is_a_task_distribution_with_metaworlds_train_and_test_tasks():
    check_task_env("metarl/ML1-v3", env_name="reach-v3")
    tasks = benchmark_tasks("ML1", "reach-v3", 0)
    assert len(tasks.train) == len(tasks.test) == 50
    assert not {t.rand_vec for t in tasks.train} & {t.rand_vec for t in tasks.test}
    env = MetaWorldTaskEnv("ML1", "reach-v3", split="test")
    env.reset(seed=3)
    drawn = env.sample_tasks(10)
    assert len(set(drawn)) == 10 and set(drawn) <= set(tasks.test)
    # a task survives a results file: JSON and back, the same episode
    restored = MetaWorldTask(**{k: tuple(v) if isinstance(v, list) else v for k, v in task_to_json(drawn[0]).items()})
    assert restored == drawn[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 4)).astype(np.float32)
    episodes = []
    for task in (drawn[0], drawn[1], restored):
        env.set_task(task)
        obs, _ = env.reset()
        assert obs.shape == (39,) and not obs[-3:].any()  # the goal is hidden
        episodes.append([env.step(a)[:2] for a in actions])
    rewards = [np.array([r for _, r in ep]) for ep in episodes]
    np.testing.assert_array_equal(rewards[0], rewards[2])
    assert not np.array_equal(rewards[0], rewards[1])
    from metarl.tasks.build import registered_return_bounds

    assert registered_return_bounds("metarl/ML1-v3", 500) == (0.0, 5000.0)  # rewards in [0, 10] per step
    with pytest.raises(ValueError, match="ML1 needs env_name"):
        MetaWorldTaskEnv("ML1", "no-such-v3")


@pytest.mark.slow
def test_ml10_holds_out_whole_environments_and_steps_batched():
    train = MetaWorldTaskEnv("ML10", None, split="train")
    test = MetaWorldTaskEnv("ML10", None, split="test")
    train_envs = {t.env_name for t in train.split_tasks}
    test_envs = {t.env_name for t in test.split_tasks}
    assert len(train_envs) == 10 and len(test_envs) == 5 and not train_envs & test_envs
    for name in sorted(train_envs)[:5]:  # switching environments keeps only the last few built
        train.set_task(next(t for t in train.split_tasks if t.env_name == name))
    assert list(train._envs) == sorted(train_envs)[2:5] and train.get_task().env_name == sorted(train_envs)[4]
    env = make_batched("metarl/ML10-v3", num_envs=3, max_episode_steps=5, split="test")
    tasks = env.sample_tasks(3, np.random.default_rng(0))
    env.set_tasks(tasks)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(np.zeros((3, 4), dtype=np.float32))
    assert obs.shape == (3, 39) and np.isfinite(reward).all() and not terminated.any()


@pytest.mark.slow
def test_the_expert_check_writes_success_per_environment(tmp_path):
    out = tmp_path / "experts.json"
    subprocess.run(
        [sys.executable, str(REPOSITORY / "scripts" / "meta_world_experts.py"), "--out", str(out)]
        + ["--episodes", "2", "--envs", "reach-v3", "door-open-v3"],
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["versions"]["mujoco"] == mujoco.__version__
    assert {name: r["successes"] for name, r in result["envs"].items()} == {"reach-v3": 2, "door-open-v3": 2}


def test_evaluation_draws_held_out_tasks_from_the_benchmarks_test_split():
    from metarl.tasks.protocol import heldout_sampler, task_groups

    tasks = benchmark_tasks("ML1", "reach-v3", 0)
    env = make_batched("metarl/ML1-v3", num_envs=2, max_episode_steps=5, env_name="reach-v3")
    held_out = heldout_sampler(env)(12, np.random.default_rng(0))
    assert len(set(held_out)) == 12 and set(held_out) <= set(tasks.test)
    assert set(env.sample_tasks(12, np.random.default_rng(0))) <= set(tasks.train)
    env.set_tasks(held_out[:2])  # an env that trains on the training split runs test tasks too
    env.reset(seed=0)
    navigation = make_batched("metarl/Navigation2D-v1", num_envs=2)
    assert heldout_sampler(navigation) == navigation.sample_tasks  # no held-out split: fresh draws
    assert task_groups(env, held_out[:2]) == ["reach-v3", "reach-v3"] and task_groups(navigation, held_out) == []


@pytest.mark.slow
def test_a_trained_ml1_run_is_evaluated_on_test_goals(tmp_path):
    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "metarl", *args], check=True, capture_output=True, cwd=tmp_path)

    run(
        *("train", "--config", "2d-navigation", "--env_id", "metarl/ML1-v3", "--env_kwargs", "{env_name: reach-v3}"),
        *("--meta_batch_size", "2", "--episodes_per_task", "2", "--horizon", "20", "--num_iterations", "1"),
        *("--out_dir", "runs", "--run_name", "ml1", "--num_threads", "1", "--no-progress"),
    )
    run("evaluate", "runs/ml1", "--num-tasks", "3", "--episodes-per-step", "2", "--out", "eval")
    results = json.loads((tmp_path / "eval" / "adaptation_maml-trpo.json").read_text())
    test = {t.rand_vec for t in benchmark_tasks("ML1", "reach-v3", 0).test}
    assert [tuple(row["task"]["rand_vec"]) in test for row in results["per_task"]] == [True] * 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "env_id", "env_name", "tasks"),
    [
        ("ml1-push", "metarl/ML1-v3", "push-v3", 25),
        ("ml1-reach", "metarl/ML1-v3", "reach-v3", 25),
        ("ml10", "metarl/ML10-v3", None, 20),
    ],
)
def test_the_presets_have_garages_meta_world_maml_trpo_settings(preset, env_id, env_name, tasks):
    from metarl.config import load_config

    cfg = load_config(preset, [])
    assert (cfg.env_id, cfg.env_kwargs.get("env_name"), cfg.meta_batch_size) == (env_id, env_name, tasks)
    assert (cfg.episodes_per_task, cfg.horizon, cfg.hidden_sizes, cfg.fast_lr) == (10, 500, (128, 128), 1e-4)
    assert (cfg.num_inner_steps, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages) == (1, 0.99, 1.0, False)
    assert (cfg.max_kl, cfg.num_iterations) == (0.01, 2000)
    check_task_env(cfg.env_id, **cfg.env_kwargs)


def test_tasks_are_drawn_with_the_environments_in_equal_shares():
    from collections import Counter

    from envs.meta_world.family import draw_evenly

    pool = [MetaWorldTask(name, (float(i),)) for name in ("a", "b", "c") for i in range(4)]
    rng = np.random.default_rng(0)
    assert Counter(t.env_name for t in draw_evenly(pool, 9, rng)) == {"a": 3, "b": 3, "c": 3}
    counts = Counter(t.env_name for t in draw_evenly(pool, 7, rng))
    assert sorted(counts.values()) == [2, 2, 3]
    twelve = draw_evenly(pool, 12, rng)
    assert len(set(twelve)) == 12  # without replacement while each environment has enough
    assert len(draw_evenly(pool, 15, rng)) == 15  # then with replacement
