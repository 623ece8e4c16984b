"""The MAML-TRPO meta-update: exact Fisher-vector products, and θ kept when no step qualifies."""

import numpy as np
import pytest
import torch

from agents.maml import AdaptationBatch, AdvantageSettings, detached, inner_step
from agents.maml_trpo import MAMLTRPO
from agents.meta_update_settings import MetaUpdateSettings
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from agents.surrogate import PostAdaptationObjective
from metarl.sampling.episodes import Episodes

T, H, E, OBS = 3, 4, 2, 2


def make_batch(policy, discrete, seed=0, horizon=H, episodes_per_task=E):
    g = torch.Generator().manual_seed(seed)
    H, E = horizon, episodes_per_task  # noqa: N806

    def episodes():
        actions = (
            torch.randint(0, 3, (H, T, E), generator=g)
            if discrete
            else torch.randn(H, T, E, 2, generator=g, dtype=torch.float64)
        )
        lengths = torch.randint(2, H + 1, (T, E), generator=g)
        mask = (torch.arange(H).view(H, 1, 1) < lengths).double()
        return Episodes(
            observations=torch.randn(H, T, E, OBS, generator=g, dtype=torch.float64) * mask.unsqueeze(-1),
            actions=actions,
            rewards=torch.zeros(H, T, E, dtype=torch.float64),
            mask=mask,
            lengths=lengths,
            terminated=torch.zeros(T, E, dtype=torch.bool),
            truncated=torch.ones(T, E, dtype=torch.bool),
            nonfinite=torch.zeros(T, E, dtype=torch.bool),
            final_observations=torch.zeros(T, E, OBS, dtype=torch.float64),
        )

    train, valid = episodes(), episodes()
    adv_train = torch.randn(H, T, E, generator=g, dtype=torch.float64) * train.mask
    adv_valid = torch.randn(H, T, E, generator=g, dtype=torch.float64) * valid.mask
    theta = detached(policy.task_params(T))
    adapted = inner_step(policy, theta, train, adv_train, 0.5, create_graph=False)
    params = [{n: p.detach() for n, p in theta.items()}, {n: p.detach() for n, p in adapted.items()}]
    return AdaptationBatch(episodes=[train, valid], advantages=[adv_train, adv_valid], params=params)


@pytest.mark.parametrize("discrete", [False, True])
def test_fisher_vector_product_equals_the_hessian_of_the_kl(discrete):
    torch.manual_seed(0)
    policy = (CategoricalMLPPolicy(OBS, 3, (5,)) if discrete else GaussianMLPPolicy(OBS, 2, (5,))).double()
    batch = make_batch(policy, discrete)
    settings = MetaUpdateSettings(fast_lr=0.5, cg_damping=0.0)
    learner = MAMLTRPO(policy, sampler=None, settings=settings, advantage=AdvantageSettings())
    objective = PostAdaptationObjective(policy, batch, settings)
    fvp = learner.fisher_vector_product(objective, objective.adapted(create_graph=True), None)

    params = list(policy.parameters())
    _, kl = objective.loss_and_kl(objective.adapted(create_graph=True))
    assert abs(kl.item()) < 1e-12  # θ is where the episodes were sampled
    grad_kl = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, params, create_graph=True)])
    for seed in range(3):
        v = torch.randn(grad_kl.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        exact = torch.cat([h.reshape(-1) for h in torch.autograd.grad(grad_kl.dot(v), params, retain_graph=True)])
        torch.testing.assert_close(fvp(v), exact, atol=1e-10, rtol=1e-8)


def test_meta_update_keeps_parameters_when_no_step_meets_the_kl_bound(monkeypatch):
    import agents.maml_trpo as module

    torch.manual_seed(1)
    policy = GaussianMLPPolicy(OBS, 2, (5,)).double()
    batch = make_batch(policy, discrete=False, seed=1)
    settings = MetaUpdateSettings(fast_lr=0.5, max_kl=1e-3, ls_max_steps=3, ls_backtrack_ratio=0.5)
    learner = MAMLTRPO(policy, sampler=None, settings=settings, advantage=AdvantageSettings())
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    # a diverging step: 1000x too long, so even its 1/4 leaves the trust region
    real = module.natural_step
    monkeypatch.setattr(module, "natural_step", lambda *a, **k: 1000.0 * real(*a, **k))
    metrics = learner.step(batch, np.random.default_rng(0))
    assert metrics["step_accepted"] == 0.0 and metrics["step_fraction"] == 0.0
    for n, p in policy.named_parameters():
        assert torch.equal(p, before[n]), n


def test_meta_update_improves_the_surrogate_within_the_bound():
    torch.manual_seed(2)
    policy = GaussianMLPPolicy(OBS, 2, (5,)).double()
    batch = make_batch(policy, discrete=False, seed=2)
    learner = MAMLTRPO(policy, None, MetaUpdateSettings(fast_lr=0.5, max_kl=0.01), AdvantageSettings())
    metrics = learner.step(batch, np.random.default_rng(0))
    assert metrics["step_accepted"] == 1.0
    assert metrics["loss_after"] < metrics["loss_before"]
    assert 0.0 < metrics["kl_after"] <= 0.01
    # the recorded numbers are those of the new θ
    objective = PostAdaptationObjective(policy, batch, learner.settings)
    loss, kl = objective.loss_and_kl(objective.adapted(create_graph=False))
    assert loss.item() == pytest.approx(metrics["loss_after"]) and kl.item() == pytest.approx(metrics["kl_after"])


def test_packed_steps_give_the_padded_layouts_meta_update(monkeypatch):
    """Leaving the padding out changes no number: loss, gradient, Fisher-vector product and the new θ."""
    torch.manual_seed(4)
    policy = GaussianMLPPolicy(OBS, 2, (5,)).double()
    batch = make_batch(policy, discrete=False, seed=4)  # every task ends episodes early
    settings = MetaUpdateSettings(fast_lr=0.5, max_kl=0.01)
    start = {n: p.detach().clone() for n, p in policy.named_parameters()}

    def meta_update():
        policy.load_state_dict(start)
        learner = MAMLTRPO(policy, None, settings, AdvantageSettings())
        objective = PostAdaptationObjective(policy, batch, settings)
        adapted = objective.adapted(create_graph=True)
        loss, _ = objective.loss_and_kl(adapted)
        grad = torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(loss, list(policy.parameters()), retain_graph=True)]
        )
        v = torch.randn(grad.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        fvp = learner.fisher_vector_product(objective, adapted, None)(v)
        n_steps = objective.obs.shape[1]
        learner.step(batch, np.random.default_rng(0))
        theta = torch.cat([p.detach().reshape(-1) for p in policy.parameters()])
        return loss.detach(), grad, fvp, theta, n_steps

    packed = meta_update()
    for episodes in batch.episodes:
        everything = torch.arange(H * E).expand(T, H * E)
        monkeypatch.setitem(episodes.__dict__, "valid_step_index", everything)  # the padded layout
    padded = meta_update()
    assert packed[4] < padded[4] == H * E
    for a, b in zip(packed[:4], padded[:4], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_new_settings_rebuild_the_meta_update_path():
    """Benchmarks compare meta-updates by assigning settings: the path must follow them."""
    from agents.meta_update_paths import ExactMetaUpdate, FastMetaUpdate

    policy = GaussianMLPPolicy(OBS, 2, (5,)).double()
    learner = MAMLTRPO(policy, None, MetaUpdateSettings(fast_lr=0.5), AdvantageSettings())
    assert isinstance(learner.path, ExactMetaUpdate)
    fast = MetaUpdateSettings(fast_lr=0.5, fvp_transition_fraction=0.1)
    learner.settings = fast
    assert isinstance(learner.path, FastMetaUpdate) and learner.path.settings is fast
