"""Pointwise activation layers and softmax, on inputs of any rank, with
torch.nn's names: ``ReLU``, ``GELU`` (erf or tanh form), ``Softmax``, ``LogSoftmax``, ``PReLU``, and one
layer per pointwise op of ``layerc.ops`` (their derivatives are torch's, at
kinks too; see ``tests/test_ops_edges.py``): ``LeakyReLU``, ``ELU``, ``CELU``,
``Hardtanh``, ``SELU``, ``SiLU``, ``Mish``, ``Hardswish``, ``Hardsigmoid``, ``ReLU6``,
``Softsign``, ``Softplus``, ``Tanh``, ``Sigmoid``, ``LogSigmoid``.

One spec each (``Input(...)``: the runtime runs every rank as one axis);
softmax along another axis than the last has one spec per axis. A constructor
argument (a slope, ``alpha``, ``beta``) is an attribute of the spec: fixed when
the layer compiles, one compiled variant per value.

Example::

    act = LeakyReLU(0.2)
    y = act(np.array([-1.0, 2.0], np.float32))      # [-0.2, 2.0]
"""
from __future__ import annotations

import functools

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input, Param
from ..layers import layer
from ..runtime.tensor import Tensor
from .assemble import assemble, with_signature
from .base import _DIMS, SpecLayer, _any_rank, _count, _elementwise_spec, _rank, _Stateless


def gelu(x):
    """GELU, erf form: ``x * (1 + erf(x / sqrt(2))) / 2``, computed as ``x``
    times the normal CDF (ops.gelu), which keeps its precision where ``1 + erf``
    would cancel (x below -5)."""
    return ops.gelu(x)


ReLUSpec = _elementwise_spec("ReLUSpec", ops.relu)()
GELUSpec = _elementwise_spec("GELUSpec", gelu)()
GELUTanhSpec = _elementwise_spec("GELUTanhSpec", lambda x: ops.gelu(x, approximate="tanh"))()


class _InPlace(_Stateless):
    """A parameterless layer torch gives ``inplace``: accepted, so that ported
    code builds as written (``ReLU(inplace=True)``); the output is always a new
    array, which is what torch's in-place layer returns, and the input is left
    as it was (the backward may read it)."""

    def __init__(self, inplace=False, dtype=None):
        super().__init__(dtype)
        self.inplace = bool(inplace)


class ReLU(_InPlace):
    """``max(x, 0)`` on any shape; ``inplace`` as ``_InPlace``."""
    SPEC = ReLUSpec


class GELU(_Stateless):
    """GELU on any shape: the exact erf form (torch's default) or, with
    ``approximate="tanh"``, torch's tanh approximation."""

    def __init__(self, approximate="none", dtype=None):
        super().__init__(dtype)
        specs = {"none": GELUSpec, "tanh": GELUTanhSpec}
        if approximate not in specs:
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        object.__setattr__(self, "_spec", specs[approximate])

    def _select(self, inputs):
        return self._spec, {}

    def extra_repr(self):
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


@layer
class SoftmaxSpec:
    """Softmax along the last axis, on any rank."""
    x = Input(..., "C")

    def forward(x):
        return ops.softmax(x, axis=-1)


_softmax_specs: dict = {(-1, False): SoftmaxSpec}


def softmax_spec(axis: int, log: bool = False):
    """The softmax spec (``log``: log-softmax) along ``axis``: ``[..., C]`` for -1;
    ``[D0, .., C, ...]`` for ``axis >= 0``; ``[..., C, D1, ..]`` for other
    negative axes. One spec per axis, every rank."""
    if (axis, log) not in _softmax_specs:
        fixed = tuple(f"D{k}" for k in range(abs(axis) - (axis < 0)))
        dims = fixed + ("C", ...) if axis >= 0 else (..., "C") + fixed
        along = dims.index("C")          # ... counts as one axis in forward
        op, name = (ops.log_softmax, "LogSoftmax") if log else (ops.softmax, "Softmax")
        spec = type(f"{name}{axis}", (), {"__doc__": f"{name} along axis {axis}, on any rank.",
                                          "x": Input(*dims), "forward": lambda x: op(x, axis=along)})
        _softmax_specs[axis, log] = layer(spec)
    return _softmax_specs[axis, log]


class Softmax(_Stateless):
    """``torch.nn.Softmax(dim=-1)``: softmax along ``dim`` (stable: the maximum
    is subtracted).

    >>> Softmax(dim=0)(np.zeros((2, 3), np.float32)).numpy()[:, 0]
    array([0.5, 0.5], dtype=float32)
    """

    LOG = False

    def __init__(self, dim=-1, dtype=None):
        super().__init__(dtype)
        self.dim = int(dim)

    def _select(self, inputs):
        # the last axis, however it is counted, takes [..., C]: a spec whose ... comes last
        # would run its innermost loop over the ... axes, one element long for [N, C]
        rank = _rank(inputs)
        return softmax_spec(-1 if self.dim == rank - 1 else self.dim, type(self).LOG), {}

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``torch.nn.LogSoftmax(dim=-1)``: ``x - logsumexp(x)`` along ``dim``, without
    forming the probabilities (no log of an underflowed 0).

    >>> LogSoftmax(dim=1)(np.zeros((1, 2), np.float32)).numpy()
    array([[-0.6931472, -0.6931472]], dtype=float32)
    """
    LOG = True


def _pointwise(name: str, fn, **defaults):
    """One spec of ``fn(x, **attrs)`` on any shape (``Input(...)``), each attribute an ``Attr``."""
    def make(dims):
        def forward(**t):
            x = t.pop("x")
            return fn(x, **t)
        members = {"x": Input(*dims), **{k: Attr(v) for k, v in defaults.items()},
                   "forward": with_signature(forward, ["x", *defaults])}
        return type(name, (), members)
    return _any_rank(name, make)


class _Parametrized(_Stateless):
    """A pointwise layer with constructor arguments that become spec attributes."""

    def _bind(self, **attrs):
        for k, v in attrs.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_spec_bindings", dict(attrs))

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self._spec_bindings.items())


def softplus(x, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold`` (as torch)."""
    return ops.where(x * beta > threshold, x, ops.softplus(x, beta))


class LeakyReLU(_Parametrized):
    """``x`` where positive, else ``negative_slope * x``."""
    _spec_for_rank = staticmethod(_pointwise("LeakyReLU", ops.leaky_relu, negative_slope=0.01))

    def __init__(self, negative_slope=0.01, inplace=False, dtype=None):
        super().__init__(dtype)
        self._bind(negative_slope=float(negative_slope))
        self.inplace = bool(inplace)


class ELU(_Parametrized):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    _spec_for_rank = staticmethod(_pointwise("ELU", ops.elu, alpha=1.0))

    def __init__(self, alpha=1.0, inplace=False, dtype=None):
        super().__init__(dtype)
        self._bind(alpha=float(alpha))
        self.inplace = bool(inplace)


class CELU(_Parametrized):
    """``x`` where positive, else ``alpha * (exp(x / alpha) - 1)``."""
    _spec_for_rank = staticmethod(_pointwise("CELU", ops.celu, alpha=1.0))

    def __init__(self, alpha=1.0, inplace=False, dtype=None):
        super().__init__(dtype)
        self._bind(alpha=float(alpha))
        self.inplace = bool(inplace)


class Softplus(_Parametrized):
    """``log(1 + exp(beta * x)) / beta``; linear above ``threshold`` (of ``beta * x``)."""
    _spec_for_rank = staticmethod(_pointwise("Softplus", softplus, beta=1.0, threshold=20.0))

    def __init__(self, beta=1.0, threshold=20.0, dtype=None):
        super().__init__(dtype)
        self._bind(beta=float(beta), threshold=float(threshold))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """``x`` clamped into ``[min_val, max_val]``, with torch's gradient: 1 strictly
    inside, 0 at and beyond the bounds (where ``clip`` keeps 1 at them); NaN stays NaN."""
    return ops.where(x <= min_val, min_val, ops.where(x >= max_val, max_val, x))


class Hardtanh(_Parametrized):
    """``torch.nn.Hardtanh(min_val=-1.0, max_val=1.0)``: ``x`` clamped into the bounds."""
    _spec_for_rank = staticmethod(_pointwise("Hardtanh", hardtanh, min_val=-1.0, max_val=1.0))

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, dtype=None):
        super().__init__(dtype)
        if not min_val < max_val:
            raise ValueError(f"Hardtanh: min_val must be less than max_val, got {min_val} and {max_val}")
        self._bind(min_val=float(min_val), max_val=float(max_val))
        self.inplace = bool(inplace)


@functools.lru_cache(maxsize=None)
def glu_spec(rank: int, axis: int):
    """GLU's spec on a rank-``rank`` input along ``axis`` (counted from 0)."""
    return assemble(f"GLU{rank}D_{axis}", {"x": Input(*_DIMS[:rank])}, lambda t: ops.glu(t["x"], axis))


class GLU(_Stateless):
    """``torch.nn.GLU(dim=-1)``: ``a * sigmoid(b)``, ``a`` and ``b`` the halves of
    the input along ``dim`` (of an even size).

    >>> GLU()(np.zeros((2, 4), np.float32)).shape
    (2, 2)
    """

    def __init__(self, dim=-1, dtype=None):
        super().__init__(dtype)
        self.dim = int(dim)

    def _select(self, inputs):
        rank = _rank(inputs)
        axis = self.dim + rank if self.dim < 0 else self.dim
        shape = np.shape(getattr(inputs[0], "data", inputs[0]))
        if not 0 <= axis < rank or rank > len(_DIMS):
            raise ValueError(f"GLU: dim={self.dim} is not an axis of an input of rank {rank} (at most {len(_DIMS)})")
        if shape[axis] % 2:
            raise ValueError(f"GLU: the input's size along dim={self.dim} must be even, got shape {tuple(shape)}")
        # the halves' size bound: a split of a symbolic size cannot be proven even
        return glu_spec(rank, axis), {_DIMS[axis]: int(shape[axis])}

    def extra_repr(self):
        return f"dim={self.dim}"


def _stateless(name: str, op, doc: str, base=_Stateless):
    """A parameterless layer class running ``op`` on any shape (``base``
    ``_InPlace`` where torch's takes ``inplace``)."""
    return type(name, (base,), {"__doc__": doc, "__module__": __name__,
                                "_spec_for_rank": staticmethod(_elementwise_spec(name, op))})


SELU = _stateless("SELU", ops.selu, "``scale * elu(x, alpha)`` with torch's self-normalizing constants.", _InPlace)
SiLU = _stateless("SiLU", ops.silu, "``x * sigmoid(x)`` (swish).", _InPlace)
Mish = _stateless("Mish", ops.mish, "``x * tanh(softplus(x))``.", _InPlace)
Hardswish = _stateless("Hardswish", ops.hardswish, "``x * relu6(x + 3) / 6``.", _InPlace)
Hardsigmoid = _stateless("Hardsigmoid", ops.hardsigmoid, "``relu6(x + 3) / 6``.", _InPlace)
ReLU6 = _stateless("ReLU6", ops.relu6, "``min(max(x, 0), 6)``.", _InPlace)
Softsign = _stateless("Softsign", ops.softsign, "``x / (1 + |x|)``.")
Tanh = _stateless("Tanh", ops.tanh, "``tanh(x)``.")
Sigmoid = _stateless("Sigmoid", ops.sigmoid, "``1 / (1 + exp(-x))``.")
LogSigmoid = _stateless("LogSigmoid", ops.logsigmoid, "``log(sigmoid(x))``, without overflow.")

POINTWISE = ["LeakyReLU", "ELU", "CELU", "Softplus", "Hardtanh", "SELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid",
             "ReLU6", "Softsign", "Tanh", "Sigmoid", "LogSigmoid"]


def prelu(x, weight, channels: bool):
    """``x`` where positive, else ``weight * x`` (spec function); ``channels``: a
    weight per channel (axis 1), else one for every element. At 0 the slope is
    ``weight``, as torch's gradient takes it."""
    slope = weight.reshape(weight.shape[0], *(1,) * (x.ndim - 2)) if channels else weight
    return ops.where(x > 0, x, slope * x)


@functools.lru_cache(maxsize=None)
def prelu_spec(rank: int, channels: bool):
    """PReLU's spec: ``[N, C, ...]`` of ``rank`` with a weight ``[C]``, or any
    shape (``Input(...)``) with a weight ``[1]``."""
    if channels and not 2 <= rank <= len(_DIMS):
        raise ValueError(f"PReLU: an input with a weight per channel must have rank 2..{len(_DIMS)}, got {rank}")
    declared = {"x": Input("N", "C", *_DIMS[2:rank]) if channels else Input(...),
                "weight": Param("C" if channels else 1, init=0.25)}
    return assemble(f"PReLU_rank{rank}" if channels else "PReLU", declared,
                    lambda t: prelu(t["x"], t["weight"], channels))


class PReLU(SpecLayer):
    """``torch.nn.PReLU(num_parameters=1, init=0.25)``: ``x`` where positive, else
    ``weight * x``; ``weight`` is ``[num_parameters]``: one slope for every
    element, or one per channel (axis 1) of an input ``[N, C, ...]``.

    >>> PReLU()(np.array([-2.0, 3.0], np.float32)).numpy()
    array([-0.5,  3. ], dtype=float32)
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__(dtype)
        self.num_parameters = _count("PReLU", "num_parameters", num_parameters)
        self._declare(prelu_spec(2, True) if self.num_parameters > 1 else prelu_spec(0, False),
                      C=self.num_parameters)
        self.weight.data[...] = float(init)

    def _select(self, inputs):
        if self.num_parameters == 1:
            return prelu_spec(0, False), {}
        shape = np.shape(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])
        if len(shape) < 2 or shape[1] != self.num_parameters:
            raise ValueError(f"PReLU: input must be [N, C, ...] with C = num_parameters = "
                             f"{self.num_parameters}, got shape {tuple(shape)}")
        return prelu_spec(len(shape), True), {}

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
