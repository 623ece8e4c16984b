"""Step-budget sampling (``step_budget``): the MAML paper code's episodes back to back per sub-environment."""

import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents import make_policy
from agents.maml import inner_loss
from metarl import make_batched
from metarl.config import ConfigError, load_config
from metarl.evaluation.protocol import per_task_returns
from metarl.learner.value_baseline import estimate_advantages
from metarl.sampling import (
    Sampler,
    SamplingSettings,
    Shard,
    assemble_episodes,
    draw_phase_key,
    envs_per_task,
    rollout,
)
from metarl.sampling.episodes import Episodes

TASKS, LANES, HORIZON = 2, 4, 200
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


def ant_setup(lanes=LANES):
    """An ant whose fresh std-1 policy ends most episodes early, by jumping out of the healthy range."""
    env = make_batched("metarl/AntVel-v1", TASKS * lanes, max_episode_steps=HORIZON, nthread=1)
    torch.manual_seed(0)
    policy = make_policy(env.single_observation_space, env.single_action_space, (16,))
    tasks = env.sample_tasks(TASKS, np.random.default_rng(0))
    return env, policy, tasks, policy.task_params(TASKS)


def sample(env, policy, tasks, params, step_budget, seed=7, budget_lanes=0):
    sampler = Sampler(env, policy, TASKS, LANES, step_budget=step_budget, budget_lanes=budget_lanes)
    sampler.set_tasks(tasks)
    return sampler.sample(params, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def batches():
    env, policy, tasks, params = ant_setup()
    plain = sample(env, policy, tasks, params, step_budget=False)
    budget = sample(env, policy, tasks, params, step_budget=True)
    env.close()
    return plain, budget


@pytest.mark.slow
def test_first_episode_of_each_subenv_is_the_plain_samplers_episode():
    """Refills do not disturb the other sub-environments: each one's first episode is exactly the plain one."""
    env, policy, tasks, params = ant_setup()
    env.set_tasks([task for task in tasks for _ in range(LANES)])
    key = draw_phase_key(np.random.default_rng(7))
    plain = rollout(env, policy, params, LANES, key)
    rows = rollout(env, policy, params, LANES, key, step_budget=True)
    env.close()
    assert rows.lanes is not None and plain.lanes is None
    assert (np.diff(rows.lanes) >= 0).all()  # sub-environment order
    firsts = np.searchsorted(rows.lanes, np.arange(TASKS * LANES))
    for name in FIELDS:
        a, b = getattr(rows, name), getattr(plain, name)
        if name in ("observations", "actions", "rewards", "mask"):
            np.testing.assert_array_equal(a[:, firsts], b, err_msg=name)
        else:
            np.testing.assert_array_equal(a[firsts], b, err_msg=name)
    # the later episodes of a sub-environment fit in what its first one left of the horizon
    used = np.bincount(rows.lanes, weights=rows.lengths, minlength=TASKS * LANES)
    assert (used <= HORIZON).all() and (used > plain.lengths).any()


def test_budget_gives_more_shorter_episodes_that_all_start_from_a_reset(batches):
    plain, budget = batches
    assert plain.episodes_per_task == LANES
    early = int((plain.lengths < HORIZON).sum())
    assert early >= TASKS * LANES // 2  # most fresh-policy ant episodes end early (jumps)
    counts = budget.present.sum(1)
    assert (counts >= LANES).all() and int(counts.sum()) > TASKS * LANES
    assert budget.episodes_per_task == int(counts.max())
    present = budget.present
    # every extra episode ended by termination (an unfinished one at the budget's end is dropped)
    extra = int(counts.sum()) - TASKS * LANES
    assert int((budget.terminated & present).sum()) >= extra
    assert not bool((budget.truncated & (budget.lengths < HORIZON)).any())
    # each starts from the crouched reset pose: torso height 0.55 ± the reset noise of 0.1
    z0 = budget.observations[0, :, :, 0][present]
    assert float(z0.min()) >= 0.45 and float(z0.max()) <= 0.65
    # the steps of each task fit its budget of LANES × HORIZON, and used more of it than plain sampling
    steps = (budget.lengths * present).sum(1)
    assert (steps <= LANES * HORIZON).all() and (steps > plain.lengths.sum(1)).all()


def test_empty_slots_are_left_out_of_returns_and_the_learning_signal(batches):
    _, budget = batches
    present = budget.present
    assert not bool(present.all())  # tasks got different numbers of episodes: some slots are empty
    empty = ~present
    assert float(budget.mask.sum(0)[empty].abs().sum()) == 0.0
    assert int(budget.lengths[empty].sum()) == 0
    for task in range(TASKS):
        manual = budget.returns()[task][present[task]].double().mean()
        assert per_task_returns(budget)[task] == pytest.approx(float(manual), rel=1e-12)
    counts = present.sum(1).double()
    by_task = torch.from_numpy(per_task_returns(budget))
    assert budget.mean_return() == pytest.approx(float((by_task * counts).sum() / counts.sum()), rel=1e-6)

    # the same episodes with extra empty slots: the same advantages and inner-loop loss
    widened = _with_empty_slots(budget, 3)
    env, policy, _, params = ant_setup()
    env.close()
    adv = estimate_advantages(budget, 0.99, 1.0)
    adv_wide = estimate_advantages(widened, 0.99, 1.0)
    torch.testing.assert_close(adv_wide[:, :, : budget.episodes_per_task], adv, rtol=1e-5, atol=1e-5)
    assert float(adv_wide[:, :, budget.episodes_per_task :].abs().sum()) == 0.0
    torch.testing.assert_close(
        inner_loss(policy, params, widened, adv_wide), inner_loss(policy, params, budget, adv), rtol=1e-5, atol=1e-6
    )


def _with_empty_slots(batch: Episodes, extra: int) -> Episodes:
    def pad(tensor: torch.Tensor, axis: int) -> torch.Tensor:
        shape = list(tensor.shape)
        shape[axis] = extra
        return torch.cat([tensor, torch.zeros(shape, dtype=tensor.dtype)], dim=axis)

    return Episodes(
        **{name: pad(getattr(batch, name), 2) for name in ("observations", "actions", "rewards", "mask")},
        **{
            name: pad(getattr(batch, name), 1)
            for name in ("lengths", "terminated", "truncated", "nonfinite", "final_observations")
        },
    )


@pytest.mark.slow
@pytest.mark.parametrize("budget_lanes", [0, 2])
def test_shards_reproduce_the_local_step_budget_batch(budget_lanes):
    """Shards cutting through tasks (own envs) give exactly the local sampler's step-budget batch.

    Also with the budget shared by 2 sub-environments per task (400 steps each).
    """
    per_task = envs_per_task(LANES, True, budget_lanes)
    env, policy, tasks, params = ant_setup(per_task)
    local = sample(env, policy, tasks, params, step_budget=True, budget_lanes=budget_lanes)
    env.close()
    key = draw_phase_key(np.random.default_rng(7))
    parts = []
    bounds = (0, 3, 4, TASKS * per_task) if per_task == LANES else (0, 1, 2, TASKS * per_task)
    for shard in (Shard(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)):
        shard_env = make_batched("metarl/AntVel-v1", shard.size, max_episode_steps=HORIZON, nthread=1)
        shard_env.set_tasks([tasks[k // per_task] for k in range(shard.start, shard.stop)])
        parts.append(
            rollout(
                shard_env,
                policy,
                params,
                per_task,
                key,
                start=shard.start,
                step_budget=True,
                budget_horizons=LANES // per_task,
            )
        )
        shard_env.close()
    sharded = assemble_episodes(parts[::-1], TASKS, per_task)
    for name in FIELDS:
        assert torch.equal(getattr(sharded, name), getattr(local, name)), name
    if not budget_lanes:  # a plain shard among step-budget ones is refused
        mixed_env = make_batched("metarl/AntVel-v1", 3, max_episode_steps=HORIZON, nthread=1)
        mixed_env.set_tasks([tasks[k // LANES] for k in range(3)])
        plain_part = rollout(mixed_env, policy, params, LANES, key)
        with pytest.raises(ValueError, match="with and without a step budget"):
            assemble_episodes([plain_part, *parts[1:]], TASKS, LANES)
        mixed_env.close()


def test_budget_changes_nothing_where_episodes_never_end_early():
    """HalfCheetah episodes always run to the horizon: the step-budget batch is the plain one."""
    env = make_batched("metarl/HalfCheetahVel-v0", TASKS * LANES, max_episode_steps=30, nthread=1)
    torch.manual_seed(0)
    policy = make_policy(env.single_observation_space, env.single_action_space, (16,))
    tasks = env.sample_tasks(TASKS, np.random.default_rng(0))
    params = policy.task_params(TASKS)
    plain = sample(env, policy, tasks, params, step_budget=False)
    budget = sample(env, policy, tasks, params, step_budget=True)
    assert plain.num_steps == TASKS * LANES * 30
    for name in FIELDS:
        assert torch.equal(getattr(budget, name), getattr(plain, name)), name
    env.close()


@pytest.mark.slow
def test_training_with_a_step_budget_learns_from_more_steps_at_the_same_cost(tmp_path):
    """One meta-iteration on an ant: the same sub-environments and horizon, more episodes and env steps."""
    import agents
    from metarl.config import load_config
    from metarl.runs.logs import read_metrics
    from metarl.training.trainer import train

    rows = {}
    for name, extra in (("false", []), ("true", []), ("one-lane", ["--budget_lanes", "1"])):
        cfg = load_config(
            "ant-vel",
            [
                "--meta_batch_size",
                "2",
                "--episodes_per_task",
                "3",
                "--hidden_sizes",
                "16",
                "--num_iterations",
                "1",
                "--cg_iters",
                "3",
                "--num_threads",
                "1",
                "--env_kwargs",
                "{nthread: 1}",
                "--tensorboard",
                "false",
                "--step_budget",
                "false" if name == "false" else "true",
                "--out_dir",
                str(tmp_path),
                "--run_name",
                name,
                *extra,
            ],
        )
        rows[name] = read_metrics(train(cfg, agents.build_learner, progress=False))[0]
    plain, budget, one_lane = rows["false"], rows["true"], rows["one-lane"]
    # one sub-environment per task (600 steps) keeps all but its last, unfinished episode, shorter than 200
    assert 2 * 2 * (3 - 1) * 200 < one_lane["env_steps"] <= 2 * 2 * 3 * 200
    assert np.isfinite(one_lane["return_after"]) and np.isfinite(one_lane["kl_after"])
    assert budget["env_steps"] > 1.3 * plain["env_steps"]
    assert plain["episodes_before"] == plain["episodes_after"] == 3.0  # exactly episodes_per_task
    assert budget["episodes_before"] > 3.5 and budget["episodes_after"] > 3.5
    assert budget["env_steps"] <= 2 * 2 * 3 * 200  # two phases of 2 tasks × 3 sub-environments × 200 steps
    for name in ("return_before", "return_after", "loss_before", "kl_after"):
        assert np.isfinite(budget[name]), name
    assert load_config(tmp_path / "true" / "config.yaml").step_budget is True
    assert load_config(tmp_path / "one-lane" / "config.yaml").budget_lanes == 1


def test_one_lane_per_task_spends_the_whole_budget_but_one_unfinished_episode(batches):
    """``budget_lanes 1``, the paper code's sampler: each task's 4 × 200 steps run in one sub-environment.

    Only the episode still running at the end of the 800 steps is dropped, so a task keeps
    more steps than with a lane per episode, each of which drops its own unfinished one.
    """
    _, per_episode_lanes = batches
    env, policy, tasks, params = ant_setup(lanes=1)
    batch = sample(env, policy, tasks, params, step_budget=True, budget_lanes=1)
    env.close()
    present = batch.present
    steps = (batch.lengths * present).sum(1)
    assert (steps <= LANES * HORIZON).all() and (steps > LANES * HORIZON - HORIZON).all()
    assert (steps > (per_episode_lanes.lengths * per_episode_lanes.present).sum(1)).all()
    assert (present.sum(1) > LANES).all()
    # episodes are cut at the horizon (truncated) or end by falling (terminated), never both or neither
    lengths = batch.lengths[present]
    assert int(lengths.max()) <= HORIZON and bool((batch.terminated ^ batch.truncated)[present].all())
    assert bool((batch.truncated[present] == (lengths == HORIZON)).all())
    z0 = batch.observations[0, :, :, 0][present]  # each from the crouched reset pose
    assert float(z0.min()) >= 0.45 and float(z0.max()) <= 0.65
    assert float(batch.mask.sum()) == float(steps.sum())


def test_lanes_cut_episodes_at_the_horizon_where_they_never_end_early():
    """HalfCheetah with one lane per task of 4 horizons: exactly 4 whole episodes per task, each from a reset."""
    horizon = 30
    env = make_batched("metarl/HalfCheetahVel-v0", TASKS, max_episode_steps=horizon, nthread=1)
    torch.manual_seed(0)
    policy = make_policy(env.single_observation_space, env.single_action_space, (16,))
    tasks = env.sample_tasks(TASKS, np.random.default_rng(0))
    params = policy.task_params(TASKS)
    batch = sample(env, policy, tasks, params, step_budget=True, budget_lanes=1)
    env.close()
    assert batch.episodes_per_task == LANES and bool(batch.present.all())
    assert (batch.lengths == horizon).all() and bool(batch.truncated.all()) and not bool(batch.terminated.any())
    assert batch.num_steps == TASKS * LANES * horizon
    # every episode starts at the reset pose (root x = 0 is not observed; its height and angle are ≈ 0)
    first_obs = batch.observations[0]
    assert float(first_obs[..., :2].abs().max()) <= 0.1
    assert float(batch.observations[horizon - 1, ..., :2].abs().max()) > 0.1  # ...and they do move away from it


def test_budget_lanes_is_checked():
    assert envs_per_task(40, True, 1) == 1 and envs_per_task(40, True, 0) == 40 and envs_per_task(40, False) == 40
    for args, match in (
        ((40, False, 2), "needs step_budget"),
        ((40, True, 3), "must divide"),
        ((40, True, -1), ">= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            envs_per_task(*args)
    assert load_config("ant-dir", ["--step_budget", "true", "--budget_lanes", "4"]).budget_lanes == 4
    for overrides, match in (
        (["--step_budget", "false", "--budget_lanes", "2"], "needs step_budget"),
        (["--step_budget", "true", "--budget_lanes", "3"], "must divide"),
        (["--step_budget", "true", "--budget_lanes", "-1"], ">= 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config("ant-dir", overrides)
    env = make_batched("metarl/AntVel-v1", TASKS * LANES, max_episode_steps=HORIZON, nthread=1)
    with pytest.raises(ValueError, match="expected 2 .2 tasks × 1 sub-environments per task"):
        Sampler(env, None, TASKS, LANES, step_budget=True, budget_lanes=1)
    env.close()


def test_sampling_settings_from_a_config():
    """One object says how many sub-environments a phase needs; the trainer, evaluation and Ray sampler use it."""
    settings = SamplingSettings.from_config(load_config("ant-dir", ["--budget_lanes", "4"]))
    assert (settings.num_tasks, settings.episodes_per_task, settings.step_budget) == (40, 40, True)
    assert (settings.envs_per_task, settings.num_envs, settings.budget_horizons) == (4, 160, 10)
    plain = SamplingSettings(20, 20)
    assert (plain.envs_per_task, plain.num_envs, plain.budget_horizons) == (20, 400, 1)
    for args, match in (
        ((20, 20, False, 2), "needs step_budget"),
        ((20, 20, True, 3), "must divide"),
        ((0, 20), "at least one task"),
    ):
        with pytest.raises(ValueError, match=match):
            SamplingSettings(*args)
