"""Normalization layers: ``BatchNorm2D`` and ``LayerNorm``, with their spec functions."""
from __future__ import annotations

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Buffer, Input, Param
from ..layers import layer
from ..runtime.tensor import Tensor
from .base import SpecLayer, _count


def batch_norm2d(x, weight, bias, running_mean, running_var, eps=1e-5, momentum=0.1, training=True):
    """Batch normalization over ``(N, H, W)`` per channel, as a spec function.

    Training: batch statistics (biased variance to normalize; the backward runs
    through them), and the running statistics move towards the batch's (unbiased
    variance, as torch). Eval: the running statistics."""
    N, C, H, W = x.shape
    if training:
        mean = ops.mean(x, axis=(0, 2, 3), keepdims=True)
        var = ops.var(x, axis=(0, 2, 3), keepdims=True)
        count = N * H * W
        ops.assign(running_mean, running_mean * (1.0 - momentum) + mean.reshape(C) * momentum)
        ops.assign(running_var, running_var * (1.0 - momentum)
                   + ops.stop_gradient(var.reshape(C)) * count / (count - 1) * momentum)
    else:
        mean = running_mean.reshape(C, 1, 1)
        var = running_var.reshape(C, 1, 1)
    scale = weight.reshape(C, 1, 1) / ops.sqrt(var + eps)
    return (x - mean) * scale + bias.reshape(C, 1, 1)


@layer
class BatchNorm2DSpec:
    x = Input("N", "C", "H", "W")
    weight = Param("C", init="ones")
    bias = Param("C", init="zeros")
    running_mean = Buffer("C", init=0.0)
    running_var = Buffer("C", init=1.0)
    eps = Attr(1e-5)
    momentum = Attr(0.1)
    training = Attr(True)

    def forward(x, weight, bias, running_mean, running_var, eps, momentum, training):
        return batch_norm2d(x, weight, bias, running_mean, running_var, eps, momentum, training)


class BatchNorm2D(SpecLayer):
    """``torch.nn.BatchNorm2d``: ``weight``, ``bias`` and buffers ``running_mean``,
    ``running_var``. ``train()``/``eval()`` pick the compiled variant (batch or
    running statistics); both share the same parameters and buffers."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(dtype)
        self.num_features = _count("BatchNorm2D", "num_features", num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        self._declare(BatchNorm2DSpec, C=self.num_features, eps=self.eps, momentum=self.momentum)

    def _select(self, inputs):
        shape = np.shape(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])
        if self.training and len(shape) == 4 and shape[0] * shape[2] * shape[3] <= 1:
            # the unbiased running variance divides by N*H*W - 1 (torch refuses this too)
            raise ValueError(f"BatchNorm2D: training needs more than one value per channel, got input "
                             f"of shape {tuple(shape)}; use eval() for single values")
        return BatchNorm2DSpec, {"training": bool(self.training)}

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


_LN_DIMS = ("L1", "L2", "L3")


def layer_norm(x, weight, bias, k, eps=1e-5):
    """Normalize over the last ``k`` axes, then scale and shift (spec function)."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    return centered / ops.sqrt(var + eps) * weight + bias


_layer_norm_specs: dict = {}


def layer_norm_spec(k: int):
    """The LayerNorm spec normalizing the last ``k`` axes, ``[..., L1..Lk]``: every rank."""
    if not 1 <= k <= len(_LN_DIMS):
        raise ValueError(f"LayerNorm: normalized_shape must have 1..{len(_LN_DIMS)} axes, got {k}")
    if k not in _layer_norm_specs:
        norm = _LN_DIMS[:k]

        class Spec:
            x = Input(..., *norm)
            weight = Param(*norm, init="ones")
            bias = Param(*norm, init="zeros")
            eps = Attr(1e-5)

            def forward(x, weight, bias, eps):
                return layer_norm(x, weight, bias, k, eps)
        Spec.__name__ = Spec.__qualname__ = f"LayerNorm{k}"
        _layer_norm_specs[k] = layer(Spec)
    return _layer_norm_specs[k]


class LayerNorm(SpecLayer):
    """``torch.nn.LayerNorm(normalized_shape)``: normalize over the trailing
    ``normalized_shape`` axes (biased variance), with ``weight`` and ``bias`` of
    that shape; one compiled kernel for every rank of input."""

    def __init__(self, normalized_shape, eps=1e-5, dtype=np.float32):
        super().__init__(dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not 1 <= len(shape) <= len(_LN_DIMS):
            raise ValueError(f"LayerNorm: normalized_shape must have 1..{len(_LN_DIMS)} axes, got {shape}")
        self.normalized_shape = tuple(_count("LayerNorm", "normalized_shape", d, least=0) for d in shape)
        self.eps = float(eps)
        self._declare(layer_norm_spec(len(shape)), eps=self.eps, **dict(zip(_LN_DIMS, self.normalized_shape)))

    def _select(self, inputs):
        return layer_norm_spec(len(self.normalized_shape)), {}

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
