"""The BLAS that numpy already loaded, handed to compiled layers for their
matrix products, and kept on one thread while a layer runs.

numpy links a BLAS into every process that imports it (OpenBLAS in its wheels);
its ``sgemm``/``dgemm`` run near the machine's peak, so a compiled layer calls
them through pointers this file finds (the runtime hands them to every library
it loads: ``<prefix>_set_blas``), instead of bringing a BLAS of its own.
Without one (an unusual numpy build, or ``LAYERC_BLAS=0``), layers use their
own packed, register-tiled kernels. Needs only numpy and ctypes.

Example::

    found = gemm_functions()           # None, or a Blas (function addresses)
    install(library.lib, "lc_prelu")   # what the runtime does for each library it loads
    with single_threaded():            # what the runtime does around each call
        function(*arguments)
    call_single_threaded(function, arguments)   # the same, cheaper
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pathlib
import threading
from dataclasses import dataclass

import numpy as np

# CBLAS names, most specific first: numpy's wheels export the 64-bit-integer
# interface with a prefix and suffix; ``ilp64`` says whether integers are 64-bit
SYMBOLS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("cblas_sgemm64_", "cblas_dgemm64_", True),
    ("cblas_sgemm", "cblas_dgemm", False),
)
# OpenBLAS's thread count, under the same naming schemes
THREAD_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


@dataclass(frozen=True)
class Blas:
    """numpy's BLAS as generated modules use it."""

    path: str
    sgemm: int                  # function addresses
    dgemm: int
    ilp64: bool                 # 64-bit integer arguments
    get_threads: object = None  # ctypes functions, when the BLAS has its own thread pool we can size
    set_threads: object = None


def _loaded_libraries() -> list[str]:
    """Shared libraries in this process whose name mentions a BLAS: the ones
    numpy's wheels ship that are loaded (a cheap check), else those named in
    /proc/self/maps (Linux, ~1 ms to read)."""
    root = pathlib.Path(np.__file__).resolve().parent
    shipped = [str(p) for folder in (root.parent / "numpy.libs", root / ".libs") if folder.is_dir()
               for p in sorted(folder.iterdir()) if _is_blas(str(p))]
    loaded = [path for path in shipped if _is_loaded(path)]
    if loaded:
        return loaded
    names = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if path.startswith("/") and _is_blas(path) and path not in names:
                    names.append(path)
    except OSError:
        pass
    return names or shipped


def _is_loaded(path: str) -> bool:
    try:
        ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return False
    return True


def _is_blas(path: str) -> bool:
    name = os.path.basename(path).lower()
    return ".so" in name and ("blas" in name or "mkl_rt" in name)


@functools.lru_cache(maxsize=None)
def gemm_functions() -> Blas | None:
    """numpy's BLAS, or None when there is none to use (or ``LAYERC_BLAS=0``)."""
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
            sgemm_address, dgemm_address = (ctypes.cast(f, ctypes.c_void_p).value for f in functions)
            return Blas(path, sgemm_address, dgemm_address, ilp64, *_thread_functions(library))
    return None


def _thread_functions(library) -> tuple:
    for get_name, set_name in THREAD_SYMBOLS:
        try:
            get_threads, set_threads = getattr(library, get_name), getattr(library, set_name)
        except AttributeError:
            continue
        get_threads.restype, get_threads.argtypes = ctypes.c_int, []
        set_threads.restype, set_threads.argtypes = None, [ctypes.c_int]
        return get_threads, set_threads
    return None, None


def install(lib, prefix: str) -> bool:
    """Hand the BLAS to a loaded module (its ``<prefix>_set_blas``); True if there is one."""
    found = gemm_functions()
    set_blas = getattr(lib, f"{prefix}_set_blas")
    if found is None:
        set_blas(0, 0, 0)
        return False
    set_blas(found.sgemm, found.dgemm, int(found.ilp64))
    return True


_lock = threading.Lock()
_depth = 0
_saved_threads = 1


def _enter():
    """One more user of the BLAS on one thread; returns the BLAS (None: nothing to set)."""
    global _depth, _saved_threads
    found = gemm_functions()
    if found is None or found.set_threads is None:
        return None
    with _lock:
        if _depth == 0:
            _saved_threads = found.get_threads()
            if _saved_threads != 1:
                found.set_threads(1)
        _depth += 1
    return found


def _leave(found) -> None:
    """Undo ``_enter``, given what it returned."""
    global _depth
    if found is None:
        return
    with _lock:
        _depth -= 1
        if _depth == 0 and _saved_threads != 1:
            found.set_threads(_saved_threads)


def call_single_threaded(function, args):
    """``function(*args)`` with the BLAS on one thread, as under
    ``single_threaded``, without a context manager's cost (a generator and two
    objects: 5-8 us, paid by every layer call that multiplies matrices)."""
    found = _enter()
    try:
        return function(*args)
    finally:
        _leave(found)


@contextlib.contextmanager
def single_threaded():
    """While layers run, the BLAS works on one thread: a generated module splits
    its matrix products over its own OpenMP team, and a second pool of busy
    threads would only compete with it. Nested and concurrent uses share one
    count; the BLAS's own setting comes back when the last one leaves."""
    found = _enter()
    try:
        yield
    finally:
        _leave(found)
