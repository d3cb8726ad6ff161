"""Pooling: ``MaxPool2D`` and ``AvgPool2D``, with their spec functions."""
from __future__ import annotations

from ..compiler import ops
from ..compiler.spec import Attr, Input
from ..layers import layer
from .base import _counts, _pair, _rank, _Stateless


def max_pool2d(x, kernel_size, stride):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    i, j = ops.reduce_axis(kh, "i"), ops.reduce_axis(kw, "j")
    return ops.compute((N, C, (H - kh) // sh + 1, (W - kw) // sw + 1), lambda n, c, h, w: ops.max(
        x[n, c, h * sh + i, w * sw + j], over=(i, j)), name="maxpool")


def avg_pool2d(x, kernel_size, stride):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    i, j = ops.reduce_axis(kh, "i"), ops.reduce_axis(kw, "j")
    # scaled inside the sum: one pass over the window, not a second over the output
    return ops.compute((N, C, (H - kh) // sh + 1, (W - kw) // sw + 1), lambda n, c, h, w: ops.sum(
        x[n, c, h * sh + i, w * sw + j] * (1.0 / (kh * kw)), over=(i, j)), name="avgpool")


@layer
class MaxPool2DSpec:
    """Max over ``kernel_size`` windows (no padding); the gradient goes to the
    first maximal element of each window (row-major), or its first NaN."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))

    def forward(x, kernel_size, stride):
        return max_pool2d(x, kernel_size, stride)


@layer
class AvgPool2DSpec:
    """Mean over ``kernel_size`` windows (no padding)."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))

    def forward(x, kernel_size, stride):
        return avg_pool2d(x, kernel_size, stride)


class _Pool2D(_Stateless):
    _spec = None

    def __init__(self, kernel_size, stride=None, dtype=None):
        super().__init__(dtype)
        name = type(self).__name__
        self.kernel_size = _counts(name, "kernel_size", kernel_size)
        self.stride = _counts(name, "stride", stride) if stride is not None else self.kernel_size
        object.__setattr__(self, "_spec_bindings", {"kernel_size": self.kernel_size, "stride": self.stride})

    def _select(self, inputs):
        if _rank(inputs) != 4:
            raise ValueError(f"{type(self).__name__}: input must be [N, C, H, W], got rank {_rank(inputs)}")
        return type(self)._spec, {}

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2D(_Pool2D):
    """``torch.nn.MaxPool2d(kernel_size, stride)`` (stride defaults to the kernel size)."""
    _spec = MaxPool2DSpec


class AvgPool2D(_Pool2D):
    """``torch.nn.AvgPool2d(kernel_size, stride)`` (stride defaults to the kernel size)."""
    _spec = AvgPool2DSpec
