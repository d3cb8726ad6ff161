"""Which vector instruction set a layer's library is loaded for.

A library is built for an instruction-set level (``LEVELS``: the x86-64
micro-architecture levels v4 = AVX-512, v3 = AVX2 with FMA, and v2 = SSE4.2
as the baseline; off x86-64 the compiler's own baseline), never for one CPU (``-march=native``), so a cache shared
by machines or an ahead-of-time package runs on each of them. The level is
chosen when a library loads: the widest this CPU runs, or a narrower one the
environment variable ``LAYERC_ISA`` names (``avx512``, ``avx2``, ``baseline``).

Example::

    >>> chosen() in LEVELS
    True
"""
from __future__ import annotations

import functools
import os
import platform
import warnings

ENV = "LAYERC_ISA"
LEVELS = ("avx512", "avx2", "baseline")         # widest first
_V2 = frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})
_AVX2 = _V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
# the CPU flags (as Linux's /proc/cpuinfo names them) each level needs on x86-64
REQUIRES = {
    "avx512": _AVX2 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
    "avx2": _AVX2,
    "baseline": _V2,
}
_X86_64 = frozenset({"x86_64", "amd64"})


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (empty where /proc/cpuinfo does not say)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def supported() -> tuple:
    """The levels this CPU runs, widest first (only the baseline off x86-64, and
    where /proc/cpuinfo cannot be read)."""
    flags = cpu_flags()
    if platform.machine().lower() not in _X86_64 or not flags:
        return ("baseline",)
    runs = tuple(level for level in LEVELS if REQUIRES[level] <= flags)
    if not runs:
        raise RuntimeError("this x86-64 CPU lacks SSE4.2 (x86-64-v2), the least layerc's libraries need")
    return runs


def chosen() -> str:
    """The level a library loading now is built for (see the module docstring)."""
    runs = supported()
    asked = os.environ.get(ENV, "").strip().lower()
    if not asked:
        return runs[0]
    if asked not in LEVELS:
        raise ValueError(f"{ENV}={asked!r}: expected one of {', '.join(LEVELS)}")
    if asked not in runs:
        warnings.warn(f"{ENV}={asked}: this CPU does not run it; loading {runs[0]} libraries",
                      RuntimeWarning, stacklevel=2)
        return runs[0]
    return asked


__all__ = ["ENV", "LEVELS", "REQUIRES", "cpu_flags", "supported", "chosen"]
