"""The BLAS that numpy already loaded, handed to generated modules for their
matrix products.

numpy links a BLAS into every process that imports it (OpenBLAS in its wheels);
its ``sgemm``/``dgemm`` run near the machine's peak, so a generated module calls
them through pointers this file finds, instead of bringing a BLAS of its own.
Without one (an unusual numpy build, or ``LAYERC_BLAS=0``), modules use their
own packed, register-tiled kernels. This file needs only numpy and ctypes: AOT
packages ship a copy of it.

Example::

    functions = gemm_functions()       # None, or (sgemm address, dgemm address, ilp64)
    install(library.lib, "prelu")      # what compile_layer does for every module
"""
from __future__ import annotations

import ctypes
import functools
import os
import pathlib

import numpy as np

# CBLAS names, most specific first: numpy's wheels export the 64-bit-integer
# interface with a prefix and suffix; ``ilp64`` says whether integers are 64-bit
SYMBOLS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("cblas_sgemm64_", "cblas_dgemm64_", True),
    ("cblas_sgemm", "cblas_dgemm", False),
)


def _loaded_libraries() -> list[str]:
    """Shared libraries in this process whose name mentions a BLAS, found in
    /proc/self/maps (Linux), else in the folders numpy keeps its libraries in."""
    names = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if path.startswith("/") and _is_blas(path) and path not in names:
                    names.append(path)
    except OSError:
        pass
    if not names:
        root = pathlib.Path(np.__file__).resolve().parent
        for folder in (root.parent / "numpy.libs", root / ".libs"):
            names += [str(p) for p in sorted(folder.glob("*")) if _is_blas(str(p))]
    return names


def _is_blas(path: str) -> bool:
    name = os.path.basename(path).lower()
    return ".so" in name and ("blas" in name or "mkl_rt" in name)


@functools.lru_cache(maxsize=None)
def gemm_functions():
    """``(sgemm address, dgemm address, ilp64)`` of numpy's BLAS, or None when
    there is none to use (or ``LAYERC_BLAS=0``)."""
    if os.environ.get("LAYERC_BLAS", "1") == "0":
        return None
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # numpy may load its BLAS lazily
    for path in _loaded_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for sgemm, dgemm, ilp64 in SYMBOLS:
            try:
                functions = getattr(library, sgemm), getattr(library, dgemm)
            except AttributeError:
                continue
            return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in functions) + (ilp64,)
    return None


def install(lib, prefix: str) -> bool:
    """Hand the BLAS to a loaded module (its ``<prefix>_set_blas``); True if there is one."""
    functions = gemm_functions()
    set_blas = getattr(lib, f"{prefix}_set_blas")
    if functions is None:
        set_blas(0, 0, 0)
        return False
    sgemm, dgemm, ilp64 = functions
    set_blas(sgemm, dgemm, int(ilp64))
    return True
