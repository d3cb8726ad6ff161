"""``Linear``: ``y = x @ weight.T + bias`` on ``[..., in]`` (any rank >= 1)."""
from __future__ import annotations

import numpy as np

from ..compiler.spec import Input, Param
from ..layers import layer
from ..runtime.init import initialize
from .base import SpecLayer, _count


@layer
class LinearSpec:
    """``y = x @ weight.T + bias`` on ``[..., I]``: the leading axes run as one
    (one matrix product); ``build(bias=False)`` drops the bias."""
    x = Input(..., "I")
    weight = Param("O", "I", init="fan_in_uniform")
    bias = Param("O", init="zeros", optional=True)   # Linear draws U(-1/sqrt(in), 1/sqrt(in))

    def forward(x, weight, bias):
        y = x @ weight.T
        return y if bias is None else y + bias


class Linear(SpecLayer):
    """``y = x @ weight.T + bias``; ``weight`` is ``[output_size, input_size]``
    and both are initialized U(-1/sqrt(in), 1/sqrt(in)) as in ``torch.nn.Linear``.
    Takes ``[..., in]``: ``[in]``, ``[N, in]``, ``[B, N, in]``, ...

    >>> Linear(4, 3)(np.ones((2, 5, 4), np.float32)).shape
    (2, 5, 3)
    """

    def __init__(self, input_size: int, output_size: int, bias: bool = True, dtype=np.float32):
        super().__init__(dtype)
        self.input_size = _count("Linear", "input_size", input_size, least=0)
        self.output_size = _count("Linear", "output_size", output_size, least=0)
        self.has_bias = bool(bias)
        self._declare(LinearSpec, I=self.input_size, O=self.output_size, bias=self.has_bias)
        if bias:
            # torch's bias bound is 1/sqrt(fan_in) of the weight
            bound = 1.0 / np.sqrt(self.input_size) if self.input_size else 0.0
            self.bias.data[...] = initialize("uniform", (self.output_size,), np.float64) * bound

    def _select(self, inputs):
        return LinearSpec, {}

    def extra_repr(self):
        return f"{self.input_size}, {self.output_size}, bias={self.has_bias}"
