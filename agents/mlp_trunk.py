"""An MLP's forward pass kept for the written-out tangent and adjoint passes of the fast meta-update.

:class:`Trunk` runs the policy's MLP on per-task parameters once, keeps each layer's input
(transposed, with a row of ones, so that one contiguous batched matmul gives a layer's weight
and bias gradients) and the nonlinearity's slope (taken in fp32 before rounding to bf16), and
then applies the MLP's Jacobian forward (:meth:`Trunk.tangent`) and backward (:meth:`Trunk.adjoint`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.policies import Params, Policy


def transposed(x: Tensor) -> Tensor:
    """``x`` with its last two dimensions swapped (a view)."""
    return x.transpose(1, 2)


class Trunk:
    """An MLP's forward pass on rows ``obs [T, ..., in]`` with per-task ``params``, kept for tangent and adjoint passes.

    Args:
        policy: the policy whose MLP this is.
        params: per-task parameters (the MLP's ``w{i}``, ``b{i}`` with a leading task dimension).
        obs: the rows, ``[T, ..., in]``.
        dtype: the dtype the activations are kept and multiplied in.
    """

    def __init__(self, policy: Policy, params: Params, obs: Tensor, dtype: torch.dtype) -> None:
        self.num_layers = policy.num_layers
        self.tanh = policy.nonlinearity == "tanh"
        self.dtype = dtype
        self.wide = params["w0"].dtype  # the parameters' own dtype, of the head and of every result
        self.row_shape = obs.shape[:-1]
        x = obs.reshape(obs.shape[0], -1, obs.shape[-1]).to(dtype)
        self.weights = [params[f"w{i}"].to(dtype) for i in range(self.num_layers)]
        self.inputs = [x]  # the input of each layer
        self.slopes: list[Tensor] = []  # the nonlinearity's derivative after each hidden layer
        for i, weight in enumerate(self.weights):
            z = torch.baddbmm(params[f"b{i}"].to(dtype).unsqueeze(1), x, weight)
            if i == self.num_layers - 1:
                self.output = z
            elif self.tanh:
                wide = torch.tanh(z.to(self.wide))  # 1 − h² in bf16 would cancel to a few bits near |h| = 1
                x = wide.to(dtype)
                if x is not wide:  # wide is ours alone: 1 − h² in place, no temporaries
                    wide.square_().neg_().add_(1.0)
                    self.slopes.append(wide.to(dtype))
                else:
                    self.slopes.append(1.0 - wide * wide)
                self.inputs.append(x)
            else:
                x = torch.relu(z)
                self.slopes.append((z > 0).to(dtype))
                self.inputs.append(x)
        # each layer's input transposed, with a row of ones: one contiguous matmul gives the
        # weight's and the bias's gradient (a transposed view multiplies at half the speed)
        ones = torch.ones(x.shape[0], 1, x.shape[1], dtype=dtype)
        self.inputs_t = [torch.cat([transposed(x), ones], dim=1) for x in self.inputs]

    def parameter_grads(self, layer: int, output_grad: Tensor) -> tuple[Tensor, Tensor]:
        """The gradients of ``Σ output_grad · z`` in layer ``layer``'s weight and bias (``z`` its output)."""
        both = torch.bmm(self.inputs_t[layer], output_grad)
        return both[:, :-1], both[:, -1]

    def rows(self, output: Tensor) -> Tensor:
        """``output`` ``[T, rows, k]`` in the rows' own shape ``[T, ..., k]``."""
        return output.reshape(*self.row_shape, output.shape[-1])

    def tangent(self, tangent: Params) -> tuple[list[Tensor | None], Tensor]:
        """Forward mode: the tangents of every layer's input (``None`` for the observations) and of the output."""
        inputs: list[Tensor | None] = [None]
        dx: Tensor | None = None
        for i, weight in enumerate(self.weights):
            dz = torch.baddbmm(
                tangent[f"b{i}"].to(self.dtype).unsqueeze(1), self.inputs[i], tangent[f"w{i}"].to(self.dtype)
            )
            if dx is not None:
                dz.baddbmm_(dx, weight)
            if i == self.num_layers - 1:
                return inputs, dz
            dx = dz * self.slopes[i]  # out of place: in-place bf16 multiplies run at half the speed here
            inputs.append(dx)
        raise AssertionError("an MLP has at least one layer")

    def adjoint(self, output_grad: Tensor) -> Params:
        """Reverse mode: the gradient of ``Σ output_grad · output`` in the MLP's parameters."""
        grads: Params = {}
        g = output_grad.to(self.dtype)
        for i in reversed(range(self.num_layers)):
            grads[f"w{i}"], grads[f"b{i}"] = self.parameter_grads(i, g)
            if i > 0:
                g = torch.bmm(g, transposed(self.weights[i])) * self.slopes[i - 1]
        return grads


__all__ = ["Trunk", "transposed"]
