"""The MAML inner loop: adapted parameters, second-order and first-order meta-gradients."""

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from agents.maml import AdaptationBatch, adapt, inner_loss, inner_step
from agents.policies import GaussianMLPPolicy
from metarl.sampling.episodes import Episodes

T, H, E, OBS, ACT = 2, 3, 2, 2, 1
LR = 0.5


def random_episodes(seed):
    g = torch.Generator().manual_seed(seed)
    return Episodes(
        observations=torch.randn(H, T, E, OBS, generator=g, dtype=torch.float64),
        actions=torch.randn(H, T, E, ACT, generator=g, dtype=torch.float64),
        rewards=torch.zeros(H, T, E, dtype=torch.float64),
        mask=torch.ones(H, T, E, dtype=torch.float64),
        lengths=torch.full((T, E), H),
        terminated=torch.zeros(T, E, dtype=torch.bool),
        truncated=torch.ones(T, E, dtype=torch.bool),
        nonfinite=torch.zeros(T, E, dtype=torch.bool),
        final_observations=torch.zeros(T, E, OBS, dtype=torch.float64),
    )


def setup():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(4,), init_std=0.7).double()
    train, valid = random_episodes(1), random_episodes(2)
    g = torch.Generator().manual_seed(3)
    adv_train = torch.randn(H, T, E, generator=g, dtype=torch.float64)
    adv_valid = torch.randn(H, T, E, generator=g, dtype=torch.float64)
    batch = AdaptationBatch(episodes=[train, valid], advantages=[adv_train, adv_valid], params=[{}, {}])
    return policy, batch


def meta_objective(policy, batch, create_graph):
    """Σ_i L_i(θ'_i(θ)) on the validation episodes."""
    adapted = adapt(policy, policy.task_params(T), batch, [LR], create_graph=create_graph)
    return inner_loss(policy, adapted, batch.episodes[-1], batch.advantages[-1]).sum()


def test_inner_step_matches_a_manual_update_per_task():
    policy, batch = setup()
    adapted = inner_step(policy, policy.task_params(T), batch.episodes[0], batch.advantages[0], LR, False)
    for i in range(T):
        single = batch.episodes[0].select_tasks(torch.tensor([i]))
        loss = inner_loss(policy, policy.task_params(1), single, batch.advantages[0][:, [i]]).sum()
        grads = torch.autograd.grad(loss, list(policy.parameters()))
        for (name, p), g in zip(policy.named_parameters(), grads, strict=True):
            torch.testing.assert_close(adapted[name][i], p - LR * g)


def test_second_order_meta_gradient_matches_finite_differences():
    policy, batch = setup()
    params = list(policy.parameters())
    grad = torch.autograd.grad(meta_objective(policy, batch, create_graph=True), params)
    grad = torch.cat([g.reshape(-1) for g in grad])

    theta = parameters_to_vector(params).detach().clone()
    eps = 1e-6
    numeric = torch.zeros_like(theta)
    for j in range(theta.numel()):
        for sign in (1.0, -1.0):
            shifted = theta.clone()
            shifted[j] += sign * eps
            vector_to_parameters(shifted, params)
            numeric[j] += sign * meta_objective(policy, batch, create_graph=False).item() / (2 * eps)
    vector_to_parameters(theta, params)
    torch.testing.assert_close(grad, numeric, atol=1e-6, rtol=1e-5)


def test_first_order_gradient_is_the_outer_gradient_at_the_adapted_parameters():
    policy, batch = setup()
    params = list(policy.parameters())
    fo = torch.autograd.grad(meta_objective(policy, batch, create_graph=False), params)
    fo = torch.cat([g.reshape(-1) for g in fo])
    so = torch.autograd.grad(meta_objective(policy, batch, create_graph=True), params)
    so = torch.cat([g.reshape(-1) for g in so])

    # by hand: Σ_i ∇_θ' L_i evaluated at θ'_i (the inner step's Jacobian taken as identity)
    adapted = adapt(policy, policy.task_params(T), batch, [LR], create_graph=False)
    leaves = {n: p.detach().requires_grad_(True) for n, p in adapted.items()}
    outer = inner_loss(policy, leaves, batch.episodes[-1], batch.advantages[-1]).sum()
    per_task = torch.autograd.grad(outer, list(leaves.values()))
    manual = torch.cat([g.sum(0).reshape(-1) for g in per_task])

    torch.testing.assert_close(fo, manual)
    # and the Hessian term second-order MAML keeps is not negligible here
    assert float((so - fo).norm()) > 0.05 * float(so.norm())
