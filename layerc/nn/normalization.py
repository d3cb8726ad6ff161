"""Normalization layers beyond ``norm.py``'s, with torch's names, arguments and
state: ``BatchNorm1D`` ([N, C] and [N, C, L]), ``GroupNorm`` and
``InstanceNorm2D`` (per channel), ``RMSNorm`` (over trailing axes).

Each spec is assembled per input rank and per option that changes what is
declared (``affine``, ``track_running_stats``), so a layer without an affine
transform has no ``weight``, as in torch.

Example::

    gn = GroupNorm(2, 6)
    y = gn(np.ones((4, 6, 5, 5), np.float32))       # Tensor [4, 6, 5, 5]
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Buffer, Input, Param
from ..runtime.tensor import Tensor
from .assemble import assemble
from .base import _DIMS, _MAX_RANK, SpecLayer, _count, _divides
from .norm import BatchNorm2DSpec

_SPATIAL = ("D2", "D3", "D4", "D5")     # the axes after [N, C]
_NORMALIZED = ("R1", "R2", "R3")        # RMSNorm's normalized trailing axes


def _channel_shape(x):
    """``(C, 1, ..., 1)``: a per-channel vector broadcast against ``x`` [N, C, *]."""
    return (x.shape[1],) + (1,) * (x.ndim - 2)


def _affine(y, t, shape):
    """``y * weight + bias``, for whichever of the two the spec declares."""
    if t.get("weight") is not None:
        y = y * t["weight"].reshape(*shape)
    if t.get("bias") is not None:
        y = y + t["bias"].reshape(*shape)
    return y


def _update_running(t, mean, var, count, momentum):
    """Running statistics move towards ``mean`` and the unbiased ``var`` ([C] each), as torch."""
    rm, rv = t["running_mean"], t["running_var"]
    ops.assign(rm, rm * (1.0 - momentum) + mean * momentum)
    ops.assign(rv, rv * (1.0 - momentum) + ops.stop_gradient(var) * count / (count - 1) * momentum)


def _product(sizes):
    return functools.reduce(lambda a, b: a * b, sizes, 1)


def batch_norm(x, t, eps, momentum, batch_stats, update):
    """Batch normalization of ``x`` [N, C, *] per channel (spec function): batch
    statistics when ``batch_stats`` (the running ones move when ``update``),
    else the running statistics."""
    axes = (0,) + tuple(range(2, x.ndim))
    if batch_stats:
        mean = ops.mean(x, axis=axes, keepdims=True)
        var = ops.var(x, axis=axes, keepdims=True)
        if update:
            C = x.shape[1]
            _update_running(t, mean.reshape(C), var.reshape(C), _product(x.shape[:1] + x.shape[2:]), momentum)
    else:
        mean = t["running_mean"].reshape(*_channel_shape(x))
        var = t["running_var"].reshape(*_channel_shape(x))
    return _affine((x - mean) * ops.rsqrt(var + eps), t, _channel_shape(x))


def instance_norm(x, t, eps, momentum, input_stats, update):
    """Instance normalization of ``x`` [N, C, *] per sample and channel (spec
    function); the running statistics (when tracked) average the instances'."""
    axes = tuple(range(2, x.ndim))
    if input_stats:
        mean = ops.mean(x, axis=axes, keepdims=True)
        var = ops.var(x, axis=axes, keepdims=True)
        if update:
            N, C = x.shape[:2]
            _update_running(t, ops.mean(mean.reshape(N, C), axis=0), ops.mean(var.reshape(N, C), axis=0),
                            _product(x.shape[2:]), momentum)
    else:
        mean = t["running_mean"].reshape(*_channel_shape(x))
        var = t["running_var"].reshape(*_channel_shape(x))
    return _affine((x - mean) * ops.rsqrt(var + eps), t, _channel_shape(x))


def group_norm(x, t, groups, eps):
    """Group normalization of ``x`` [N, C, *]: statistics per sample over each
    group of ``C // groups`` channels and every position (spec function)."""
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    g = x.reshape(N, groups, int(C) // groups, *spatial)
    axes = tuple(range(2, g.ndim))
    centered = g - ops.mean(g, axis=axes, keepdims=True)
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    y = (centered * ops.rsqrt(var + eps)).reshape(N, C, *spatial)
    return _affine(y, t, _channel_shape(x))


def rms_norm(x, t, k, eps):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last ``k`` axes (spec function)."""
    axes = tuple(range(x.ndim - k, x.ndim))
    y = x * ops.rsqrt(ops.mean(x * x, axis=axes, keepdims=True) + eps)
    return y * t["weight"] if t.get("weight") is not None else y


# ---------------------------------------------------------------- specs, one per rank and option


def _affine_params(*shape, bias=True) -> dict:
    params = {"weight": Param(*shape, init="ones")}
    if bias:
        params["bias"] = Param(*shape, init="zeros")
    return params


def _running_buffers() -> dict:
    return {"running_mean": Buffer("C", init=0.0), "running_var": Buffer("C", init=1.0)}


def _check_rank(name, rank, least):
    if not least <= rank <= _MAX_RANK:
        raise ValueError(f"{name}: input rank must be {least}..{_MAX_RANK}, got {rank}")


def _suffix(**flags) -> str:
    return "".join(f"_{k}" for k, v in flags.items() if v)


@functools.lru_cache(maxsize=None)
def per_channel_spec(kind: str, rank: int, affine: bool, bias: bool, track: bool, training: bool):
    """The spec of ``kind`` (``"BatchNorm1D"``: ``batch_norm``, ``"InstanceNorm2D"``:
    ``instance_norm``) on [N, C, *] of ``rank``."""
    _check_rank(kind, rank, 2)
    declared = {"x": Input("N", "C", *_SPATIAL[:rank - 2])}
    declared.update(_affine_params("C", bias=bias) if affine else {})
    declared.update(_running_buffers() if track else {})
    declared.update(eps=Attr(1e-5), momentum=Attr(0.1))
    norm = NORMS[kind]
    batch_stats = training or not track          # without running statistics, always the data's

    def body(t):
        return norm(t["x"], t, t["eps"], t["momentum"], batch_stats, training and track)
    name = f"{kind}_rank{rank}" + _suffix(affine=affine, nobias=affine and not bias, track=track, train=training)
    return assemble(name, declared, body)


NORMS = {"BatchNorm1D": batch_norm, "BatchNorm2D": batch_norm, "InstanceNorm2D": instance_norm}


@functools.lru_cache(maxsize=None)
def group_norm_spec(rank: int, affine: bool):
    _check_rank("GroupNorm", rank, 2)
    declared = {"x": Input("N", "C", *_SPATIAL[:rank - 2]), **(_affine_params("C") if affine else {}),
                "groups": Attr(1), "eps": Attr(1e-5)}
    return assemble(f"GroupNorm_rank{rank}" + _suffix(affine=affine), declared,
                    lambda t: group_norm(t["x"], t, t["groups"], t["eps"]))


@functools.lru_cache(maxsize=None)
def rms_norm_spec(rank: int, k: int, affine: bool):
    if not 1 <= k <= min(rank, len(_NORMALIZED)) or rank > _MAX_RANK:
        raise ValueError(f"RMSNorm: cannot normalize the last {k} axes of a rank-{rank} input")
    norm = _NORMALIZED[:k]
    declared = {"x": Input(*_DIMS[:rank - k], *norm), **({"weight": Param(*norm, init="ones")} if affine else {}),
                "eps": Attr(1e-6)}
    return assemble(f"RMSNorm_rank{rank}_last{k}" + _suffix(affine=affine), declared,
                    lambda t: rms_norm(t["x"], t, k, t["eps"]))


# ---------------------------------------------------------------- modules


def _shape(inputs) -> tuple:
    x = inputs[0]
    return tuple(np.shape(x.data if isinstance(x, Tensor) else x))


class _PerChannel(SpecLayer):
    """Shared by ``BatchNorm1D`` and ``InstanceNorm2D``: per-channel statistics,
    optional affine transform and running statistics, as torch's ``_NormBase``."""

    kind = ""                 # the layer's name, the key of NORMS
    ranks: tuple = ()
    expected = ""

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, bias, dtype):
        super().__init__(dtype)
        name = type(self).__name__
        self.num_features = _count(name, "num_features", num_features)
        if momentum is None:
            raise ValueError(f"{name}: momentum=None (a cumulative average) is not supported; give a number")
        self.eps, self.momentum = float(eps), float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        object.__setattr__(self, "_has_bias", bool(bias))
        self._declare(self._spec(self.ranks[0], True), C=self.num_features, eps=self.eps, momentum=self.momentum)

    def _spec(self, rank, training):
        return per_channel_spec(self.kind, rank, self.affine, self._has_bias, self.track_running_stats,
                                bool(training))

    def _values_per_statistic(self, shape) -> int:
        raise NotImplementedError

    def _select(self, inputs):
        shape, name = _shape(inputs), type(self).__name__
        if len(shape) not in self.ranks or shape[1] != self.num_features:
            raise ValueError(f"{name}: input must be {self.expected} with C = {self.num_features}, "
                             f"got shape {shape}")
        if self.training and self._values_per_statistic(shape) <= 1:
            # the unbiased running variance divides by count - 1 (torch refuses this too)
            raise ValueError(f"{name}: training needs more than one value per statistic, got input of "
                             f"shape {shape}")
        return self._spec(len(shape), self.training), {}

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1D(_PerChannel):
    """``torch.nn.BatchNorm1d`` on [N, C] or [N, C, L]: ``weight``, ``bias``,
    buffers ``running_mean``, ``running_var``; ``train()``/``eval()`` choose batch
    or running statistics.

    Example::

        bn = BatchNorm1D(8)
        y = bn(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32))
    """
    kind, ranks, expected = "BatchNorm1D", (2, 3), "[N, C] or [N, C, L]"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True, dtype=np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias, dtype)

    def _values_per_statistic(self, shape):
        return shape[0] * math.prod(shape[2:])


class BatchNorm2D(_PerChannel):
    """``torch.nn.BatchNorm2d`` on [N, C, H, W]: ``weight``, ``bias``, buffers
    ``running_mean``, ``running_var``; ``train()``/``eval()`` choose batch or
    running statistics (compiled variants sharing the parameters and buffers).
    With torch's defaults (affine, a bias, running statistics) it runs
    ``BatchNorm2DSpec``; other options, the per-channel norm ``BatchNorm1D`` runs.

    Example::

        bn = BatchNorm2D(3, affine=False)
        y = bn(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32))
    """
    kind, ranks, expected = "BatchNorm2D", (4,), "[N, C, H, W]"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True, dtype=np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias, dtype)

    def _spec(self, rank, training):
        if self.affine and self._has_bias and self.track_running_stats:
            return BatchNorm2DSpec
        return super()._spec(rank, training)

    def _values_per_statistic(self, shape):
        return shape[0] * math.prod(shape[2:])

    def _select(self, inputs):
        spec, attrs = super()._select(inputs)
        return spec, ({"training": bool(self.training)} if spec is BatchNorm2DSpec else attrs)


class InstanceNorm2D(_PerChannel):
    """``torch.nn.InstanceNorm2d`` on [N, C, H, W]: statistics per sample and
    channel. As torch, ``affine=False`` and ``track_running_stats=False`` by
    default (then eval also uses each instance's statistics).

    Example::

        norm = InstanceNorm2D(3, affine=True)
        y = norm(np.ones((2, 3, 4, 4), np.float32))
    """
    kind, ranks, expected = "InstanceNorm2D", (4,), "[N, C, H, W]"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, *,
                 bias=True, dtype=np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias, dtype)

    def _values_per_statistic(self, shape):
        return math.prod(shape[2:])


class GroupNorm(SpecLayer):
    """``torch.nn.GroupNorm(num_groups, num_channels)`` on [N, C, *]: statistics
    per sample over groups of channels; ``weight`` and ``bias`` per channel.

    Example::

        gn = GroupNorm(2, 6)
        y = gn(np.ones((4, 6, 5), np.float32))
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__(dtype)
        self.num_groups = _count("GroupNorm", "num_groups", num_groups)
        self.num_channels = _count("GroupNorm", "num_channels", num_channels)
        _divides("GroupNorm", "num_groups", self.num_groups, "num_channels", self.num_channels)
        self.eps, self.affine = float(eps), bool(affine)
        self._declare(group_norm_spec(2, self.affine), C=self.num_channels, groups=self.num_groups, eps=self.eps)

    def _select(self, inputs):
        shape = _shape(inputs)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: input must be [N, C, *] with C = {self.num_channels}, got shape {shape}")
        return group_norm_spec(len(shape), self.affine), {}

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(SpecLayer):
    """``torch.nn.RMSNorm(normalized_shape, eps=None, elementwise_affine=True)``:
    ``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape``
    axes; ``eps=None`` is the machine epsilon of the dtype the layer runs in.

    Example::

        norm = RMSNorm(16)
        y = norm(np.ones((2, 5, 16), np.float32))
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype=np.float32):
        super().__init__(dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not 1 <= len(shape) <= len(_NORMALIZED):
            raise ValueError(f"RMSNorm: normalized_shape must have 1..{len(_NORMALIZED)} axes, got {shape}")
        self.normalized_shape = tuple(_count("RMSNorm", "normalized_shape", d) for d in shape)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        k = len(shape)
        sizes = dict(zip(_NORMALIZED, self.normalized_shape))
        self._declare(rms_norm_spec(k, k, self.elementwise_affine), **sizes)

    def _select(self, inputs):
        shape, k = _shape(inputs), len(self.normalized_shape)
        if shape[len(shape) - k:] != self.normalized_shape or len(shape) < k:
            raise ValueError(f"RMSNorm: input of shape {shape} does not end with {self.normalized_shape}")
        eps = float(np.finfo(self.dtype).eps) if self.eps is None else self.eps
        return rms_norm_spec(len(shape), k, self.elementwise_affine), {"eps": eps}

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
