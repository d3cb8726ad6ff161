"""The runtime's random generator: seeded, so initialization is reproducible.

Parameter initializers draw from numpy's ``Generator`` (PCG64), reseeded by
``manual_seed``; nothing is compiled.

Example::

    >>> manual_seed(0); a = generator().standard_normal(2)
    >>> manual_seed(0); bool((a == generator().standard_normal(2)).all())
    True
    >>> manual_seed(0); w = draw("normal", 4, np.float32, scale=0.1)
    >>> manual_seed(0); bool((w == draw("normal", 4, np.float32, scale=0.1)).all())
    True
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def manual_seed(seed: int) -> None:
    """Reseed the generator used by parameter initializers and ``Tensor.randn``."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator


def _standard(kind: str, size: int) -> np.ndarray:
    if kind == "normal":
        return _generator.standard_normal(size, dtype=np.float32)
    if kind == "uniform":
        return _generator.random(size, dtype=np.float32)
    raise ValueError(f"unknown distribution {kind!r}: 'normal' or 'uniform'")


def draw(kind: str, size: int, dtype, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """``size`` values ``scale * v + shift`` of ``dtype`` (float32 or float64),
    ``v`` standard normal (``kind="normal"``) or uniform in [0, 1)
    (``"uniform"``), from ``generator()``. The values are computed in float32
    whatever the dtype, so both dtypes get the same ones."""
    if np.dtype(dtype) not in DTYPES:
        raise TypeError(f"random initial values are drawn as float32 or float64, not {np.dtype(dtype)}")
    values = _standard(kind, size)
    values *= np.float32(scale)
    values += np.float32(shift)
    return values.astype(dtype, copy=False)
