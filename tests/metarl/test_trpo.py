"""Conjugate gradient against a direct solve; the line search's accept/reject rules."""

import torch

from metarl.learner.trpo import (
    backtracking_line_search,
    conjugate_gradient,
    conjugate_gradient_with_product,
    natural_step,
)


def spd_matrix(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a @ a.T + n * torch.eye(n, dtype=torch.float64)


def test_conjugate_gradient_matches_direct_solve():
    a = spd_matrix(10)
    b = torch.arange(1.0, 11.0, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=10)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), atol=1e-6, rtol=1e-6)


def test_natural_step_has_the_kl_bound_as_quadratic_model():
    a = spd_matrix(6, seed=3)
    g = torch.randn(6, dtype=torch.float64)
    step = natural_step(g, lambda v: a @ v, max_kl=0.01, cg_iters=20)
    assert abs(float(0.5 * step @ a @ step) - 0.01) < 1e-9
    torch.testing.assert_close(step / step.norm(), torch.linalg.solve(a, g) / torch.linalg.solve(a, g).norm())


def counted_products(a):
    """``v ↦ a v``, and the list of the vectors it was called with."""
    calls = []

    def matvec(v):
        calls.append(v)
        return a @ v

    return matvec, calls


def test_conjugate_gradient_returns_the_product_of_its_solution_without_another_matvec():
    a = spd_matrix(12, seed=5)
    b = torch.randn(12, dtype=torch.float64)
    matvec, calls = counted_products(a)
    x, ax = conjugate_gradient_with_product(matvec, b, iters=4)  # truncated: x is not yet the solution
    assert len(calls) == 4
    torch.testing.assert_close(ax, a @ x, atol=1e-12, rtol=1e-10)
    assert float((a @ x - b).norm()) > 1e-3


def test_natural_step_takes_cg_iters_products_and_keeps_the_kl_model_when_truncated():
    a = spd_matrix(12, seed=6)
    g = torch.randn(12, dtype=torch.float64)
    matvec, calls = counted_products(a)
    step = natural_step(g, matvec, max_kl=0.01, cg_iters=5)
    assert len(calls) == 5
    assert abs(float(0.5 * step @ a @ step) - 0.01) < 1e-12


def test_line_search_keeps_parameters_when_no_step_meets_the_kl_bound():
    params = torch.tensor([1.0, 2.0])
    calls = []

    def evaluate(candidate):
        calls.append(candidate.clone())
        return -100.0, 1.0  # always improving, always violating max_kl

    new, result = backtracking_line_search(evaluate, params, torch.ones(2), 0.0, max_kl=0.01, max_steps=15)
    assert torch.equal(new, params)
    assert not result.accepted and result.step_fraction == 0.0 and result.num_steps == 15
    assert len(calls) == 15
    torch.testing.assert_close(calls[-1], params - 0.8**14 * torch.ones(2))


def test_line_search_rejects_steps_that_do_not_improve():
    def evaluate(candidate):
        return float(candidate.sum()), 0.0  # loss rises with the step: params - f*step, step negative

    params = torch.zeros(2)
    new, result = backtracking_line_search(evaluate, params, -torch.ones(2), 0.0, max_kl=0.01)
    assert torch.equal(new, params) and not result.accepted


def test_line_search_accepts_first_improving_step_inside_the_bound():
    # quadratic loss (x - 1)^2 from x = 0 with full step -4 (overshoots); KL = (x)^2 / 10
    def evaluate(candidate):
        x = float(candidate[0])
        return (x - 1.0) ** 2, x * x / 10

    new, result = backtracking_line_search(
        evaluate, torch.zeros(1), torch.tensor([-4.0]), old_loss=1.0, max_kl=0.2, max_steps=15, ratio=0.5
    )
    # fractions 1 (x=4, loss 9), 0.5 (x=2, loss 1, not < 1), 0.25 (x=1, loss 0, KL 0.1) -> accepted
    assert result.accepted and result.step_fraction == 0.25 and result.num_steps == 3
    assert float(new[0]) == 1.0 and result.loss == 0.0 and abs(result.kl - 0.1) < 1e-12
