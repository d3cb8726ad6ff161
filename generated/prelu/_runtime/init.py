"""Parameter initializers, by name (as in a spec's ``Param(init=...)``).

Example::

    >>> w = initialize("xavier", (4, 3), np.float64)
    >>> w.shape
    (4, 3)
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .random import draw, generator


def fans(shape, fan_in=None, fan_out=None):
    """Fan-in and fan-out as for linear (``[out, in]``) and convolution
    (``[out, in, *kernel]``) weights."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    default_in = shape[1] * receptive if len(shape) > 1 else (shape[0] if shape else 1)
    default_out = shape[0] * receptive if len(shape) > 1 else (shape[0] if shape else 1)
    return fan_in or default_in, fan_out or default_out


def _normal(std):
    return lambda fi, fo: ("normal", std(fi, fo), 0.0)


def _uniform(bound):
    return lambda fi, fo: ("uniform", 2 * bound(fi, fo), -bound(fi, fo))


def _constant(value):
    return lambda fi, fo: value


# name -> (fan_in, fan_out) -> a constant (no draw) or a draw's (kind, scale, shift)
# (see ``layerc.runtime.random.draw``)
NAMED = {
    "zeros": _constant(0.0),
    "ones": _constant(1.0),
    "normal": _normal(lambda fi, fo: 1.0),
    "uniform": _uniform(lambda fi, fo: 1.0),
    "xavier": _normal(lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "glorot": _normal(lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "xavier_uniform": _uniform(lambda fi, fo: math.sqrt(6.0 / (fi + fo))),
    "kaiming": _normal(lambda fi, fo: math.sqrt(2.0 / fi)),
    "he": _normal(lambda fi, fo: math.sqrt(2.0 / fi)),
    "kaiming_uniform": _uniform(lambda fi, fo: math.sqrt(6.0 / fi)),
    # torch.nn's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "fan_in_uniform": _uniform(lambda fi, fo: 1.0 / math.sqrt(fi)),
}


def initialize(init, shape, dtype, fan_in=None, fan_out=None) -> np.ndarray:
    """A fresh array of ``shape`` and ``dtype`` from an initializer spec."""
    shape = tuple(int(d) for d in shape)
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        return np.full(shape, init, dtype=dtype)
    if isinstance(init, str):
        if init not in NAMED:
            raise ValueError(f"unknown initializer {init!r}; choose one of {', '.join(sorted(NAMED))}, "
                             "a number, or a callable (shape, rng) -> array")
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype)      # no values: no scale to compute (fans may be 0)
        named = NAMED[init](*fans(shape, fan_in, fan_out))
        if isinstance(named, float):
            return np.full(shape, named, dtype=dtype)
        kind, scale, shift = named
        return draw(kind, math.prod(shape), dtype, scale, shift).reshape(shape)
    values = np.asarray(init(shape, generator()), dtype=dtype)
    if values.shape != shape:
        raise ValueError(f"initializer returned shape {values.shape}, expected {shape}")
    return np.ascontiguousarray(values)
