"""Parameterless pointwise layers and softmax, on inputs of any rank: ``ReLU``,
``GELU``, ``Softmax``."""
from __future__ import annotations

from ..compiler import ops
from ..compiler.spec import Attr, Input
from .base import _by_rank, _elementwise_spec, _rank, _Stateless


def gelu(x):
    """GELU, erf form: ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return x * (ops.erf(x * 0.7071067811865476) + 1.0) * 0.5


relu_spec = _elementwise_spec("ReLU", ops.relu)
gelu_spec = _elementwise_spec("GELU", gelu)
gelu_tanh_spec = _elementwise_spec("GELUTanh", lambda x: ops.gelu(x, approximate="tanh"))


class ReLU(_Stateless):
    """``max(x, 0)`` on any shape."""
    _spec_for_rank = staticmethod(relu_spec)


class GELU(_Stateless):
    """GELU on any shape: the exact erf form (torch's default) or, with
    ``approximate="tanh"``, torch's tanh approximation."""
    _spec_for_rank = staticmethod(gelu_spec)

    def __init__(self, approximate="none", dtype=None):
        super().__init__(dtype)
        specs = {"none": gelu_spec, "tanh": gelu_tanh_spec}
        if approximate not in specs:
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        object.__setattr__(self, "_specs", specs[approximate])

    def _select(self, inputs):
        return self._specs(_rank(inputs)), {}

    def extra_repr(self):
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


def _softmax_make(dims):
    class Spec:
        x = Input(*dims)
        axis = Attr(-1)

        def forward(x, axis):
            return ops.softmax(x, axis=axis)
    return Spec


softmax_spec = _by_rank("Softmax", _softmax_make)


class Softmax(_Stateless):
    """Softmax along ``axis`` (stable: the maximum is subtracted)."""
    _spec_for_rank = staticmethod(softmax_spec)

    def __init__(self, axis=-1, dtype=None):
        super().__init__(dtype)
        self.axis = int(axis)
        object.__setattr__(self, "_spec_bindings", {"axis": self.axis})

    def extra_repr(self):
        return f"axis={self.axis}"
