"""Locomotion task families: conformance, rewards against the simulator, batched = single."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from agents.maml import adaptation_metrics
from agents.policies import GaussianMLPPolicy
from envs.locomotion.ant import AntDirEnv, AntGoalEnv, AntVelEnv, BatchedAntDir
from envs.locomotion.half_cheetah import BatchedHalfCheetahVel, HalfCheetahDirEnv, HalfCheetahVelEnv
from envs.locomotion.tasks import DirectionTask, GoalTask, VelocityTask
from metarl.sampling import Sampler
from metarl.tasks.build import make_batched
from metarl.tasks.oracle import TaskFeatureObservation
from metarl.tasks.registry import task_env_ids

IDS = {
    "metarl/HalfCheetahVel-v0": (17, 6),
    "metarl/HalfCheetahDir-v0": (17, 6),
    "metarl/HalfCheetahVel-v1": (17, 6),
    "metarl/HalfCheetahDir-v1": (17, 6),
    "metarl/AntVel-v0": (105, 8),
    "metarl/AntDir-v0": (105, 8),
    "metarl/AntGoal-v0": (107, 8),
    "metarl/AntVel-v1": (105, 8),
    "metarl/AntDir-v1": (105, 8),
    "metarl/AntGoal-v1": (107, 8),
}
DT = 0.05  # 5 physics steps of 0.01 s
PAPER_DT = 0.02  # the paper's Ant (-v1): one physics step of 0.02 s
PAPER_CHEETAH_DT = 0.01  # the paper's HalfCheetah (-v1): one physics step of 0.01 s


def _actions(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=(n, *shape)).astype(np.float32)


def _replay(env: gym.Env, action: np.ndarray, nstep: int = 5) -> tuple[mujoco.MjData, list[float]]:
    """Step a copy of ``env``'s simulation by hand: its data after, and qvel[0] per physics step."""
    model, data = env.unwrapped.model, env.unwrapped.data
    copy = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, state, spec)
    mujoco.mj_setState(model, copy, state, spec)
    copy.ctrl[:] = action
    velocities = []
    for _ in range(nstep):
        mujoco.mj_step(model, copy)
        velocities.append(float(copy.qvel[0]))
    return copy, velocities


@pytest.mark.parametrize("env_id", sorted(IDS))
def test_check_env_spaces_and_registration(env_id: str) -> None:
    assert env_id in task_env_ids()
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.max_episode_steps == 200
    obs_size, act_size = IDS[env_id]
    assert env.observation_space.shape == (obs_size,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (act_size,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    env.unwrapped.set_task(env.unwrapped.sample_tasks(1)[0])
    check_env(env.unwrapped, skip_render_check=True)


def test_task_sampling_is_seeded_and_in_range() -> None:
    env = HalfCheetahVelEnv()
    env.reset(seed=3)
    first = env.sample_tasks(200)
    env.reset(seed=3)
    assert env.sample_tasks(200) == first
    velocities = np.array([t.goal_velocity for t in first])
    assert velocities.min() >= 0.0 and velocities.max() <= 2.0 and abs(velocities.mean() - 1.0) < 0.15

    batched = BatchedAntDir(num_envs=2, max_episode_steps=10, nthread=1)
    directions = np.array([t.direction for t in batched.sample_tasks(400, np.random.default_rng(0))])
    assert set(directions.tolist()) == {-1, 1} and abs(directions.mean()) < 0.15
    assert batched.sample_tasks(5, np.random.default_rng(7)) == batched.sample_tasks(5, np.random.default_rng(7))

    ant = AntGoalEnv()
    ant.reset(seed=0)
    goals = np.array([t.goal for t in ant.sample_tasks(400)])
    assert goals.min() >= -3.0 and goals.max() <= 3.0 and goals.min() < -2.5 and goals.max() > 2.5
    velocities = np.array([t.goal_velocity for t in AntVelEnv().sample_tasks(400)])
    assert velocities.min() >= 0.0 and velocities.max() <= 3.0 and velocities.max() > 2.5

    with pytest.raises(TypeError, match="VelocityTask"):
        env.set_task(DirectionTask(direction=1))
    with pytest.raises(ValueError, match="-1 or 1"):
        DirectionTask(direction=0)


@pytest.mark.parametrize(
    ("env_cls", "task"),
    [(HalfCheetahVelEnv, VelocityTask(goal_velocity=1.3)), (HalfCheetahDirEnv, DirectionTask(direction=-1))],
)
def test_half_cheetah_reward_from_simulator_velocity(env_cls: type, task: object) -> None:
    env = env_cls(task=task)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for action in _actions(rng, 15, (6,)):
        x_before = float(env.data.qpos[0])
        replay, velocities = _replay(env, action)
        _, reward, terminated, _, info = env.step(action)
        # semi-implicit Euler: the displacement over the control step is dt * mean(qvel)
        v = float(np.mean(velocities))
        assert (replay.qpos[0] - x_before) / DT == pytest.approx(v, rel=1e-9, abs=1e-12)
        assert info["x_velocity"] == pytest.approx(v, rel=1e-9, abs=1e-12)
        a = action.astype(np.float64)
        if isinstance(task, VelocityTask):
            expected = -abs(v - 1.3) - 0.05 * float(a @ a)
        else:
            expected = -v - 0.05 * float(a @ a)
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert not terminated


@pytest.mark.parametrize(
    ("env_cls", "task"),
    [
        (AntVelEnv, VelocityTask(goal_velocity=0.7)),
        (AntDirEnv, DirectionTask(direction=1)),
        (AntGoalEnv, GoalTask(goal=(1.5, -2.0))),
    ],
)
def test_ant_reward_from_simulator(env_cls: type, task: object) -> None:
    env = env_cls(task=task)
    env.reset(seed=11)
    rng = np.random.default_rng(1)
    contact_costs = []
    for action in _actions(rng, 25, (8,)):
        x_before = float(env.data.qpos[0])
        replay, _ = _replay(env, action)
        _, reward, terminated, _, _ = env.step(action)
        if terminated:
            break
        v = (replay.qpos[0] - x_before) / DT
        a = action.astype(np.float64)
        contact = 5e-4 * float(np.sum(np.clip(replay.cfrc_ext, -1.0, 1.0) ** 2))
        contact_costs.append(contact)
        costs = 0.005 * float(a @ a) + contact
        if isinstance(task, VelocityTask):
            task_reward = -abs(v - 0.7) + 1.0
        elif isinstance(task, DirectionTask):
            task_reward = v
        else:
            task_reward = -abs(replay.qpos[0] - 1.5) - abs(replay.qpos[1] + 2.0) + 4.0
        assert reward == pytest.approx(task_reward + 0.05 - costs, rel=1e-9, abs=1e-12)
    assert len(contact_costs) >= 10 and max(contact_costs) > 1e-3  # contact forces are computed


def _assert_one_physics_step_per_control_step(
    env: gym.Env, dt: float, rng: np.random.Generator, expected: Callable[[float, np.ndarray, mujoco.MjData], float]
) -> None:
    """20 random steps of ``env`` each match one hand-made physics step; ``expected(v, a, replay)`` gives the reward."""
    for action in _actions(rng, 20, env.action_space.shape):
        x_before = float(env.data.qpos[0])
        replay, _ = _replay(env, action, nstep=1)
        _, reward, terminated, _, info = env.step(action)
        np.testing.assert_array_equal(env.data.qpos, replay.qpos)
        v = (replay.qpos[0] - x_before) / dt
        assert info["x_velocity"] == pytest.approx(v, rel=1e-12)
        assert reward == pytest.approx(expected(v, action.astype(np.float64), replay), rel=1e-9, abs=1e-12)
        assert not terminated


def test_paper_ant_steps_once_per_control_step_from_the_crouched_pose() -> None:
    env = gym.make("metarl/AntVel-v1").unwrapped
    env.set_task(VelocityTask(goal_velocity=0.7))
    assert env.model.opt.timestep == PAPER_DT and env.frame_skip == 1 and env.dt == pytest.approx(PAPER_DT)
    pose = np.array([0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1], dtype=np.float64)
    np.testing.assert_array_equal(env.init_qpos, pose)
    env.reset(seed=5)
    assert np.abs(env.data.qpos - pose).max() <= 0.1  # Ant-v5's U[-0.1, 0.1] noise around the pose
    low, high = env.model.jnt_range[1:].T
    assert np.all((pose[7:] >= low) & (pose[7:] <= high))  # every joint inside its range, unlike qpos0

    def expected(v: float, a: np.ndarray, replay: mujoco.MjData) -> float:
        costs = 0.005 * float(a @ a) + 5e-4 * float(np.sum(np.clip(replay.cfrc_ext, -1.0, 1.0) ** 2))
        return -abs(v - 0.7) + 1.0 + 0.05 - costs

    _assert_one_physics_step_per_control_step(env, PAPER_DT, np.random.default_rng(2), expected)


@pytest.mark.parametrize("task", [VelocityTask(goal_velocity=1.3), DirectionTask(direction=-1)])
def test_paper_half_cheetah_steps_once_per_control_step(task: object) -> None:
    family = "Vel" if isinstance(task, VelocityTask) else "Dir"
    env = gym.make(f"metarl/HalfCheetah{family}-v1").unwrapped
    env.set_task(task)
    assert env.model.opt.timestep == PAPER_CHEETAH_DT and env.frame_skip == 1
    assert env.dt == pytest.approx(PAPER_CHEETAH_DT)
    env.reset(seed=5)

    def expected(v: float, a: np.ndarray, replay: mujoco.MjData) -> float:
        return (-abs(v - 1.3) if isinstance(task, VelocityTask) else -v) - 0.05 * float(a @ a)

    _assert_one_physics_step_per_control_step(env, PAPER_CHEETAH_DT, np.random.default_rng(3), expected)
    batched = make_batched(f"metarl/HalfCheetah{family}-v1", 2, max_episode_steps=5, nthread=1)
    assert batched.frame_skip == 1 and batched.dt == pytest.approx(PAPER_CHEETAH_DT)


def test_clip_control_cost_charges_the_clipped_action_single_and_batched() -> None:
    """The paper's rllab HalfCheetah charged the control cost of the action clipped to [-1, 1]."""
    action = np.array([3.0, -2.0, 0.5, 1.0, -0.25, 4.0])
    raw, clipped = 0.05 * float(action @ action), 0.05 * float(np.sum(np.clip(action, -1.0, 1.0) ** 2))
    for clip, cost in ((False, raw), (True, clipped)):
        env = gym.make("metarl/HalfCheetahDir-v1", clip_control_cost=clip).unwrapped
        env.reset(seed=1)
        assert env.step(action)[4]["reward_ctrl"] == pytest.approx(-cost)
    rewards = {}
    for clip in (False, True):
        batched = make_batched("metarl/HalfCheetahDir-v1", 2, max_episode_steps=5, nthread=1, clip_control_cost=clip)
        batched.set_tasks([DirectionTask(direction=1), DirectionTask(direction=-1)])
        batched.reset(seed=7)
        rewards[clip] = batched.step(np.stack([action, np.clip(action, -1.0, 1.0)]))[1]
    # the same physics (MuJoCo clips the control): the rewards differ by the cost of the clipped-off part only
    assert rewards[True] - rewards[False] == pytest.approx([raw - clipped, 0.0], abs=1e-9)


@pytest.mark.slow
def test_paper_ant_survives_random_actions_longer() -> None:
    """Under the same random torques, v1 ants stay healthy for more of a 200-step episode."""
    lengths = {}
    for version in ("v0", "v1"):
        batched = make_batched(f"metarl/AntVel-{version}", 100, max_episode_steps=200, nthread=2)
        batched.reset(seed=0)
        rng = np.random.default_rng(0)
        alive = np.ones(100, bool)
        length = np.zeros(100)
        for _ in range(200):
            _, _, terminated, _, _ = batched.step(_actions(rng, 100, (8,)))
            length += alive
            alive &= ~terminated
        lengths[version] = length.mean()
    assert lengths["v0"] < 100 < lengths["v1"]


def test_ant_contact_forces_carry_its_weight() -> None:
    env = AntDirEnv()
    obs, _ = env.reset(seed=0)
    for _ in range(60):
        obs, _, terminated, _, _ = env.step(np.zeros(8, np.float32))
        assert not terminated
    weight = mujoco.mj_getTotalmass(env.model) * 9.81
    # standing still, the floor's vertical contact forces on the bodies sum to the ant's weight
    assert env.data.cfrc_ext[:, 5].sum() == pytest.approx(weight, rel=0.01)
    np.testing.assert_array_equal(obs[27:], np.clip(env.data.cfrc_ext[1:], -1, 1).ravel().astype(np.float32))
    assert np.abs(obs[27:]).sum() > 1.0


def test_set_task_changes_reward() -> None:
    actions = _actions(np.random.default_rng(2), 10, (6,))

    def rollout(env: gym.Env, task: object) -> np.ndarray:
        env.unwrapped.set_task(task)
        env.reset(seed=4)
        return np.array([env.step(a)[1] for a in actions])

    cheetah = HalfCheetahDirEnv()
    forward, backward = rollout(cheetah, DirectionTask(1)), rollout(cheetah, DirectionTask(-1))
    velocities = (forward - backward) / 2  # same trajectory: the difference is 2 v
    assert np.abs(velocities).max() > 0.05
    ctrl = 0.05 * np.sum(actions.astype(np.float64) ** 2, axis=1)
    np.testing.assert_allclose(forward, velocities - ctrl, rtol=1e-9, atol=1e-12)

    vel_env = HalfCheetahVelEnv()
    slow, fast = rollout(vel_env, VelocityTask(0.0)), rollout(vel_env, VelocityTask(2.0))
    assert np.all(np.abs(slow - fast) > 1e-3)
    assert vel_env.get_task() == VelocityTask(2.0)

    batched = BatchedHalfCheetahVel(num_envs=2, max_episode_steps=20, nthread=1)
    batched.set_tasks([VelocityTask(0.0), VelocityTask(2.0)])
    batched.reset(seed=[4, 4])
    rewards = np.array([batched.step(np.stack([a, a]))[1] for a in actions])
    np.testing.assert_allclose(rewards[:, 0], slow, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rewards[:, 1], fast, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("env_id", sorted(IDS))
def test_batched_equals_single(env_id: str) -> None:
    num_envs, horizon = 3, 25
    batched = make_batched(env_id, num_envs, max_episode_steps=horizon, nthread=2)
    rng = np.random.default_rng(0)
    tasks = batched.sample_tasks(num_envs, rng)
    batched.set_tasks(tasks)
    singles = [gym.make(env_id, max_episode_steps=horizon) for _ in range(num_envs)]
    for env, task in zip(singles, tasks, strict=True):
        env.unwrapped.set_task(task)
    assert batched.get_tasks() == tasks

    for episode, seed in enumerate([100, None]):  # a seeded episode, then one continuing the generators
        obs, _ = batched.reset(seed=seed)
        single_obs = [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(singles)]
        np.testing.assert_array_equal(obs, np.stack(single_obs))
        assert obs.dtype == np.float32
        done = np.zeros(num_envs, bool)
        for t in range(horizon):
            actions = _actions(rng, num_envs, batched.single_action_space.shape)
            obs, reward, terminated, truncated, info = batched.step(actions)
            for i, env in enumerate(singles):
                if done[i]:  # the single env's episode is over; the batched sub-env runs on, masked
                    continue
                s_obs, s_reward, s_terminated, s_truncated, s_info = env.step(actions[i])
                np.testing.assert_allclose(obs[i], s_obs, rtol=1e-6, atol=1e-6, err_msg=f"{episode} {t} {i}")
                assert reward[i] == pytest.approx(s_reward, rel=1e-10, abs=1e-10)
                assert (terminated[i], truncated[i]) == (s_terminated, s_truncated)
                assert info["x_velocity"][i] == pytest.approx(s_info["x_velocity"], rel=1e-10, abs=1e-12)
                done[i] = s_terminated or s_truncated
        assert done.all()  # every single episode ended: terminated, or truncated at the horizon


def test_ant_terminates_outside_healthy_range_and_on_divergence() -> None:
    env = AntVelEnv(task=VelocityTask(1.0))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(8, np.float32))
    assert not terminated and info["reward_survive"] == 0.05

    env.data.qpos[2] = 1.6  # torso thrown above z = 1
    _, reward, terminated, _, info = env.step(np.zeros(8, np.float32))
    assert terminated and env.data.qpos[2] > 1.0
    assert info["reward_survive"] == 0.0

    # the lower bound: with a raised range the ant, settling from z = 0.75, leaves it
    low_env = AntVelEnv(healthy_z_range=(0.6, 1.0))
    low_env.reset(seed=0)
    heights, ends = [], []
    for _ in range(20):
        ends.append(low_env.step(np.zeros(8, np.float32))[2])
        heights.append(float(low_env.data.qpos[2]))
    first = ends.index(True)
    assert heights[first] < 0.6 and min(heights[:first]) >= 0.6 and all(ends[first:])

    env.reset(seed=0)
    env.data.qvel[:] = np.nan  # MuJoCo resets a diverged simulation; we end the episode
    obs, reward, terminated, _, _ = env.step(np.zeros(8, np.float32))
    assert terminated and reward == 0.0 and np.isfinite(obs).all()

    # the same in a batch: only the diverged and the fallen sub-environments terminate
    batched = BatchedAntDir(num_envs=4, max_episode_steps=50, nthread=2)
    batched.set_tasks([DirectionTask(1)] * 4)
    batched.reset(seed=0)
    batched.qvel[1] = np.nan
    batched.qpos[3, 2] = 1.6
    obs, reward, terminated, truncated, _ = batched.step(np.zeros((4, 8), np.float32))
    assert terminated.tolist() == [False, True, False, True] and not truncated.any()
    assert reward[1] == 0.0 and np.isfinite(obs).all() and np.isfinite(reward).all()
    single = AntDirEnv(task=DirectionTask(1))
    single.reset(seed=2)
    s_obs, s_reward, *_ = single.step(np.zeros(8, np.float32))
    np.testing.assert_array_equal(obs[2], s_obs)
    assert reward[2] == pytest.approx(s_reward, rel=1e-10, abs=1e-12)


def test_half_cheetah_divergence_terminates_only_that_subenv() -> None:
    batched = BatchedHalfCheetahVel(num_envs=3, max_episode_steps=50, nthread=2)
    batched.set_tasks([VelocityTask(1.0)] * 3)
    batched.reset(seed=0)
    batched.qpos[0, 3] = np.inf
    obs, reward, terminated, _, _ = batched.step(np.zeros((3, 6), np.float32))
    assert terminated.tolist() == [True, False, False] and reward[0] == 0.0 and np.isfinite(obs).all()


def test_partial_reset_leaves_other_subenvs_untouched() -> None:
    num_envs, horizon = 4, 12
    env_id = "metarl/AntDir-v0"
    first = make_batched(env_id, num_envs, max_episode_steps=horizon, nthread=2)
    twin = make_batched(env_id, num_envs, max_episode_steps=horizon, nthread=1)
    tasks = first.sample_tasks(num_envs, np.random.default_rng(3))
    for env in (first, twin):
        env.set_tasks(tasks)
        env.reset(seed=20)
    rng = np.random.default_rng(4)
    for _ in range(5):
        actions = _actions(rng, num_envs, (8,))
        obs, *_ = first.step(actions)
        twin.step(actions)

    mask = np.array([False, True, False, True])
    reset_obs, _ = first.reset(seed=[None, 7, None, 9], options={"reset_mask": mask})
    np.testing.assert_array_equal(reset_obs[~mask], obs[~mask])
    for i, seed in [(1, 7), (3, 9)]:
        single = AntDirEnv(task=tasks[i])
        np.testing.assert_array_equal(reset_obs[i], single.reset(seed=seed)[0])

    for t in range(5, horizon):
        actions = _actions(rng, num_envs, (8,))
        obs, reward, terminated, truncated, _ = first.step(actions)
        t_obs, t_reward, t_terminated, t_truncated, _ = twin.step(actions)
        np.testing.assert_array_equal(obs[~mask], t_obs[~mask])
        np.testing.assert_array_equal(reward[~mask], t_reward[~mask])
        np.testing.assert_array_equal(terminated[~mask], t_terminated[~mask])
        # the step counters restarted only where reset
        assert truncated[mask].tolist() == [False, False]
        if t == horizon - 1:
            assert np.all(truncated[~mask] | terminated[~mask])


class _DivergingCheetah(BatchedHalfCheetahVel):
    """Sub-environment 1's state turns non-finite just before its 4th step."""

    def _step_all(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        self._steps = getattr(self, "_steps", 0) + 1
        if self._steps == 4:
            self.qvel[1] = np.nan
        return super()._step_all(actions)


def test_divergence_is_flagged_and_the_sampler_drops_it() -> None:
    """``info["diverged"]`` marks the sub-env; the sampler ends and counts its episode, no 0-reward step."""
    batched = BatchedHalfCheetahVel(num_envs=3, max_episode_steps=10, nthread=1)
    batched.set_tasks([VelocityTask(1.0)] * 3)
    batched.reset(seed=0)
    batched.qvel[2] = np.nan
    _, _, terminated, _, info = batched.step(np.zeros((3, 6), np.float32))
    assert info["diverged"].tolist() == [False, False, True] and terminated.tolist() == [False, False, True]

    env = _DivergingCheetah(num_envs=4, max_episode_steps=10, nthread=1)
    policy = GaussianMLPPolicy(17, 6, (8,), "tanh", 1.0)
    sampler = Sampler(env, policy, num_tasks=2, episodes_per_task=2)
    sampler.set_tasks([VelocityTask(0.5), VelocityTask(1.5)])
    episodes = sampler.sample(policy.task_params(2), np.random.default_rng(0))
    assert episodes.nonfinite.reshape(-1).tolist() == [False, True, False, False]
    assert episodes.lengths.reshape(-1).tolist() == [10, 3, 10, 10]  # the diverged step is dropped
    assert not episodes.terminated.any()
    assert float(episodes.mask[:, 0, 1].sum()) == 3.0
    rewards = episodes.rewards[:3, 0, 1]
    assert torch.isfinite(rewards).all() and (rewards != 0).all()
    # the learner's metric counts it
    assert adaptation_metrics(SimpleNamespace(episodes=[episodes]))["nonfinite_episodes"] == 1.0  # type: ignore[arg-type]


def test_terminated_subenv_is_not_simulated_until_reset() -> None:
    """An ended sub-env stays as it ended (terminated, reward 0) while the others step; a reset revives it."""
    batched = BatchedAntDir(num_envs=3, max_episode_steps=50, nthread=1)
    batched.set_tasks([DirectionTask(1)] * 3)
    batched.reset(seed=0)
    batched.qpos[1, 2] = 1.6  # thrown above z = 1: terminates
    zeros = np.zeros((3, 8), np.float32)
    obs, _, terminated, _, _ = batched.step(zeros)
    assert terminated.tolist() == [False, True, False]
    frozen = batched.qpos[1].copy()
    for _ in range(3):
        next_obs, reward, terminated, _, info = batched.step(zeros)
        assert terminated.tolist() == [False, True, False] and reward[1] == 0.0 and not info["diverged"].any()
        np.testing.assert_array_equal(batched.qpos[1], frozen)
        np.testing.assert_array_equal(next_obs[1], obs[1])
        assert not np.array_equal(next_obs[0], obs[0])
        obs = next_obs
    reset_obs, _ = batched.reset(seed=[None, 5, None], options={"reset_mask": np.array([False, True, False])})
    single = AntDirEnv(task=DirectionTask(1))
    np.testing.assert_array_equal(reset_obs[1], single.reset(seed=5)[0])
    s_obs, s_reward, s_terminated, *_ = single.step(np.zeros(8, np.float32))
    obs, reward, terminated, _, _ = batched.step(zeros)
    np.testing.assert_array_equal(obs[1], s_obs)
    assert reward[1] == pytest.approx(s_reward, rel=1e-10, abs=1e-12) and terminated[1] == s_terminated


@pytest.mark.parametrize(
    ("env_id", "tasks", "features"),
    [
        (
            "metarl/HalfCheetahVel-v0",
            [VelocityTask(goal_velocity=1.25), VelocityTask(goal_velocity=0.5)],
            [[1.25], [0.5]],
        ),
        ("metarl/AntDir-v1", [DirectionTask(direction=-1), DirectionTask(direction=1)], [[-1.0], [1.0]]),
        ("metarl/AntGoal-v1", [GoalTask(goal=(0.5, -2.0)), GoalTask(goal=(-1.5, 2.5))], [[0.5, -2.0], [-1.5, 2.5]]),
    ],
)
def test_oracle_sees_each_subenvs_task(env_id: str, tasks: list, features: list[list[float]]) -> None:
    env = TaskFeatureObservation(make_batched(env_id, 2, max_episode_steps=5))
    obs_dim = IDS[env_id][0]
    assert env.single_observation_space.shape == (obs_dim + len(features[0]),)
    env.set_tasks(tasks)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[:, obs_dim:], np.float32(features))
    obs, *_ = env.step(np.zeros((2, IDS[env_id][1]), np.float32))
    np.testing.assert_array_equal(obs[:, obs_dim:], np.float32(features))
