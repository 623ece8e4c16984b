"""torch.tanh against the policies' sigmoid-based tanh (agents.policies.tanh), in one run.

    .venv/bin/python benchmarks/activations.py [--num_threads 1] [--repeats 9]

Times, on the shapes an iteration of the halfcheetah-vel preset uses (the learner's
160,000 × 100 hidden activations; the sampler's 800 × 100 per step), the forward pass
alone and forward + backward + double backward (what second-order MAML runs), median of
``--repeats``, and prints the ratio torch / ours and the largest difference in values.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from agents.policies import tanh
from metarl.memory import restart_with_tuned_malloc


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def second_order(fn, x: torch.Tensor, g: torch.Tensor) -> None:
    (gx,) = torch.autograd.grad(fn(x), x, g, create_graph=True)
    torch.autograd.grad((gx * g).sum(), x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.num_threads} thread(s), median of {args.repeats}")
    print("shape            pass                      torch.tanh ms   ours ms   torch/ours   max |diff|")
    for shape in ((40, 4000, 100), (40, 20, 100)):
        x = torch.randn(*shape)
        diff = float((tanh(x) - torch.tanh(x)).abs().max())
        xg = x.clone().requires_grad_(True)
        g = torch.randn_like(x)
        passes = {
            "forward": lambda f, x=x: f(x),
            "forward+backward+double": lambda f, xg=xg, g=g: second_order(f, xg, g),
        }
        for name, run in passes.items():
            theirs = median_ms(lambda run=run: run(torch.tanh), args.repeats)
            ours = median_ms(lambda run=run: run(tanh), args.repeats)
            print(f"{str(tuple(shape)):<17}{name:<26}{theirs:>12.3f}{ours:>10.3f}{theirs / ours:>12.2f}x"
                  f"{diff:>13.1e}")


if __name__ == "__main__":
    restart_with_tuned_malloc()
    main()
