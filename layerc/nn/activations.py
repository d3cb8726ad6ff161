"""torch.nn's pointwise activations, on inputs of any rank, each a spec of one
op of ``layerc.ops`` (their derivatives are torch's, at kinks too; see
``tests/test_ops_edges.py``): ``LeakyReLU``, ``ELU``, ``CELU``, ``SELU``,
``SiLU``, ``Mish``, ``Hardswish``, ``Hardsigmoid``, ``ReLU6``, ``Softsign``,
``Softplus``, ``Tanh``, ``Sigmoid``, ``LogSigmoid``.

A constructor argument (a slope, ``alpha``, ``beta``) is an attribute of the
spec: fixed when the layer compiles, one compiled variant per value.

Example::

    act = LeakyReLU(0.2)
    y = act(np.array([-1.0, 2.0], np.float32))      # [-0.2, 2.0]
"""
from __future__ import annotations

from ..compiler import ops
from ..compiler.spec import Attr, Input
from .assemble import with_signature
from .base import _by_rank, _elementwise_spec, _Stateless


def _pointwise(name: str, fn, **defaults):
    """Specs per input rank of ``fn(x, **attrs)``, each attribute an ``Attr``."""
    def make(dims):
        def forward(**t):
            x = t.pop("x")
            return fn(x, **t)
        members = {"x": Input(*dims), **{k: Attr(v) for k, v in defaults.items()},
                   "forward": with_signature(forward, ["x", *defaults])}
        return type(name, (), members)
    return _by_rank(name, make)


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

    def __init__(self, negative_slope=0.01, dtype=None):
        super().__init__(dtype)
        self._bind(negative_slope=float(negative_slope))


class ELU(_Parametrized):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    _spec_for_rank = staticmethod(_pointwise("ELU", ops.elu, alpha=1.0))

    def __init__(self, alpha=1.0, dtype=None):
        super().__init__(dtype)
        self._bind(alpha=float(alpha))


class CELU(_Parametrized):
    """``x`` where positive, else ``alpha * (exp(x / alpha) - 1)``."""
    _spec_for_rank = staticmethod(_pointwise("CELU", ops.celu, alpha=1.0))

    def __init__(self, alpha=1.0, dtype=None):
        super().__init__(dtype)
        self._bind(alpha=float(alpha))


class Softplus(_Parametrized):
    """``log(1 + exp(beta * x)) / beta``; linear above ``threshold`` (of ``beta * x``)."""
    _spec_for_rank = staticmethod(_pointwise("Softplus", softplus, beta=1.0, threshold=20.0))

    def __init__(self, beta=1.0, threshold=20.0, dtype=None):
        super().__init__(dtype)
        self._bind(beta=float(beta), threshold=float(threshold))


def _stateless(name: str, op, doc: str):
    """A parameterless layer class running ``op`` on any shape."""
    return type(name, (_Stateless,), {"__doc__": doc, "__module__": __name__,
                                      "_spec_for_rank": staticmethod(_elementwise_spec(name, op))})


SELU = _stateless("SELU", ops.selu, "``scale * elu(x, alpha)`` with torch's self-normalizing constants.")
SiLU = _stateless("SiLU", ops.silu, "``x * sigmoid(x)`` (swish).")
Mish = _stateless("Mish", ops.mish, "``x * tanh(softplus(x))``.")
Hardswish = _stateless("Hardswish", ops.hardswish, "``x * relu6(x + 3) / 6``.")
Hardsigmoid = _stateless("Hardsigmoid", ops.hardsigmoid, "``relu6(x + 3) / 6``.")
ReLU6 = _stateless("ReLU6", ops.relu6, "``min(max(x, 0), 6)``.")
Softsign = _stateless("Softsign", ops.softsign, "``x / (1 + |x|)``.")
Tanh = _stateless("Tanh", ops.tanh, "``tanh(x)``.")
Sigmoid = _stateless("Sigmoid", ops.sigmoid, "``1 / (1 + exp(-x))``.")
LogSigmoid = _stateless("LogSigmoid", ops.logsigmoid, "``log(sigmoid(x))``, without overflow.")

POINTWISE = ["LeakyReLU", "ELU", "CELU", "Softplus", "SELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid",
             "ReLU6", "Softsign", "Tanh", "Sigmoid", "LogSigmoid"]
