"""Bias, spread and error of the sampled MAML meta-gradient per inner-loss estimator, against the exact one.

    .venv/bin/python benchmarks/estimator_bias.py [--episodes 1000 10000 100000] [--repeats 8] [--fast_lr 2.0]

On a small tabular MDP (3 states, 2 actions, 5 steps) and a 3-armed bandit (5 pulls), a
categorical MLP policy (8 tanh units) seeded at 0: the exact ∇θ J(θ + (α/H)∇J(θ)) in
closed form (``agents/exact_maml.py``), and ``--repeats`` sampled meta-gradients per
estimator and episode count N, each from N fresh episodes before and N after the inner
step, as MAML-TRPO's meta-update computes it. Prints, relative to the exact gradient's
norm: the bias (the mean estimate's distance), the spread (root-mean-square distance of
an estimate from the mean) and the error of one estimate (root-mean-square distance from
the exact gradient).
"""

from __future__ import annotations

import argparse
import time

import torch

from agents.exact_maml import TabularProblem, exact_maml, sampled_meta_gradient
from agents.policies import CategoricalMLPPolicy
from metarl.config import ESTIMATORS


def problems() -> dict[str, TabularProblem]:
    """The two problems by name, seeded."""
    g = torch.Generator().manual_seed(1)
    states, actions = 3, 2
    with torch.random.fork_rng():  # the same MDP whatever torch's global stream is at
        torch.manual_seed(1)
        transitions = torch.distributions.Dirichlet(torch.ones(states, dtype=torch.float64)).sample((states, actions))
    rewards = torch.rand(states, actions, generator=g, dtype=torch.float64)
    initial = torch.zeros(states, dtype=torch.float64)
    initial[0] = 1.0
    arms = torch.tensor([[0.2, 0.5, 0.8]], dtype=torch.float64)
    return {
        "tabular MDP (3 states, 2 actions, 5 steps)": TabularProblem(
            torch.eye(states, dtype=torch.float64), transitions, rewards, initial, 5
        ),
        "bandit (3 arms, 5 pulls)": TabularProblem(
            torch.ones(1, 1, dtype=torch.float64),
            torch.ones(1, 3, 1, dtype=torch.float64),
            arms,
            torch.ones(1, dtype=torch.float64),
            5,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--fast_lr", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    for name, problem in problems().items():
        torch.manual_seed(0)
        policy = CategoricalMLPPolicy(problem.observations.shape[1], problem.rewards.shape[1], (8,)).double()
        value, exact = exact_maml(policy, problem, args.fast_lr)
        print(
            f"\n{name}, fast_lr {args.fast_lr}: exact J(θ') = {float(value):.4f}, |∇θ J(θ')| = "
            f"{float(exact.norm()):.4f}"
        )
        print("episodes  estimator   bias   spread   error of one estimate   seconds per estimate")
        for episodes in args.episodes:
            for estimator in ESTIMATORS:
                start = time.perf_counter()
                estimates = torch.stack(
                    [
                        sampled_meta_gradient(
                            policy, problem, args.fast_lr, episodes, estimator, torch.Generator().manual_seed(1000 + r)
                        )
                        for r in range(args.repeats)
                    ]
                )
                seconds = (time.perf_counter() - start) / args.repeats
                mean = estimates.mean(0)
                scale = float(exact.norm())
                bias = float((mean - exact).norm()) / scale
                spread = float((estimates - mean).norm(dim=1).pow(2).mean().sqrt()) / scale
                error = float((estimates - exact).norm(dim=1).pow(2).mean().sqrt()) / scale
                print(
                    f"{episodes:8d}  {estimator:9s}  {bias:5.3f}  {spread:6.3f}  {error:22.3f}  {seconds:20.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
