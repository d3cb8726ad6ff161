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
    """``torch.nn.Linear(in_features, out_features, bias=True)``: ``y = x @
    weight.T + bias``; ``weight`` is ``[out_features, in_features]`` and both are
    initialized U(-1/sqrt(in), 1/sqrt(in)) as in torch. Takes ``[..., in]``:
    ``[in]``, ``[N, in]``, ``[B, N, in]``, ...

    >>> Linear(4, 3)(np.ones((2, 5, 4), np.float32)).shape
    (2, 5, 3)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__(dtype)
        self.in_features = _count("Linear", "in_features", in_features, least=0)
        self.out_features = _count("Linear", "out_features", out_features, least=0)
        self.has_bias = bool(bias)
        self._declare(LinearSpec, I=self.in_features, O=self.out_features, bias=self.has_bias)
        if bias:
            # torch's bias bound is 1/sqrt(fan_in) of the weight
            bound = 1.0 / np.sqrt(self.in_features) if self.in_features else 0.0
            self.bias.data[...] = initialize("uniform", (self.out_features,), np.float64) * bound

    def _select(self, inputs):
        return LinearSpec, {}

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.has_bias}"
