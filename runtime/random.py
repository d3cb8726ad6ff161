"""The runtime's random generator: seeded, so initialization is reproducible.

Example::

    >>> manual_seed(0); a = generator().standard_normal(2)
    >>> manual_seed(0); bool((a == generator().standard_normal(2)).all())
    True
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the generator used by parameter initializers and ``Tensor.randn``."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator
