"""The compiled libraries this process loaded: what each needs before its first
call, their OpenMP thread counts, and what ``fork`` changes.

GNU libgomp cannot run a parallel region in a child made by ``fork`` once the
parent has started its thread pool: the child waits forever for threads that
do not exist there. So in a child forked from a process that had loaded a
layer library (each one links libgomp), every layer library runs on one
thread: those loaded before the fork (the after-fork hook sets them), those
the child loads later (a new spec, the other dtype, the variant ``eval()``
selects: ``adopt`` sets them), and ``set_threads`` keeps them there. Children
started with 'spawn' or 'forkserver' are fresh processes and run in parallel.

Example::

    adopt(library, "lc_prelu")      # once a library is loaded, before its first call
    set_threads(library, 2)         # 0: OpenMP's default (OMP_NUM_THREADS)
"""
from __future__ import annotations

import os
import threading
import warnings

from . import blas

_lock = threading.Lock()
# ``<prefix>_set_threads`` of every library this process loaded, by library module name
_setters: dict = {}
# this process was forked from one that had loaded a layer library (or from such a child)
_forked_after_openmp = False


def adopt(library, prefix: str) -> None:
    """Ready a loaded library (``lib``, ``module_name``) for calls, once: hand it
    numpy's BLAS and, in a forked child, put it on one thread."""
    with _lock:
        if library.module_name in _setters:
            return
        blas.install(library.lib, prefix)
        setter = getattr(library.lib, f"{prefix}_set_threads")
        if _forked_after_openmp:
            setter(1)
        _setters[library.module_name] = setter


def set_threads(library, n: int) -> None:
    """Threads the kernels of ``library`` (adopted) use; 0: OpenMP's default.
    One in a forked child (see the module docstring), with a warning when more were asked for."""
    n = int(n)
    if _forked_after_openmp and n != 1:
        warnings.warn(f"set_threads({n}) in a child made by fork: GNU libgomp cannot run parallel "
                      "regions there, so layers run on one thread (start children with the 'spawn' "
                      "method for parallel kernels)", RuntimeWarning, stacklevel=3)
        n = 1
    _setters[library.module_name](n)


def forked_after_openmp() -> bool:
    """Whether this process is a forked child of one that had loaded a layer library."""
    return _forked_after_openmp


def _after_fork_in_child() -> None:
    global _lock, _forked_after_openmp
    _lock = threading.Lock()        # another thread of the parent may have held it
    if _setters:
        _forked_after_openmp = True
    if _forked_after_openmp:
        for setter in _setters.values():
            setter(1)


os.register_at_fork(after_in_child=_after_fork_in_child)
