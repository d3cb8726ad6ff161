"""Parameterless pointwise layers and softmax, on inputs of any rank: ``ReLU``,
``GELU``, ``Softmax``. One spec each (``Input(...)``: the runtime runs every
rank as one axis); softmax along another axis than the last has one spec per
axis."""
from __future__ import annotations

from ..compiler import ops
from ..compiler.spec import Input
from ..layers import layer
from .base import _elementwise_spec, _rank, _Stateless


def gelu(x):
    """GELU, erf form: ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return x * (ops.erf(x * 0.7071067811865476) + 1.0) * 0.5


ReLUSpec = _elementwise_spec("ReLUSpec", ops.relu)()
GELUSpec = _elementwise_spec("GELUSpec", gelu)()
GELUTanhSpec = _elementwise_spec("GELUTanhSpec", lambda x: ops.gelu(x, approximate="tanh"))()


class ReLU(_Stateless):
    """``max(x, 0)`` on any shape."""
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


_softmax_specs: dict = {-1: SoftmaxSpec}


def softmax_spec(axis: int):
    """The softmax spec along ``axis``: ``[..., C]`` for -1; ``[D0, .., C, ...]``
    for ``axis >= 0``; ``[..., C, D1, ..]`` for other negative axes. One spec per
    axis, every rank."""
    if axis not in _softmax_specs:
        fixed = tuple(f"D{k}" for k in range(abs(axis) - (axis < 0)))
        dims = fixed + ("C", ...) if axis >= 0 else (..., "C") + fixed
        along = dims.index("C")          # ... counts as one axis in forward
        spec = type(f"Softmax{axis}", (), {"__doc__": f"Softmax along axis {axis}, on any rank.",
                                            "x": Input(*dims), "forward": lambda x: ops.softmax(x, axis=along)})
        _softmax_specs[axis] = layer(spec)
    return _softmax_specs[axis]


class Softmax(_Stateless):
    """Softmax along ``axis`` (stable: the maximum is subtracted)."""

    def __init__(self, axis=-1, dtype=None):
        super().__init__(dtype)
        self.axis = int(axis)

    def _select(self, inputs):
        # the last axis, however it is counted, takes [..., C]: a spec whose ... comes last
        # would run its innermost loop over the ... axes, one element long for [N, C]
        rank = _rank(inputs)
        return softmax_spec(-1 if self.axis == rank - 1 else self.axis), {}

    def extra_repr(self):
        return f"axis={self.axis}"
