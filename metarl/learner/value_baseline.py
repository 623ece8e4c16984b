"""A linear feature baseline fitted per task, all tasks in one batched least-squares solve.

The baseline of Duan, Chen, Houthooft, Schulman and Abbeel, "Benchmarking Deep
Reinforcement Learning for Continuous Control", ICML 2016 (https://arxiv.org/abs/1604.06778),
which the MAML paper's code used: features ``[o, o², t, t², t³, 1]``, ridge regression on
the discounted returns.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from metarl.learner.advantages import discounted_returns, gae, normalize_per_task
from metarl.sampling.episodes import Episodes

log = logging.getLogger("metarl")

TIME_SCALE = 100.0


def baseline_features(observations: Tensor, steps: Tensor) -> Tensor:
    """Features ``[o, o², t, t², t³, 1]`` (t = step / 100) for observations ``[..., D]`` and steps ``[...]``."""
    obs = observations.to(torch.float64).clamp(-10.0, 10.0)
    t = (steps.to(torch.float64) / TIME_SCALE).unsqueeze(-1)
    return torch.cat([obs, obs**2, t, t**2, t**3, torch.ones_like(t)], dim=-1)


def task_major_features(observations: Tensor) -> Tensor:
    """:func:`baseline_features` of ``observations [H, T, E, D]`` at steps ``0..H-1``, laid out ``[T, H·E, F]``.

    Built task-major from the start, as the batched least squares needs them (no transposed copy).
    """
    horizon, num_tasks, per_task, _ = observations.shape
    steps = torch.arange(horizon, dtype=torch.float32).view(1, horizon, 1).expand(num_tasks, horizon, per_task)
    return baseline_features(observations.transpose(0, 1), steps).view(num_tasks, horizon * per_task, -1)


class LinearFeatureBaseline:
    """V(s_t) ≈ wᵢ · φ(s_t, t), one weight vector per task, ridge-regularised.

    ``fit`` solves ``(XᵢᵀXᵢ + λI) wᵢ = Xᵢᵀ yᵢ`` for every task ``i`` in one batched
    Cholesky solve over the task's valid steps, ``yᵢ`` being discounted returns.
    If a system is not positive definite, λ grows tenfold (up to five times).
    """

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.weights: Tensor | None = None  # [T, F] float64

    def _masked_features(self, episodes: Episodes) -> Tensor:
        """The features of the valid steps (0 on the others), ``[T, H·E, F]``."""
        features = task_major_features(episodes.observations)
        return features.mul_(episodes.mask.transpose(0, 1).reshape(episodes.num_tasks, -1, 1))

    def fit(self, episodes: Episodes, gamma: float) -> None:
        """Fit one weight vector per task to the discounted returns of ``episodes``."""
        self._fit(self._masked_features(episodes), episodes, gamma)

    def fit_predict(self, episodes: Episodes, gamma: float) -> Tensor:
        """:meth:`fit` then :meth:`predict` on the same ``episodes``, building their features once."""
        features = self._masked_features(episodes)
        self._fit(features, episodes, gamma)
        return self._values(features, episodes)

    def _fit(self, x: Tensor, episodes: Episodes, gamma: float) -> None:
        mask = episodes.mask.to(torch.float64)
        y = discounted_returns(episodes.rewards.to(torch.float64), mask, gamma)
        y = y.transpose(0, 1).reshape(episodes.num_tasks, -1, 1)
        xtx = x.transpose(1, 2) @ x
        xty = x.transpose(1, 2) @ y
        eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype)
        reg = self.reg_coeff
        for _ in range(5):
            chol, info = torch.linalg.cholesky_ex(xtx + reg * eye)
            if int(info.max()) == 0:
                break
            log.debug("baseline: system not positive definite at reg %.1e; increasing", reg)
            reg *= 10.0
        else:
            raise RuntimeError(f"LinearFeatureBaseline: least-squares system singular even with reg={reg:g}")
        self.weights = torch.cholesky_solve(xty, chol).squeeze(-1)

    def predict(self, episodes: Episodes) -> Tensor:
        """Baseline values ``[H, T, E]`` on the valid steps (0 elsewhere)."""
        return self._values(self._masked_features(episodes), episodes)

    def _values(self, features: Tensor, episodes: Episodes) -> Tensor:
        values = torch.bmm(features, self._fitted().unsqueeze(-1))  # [T, H·E, 1]; 0 on invalid steps
        values = values.view(episodes.num_tasks, episodes.horizon, -1).transpose(0, 1)
        return values.to(episodes.rewards.dtype)

    def predict_final(self, episodes: Episodes) -> Tensor:
        """Baseline values ``[T, E]`` of each episode's final observation, at step ``length``."""
        features = baseline_features(episodes.final_observations, episodes.lengths)
        return torch.einsum("tef,tf->te", features, self._fitted()).to(episodes.rewards.dtype)

    def _fitted(self) -> Tensor:
        if self.weights is None:
            raise RuntimeError("LinearFeatureBaseline: call fit before predict")
        return self.weights


def estimate_advantages(
    episodes: Episodes,
    gamma: float,
    gae_lambda: float,
    normalize: bool = True,
    bootstrap_truncated: bool = False,
) -> Tensor:
    """Fit a per-task linear baseline to ``episodes`` and return GAE advantages ``[H, T, E]``.

    Terminated episodes end with value 0; truncated ones are bootstrapped with the
    baseline's value of their final observation only if ``bootstrap_truncated``
    (the MAML objective is a finite-horizon sum, so by default they are not).

    Args:
        episodes: The tasks' episodes.
        gamma: The discount factor.
        gae_lambda: GAE's λ.
        normalize: Shift and scale each task's advantages to mean 0 and std 1.
        bootstrap_truncated: Bootstrap truncated episodes with the baseline's value.
    """
    baseline = LinearFeatureBaseline()
    values = baseline.fit_predict(episodes, gamma)
    last_values = torch.zeros_like(episodes.lengths, dtype=values.dtype)
    if bootstrap_truncated:
        last_values = torch.where(episodes.truncated, baseline.predict_final(episodes), last_values)
    advantages = gae(episodes.rewards, values, episodes.mask, last_values, gamma, gae_lambda)
    if normalize:
        advantages = normalize_per_task(advantages, episodes.mask)
    return advantages
