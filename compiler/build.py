"""Build C source into a loaded cffi library: the C compiler (``compiler/cc.py``)
and the store of built libraries (``compiler/store.py``) put together.

In: C source, the cdef of what Python may call, ``BuildOptions``. Out: a
``CompiledLibrary`` (``ffi``, ``lib``), loaded from the store when an entry of
the same key is there, else compiled, loaded and published.

A build is cffi's out-of-line ABI mode: ``FFI.cdef`` declares what Python may
call, the C compiler turns the source alone into a plain shared library, and
``ffi.dlopen`` opens it by path. cffi's parsed declarations (the tables its
generated ``ffi.py`` would hold) are stored as data in the entry's meta.json,
so a warm load neither parses the cdef (pycparser: ~50 ms in a new process)
nor runs any Python from the cache.

No C glue is compiled: the API mode's glue includes Python.h and a wrapper per
function, and took gcc 0.3-0.45 s of every build (as long as a small layer's
kernels), for calls about 0.6 us faster than the ABI mode's (a layer step makes
two). The compiler runs directly, not through setuptools: it captures the
compiler's stderr for ``BuildError`` and does not change the working directory
of the whole process as ``ffi.compile`` does, which threads building at once
cannot afford.

Before an entry is loaded, its folder and files must be the user's and
writable by no one else (``UnsafeCacheError`` otherwise), and its shared
library must match the sha256 stored at publish time (~20 us for a typical
module); a truncated or altered entry is logged as a warning, removed and
rebuilt.
"""
from __future__ import annotations

import ast
import datetime
import io
import json
import logging
import os
import pathlib
import re
import time
from dataclasses import dataclass

import _cffi_backend
import cffi
import cffi.recompiler

from . import cc, store
from .private_files import UnsafeCacheError, read_private
from .cc import PARTS_MACRO, BuildError, BuildOptions

__all__ = ["CompiledLibrary", "CompiledObject", "cache_key", "compile_c", "compile_object"]

log = logging.getLogger("layerc")

# the keyword arguments of _cffi_backend.FFI that cffi's generated ffi.py passes
_FFI_TABLES = frozenset({"_version", "_types", "_globals", "_struct_unions", "_enums", "_typenames"})
# what an ABI-mode library raises for a declared name its shared library lacks
_LOOKUP_ERROR = _cffi_backend.FFI.error


@dataclass(frozen=True)
class CompiledLibrary:
    """A loaded build: call C through ``lib``, convert buffers with ``ffi``.

    >>> import numpy as np
    >>> src = "#include <stdint.h>\\nvoid add1(int64_t n, const double* x, double* y)" \\
    ...       "{for (int64_t i = 0; i < n; i++) y[i] = x[i] + 1;}"
    >>> built = compile_c(src, "void add1(int64_t n, const double* x, double* y);", name="add1")
    >>> x = np.arange(4.0); y = np.empty_like(x)
    >>> built.lib.add1(x.size, built.ffi.from_buffer("double[]", x), built.ffi.from_buffer("double[]", y))
    >>> y
    array([1., 2., 3., 4.])
    """

    ffi: object
    lib: object
    so_path: str
    cache_key: str
    source: str
    module_name: str


@dataclass(frozen=True)
class CompiledObject:
    """An object file in the cache, for libraries to link (``compile_c(linked=...)``):
    its path and the sha256 it was published with."""

    path: pathlib.Path
    sha256: str


def compile_object(source: str, *, name: str, options: BuildOptions = BuildOptions(),
                   parts: tuple[int, ...] = ()) -> CompiledObject:
    """Compile the ``parts`` of ``source`` (bits of ``LC_PARTS``, without part
    0) into an object file, or find it in the cache: code many libraries link,
    compiled once (a dtype's gemm). Checked like a library entry, and again by
    each build that links it.

    >>> src = "int lc_seven(void) { return 7; }"
    >>> compile_object(src, name="seven").path.suffix
    '.o'
    """
    inputs = {**cc.key_inputs(options), "parts": list(parts)}
    key = store.content_key(source, "", inputs)
    entry = store.root() / f"{store.ENTRY_PREFIX}{_safe_name(name)}_{key[:16]}"
    with store.thread_lock(entry):
        _refuse_unsafe(entry)
        if store.entry_problems(entry, expected_key=key):
            with store.entry_lock(entry):
                _refuse_unsafe(entry)
                problems = store.entry_problems(entry, expected_key=key)
                if problems:
                    if problems != ["missing"]:
                        log.warning("%s: cached object %s is damaged (%s); removing it and rebuilding",
                                    name, entry, "; ".join(problems))
                    store.remove_dead_leftovers(entry)
                    _build_object(source, name, options, parts, inputs, key, entry)
        return CompiledObject(store.built_file(entry, "object"), store.read_meta(entry)["so_sha256"])


def _build_object(source, name, options, parts, inputs, key, entry) -> None:
    folder = store.new_build_folder(entry)
    try:
        store.create_private(folder / cc.SOURCE_FILE, source)
        store.create_private(folder / "cdef.h", "")
        built = store.built_file(entry, "object").name
        cc.compile_units(folder, [[f"-D{PARTS_MACRO}={sum(1 << k for k in parts)}"]], built,
                         cc.compile_flags(options), name, keep_failed=lambda: store.keep_failed_source(folder, source))
        meta = {"key": key, "kind": "object", "module_name": entry.name, "layer": name,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "so_sha256": store.file_sha256(folder / built),
                "inputs": inputs}
        store.create_private(folder / "meta.json", json.dumps(meta, indent=1))
        store.publish(folder, entry)
    finally:
        store.discard(folder)


def _stage_linked(linked: tuple, folder: pathlib.Path, name: str) -> list:
    """Copies of the object files a library links, in its build folder, each
    checked against the sha256 it was found with (the cache is data: an
    object changed since it was checked is not linked)."""
    staged = []
    for k, obj in enumerate(linked):
        copy = folder / f"linked{k}.o"
        store.create_private(copy, read_private(obj.path))
        if store.file_sha256(copy) != obj.sha256:
            raise BuildError(f"layer {name!r}: the cached object {obj.path} changed after it was checked; "
                             "run `layerc cache verify`")
        staged.append(copy)
    return staged


def cache_key(source: str, cdef: str, options: BuildOptions = BuildOptions()) -> str:
    """sha256 (hex) over everything that determines the built library: the source,
    the cdef, the compiler (``$CC``: path and ``--version``), the final flags
    (``options`` and ``$CFLAGS``), the Python ABI, the cffi version, and the
    CPU features when a flag targets the native CPU (``cc.key_inputs``).

    >>> len(cache_key("int f(void){return 1;}", "int f(void);"))
    64
    """
    return store.content_key(source, cdef, cc.key_inputs(options))


def compile_c(source: str, cdef: str, *, name: str, options: BuildOptions = BuildOptions(),
              units: tuple[tuple[int, ...], ...] = (), linked=None) -> CompiledLibrary:
    """Compile ``source`` exposing the declarations in ``cdef``, or load it from
    the cache; ``name`` (any string, e.g. the layer's name) labels the module
    and error messages. Safe to call from several threads and processes at once:
    each distinct build is compiled once.

    ``units``: the translation units to compile, each a tuple of the numbers
    ``k`` of the sections of the source it holds (those selected by bit ``k``
    of ``LC_PARTS``), the first also part 0 (shared state): compiled side by
    side, each by its own compiler process, then linked. Empty: the source is
    one unit. ``linked()``, when given, returns ``CompiledObject``s to link in
    as well, asked for only when the library is built: the source must hold
    their code (in parts no unit compiles), so that its key covers them.

    Raises ``BuildError`` naming the layer, with the compiler's messages, when
    the source does not compile; no entry is left in the cache then, and the
    source is kept as ``cache_dir()/failed/<module name>.c``, named in the
    message with the line of the first error. Raises ``BuildError`` naming
    ``CC`` when the compiler is not found, and ``UnsafeCacheError`` when
    the cache or the entry may have been written by someone else.

    >>> src = "#include <stdint.h>\\nint64_t twice(int64_t v){return 2*v;}"
    >>> compile_c(src, "int64_t twice(int64_t v);", name="twice").lib.twice(21)
    42
    """
    key = cache_key(source, cdef, options)
    entry = store.root() / f"{store.ENTRY_PREFIX}{_safe_name(name)}_{key[:16]}"
    with store.thread_lock(entry):
        loaded = store.recall(entry)
        if loaded is not None:
            return loaded
        if options.sanitize and not cc.asan_runtime_loaded():
            raise BuildError(f"layer {name!r}: a sanitize=True module only loads in a process started with "
                             f"LD_PRELOAD={cc.asan_library()} ASAN_OPTIONS=detect_leaks=0")
        _refuse_unsafe(entry)
        ffi, lib = (_load_published(entry, key)
                    or _load_or_build(source, cdef, name, options, key, entry, units, linked))
        loaded = CompiledLibrary(ffi=ffi, lib=lib, so_path=str(_so_path(entry)), cache_key=key, source=source,
                                 module_name=entry.name)
        store.remember(entry, loaded)
        return loaded


def _refuse_unsafe(entry: pathlib.Path) -> None:
    problems = store.entry_unsafe_problems(entry)
    if problems:
        raise UnsafeCacheError(
            f"the layerc cache refuses the entry {entry}: {'; '.join(problems)}; run `layerc cache verify`, "
            "and `layerc cache clear` to start afresh")


def _load_published(entry: pathlib.Path, key: str) -> tuple | None:
    """``(ffi, lib)`` of a sound published entry, loaded without the file lock,
    or None. An entry is published with one ``os.replace`` and never changed
    after, so one that passes the checks is whole; anything else (missing,
    damaged, being replaced) goes the locked way."""
    if store.entry_problems(entry, expected_key=key):
        return None
    try:
        return _open(entry, store.read_meta(entry))
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _load_or_build(source, cdef, name, options, key, entry, units, linked) -> tuple:
    """``(ffi, lib)`` of the entry, checked again under its file lock: loaded,
    or built and published when it is missing or damaged."""
    with store.entry_lock(entry):
        _refuse_unsafe(entry)
        problems = store.entry_problems(entry, expected_key=key)
        if not problems:
            log.debug("loading %s from %s", name, entry)
            try:
                return _open(entry, store.read_meta(entry))
            except (OSError, KeyError, TypeError, ValueError) as exc:
                raise BuildError(f"layer {name!r}: cached module {entry} does not load ({exc}); "
                                 "clear the cache with `layerc cache clear`") from exc
        if problems != ["missing"]:
            log.warning("layer %r: cached module %s is damaged (%s); removing it and rebuilding",
                        name, entry, "; ".join(problems))
        store.remove_dead_leftovers(entry)
        return _build_and_publish(source, cdef, name, options, key, entry, units, linked)


def _build_and_publish(source, cdef, name, options, key, entry, units, linked) -> tuple:
    """Build into a temporary folder, load from there, then move it into place.
    Called with the entry's file lock held."""
    started = time.perf_counter()
    folder = store.new_build_folder(entry)
    try:
        store.create_private(folder / cc.SOURCE_FILE, source)
        store.create_private(folder / "cdef.h", cdef)
        parsed = []
        cc.compile_units(folder, _unit_flags(units), _so_path(entry).name, cc.compile_flags(options), name,
                         keep_failed=lambda: store.keep_failed_source(folder, source),
                         meanwhile=lambda: parsed.append(_parse_cdef(cdef, name, entry.name)),
                         linked=_stage_linked(linked() if linked else (), folder, name))
        [(ffi, tables)] = parsed
        meta = {
            "key": key,
            "module_name": entry.name,
            "layer": name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "so_sha256": store.file_sha256(folder / _so_path(entry).name),
            "inputs": cc.key_inputs(options),
            "ffi": tables,
        }
        store.create_private(folder / "meta.json", json.dumps(meta, indent=1))
        try:
            loaded = ffi, lib = _open(folder, meta, entry.name)
            for declared in dir(lib):
                getattr(lib, declared)    # the ABI mode looks names up when first used: now, once
        except (OSError, AttributeError, _LOOKUP_ERROR) as exc:
            raise BuildError(f"layer {name!r}: the compiled module does not load: {exc}") from exc
        store.publish(folder, entry)
        log.info("compiling %s … done in %.2f s", name, time.perf_counter() - started)
        return loaded
    finally:
        store.discard(folder)


def _parse_cdef(cdef: str, name: str, module_name: str) -> tuple:
    """``(cffi.FFI, _ffi_tables)`` of ``cdef``. Done while the C
    compiler runs: cffi's parser (pycparser) takes ~35 ms to load in a new
    process, the parse and the tables ~10 ms more."""
    ffi = cffi.FFI()
    try:
        ffi.cdef(cdef)
    except cffi.CDefError as exc:
        raise BuildError(f"layer {name!r}: invalid cdef: {exc}") from exc
    return ffi, _ffi_tables(ffi, module_name)


def _unit_flags(units: tuple) -> list:
    """Each unit's compiler flags: the bits of its parts in ``LC_PARTS``, part 0
    (the shared state) in the first; one unit without the macro when none.

    >>> _unit_flags(((1, 2), (3,)))
    [['-DLC_PARTS=7'], ['-DLC_PARTS=8']]
    """
    if not units:
        return [[]]
    masks = [sum(1 << k for k in set(unit)) for unit in units]
    masks[0] |= 1
    return [[f"-D{PARTS_MACRO}={mask}"] for mask in masks]


def _ffi_tables(ffi: cffi.FFI, module_name: str) -> dict:
    """cffi's parsed declarations as JSON data: the keyword arguments of the
    ``_cffi_backend.FFI(...)`` call that cffi's generated ``ffi.py`` makes,
    read from its text as literals (``ast.literal_eval``), never run."""
    text = io.StringIO()
    cffi.recompiler.make_py_source(ffi, module_name, text)
    [call] = [node.value for node in ast.parse(text.getvalue()).body
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)]
    tables = {kw.arg: _to_json(ast.literal_eval(kw.value)) for kw in call.keywords}
    if not set(tables) <= _FFI_TABLES:
        raise BuildError(f"cffi's tables hold {sorted(set(tables) - _FFI_TABLES)}, which layerc does not store")
    return tables


def _to_json(value):
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, (int, str)):
        return value
    raise BuildError(f"cffi's tables hold a {type(value).__name__}, which layerc does not store")


def _from_json(value):
    if isinstance(value, dict):
        return bytes.fromhex(value["bytes"])
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


def _open(folder: pathlib.Path, meta: dict, module_name: str | None = None) -> tuple:
    """``(ffi, lib)``: the ``ffi`` made from the tables in ``meta``, and
    ``folder``'s shared library opened by path."""
    _quiet_openmp_waits()
    module_name = module_name or folder.name
    tables = {name: _from_json(value) for name, value in meta["ffi"].items() if name in _FFI_TABLES}
    ffi = _cffi_backend.FFI(module_name, **tables)
    return ffi, ffi.dlopen(str(folder / f"{module_name}.so"))


def _quiet_openmp_waits() -> None:
    """Idle OpenMP threads sleep instead of spinning, unless the user chose.

    Spinning threads between kernels compete with the Python thread for the
    cores: on a busy 2-core machine a 0.3 ms PReLU took 8 ms with two threads.
    libgomp reads this when it first loads, which is with the first layer."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def _so_path(entry: pathlib.Path) -> pathlib.Path:
    return entry / f"{entry.name}.so"


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^a-z0-9_]+", "_", str(name).lower())
    safe = re.sub(r"_+", "_", safe).strip("_")[:40].rstrip("_")
    return safe or "layer"
