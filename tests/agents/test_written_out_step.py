"""The written-out inner step (agents/written_out_step.py): its gradient against autograd's, and the bf16 adaptation.

With ``adaptation_precision: bf16`` the sampler, the line search and the evaluation take the
same step, and the sampler's step hands its inner-loop Hessian to the meta-gradient.
"""

import numpy as np
import pytest
import torch

import agents
import envs  # noqa: F401  (registers the task environments)
from agents import meta_update_paths
from agents.maml import AdvantageSettings, Transitions, autograd_step
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from agents.surrogate import PostAdaptationObjective
from agents.written_out_step import WrittenOutStep
from metarl.config import ConfigError, TrainConfig, load_config
from metarl.learner import precision
from metarl.tasks.build import make_batched
from tests.agents.test_fast_meta_update import float_batch
from tests.agents.test_mlp_products import inner_setup

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def relative_step_error(got, expected, start) -> dict[str, float]:
    return {
        n: float(((got[n] - start[n]) - (expected[n] - start[n])).norm() / (expected[n] - start[n]).norm())
        for n in expected
    }


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
def test_written_out_step_equals_autograds_in_float64_with_clamped_log_stds(discrete, estimator):
    policy, params, steps, _ = inner_setup(discrete, min_std=0.1)  # two tasks' log-std -3 under the clamp
    expected, kept = autograd_step(policy, params, steps, 0.5)
    assert kept is None
    for keep in (False, True):
        got, hessian = WrittenOutStep(estimator, torch.float64, keep)(policy, params, steps, 0.5)
        assert (hessian is not None) == keep
        assert set(got) == set(expected)
        assert max(relative_step_error(got, expected, params).values()) < 1e-12
    if not discrete:  # one task's log-std is under the clamp in each dimension: no step there
        assert torch.equal(got["log_std"][1, 0], params["log_std"][1, 0])


def test_bf16_step_is_within_two_percent_of_fp32_and_keeping_the_hessian_changes_no_bit():
    policy, batch = float_batch(3)
    steps, start = Transitions.of(batch.episodes[0], batch.advantages[0]), batch.params[0]
    expected, _ = autograd_step(policy, start, steps, 0.5)
    kept, hessian = WrittenOutStep("reinforce", torch.bfloat16, keep_hessian=True)(policy, start, steps, 0.5)
    alone, none = WrittenOutStep("reinforce", torch.bfloat16)(policy, start, steps, 0.5)
    assert none is None and hessian is not None and hessian.trunk.dtype == torch.bfloat16
    assert all(torch.equal(kept[n], alone[n]) for n in kept)
    errors = relative_step_error(alone, expected, start)
    assert max(errors.values()) < 0.02, errors
    assert max(errors.values()) > 1e-5  # bf16 did run


def tiny_learner(*overrides: str) -> tuple[MAMLTRPO, np.random.Generator]:
    cfg = load_config(
        None,
        [
            "--meta_batch_size",
            "4",
            "--episodes_per_task",
            "4",
            "--horizon",
            "20",
            "--hidden_sizes",
            "[16, 16]",
            "--num_threads",
            "1",
            *overrides,
        ],
    )
    env = make_batched(cfg.env_id, 16, max_episode_steps=cfg.horizon)
    torch.manual_seed(0)
    learner = agents.build_maml_trpo(cfg, env)
    rng = np.random.default_rng(0)
    learner.sampler.set_tasks(env.sample_tasks(4, rng))
    return learner, rng


BF16 = ("--fisher_precision", "bf16", "--adaptation_precision", "bf16")


def test_bf16_adaptation_is_one_function_of_theta_in_sampling_and_line_search():
    learner, rng = tiny_learner(*BF16, "--num_inner_steps", "2")
    batch = learner.sample(rng)
    assert [h.estimator for h in batch.hessians] == ["reinforce", "reinforce"]
    steps = [Transitions.of(batch.episodes[k], batch.advantages[k]) for k in range(2)]
    step = WrittenOutStep("reinforce", torch.bfloat16)
    params = learner.policy.task_params(4)
    for k in range(2):
        params = step(learner.policy, params, steps[k], learner.settings.fast_lr)[0]
        assert all(torch.equal(params[n], batch.params[k + 1][n]) for n in params)  # what was sampled
    adapted = PostAdaptationObjective(learner.policy, batch, learner.settings).adapted(create_graph=False)
    assert all(torch.equal(adapted[n], batch.params[-1][n]) for n in adapted)  # the line search at θ: KL 0
    fp32, _ = tiny_learner("--fisher_precision", "bf16")
    assert fp32.sample(np.random.default_rng(0)).hessians == []  # autograd's fp32 step keeps nothing


@pytest.mark.slow
def test_meta_gradient_from_the_samplers_hessians_is_the_one_it_would_build(monkeypatch):
    learner, rng = tiny_learner(*BF16)
    batch = learner.sample(rng)
    kept = list(batch.hessians)
    built = []
    real = meta_update_paths.InnerLossHessian
    monkeypatch.setattr(meta_update_paths, "InnerLossHessian", lambda *a, **k: built.append(1) or real(*a, **k))
    loss, gradient, _, _ = learner.meta_gradient(learner.objective(batch))
    assert built == [] and batch.hessians == [] and len(kept) == 1  # the sampler's, taken once and freed
    rebuilt_loss, rebuilt, _, _ = learner.meta_gradient(learner.objective(batch))
    assert built == [1] and loss == rebuilt_loss and torch.equal(gradient, rebuilt)
    metrics = learner.step(learner.sample(rng), rng)
    assert metrics["step_accepted"] == 1.0 and 0 < metrics["kl_after"] <= learner.settings.max_kl


def test_hessians_of_another_estimator_or_dtype_are_not_reused():
    learner, rng = tiny_learner(*BF16)
    batch = learner.sample(rng)
    lvc = MAMLTRPO(
        learner.policy,
        None,
        MetaUpdateSettings(
            fast_lr=learner.settings.fast_lr,
            inner_estimator="lvc",
            fisher_precision="bf16",
            adaptation_precision="bf16",
        ),
        AdvantageSettings(),
    )
    assert len(batch.hessians) == 1
    fresh = lvc.meta_gradient(PostAdaptationObjective(lvc.policy, batch, lvc.settings))[1]
    assert batch.hessians == []
    rebuilt = lvc.meta_gradient(PostAdaptationObjective(lvc.policy, batch, lvc.settings))[1]
    assert torch.equal(fresh, rebuilt)


def test_adaptation_precision_config_rules_and_fallback(monkeypatch):
    with pytest.raises(ConfigError, match="adaptation_precision.*bf16 needs meta_update fast"):
        load_config(None, ["--adaptation_precision", "bf16", "--meta_update", "exact"])
    with pytest.raises(ConfigError, match="inner_estimator reinforce or lvc"):
        load_config(None, ["--adaptation_precision", "bf16", "--inner_estimator", "dice"])
    with pytest.raises(ConfigError, match="adaptation_precision.*must be one of auto, bf16, fp32"):
        load_config(None, ["--adaptation_precision", "fp16"])
    monkeypatch.setattr(precision, "cpu_bf16", lambda: (True, True))
    chosen = MetaUpdateSettings.from_config(load_config(None, ["--adaptation_precision", "auto"]))
    assert chosen.adaptation_precision == "bf16" and "gradient in bf16 (auto: the CPU has AMX)" in chosen.describe()
    assert isinstance(chosen.adaptation_step(), WrittenOutStep)
    for other in (["--meta_update", "exact"], ["--inner_estimator", "dice"]):
        settings = MetaUpdateSettings.from_config(load_config(None, ["--adaptation_precision", "auto", *other]))
        assert settings.adaptation_precision == "fp32" and settings.adaptation_step() is autograd_step
    monkeypatch.setattr(precision, "cpu_bf16", lambda: (False, False))
    assert (
        MetaUpdateSettings.from_config(load_config(None, ["--adaptation_precision", "auto"])).adaptation_step()
        is autograd_step
    )
    assert TrainConfig().adaptation_precision == "fp32"
    with pytest.raises(ValueError, match="needs the inner loss reinforce or lvc"):
        MetaUpdateSettings(inner_estimator="dice", adaptation_precision="bf16")
