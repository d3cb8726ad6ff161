"""The runtime's random generator: seeded, so initialization is reproducible.

Parameter initializers draw their values in C (``runtime/random.c``, compiled
once into the build cache), each draw seeded from this generator.

Example::

    >>> manual_seed(0); a = generator().standard_normal(2)
    >>> manual_seed(0); bool((a == generator().standard_normal(2)).all())
    True
    >>> manual_seed(0); w = draw("normal", 4, np.float32, scale=0.1)
    >>> manual_seed(0); bool((w == draw("normal", 4, np.float32, scale=0.1)).all())
    True
"""
from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

_generator = np.random.default_rng()

_SOURCE = pathlib.Path(__file__).with_name("random.c")
_CTYPES = {np.dtype(np.float32): ("f32", "float"), np.dtype(np.float64): ("f64", "double")}
_CDEF = "\n".join(f"void lc_random_{kind}_{suffix}(uint64_t seed, int64_t n, float scale, float shift, "
                  f"int threads, {ctype} *out);"
                  for kind in ("normal", "uniform") for suffix, ctype in _CTYPES.values())
# GNU libgomp's threads do not survive fork: a child draws on one thread
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def manual_seed(seed: int) -> None:
    """Reseed the generator used by parameter initializers and ``Tensor.randn``."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator


@functools.cache
def _library():
    from layerc.compiler.build import compile_c
    return compile_c(_SOURCE.read_text(), _CDEF, name="layerc_random")


def draw(kind: str, size: int, dtype, scale: float = 1.0, shift: float = 0.0, threads: int = 0) -> np.ndarray:
    """``size`` values ``scale * v + shift`` of ``dtype`` (float32 or float64),
    ``v`` standard normal (``kind="normal"``) or uniform in [0, 1)
    (``"uniform"``), seeded from ``generator()``. The values are computed in
    float32 whatever the dtype, so both dtypes get the same ones, and do not
    depend on ``threads`` (0: one per core)."""
    if np.dtype(dtype) not in _CTYPES:
        raise TypeError(f"random initial values are drawn as float32 or float64, not {np.dtype(dtype)}")
    suffix, ctype = _CTYPES[np.dtype(dtype)]
    out = np.empty(size, dtype)
    seed = int(_generator.integers(0, 2 ** 63))
    threads = 1 if _forked else threads or os.cpu_count() or 1
    library = _library()
    function = getattr(library.lib, f"lc_random_{kind}_{suffix}")
    function(seed, size, scale, shift, threads, library.ffi.cast(f"{ctype} *", out.ctypes.data))
    return out
