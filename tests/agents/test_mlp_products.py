"""The written-out Fisher-vector products (agents/mlp_products.py) against autograd's, in float64."""

import numpy as np
import pytest
import torch
from torch.func import grad, jvp, vjp

from agents import meta_update_paths, mlp_products, policy_heads
from agents.maml import AdaptationBatch, AdvantageSettings, Transitions, detached, inner_step, transitions_loss
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_paths import FastMetaUpdate
from agents.meta_update_settings import MetaUpdateSettings
from agents.mlp_products import InnerLossHessian
from agents.mlp_trunk import Trunk
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from agents.surrogate import PostAdaptationObjective, kl_weights
from tests.agents.test_fast_meta_update import float_batch
from tests.agents.test_maml_trpo import OBS, T, make_batch


def make_policy(discrete: bool, nonlinearity: str, min_std: float = 1e-6):
    torch.manual_seed(0)
    if discrete:
        return CategoricalMLPPolicy(OBS, 3, (8, 6), nonlinearity).double()
    return GaussianMLPPolicy(OBS, 2, (8, 6), nonlinearity, min_std=min_std).double()


def batch_with_steps(policy, discrete: bool, num_inner_steps: int) -> AdaptationBatch:
    """A float64 batch with ``num_inner_steps`` inner steps taken (lr 0.5), each on its own advantages."""
    base = make_batch(policy, discrete)
    episodes = [base.episodes[0]] * num_inner_steps + [base.episodes[1]]
    advantages = [base.advantages[0] * (1 + 0.3 * k) for k in range(num_inner_steps)] + [base.advantages[1]]
    params = [base.params[0]]
    current = detached(policy.task_params(T))
    for k in range(num_inner_steps):
        current = detached(inner_step(policy, current, episodes[k], advantages[k], 0.5, create_graph=False))
        params.append({n: p.detach() for n, p in current.items()})
    return AdaptationBatch(episodes=episodes, advantages=advantages, params=params)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_inner_steps", [1, 2])
@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
@pytest.mark.parametrize("first_order", [False, True])
def test_written_out_product_equals_autograds(discrete, nonlinearity, num_inner_steps, estimator, first_order):
    policy = make_policy(discrete, nonlinearity)
    batch = batch_with_steps(policy, discrete, num_inner_steps)
    settings = MetaUpdateSettings(
        fast_lr=0.5, num_inner_steps=num_inner_steps, inner_estimator=estimator, first_order=first_order
    )
    learner = MAMLTRPO(policy, None, settings, AdvantageSettings())
    objective = PostAdaptationObjective(policy, batch, settings)
    reference = learner.fisher_vector_product(objective, objective.adapted(create_graph=True), None)
    written = FastMetaUpdate(policy, settings).written_out_product(
        batch, objective.obs, kl_weights(objective.mask), torch.Generator().manual_seed(0)
    )
    vectors = torch.randn(
        3, sum(p.numel() for p in policy.parameters()), dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    expected = torch.stack([reference(v) for v in vectors])
    got = torch.stack([written(v) for v in vectors])
    assert float((got - expected).norm() / expected.norm()) < 1e-12
    assert float(expected.norm()) > 1e-3  # not two zeros


def inner_setup(discrete: bool, min_std: float = 1e-6):
    policy = make_policy(discrete, "tanh", min_std)
    batch = make_batch(policy, discrete)
    params = {n: p.detach().contiguous() for n, p in batch.params[0].items()}
    with torch.no_grad():  # a log-std per task, some of them under min_std (clamped)
        if "log_std" in params:
            params["log_std"] = torch.tensor([[-0.5, 0.2], [-3.0, 0.0], [0.1, -3.0]], dtype=torch.float64)
    steps = Transitions.of(batch.episodes[0], batch.advantages[0])
    tangent = {
        n: torch.randn(p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        for n, p in params.items()
    }
    return policy, params, steps, tangent


@pytest.mark.slow
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
def test_inner_hessian_equals_forward_over_reverse_autodiff(discrete, estimator):
    """H t of every task's inner loss, against torch.func's jvp of grad; some log-stds sit at the clamp."""
    policy, params, steps, tangent = inner_setup(discrete, min_std=0.1)

    def gradient(p):
        return grad(lambda q: transitions_loss(policy, q, steps, estimator).sum())(p)

    expected = jvp(gradient, (params,), (tangent,))[1]
    got = InnerLossHessian(policy, params, steps, estimator, torch.float64)(tangent)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)
    if not discrete:  # the clamped log-stds (tasks 1 and 2) get no curvature of their own
        assert float(got["log_std"][1, 0].abs()) == 0.0 and float(got["log_std"][2, 1].abs()) == 0.0


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
def test_written_out_heads_equal_the_generic_torch_func_head(discrete, estimator, monkeypatch):
    """A policy class without a written-out head (a subclass) takes the generic one, with the same result."""
    policy, params, steps, tangent = inner_setup(discrete, min_std=0.1)
    written = InnerLossHessian(policy, params, steps, estimator, torch.float64)
    assert not isinstance(written.head, policy_heads.GenericLossHead)
    subclass = type("Custom", (type(policy),), {})
    policy.__class__ = subclass
    generic = InnerLossHessian(policy, params, steps, estimator, torch.float64)
    assert isinstance(generic.head, policy_heads.GenericLossHead)
    expected, got = generic(tangent), written(tangent)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)


def test_trunk_adjoint_is_the_transpose_of_its_tangent():
    """⟨u, J t⟩ = ⟨Jᵀ u, t⟩ for the MLP's output, in float64."""
    policy, params, steps, tangent = inner_setup(False)
    trunk = Trunk(policy, params, steps.observations, torch.float64)
    _, d_output = trunk.tangent(tangent)
    u = torch.randn(d_output.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    adjoint = trunk.adjoint(u)
    left = float((u * d_output).sum())
    right = sum(float((adjoint[n] * tangent[n]).sum()) for n in adjoint)
    assert abs(left - right) < 1e-10 * abs(left)


def test_bf16_trunk_keeps_the_tanh_slope_from_fp32():
    """1 − h² is computed in fp32 and then rounded: near |h| = 1 bf16's h alone would leave a few bits."""
    policy = GaussianMLPPolicy(1, 1, (1,))
    with torch.no_grad():
        policy.w0.fill_(1.0)
        policy.b0.zero_()
    params = {n: p.detach().unsqueeze(0) for n, p in policy.named_parameters()}
    obs = torch.full((1, 1, 1), 2.625)  # exact in bf16; tanh ≈ 0.9896, 1 − h² ≈ 0.0207 (from a bf16 h: 0.016 or 0.023)
    trunk = Trunk(policy, params, obs, torch.bfloat16)
    exact = 1.0 - np.tanh(2.625) ** 2
    assert abs(float(trunk.slopes[0]) - exact) / exact < 0.01


def test_dice_keeps_autograds_product_on_the_fast_path():
    policy = make_policy(False, "tanh")
    batch = batch_with_steps(policy, False, 1)
    settings = MetaUpdateSettings(fast_lr=0.5, inner_estimator="dice", fvp_transition_fraction=0.5)
    learner = MAMLTRPO(policy, None, settings, AdvantageSettings())
    objective = PostAdaptationObjective(policy, batch, settings)
    fvp = learner.fisher_vector_product(objective, objective.adapted(create_graph=True), np.random.default_rng(0))
    vector = torch.randn(sum(p.numel() for p in policy.parameters()), dtype=torch.float64)
    assert float(vector.dot(fvp(vector))) > 0.0  # positive definite (damped)
    with pytest.raises(ValueError, match="estimator must be one of"):
        InnerLossHessian(
            policy, batch.params[0], Transitions.of(batch.episodes[0], batch.advantages[0]), "dice", torch.float64
        )


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("num_inner_steps", [0, 1, 2])
@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
def test_fast_paths_meta_gradient_equals_autograds_through_the_inner_loop(discrete, num_inner_steps, estimator):
    policy = make_policy(discrete, "tanh")
    batch = batch_with_steps(policy, discrete, num_inner_steps)
    exact = MetaUpdateSettings(fast_lr=0.5, num_inner_steps=num_inner_steps, inner_estimator=estimator)
    fast = MetaUpdateSettings(
        fast_lr=0.5, num_inner_steps=num_inner_steps, inner_estimator=estimator, fvp_transition_fraction=0.5
    )
    loss, expected, graph, none = MAMLTRPO(policy, None, exact, AdvantageSettings()).meta_gradient(
        PostAdaptationObjective(policy, batch, exact)
    )
    fast_loss, got, no_graph, hessians = MAMLTRPO(policy, None, fast, AdvantageSettings()).meta_gradient(
        PostAdaptationObjective(policy, batch, fast)
    )
    assert graph is not None and no_graph is None and none == [] and len(hessians) == num_inner_steps
    assert abs(fast_loss - loss) < 1e-12 * abs(loss)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_bf16_meta_gradient_is_within_a_percent_of_fp32():
    """In bf16 only the inner loop's curvature term α H ∇_θ' L is rounded; ∇_θ' L stays fp32."""
    policy, batch = float_batch(2)
    exact = MetaUpdateSettings(fast_lr=0.5)
    fast = MetaUpdateSettings(fast_lr=0.5, fvp_transition_fraction=0.5, fisher_precision="bf16")
    _, expected, _, _ = MAMLTRPO(policy, None, exact, AdvantageSettings()).meta_gradient(
        PostAdaptationObjective(policy, batch, exact)
    )
    _, got, _, hessians = MAMLTRPO(policy, None, fast, AdvantageSettings()).meta_gradient(
        PostAdaptationObjective(policy, batch, fast)
    )
    assert hessians[0].trunk.dtype == torch.bfloat16
    assert 0.0 < float((got - expected).norm() / expected.norm()) < 1e-2


def test_products_reuse_the_gradients_inner_hessians_at_full_inner_fraction(monkeypatch):
    policy = make_policy(False, "tanh")
    batch = batch_with_steps(policy, False, 2)
    settings = MetaUpdateSettings(fast_lr=0.5, num_inner_steps=2, fvp_transition_fraction=0.5)
    learner = MAMLTRPO(policy, None, settings, AdvantageSettings())
    objective = PostAdaptationObjective(policy, batch, settings)
    _, _, _, hessians = learner.meta_gradient(objective)
    built = []
    monkeypatch.setattr(
        meta_update_paths, "InnerLossHessian", lambda *args: built.append(args) or InnerLossHessian(*args)
    )
    reused = learner.fisher_vector_product(objective, None, np.random.default_rng(0), hessians)
    assert len(hessians) == 2 and built == []  # the products build no Hessian of their own
    fresh = learner.fisher_vector_product(objective, None, np.random.default_rng(0))
    assert len(built) == 2
    vector = torch.randn(sum(p.numel() for p in policy.parameters()), dtype=torch.float64)
    torch.testing.assert_close(reused(vector), fresh(vector), rtol=1e-12, atol=1e-14)


def test_the_gradients_inner_hessians_are_not_kept_when_the_products_subsample_the_inner_loop():
    policy = make_policy(False, "tanh")
    batch = batch_with_steps(policy, False, 2)
    settings = MetaUpdateSettings(fast_lr=0.5, num_inner_steps=2, fvp_inner_fraction=0.5)
    _, gradient, _, hessians = MAMLTRPO(policy, None, settings, AdvantageSettings()).meta_gradient(
        PostAdaptationObjective(policy, batch, settings)
    )
    assert hessians == [] and float(gradient.norm()) > 1e-3


@pytest.mark.parametrize("discrete", [False, True])
def test_output_jacobian_equals_torch_funcs_jvp_and_vjp_with_clamped_log_stds(discrete):
    policy, params, steps, tangent = inner_setup(discrete, min_std=0.1)  # log-std -3.0 is under log 0.1
    obs = steps.observations
    jacobian = mlp_products.OutputJacobian(policy, params, obs, torch.float64)

    def outputs(p):
        return policy.fisher_outputs(obs, p)

    expected_outputs, expected_tangents = jvp(outputs, (params,), (tangent,))
    for got, want in zip(jacobian.outputs, expected_outputs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for got, want in zip(jacobian(tangent), expected_tangents, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    generator = torch.Generator().manual_seed(3)
    cotangents = tuple(torch.randn(o.shape, dtype=torch.float64, generator=generator) for o in expected_outputs)
    (expected_adjoint,) = vjp(outputs, params)[1](cotangents)
    got_adjoint = jacobian.adjoint(cotangents)
    assert set(got_adjoint) == set(expected_adjoint)
    for name, want in expected_adjoint.items():
        torch.testing.assert_close(got_adjoint[name], want, rtol=1e-12, atol=1e-12)
    if not discrete:  # the clamped log-stds get no gradient, the others do
        log_std = got_adjoint["log_std"]
        assert float(log_std[1, 0]) == 0.0 and float(log_std[2, 1]) == 0.0 and float(log_std[0].abs().min()) > 0


def test_sampled_loss_gives_the_old_policy_of_a_separate_no_grad_forward():
    policy, batch = float_batch(3)
    settings = MetaUpdateSettings(fast_lr=0.5)
    shared = PostAdaptationObjective(policy, batch, settings)
    loss, _ = shared.sampled_loss()
    separate = PostAdaptationObjective(policy, batch, settings)
    assert torch.equal(shared.old_log_probs, separate.old_log_probs)
    assert torch.equal(shared.old_dist.mean, separate.old_dist.mean)
    assert float(loss) == float(separate.loss_and_kl(batch.params[-1])[0])
