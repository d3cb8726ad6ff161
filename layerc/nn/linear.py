"""``Linear``: ``y = x @ weight.T + bias`` on ``[N, in]`` or ``[B, N, in]``."""
from __future__ import annotations

import numpy as np

from ..compiler.spec import Input, Param
from ..layers import layer
from ..runtime.init import initialize
from .base import SpecLayer, _count, _rank


@layer
class LinearSpec:
    """``y = x @ weight.T + bias`` on ``[N, in]``."""
    x = Input("N", "I")
    weight = Param("O", "I", init="fan_in_uniform")
    bias = Param("O", init="zeros")   # Linear draws U(-1/sqrt(in), 1/sqrt(in))

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class LinearNoBiasSpec:
    x = Input("N", "I")
    weight = Param("O", "I", init="fan_in_uniform")

    def forward(x, weight):
        return x @ weight.T


@layer
class Linear3Spec:
    """``Linear`` on ``[B, N, in]`` (sequences)."""
    x = Input("B", "N", "I")
    weight = Param("O", "I", init="fan_in_uniform")
    bias = Param("O", init="zeros")   # Linear draws U(-1/sqrt(in), 1/sqrt(in))

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class Linear3NoBiasSpec:
    x = Input("B", "N", "I")
    weight = Param("O", "I", init="fan_in_uniform")

    def forward(x, weight):
        return x @ weight.T


class Linear(SpecLayer):
    """``y = x @ weight.T + bias``; ``weight`` is ``[output_size, input_size]``
    and both are initialized U(-1/sqrt(in), 1/sqrt(in)) as in ``torch.nn.Linear``.
    Takes ``[N, in]`` or ``[B, N, in]``."""

    def __init__(self, input_size: int, output_size: int, bias: bool = True, dtype=np.float32):
        super().__init__(dtype)
        self.input_size = _count("Linear", "input_size", input_size, least=0)
        self.output_size = _count("Linear", "output_size", output_size, least=0)
        self.has_bias = bool(bias)
        self._declare(LinearSpec if bias else LinearNoBiasSpec, I=self.input_size, O=self.output_size)
        if bias:
            # torch's bias bound is 1/sqrt(fan_in) of the weight
            bound = 1.0 / np.sqrt(self.input_size) if self.input_size else 0.0
            self.bias.data[...] = initialize("uniform", (self.output_size,), np.float64) * bound

    def _select(self, inputs):
        rank = _rank(inputs)
        if rank == 2:
            return (LinearSpec if self.has_bias else LinearNoBiasSpec), {}
        if rank == 3:
            return (Linear3Spec if self.has_bias else Linear3NoBiasSpec), {}
        raise ValueError(f"Linear: input must be [N, {self.input_size}] or [B, N, {self.input_size}], "
                         f"got rank {rank}")

    def extra_repr(self):
        return f"{self.input_size}, {self.output_size}, bias={self.has_bias}"
