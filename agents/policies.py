"""MLP policies evaluated with explicit, per-task parameters.

A policy owns the meta-parameters θ as ``nn.Parameter``s, but its forward pass is
functional: :meth:`Policy.distribution` takes a dict of parameters whose every tensor
has a leading *task* dimension ``T``. Before adaptation every task uses θ
(:meth:`Policy.task_params` expands it, a view that keeps the gradient path to θ);
after adaptation task ``i`` uses its own θ'ᵢ. One batched matmul per layer evaluates
all tasks at once.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

Params = dict[str, Tensor]
"""Policy parameters by name, each with a leading task dimension."""

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class Policy(nn.Module, abc.ABC):
    """An MLP policy over per-task parameters: ``obs [T, ..., obs_dim]`` → distribution."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_sizes: Sequence[int],
        nonlinearity: str,
        output_scale: float = 1.0,
    ):
        """Glorot-uniform weights and zero biases; the output layer's weights times ``output_scale``.

        Args:
            input_size: The observation's width.
            output_size: The MLP's output width (action dimension or number of actions).
            hidden_sizes: Widths of the hidden layers (empty: a linear policy).
            nonlinearity: The hidden layers' activation, ``tanh`` or ``relu``.
            output_scale: Factor on the output layer's initial weights; a small one starts every
                seed from near-zero action means (or near-uniform action probabilities).
        """
        super().__init__()
        if not output_scale > 0:
            raise ValueError(f"output_scale must be > 0, got {output_scale!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        self.input_size = input_size
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.nonlinearity = nonlinearity
        self._act = NONLINEARITIES[nonlinearity]
        sizes = (input_size, *self.hidden_sizes, output_size)
        self.num_layers = len(sizes) - 1
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            weight = torch.empty(n_in, n_out)
            # Glorot-uniform weights stored as [in, out] so that x @ W needs no transpose.
            bound = math.sqrt(6.0 / (n_in + n_out))
            nn.init.uniform_(weight, -bound, bound)
            if i == self.num_layers - 1:
                weight.mul_(output_scale)
            self.register_parameter(f"w{i}", nn.Parameter(weight))
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(n_out)))

    def task_params(self, num_tasks: int) -> Params:
        """θ expanded to ``num_tasks`` tasks (views: gradients flow back to θ)."""
        return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in self.named_parameters()}

    def _mlp(self, obs: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """The MLP's output for ``obs [T, ..., in]`` with per-task ``params``."""
        lead = obs.shape[:-1]
        x = obs.reshape(lead[0], -1, obs.shape[-1])
        for i in range(self.num_layers):
            x = torch.baddbmm(params[f"b{i}"].unsqueeze(1), x, params[f"w{i}"])
            if i < self.num_layers - 1:
                x = self._act(x)
        return x.reshape(*lead, x.shape[-1])

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Distribution:
        """The action distribution for ``obs [T, ..., obs_dim]``; batch shape ``obs.shape[:-1]``."""
        return self.output_distribution(self.fisher_outputs(obs, params))

    def fisher_outputs(self, obs: Tensor, params: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        """The distribution's parameters for ``obs``, each shaped ``[T, ..., k]`` (one row per observation)."""
        return self.head_outputs(self._mlp(obs, params), params)

    @abc.abstractmethod
    def head_outputs(self, trunk: Tensor, params: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        """The distribution's parameters from the MLP's output ``trunk`` and the parameters outside the MLP."""

    @abc.abstractmethod
    def output_distribution(self, outputs: tuple[Tensor, ...]) -> Distribution:
        """The action distribution whose parameters are ``outputs`` (:meth:`fisher_outputs`)."""

    @abc.abstractmethod
    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray:
        """The noise of ``num_steps`` actions of one episode, ``[num_steps, *noise shape]``, drawn from ``rng``."""

    @abc.abstractmethod
    def sample_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        """Actions of :meth:`distribution` ``dist`` made from :meth:`draw_noise` noise (shaped like its batch).

        Sampling by reparameterisation from noise drawn up front makes an action a
        function of the observation, the parameters and that noise alone, so a sampler
        can give every episode its own random stream.
        """

    def actions_from_noise(self, obs: Tensor, params: Mapping[str, Tensor], noise: Tensor) -> Tensor:
        """The sampler's actions for ``obs [T, ..., obs_dim]``: :meth:`sample_from_noise` of :meth:`distribution`.

        A policy may compute the same numbers without building the distribution (the
        sampler calls this at every step).

        Args:
            obs: Observations ``[T, ..., obs_dim]``.
            params: The parameters, each with a leading task axis ``[T, ...]``.
            noise: The standard noise of the actions (its shape is the distribution's sample shape).
        """
        return self.sample_from_noise(self.distribution(obs, params), noise)

    @abc.abstractmethod
    def fisher_metric(self, outputs: tuple[Tensor, ...], tangents: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Per row, the Hessian of KL(old ‖ new) in the distribution parameters at new = old, times ``tangents``.

        With ``J`` the Jacobian of :meth:`fisher_outputs` in θ, the Fisher matrix is
        ``Jᵀ M J``: the meta-update uses this to compute Fisher-vector products
        without differentiating the KL twice.
        """


class GaussianMLPPolicy(Policy):
    """A diagonal Gaussian whose mean is an MLP of the observation and whose log-std is a parameter."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        nonlinearity: str = "tanh",
        init_std: float = 1.0,
        min_std: float = 1e-6,
        output_scale: float = 1.0,
    ):
        """See :class:`Policy`; ``init_std`` is the initial standard deviation, ``min_std`` its floor."""
        super().__init__(obs_dim, action_dim, hidden_sizes, nonlinearity, output_scale)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))
        self.min_log_std = math.log(min_std)

    def head_outputs(self, trunk: Tensor, params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Mean (the MLP's output) and log-std of every row, ``[T, ..., action_dim]`` each."""
        log_std = params["log_std"].clamp(min=self.min_log_std)
        shape = (log_std.shape[0],) + (1,) * (trunk.dim() - 2) + (log_std.shape[-1],)
        return trunk, log_std.reshape(shape).expand_as(trunk)

    def output_distribution(self, outputs: tuple[Tensor, ...]) -> Distribution:
        """The diagonal Gaussian of the outputs ``(mean, log_std)``."""
        mean, log_std = outputs
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)

    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray:
        """Standard normal ``ε``, ``[num_steps, action_dim]`` float32."""
        return rng.standard_normal((num_steps, self.log_std.shape[0]), dtype=np.float32)

    def sample_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        """``mean + std · ε``."""
        normal = dist.base_dist  # type: ignore[attr-defined]
        return normal.loc + normal.scale * noise

    def actions_from_noise(self, obs: Tensor, params: Mapping[str, Tensor], noise: Tensor) -> Tensor:
        """``mean + std · ε`` as :meth:`sample_from_noise` makes it, without the distribution's objects.

        Args:
            obs: Observations ``[T, ..., obs_dim]``.
            params: The parameters, each with a leading task axis ``[T, ...]``.
            noise: Standard normal noise ``[T, ..., action_dim]``.
        """
        mean = self._mlp(obs, params)
        log_std = params["log_std"].clamp(min=self.min_log_std)
        std = log_std.exp().reshape((log_std.shape[0],) + (1,) * (mean.dim() - 2) + (log_std.shape[-1],))
        return mean + std * noise

    def fisher_metric(self, outputs: tuple[Tensor, ...], tangents: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """For a diagonal Gaussian: ``1/σ²`` on the mean and ``2`` on the log-std."""
        _, log_std = outputs
        d_mean, d_log_std = tangents
        return d_mean * torch.exp(-2.0 * log_std), 2.0 * d_log_std


class CategoricalMLPPolicy(Policy):
    """A categorical distribution whose logits are an MLP of the observation."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        nonlinearity: str = "tanh",
        output_scale: float = 1.0,
    ):
        super().__init__(obs_dim, num_actions, hidden_sizes, nonlinearity, output_scale)

    def head_outputs(self, trunk: Tensor, params: Mapping[str, Tensor]) -> tuple[Tensor]:
        """Logits of every row (the MLP's output), ``[T, ..., num_actions]``."""
        return (trunk,)

    def output_distribution(self, outputs: tuple[Tensor, ...]) -> Distribution:
        """The categorical distribution of the outputs ``(logits,)``."""
        return Categorical(logits=outputs[0], validate_args=False)

    def draw_noise(self, rng: np.random.Generator, num_steps: int) -> np.ndarray:
        """Uniform ``u`` in [0, 1), ``[num_steps]`` float64."""
        return rng.random(num_steps)

    def sample_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        """The inverse CDF at ``u``: the first action whose cumulative probability exceeds ``u``."""
        probs = dist.probs  # type: ignore[attr-defined]
        cdf = probs.double().cumsum(-1)
        action = (cdf <= noise.unsqueeze(-1)).sum(-1)
        return action.clamp(max=probs.shape[-1] - 1)

    def fisher_metric(self, outputs: tuple[Tensor, ...], tangents: tuple[Tensor, ...]) -> tuple[Tensor]:
        """For a softmax over logits: ``diag(p) − p pᵀ``."""
        probs = torch.softmax(outputs[0], dim=-1)
        (d_logits,) = tangents
        return (probs * d_logits - probs * (probs * d_logits).sum(-1, keepdim=True),)
