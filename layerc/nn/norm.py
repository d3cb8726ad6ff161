"""``LayerNorm``, and the batch norm of ``BatchNorm2D`` with torch's defaults
(``BatchNorm2DSpec``; the module is in ``normalization.py``), with their spec functions."""
from __future__ import annotations

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Buffer, Input, Param
from ..layers import layer
from .assemble import assemble
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


_LN_DIMS = ("L1", "L2", "L3")


def layer_norm(x, weight, bias, k, eps=1e-5):
    """Normalize over the last ``k`` axes, then scale and shift (spec function);
    ``weight`` or ``bias`` None: not scaled, not shifted."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / ops.sqrt(var + eps)
    y = y * weight if weight is not None else y
    return y + bias if bias is not None else y


_layer_norm_specs: dict = {}


def layer_norm_spec(k: int, affine: bool = True, bias: bool = True):
    """The LayerNorm spec normalizing the last ``k`` axes, ``[..., L1..Lk]``: every
    rank; ``affine``: a ``weight`` (and a ``bias`` with ``bias``) of their shape."""
    if not 1 <= k <= len(_LN_DIMS):
        raise ValueError(f"LayerNorm: normalized_shape must have 1..{len(_LN_DIMS)} axes, got {k}")
    key = (k, affine, affine and bias)
    if key not in _layer_norm_specs:
        norm = _LN_DIMS[:k]
        declared = {"x": Input(..., *norm)}
        if affine:
            declared["weight"] = Param(*norm, init="ones")
        if key[2]:
            declared["bias"] = Param(*norm, init="zeros")
        declared["eps"] = Attr(1e-5)
        name = f"LayerNorm{k}" + ("" if affine else "_plain") + ("_nobias" if affine and not bias else "")
        _layer_norm_specs[key] = assemble(
            name, declared, lambda t: layer_norm(t["x"], t.get("weight"), t.get("bias"), k, t["eps"]))
    return _layer_norm_specs[key]


class LayerNorm(SpecLayer):
    """``torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True,
    bias=True)``: normalize over the trailing ``normalized_shape`` axes (biased
    variance), then scale by ``weight`` and shift by ``bias`` of that shape (no
    ``weight`` or ``bias`` without ``elementwise_affine``, no ``bias`` without
    ``bias``); one compiled kernel for every rank of input.

    >>> LayerNorm(4, elementwise_affine=False)(np.ones((2, 4), np.float32)).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__(dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not 1 <= len(shape) <= len(_LN_DIMS):
            raise ValueError(f"LayerNorm: normalized_shape must have 1..{len(_LN_DIMS)} axes, got {shape}")
        self.normalized_shape = tuple(_count("LayerNorm", "normalized_shape", d, least=0) for d in shape)
        self.eps = float(eps)
        self.elementwise_affine, self.has_bias = bool(elementwise_affine), bool(bias)
        self._declare(self._spec(), eps=self.eps, **dict(zip(_LN_DIMS, self.normalized_shape)))

    def _spec(self):
        return layer_norm_spec(len(self.normalized_shape), self.elementwise_affine, self.has_bias)

    def _select(self, inputs):
        return self._spec(), {}

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
                + ("" if self.has_bias else ", bias=False"))
