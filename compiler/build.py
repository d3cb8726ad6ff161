"""Build C source into a loadable library, through a content-addressed disk cache.

A build is cffi's out-of-line ABI mode: ``FFI.cdef`` declares what Python may
call, cffi emits a Python module holding those declarations parsed (``ffi``),
and the C compiler turns the source alone into a plain shared library, which
``ffi.dlopen`` loads; the ``ffi``/``lib`` pair is returned.

No C glue is compiled: the API mode's glue includes Python.h and a wrapper per
function, and took gcc 0.3-0.45 s of every build (as long as a small layer's
kernels), for calls about 0.6 us faster than the ABI mode's (a layer step makes
two). The compiler runs directly, not through setuptools: it captures the
compiler's stderr for ``BuildError`` and does not change the working directory
of the whole process as ``ffi.compile`` does, which threads building at once
cannot afford.

Cache layout, one folder per entry::

    cache_dir()/
        _layerc_{name}_{key[:16]}/          # the module name
            _layerc_{name}_{key[:16]}.so        # the shared library
            ffi.py                              # the cdef, parsed (cffi's ABI mode)
            source.c  cdef.h  meta.json         # meta.json: key, inputs, sha256 of the .so
        _layerc_{name}_{key[:16]}.lock      # cross-process lock (filelock)
        compilers/                          # memo of compiler versions
        failed/_layerc_{name}_{key[:16]}.c  # source of the last failed compile
        lowered/{key}.rec                   # records of compiler/layer_cache.py

An entry is built in a temporary folder inside ``cache_dir()``, loaded from
there (so an entry that does not import is never published), then moved into
place with one ``os.replace``, and never changed after: a sound entry loads
without more ado. Otherwise the check-build-publish sequence runs under a
file lock per entry (``flock``: a killed process releases it); always under a
thread lock per entry within a process. Temporary folders of killed builds are
removed by the next build that finds their lock free, and by ``clear_cache``.

Before an entry is loaded from disk, its shared library is checked against the
sha256 stored in meta.json at publish time (~20 us for a typical module); a
truncated or altered entry is logged as a warning, removed and rebuilt.
Module names carry the key, so a changed source gets a new module and a new
shared library even in the same process: nothing is ever reloaded.

Beside the modules, ``lowered/`` holds *records*: opaque payloads that
``compiler/layer_cache.py`` writes, keyed by a sha256 of its own (a spec,
its bindings and everything else its lowering depends on). A record is one
file published with one ``os.replace``; its first line holds the sha256 of the
payload, checked on every read (a damaged record is removed with a warning).

When the cache folder cannot be written (``LAYERC_CACHE_DIR`` under a file, a
read-only file system, ...), builds go to a temporary folder of the process,
removed at exit, with a warning naming the folder.

Compile flags: ``BuildOptions`` (see there), then ``$CFLAGS`` if set; the
compiler is ``$CC`` if set, else ``cc``. All of them, and the compiler's
``--version``, are part of the key. ``LAYERC_VERBOSE=1`` logs every compiler
command and its output through the ``"layerc"`` logger (attaching a stderr
handler if logging is not configured).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import functools
import hashlib
import importlib.util
import json
import logging
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass

import _cffi_backend
import cffi
import cffi.recompiler
import filelock

try:
    import fcntl
except ImportError:      # not a Unix: filelock's own lock only
    fcntl = None

__all__ = [
    "DEFAULT_FLAGS",
    "BuildError",
    "BuildOptions",
    "CompiledLibrary",
    "build_inputs",
    "cache_dir",
    "cache_key",
    "clear_cache",
    "compile_c",
    "compiler_invocations",
    "list_cache",
    "list_records",
    "read_record",
    "verify_cache",
    "write_record",
]

log = logging.getLogger("layerc")

# -fno-math-errno and -fno-trapping-math keep IEEE results (NaN, Inf, signed
# zeros) while letting gcc vectorize: without the latter it will not compute
# both sides of a select (`x > 0 ? x : a * x`) in a loop. -O3, not -O2 with
# -O3's vectorizer cost model: that compiles attention's backward in 0.62 s
# instead of 0.78 s, but focal loss's forward ran 1.7x slower
DEFAULT_FLAGS: tuple[str, ...] = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                                  "-std=c11")
_WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
_SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer")
# -fopenmp again at link time pulls in libgomp even when the user's flags drop it.
# A library closed at exit (cffi closes what it opened) must not take libgomp
# with it while OpenMP's idle threads still run its code: they spin there under
# OMP_WAIT_POLICY=active, and the process died with SIGSEGV
KEEP_LOADED = "-Wl,-z,nodelete"
_LINK_FLAGS = ("-fPIC", "-shared", "-fopenmp", "-lm", KEEP_LOADED)
# the macro that selects one part of a source built in parts (compile_c(parts=...))
PART_MACRO = "LC_PART"
# Part of every key: bump it when the way a module is built changes, so entries
# built the old way are not reused.
_RECIPE = 3     # 2: meta.json holds the sha256 of the shared library; $CFLAGS; 3: ABI mode
_ENTRY_PREFIX = "_layerc_"
_TMP_PREFIX = ".tmp-"
_SOURCE_FILE = "source.c"
_CDEF_FILE = "cdef.h"
_META_FILE = "meta.json"
_FAILED_DIR = "failed"
_RECORDS_DIR = "lowered"
_RECORD_SUFFIX = ".rec"
_RECORD_MAGIC = "layerc-record"
_COMPILERS_DIR = "compilers"
_FFI_FILE = "ffi.py"
# what an ABI-mode library raises for a declared name its shared library lacks
_LOOKUP_ERROR = _cffi_backend.FFI.error
# what opening an entry (its ffi.py, then its shared library) raises when it does not load
_LOAD_ERRORS = (ImportError, OSError)
_MAX_ERROR_LINES = 40


class BuildError(RuntimeError):
    """The C source of a layer did not compile, or the module built from it did not load."""


@dataclass(frozen=True)
class BuildOptions:
    """How to compile; every field changes the cache key.

    - ``flags``: base compiler flags (default ``DEFAULT_FLAGS``).
    - ``portable``: drop ``*=native`` flags so the module runs on any CPU of this
      architecture (the compiler's default baseline); add e.g.
      ``extra_flags=("-march=x86-64-v2",)`` for a chosen level.
    - ``warnings_as_errors``: add ``-Wall -Wextra -Werror``.
    - ``sanitize``: add ``-fsanitize=address,undefined -fno-omit-frame-pointer``.
      Such a module only loads in a process started with the ASan runtime
      preloaded, e.g.
      ``LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python ...``
      (add ``UBSAN_OPTIONS=halt_on_error=1`` to make undefined behaviour fatal);
      ``compile_c`` raises ``BuildError`` saying so otherwise.
    - ``extra_flags``: appended last, so they override earlier ones.

    >>> BuildOptions(portable=True, extra_flags=("-ffast-math",)).final_flags()
    ['-O3', '-fopenmp', '-fno-math-errno', '-fno-trapping-math', '-std=c11', '-ffast-math', '-fPIC', '-shared', '-fopenmp', '-lm', '-Wl,-z,nodelete']
    """

    flags: tuple[str, ...] = DEFAULT_FLAGS
    portable: bool = False
    warnings_as_errors: bool = False
    sanitize: bool = False
    extra_flags: tuple[str, ...] = ()

    def __post_init__(self):
        # Lists are accepted for convenience; tuples keep the options hashable.
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "extra_flags", tuple(self.extra_flags))

    def final_flags(self) -> list[str]:
        """Every flag passed to the compiler, in order (compile and link)."""
        flags = [f for f in self.flags if not (self.portable and _is_native(f))]
        if self.warnings_as_errors:
            flags += _WARNING_FLAGS
        if self.sanitize:
            flags += _SANITIZE_FLAGS
        return flags + list(self.extra_flags) + list(_LINK_FLAGS)


@dataclass(frozen=True)
class LibraryPlan:
    """One library built from a source in parts: what Python may call of it
    (``cdef``) and the parts it compiles (``compile_c(parts=...)``)."""

    cdef: str
    parts: tuple


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


def cache_dir() -> pathlib.Path:
    """Where built modules are kept (absolute; not created here):
    ``$LAYERC_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerc``, else ``~/.cache/layerc``.

    >>> cache_dir()   # doctest: +SKIP
    PosixPath('/home/me/.cache/layerc')
    """
    explicit = os.environ.get("LAYERC_CACHE_DIR")
    if explicit:
        folder = explicit
    else:
        folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "layerc")
    return pathlib.Path(os.path.abspath(os.path.expanduser(folder)))


def cache_key(source: str, cdef: str, options: BuildOptions = BuildOptions()) -> str:
    """sha256 (hex) over everything that determines the built module: the source,
    the cdef, the compiler (``$CC``: path and ``--version``), the final flags
    (``options`` and ``$CFLAGS``), the Python ABI, the cffi version, the recipe
    of this module, and the CPU features when a flag targets the native CPU.

    >>> len(cache_key("int f(void){return 1;}", "int f(void);"))
    64
    """
    return _digest(source, cdef, build_inputs(options))


def compile_c(source: str, cdef: str, *, name: str, options: BuildOptions = BuildOptions(),
              parts: tuple[int, ...] = ()) -> CompiledLibrary:
    """Compile ``source`` exposing the declarations in ``cdef``, or load it from
    the cache; ``name`` (any string, e.g. the layer's name) labels the module
    and error messages. Safe to call from several threads and processes at once:
    each distinct build is compiled once.

    ``parts``: the numbers ``k`` of the ``#if LC_PART == k`` sections of the
    source to compile besides part 0 (shared state), each as a translation
    unit of its own: compiled side by side, each by its own
    compiler process, then linked. Empty: the source is one unit.

    Raises ``BuildError`` naming the layer, with the compiler's messages, when
    the source does not compile; no entry is left in the cache then, and the
    source is kept as ``cache_dir()/failed/<module name>.c``, named in the
    message with the line of the first error. Raises ``BuildError`` naming
    ``CC`` when the compiler is not found.

    >>> src = "#include <stdint.h>\\nint64_t twice(int64_t v){return 2*v;}"
    >>> compile_c(src, "int64_t twice(int64_t v);", name="twice").lib.twice(21)
    42
    """
    key = cache_key(source, cdef, options)
    module_name = f"{_ENTRY_PREFIX}{_safe_name(name)}_{key[:16]}"
    root = _build_root()
    entry = root / module_name
    with _thread_lock_for(entry):
        loaded = _loaded.get(entry)
        if loaded is not None:
            return loaded
        if options.sanitize and not _asan_runtime_loaded():
            raise BuildError(
                f"layer {name!r}: a sanitize=True module only loads in a process started with "
                f"LD_PRELOAD={_asan_library()} ASAN_OPTIONS=detect_leaks=0"
            )
        ffi, lib = _load_published(entry, key) or _load_or_build(source, cdef, name, options, key, entry, parts)
        loaded = CompiledLibrary(
            ffi=ffi,
            lib=lib,
            so_path=str(entry / _so_name(module_name)),
            cache_key=key,
            source=source,
            module_name=module_name,
        )
        _loaded[entry] = loaded
        return loaded


def _load_published(entry: pathlib.Path, key: str) -> tuple | None:
    """``(ffi, lib)`` of a sound published entry, loaded without the file lock,
    or None. An entry is published with one ``os.replace`` and never changed
    after, so one that passes the checks is whole; anything else (missing,
    damaged, being replaced) goes the locked way."""
    if _entry_problems(entry, expected_key=key, check_hash=True):
        return None
    try:
        return _load(entry, entry.name)
    except _LOAD_ERRORS:
        return None


def _load_or_build(source, cdef, name, options, key, entry, parts) -> tuple:
    """``(ffi, lib)`` of the entry, checked again under its file lock: loaded,
    or built and published when it is missing or damaged."""
    root = entry.parent
    root.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(root / f"{entry.name}.lock")):
        problems = _entry_problems(entry, expected_key=key, check_hash=True)
        if not problems:
            log.debug("loading %s from %s", name, entry)
            return _import_entry(entry, name)
        if problems != ["missing"]:
            log.warning("layer %r: cached module %s is damaged (%s); removing it and rebuilding",
                        name, entry, "; ".join(problems))
        _remove_dead_leftovers(root, entry.name)
        return _build_and_publish(source, cdef, name, options, key, entry, parts)


def build_inputs(options: BuildOptions = BuildOptions()) -> dict:
    """Everything but the source and the cdef that goes into ``cache_key`` (the
    compiler and its version, the final flags with ``$CFLAGS``, the Python ABI,
    cffi's version, the CPU's features for native flags), as JSON-able data.
    Memoized per process for the same options, ``$CC``, ``$CFLAGS`` and
    ``$PATH`` while the compiler's file keeps its size and mtime (one stat).

    >>> sorted(build_inputs())[:3]
    ['cffi', 'cflags_env', 'compiler']
    """
    env = (options, os.environ.get("CC"), os.environ.get("CFLAGS"), os.environ.get("PATH"))
    memo = _build_inputs_memo.get(env)
    if memo is not None:
        inputs, stamp = memo
        if _file_stamp(inputs["compiler"][0]) == stamp:
            return inputs
    inputs = _key_inputs(_compile_flags(options))
    stamp = _file_stamp(inputs["compiler"][0])
    if stamp is not None:
        _build_inputs_memo[env] = (inputs, stamp)
    return inputs


def _file_stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def read_record(key: str) -> bytes | None:
    """The payload of the record ``key`` (hex) under ``lowered/``, or None when
    there is none. A record whose payload does not match the sha256 in its
    first line (truncated, altered) is removed with a warning, and None returned.

    >>> write_record("ab" * 32, b"payload", layer="demo")
    >>> read_record("ab" * 32)
    b'payload'
    """
    path = _record_path(_build_root(), key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, payload = _parse_record(data)
    if header is None or header.get("key") != key:
        log.warning("cached record %s is damaged (%s); removing it", path,
                    "another key" if header is not None else "its payload does not match its sha256")
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return payload


def write_record(key: str, payload: bytes, layer: str = "") -> None:
    """Publish ``payload`` as the record ``key`` (hex): written to a temporary
    file beside it, then moved into place with one ``os.replace`` (a reader sees
    the old record or the new one, never a part). ``layer`` goes into the
    header for ``list_records``. A cache that cannot be written
    keeps no record (logged at debug level)."""
    folder = _build_root() / _RECORDS_DIR
    path = _record_path(folder.parent, key)
    header = json.dumps({"format": _RECORD_MAGIC, "key": key, "layer": layer,
                         "sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True)
    tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(header.encode() + b"\n" + payload)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("could not write the record %s: %s", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def list_records() -> list[dict]:
    """One dict per record under ``lowered/``: ``key``, ``layer``, ``size``,
    ``mtime``, ``path`` (``layer`` None when the header is unreadable)."""
    folder = cache_dir() / _RECORDS_DIR
    records = []
    for path in sorted(folder.glob(f"*{_RECORD_SUFFIX}")) if folder.is_dir() else []:
        try:
            stat = path.stat()
            with open(path, "rb") as f:
                header = _parse_header(f.readline())
        except OSError:
            continue
        records.append({"key": path.name[:-len(_RECORD_SUFFIX)], "layer": (header or {}).get("layer"),
                        "size": stat.st_size, "mtime": stat.st_mtime, "path": str(path)})
    return records


def compiler_invocations() -> int:
    """How many times this process has run the C compiler (failed runs included).

    >>> before = compiler_invocations()
    >>> _ = compile_c("int one(void) { return 1; }", "int one(void);", name="one")
    >>> compiler_invocations() - before   # 0 when "one" was already in the cache
    1
    """
    return _invocations


def list_cache() -> list[dict]:
    """One dict per cache entry: ``module_name``, ``layer``, ``key``, ``size``
    (bytes), ``mtime`` (seconds since the epoch), ``path``. ``layer`` and
    ``key`` are None when the entry's meta.json is unreadable.

    >>> [e["module_name"] for e in list_cache()]   # doctest: +SKIP
    ['_layerc_add1_3f0c9a6b1d2e4f57']
    """
    entries = []
    for entry in _entries(cache_dir()):
        meta = _read_meta(entry) or {}
        entries.append({
            "module_name": entry.name,
            "layer": meta.get("layer"),
            "key": meta.get("key"),
            "size": sum(f.stat().st_size for f in entry.iterdir() if f.is_file()),
            "mtime": entry.stat().st_mtime,
            "path": str(entry),
        })
    return entries


def clear_cache() -> int:
    """Remove every entry (and temporary folders left by killed builds, the
    sources kept from failed compiles, and the records under ``lowered/``) and
    return how many entries were removed. Each entry is removed under its lock,
    so a build in progress elsewhere finishes first. Modules already loaded stay
    usable; this process will rebuild them on the next ``compile_c``. Lock files
    are left to filelock.

    >>> clear_cache()   # doctest: +SKIP
    2
    """
    root = cache_dir()
    removed = 0
    for module_name in _module_names(root):
        entry = root / module_name
        with _thread_lock_for(entry), filelock.FileLock(str(root / f"{module_name}.lock")):
            for leftover in root.glob(f"{_TMP_PREFIX}{module_name}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            if entry.is_dir():
                shutil.rmtree(entry)
                removed += 1
            _loaded.pop(entry, None)
    shutil.rmtree(root / _FAILED_DIR, ignore_errors=True)
    shutil.rmtree(root / _RECORDS_DIR, ignore_errors=True)
    return removed


def verify_cache() -> list[str]:
    """Check every entry (files present, meta readable, the shared library
    matches its stored sha256, stored source and cdef hash to the stored key,
    folder named after that key), every record (payload against the sha256 in
    its header) and report leftover temporary folders. Returns one message per
    problem; ``[]`` when healthy.

    >>> verify_cache()   # doctest: +SKIP
    ['_layerc_add1_3f0c9a6b1d2e4f57: shared library _layerc_add1_3f0c9a6b1d2e4f57.cpython-311-x86_64-linux-gnu.so is missing']
    """
    root = cache_dir()
    problems = [f"{entry.name}: {p}" for entry in _entries(root) for p in _entry_problems(entry, check_hash=True)]
    for record in list_records():
        path = pathlib.Path(record["path"])
        try:
            header, _ = _parse_record(path.read_bytes())
        except OSError:
            continue   # removed meanwhile
        if header is None or header.get("key") != record["key"]:
            problems.append(f"{_RECORDS_DIR}/{path.name}: record does not match its sha256 or its name")
    for leftover in _leftovers(root):
        try:
            with filelock.FileLock(str(root / f"{_leftover_module_name(leftover)}.lock"), timeout=0):
                problems.append(f"{leftover.name}: temporary folder left by an interrupted build")
        except filelock.Timeout:
            pass  # a build is in progress
    return problems


# ---------------------------------------------------------------- internals

_registry_lock = threading.Lock()
_entry_locks: dict[pathlib.Path, threading.Lock] = {}
_loaded: dict[pathlib.Path, CompiledLibrary] = {}
_build_inputs_memo: dict = {}
_invocations = 0
_verbose_logging_ready = False
# configured cache folder -> where this process builds (itself, or a fallback)
_build_roots: dict[pathlib.Path, pathlib.Path] = {}


def _thread_lock_for(entry: pathlib.Path) -> threading.Lock:
    with _registry_lock:
        return _entry_locks.setdefault(entry, threading.Lock())


def _is_native(flag: str) -> bool:
    return flag.endswith("=native")


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^a-z0-9_]+", "_", str(name).lower())
    safe = re.sub(r"_+", "_", safe).strip("_")[:40].rstrip("_")
    return safe or "layer"


def _so_name(module_name: str) -> str:
    return f"{module_name}.so"


def _compiler_command() -> list[str]:
    return shlex.split(os.environ.get("CC") or "") or ["cc"]


def _compile_flags(options: BuildOptions) -> list[str]:
    """The options' flags, then ``$CFLAGS`` (so they override, as in other build tools)."""
    return options.final_flags() + shlex.split(os.environ.get("CFLAGS") or "")


def _compiler_identity(command: tuple[str, ...]) -> tuple[str, str]:
    """(resolved path, ``--version`` output) of the compiler."""
    real = _resolve_compiler(command[0], os.environ.get("PATH"))
    try:
        stat = os.stat(real)
    except OSError:   # removed since it was resolved
        _resolve_compiler.cache_clear()
        real = _resolve_compiler(command[0], os.environ.get("PATH"))
        stat = os.stat(real)
    # a compiler replaced in place (another size or mtime) is asked again
    return real, _compiler_version(command, real, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _resolve_compiler(program: str, search_path: str | None) -> str:
    """The real path of ``program`` (memoized: PATH lookups cost ~0.1 ms)."""
    path = shutil.which(program, path=search_path)
    if path is None:
        if (os.environ.get("CC") or "").strip():
            raise BuildError(
                f"the C compiler in CC={os.environ['CC']!r} was not found: {program!r} is not an "
                "executable file or a program on PATH; set CC to a C compiler, or unset it to use cc")
        raise BuildError("no C compiler: 'cc' is not on PATH; install one, or set CC to a C compiler")
    return os.path.realpath(path)


@functools.lru_cache(maxsize=None)
def _compiler_version(command: tuple[str, ...], real: str, size: int, mtime_ns: int) -> str:
    # asking the compiler its version costs a process; remember it per binary on disk
    memo = cache_dir() / _COMPILERS_DIR / hashlib.sha256(
        f"{real}:{size}:{mtime_ns}:{' '.join(command[1:])}".encode()).hexdigest()
    try:
        return memo.read_text()
    except OSError:
        pass
    try:
        version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError as exc:
        raise BuildError(f"the C compiler {command[0]!r} (CC={os.environ.get('CC') or 'cc'}) "
                         f"does not run: {exc}") from exc
    write_memo(memo, version)
    return version


@functools.lru_cache(maxsize=None)
def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _key_inputs(flags: list[str]) -> dict:
    """Everything but the source and cdef that goes into the key; stored in meta.json."""
    compiler_path, compiler_version = _compiler_identity(tuple(_compiler_command()))
    return {
        "recipe": _RECIPE,
        "compiler": [compiler_path, *_compiler_command()[1:]],
        "compiler_version": compiler_version,
        "flags": flags,
        "cflags_env": shlex.split(os.environ.get("CFLAGS") or ""),
        "python_abi": [sysconfig.get_config_var("EXT_SUFFIX"), sys.implementation.cache_tag],
        "cffi": cffi.__version__,
        "cpu_features": _cpu_features() if any(map(_is_native, flags)) else None,
    }


def _digest(source: str, cdef: str, inputs: dict) -> str:
    blob = json.dumps({"source": source, "cdef": cdef, **inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@contextlib.contextmanager
def _shared_lock(path: pathlib.Path):
    """The entry's lock taken shared: readers of a published entry do not wait
    for each other, and wait for a build holding it (``filelock`` takes it
    exclusive with ``flock`` on the same file). Where ``flock`` is unavailable,
    filelock's own (exclusive) lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if fcntl is not None else None
    except OSError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            fd = None
    if fd is None:
        with filelock.FileLock(str(path)):
            yield
        return
    try:
        yield
    finally:
        os.close(fd)     # releases the lock


def _record_path(root: pathlib.Path, key: str) -> pathlib.Path:
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError(f"a record key is 64 hex digits, got {key!r}")
    return root / _RECORDS_DIR / f"{key}{_RECORD_SUFFIX}"


def _parse_header(line: bytes) -> dict | None:
    try:
        header = json.loads(line.decode("utf-8"))
    except ValueError:         # UnicodeDecodeError too
        return None
    return header if isinstance(header, dict) and header.get("format") == _RECORD_MAGIC else None


def _parse_record(data: bytes) -> tuple[dict | None, bytes]:
    """(header, payload), header None when the payload does not match its sha256."""
    line, _, payload = data.partition(b"\n")
    header = _parse_header(line)
    if header is None or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None, payload
    return header, payload


def _read_meta(entry: pathlib.Path) -> dict | None:
    try:
        meta = json.loads((entry / _META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _entry_problems(entry: pathlib.Path, expected_key: str | None = None, check_hash: bool = False) -> list[str]:
    """What is wrong with a published entry. With ``expected_key`` (the build
    path) a cheap check against it; without (verify) the key is recomputed from
    the stored files. ``check_hash``: the shared library against the sha256 in
    meta.json."""
    if not entry.is_dir():
        return ["missing"]
    problems = []
    so = entry / _so_name(entry.name)
    so_present = so.is_file() and so.stat().st_size > 0
    if not so_present:
        problems.append(f"shared library {so.name} is missing")
    for stored in (_SOURCE_FILE, _CDEF_FILE, _FFI_FILE):
        if not (entry / stored).is_file():
            problems.append(f"{stored} is missing")
    meta = _read_meta(entry)
    if meta is None:
        return problems + [f"{_META_FILE} is missing or unreadable"]
    if check_hash and so_present:
        stored_hash = meta.get("so_sha256")
        if not isinstance(stored_hash, str):
            problems.append(f"{_META_FILE} has no sha256 of the shared library")
        elif _file_sha256(so) != stored_hash:
            problems.append(f"shared library {so.name} does not match its sha256 (truncated or altered)")
    if expected_key is not None:
        if meta.get("key") != expected_key:
            problems.append("meta.json holds another key")
        return problems
    if not entry.name.endswith("_" + str(meta.get("key"))[:16]):
        problems.append("folder name does not match the key in meta.json")
    if not problems:
        try:
            recomputed = _digest(_read_text(entry / _SOURCE_FILE), _read_text(entry / _CDEF_FILE), meta["inputs"])
        except (KeyError, TypeError):
            problems.append(f"{_META_FILE} has no build inputs")
        else:
            if recomputed != meta["key"]:
                problems.append("key mismatch: source.c, cdef.h or meta.json changed after the build")
    return problems


def _file_sha256(path: pathlib.Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_text(path: pathlib.Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def write_memo(path: pathlib.Path, text: str) -> None:
    """Publish a small memo file atomically (readers see all of it or none);
    a cache that cannot be written is no error: the memo is remade next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass


def _write_text(path: pathlib.Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _build_and_publish(source, cdef, name, options, key, entry, parts=0):
    """Build into a temporary folder, import from there, then move it into place.
    Called with the entry's file lock held."""
    module_name = entry.name
    started = time.perf_counter()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{module_name}-", dir=entry.parent))
    try:
        flags = _compile_flags(options)
        inputs = build_inputs(options)
        _write_text(tmp / _SOURCE_FILE, source)
        _write_text(tmp / _CDEF_FILE, cdef)
        ffi = cffi.FFI()
        try:
            ffi.cdef(cdef)
        except cffi.CDefError as exc:
            raise BuildError(f"layer {name!r}: invalid cdef: {exc}") from exc
        cffi.recompiler.make_py_source(ffi, module_name, str(tmp / _FFI_FILE))
        units = [[f"-D{PART_MACRO}={k}"] for k in (0, *parts)] if parts else [[]]
        _run_compiler(tmp, units, _so_name(module_name), flags, name)
        meta = {
            "key": key,
            "module_name": module_name,
            "layer": name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "so_sha256": _file_sha256(tmp / _so_name(module_name)),
            "inputs": inputs,
        }
        (tmp / _META_FILE).write_text(json.dumps(meta, indent=1))

        try:
            loaded = ffi, lib = _load(tmp, module_name)
            for declared in dir(lib):
                getattr(lib, declared)    # the ABI mode looks names up when first used: now, once
        except (*_LOAD_ERRORS, AttributeError, _LOOKUP_ERROR) as exc:
            raise BuildError(f"layer {name!r}: the compiled module does not load: {exc}") from exc

        if entry.exists():
            # A broken entry: move it aside first, since os.replace cannot
            # overwrite a non-empty folder.
            aside = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{module_name}-", dir=entry.parent)
            os.replace(entry, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(tmp, entry)
        log.info("compiling %s … done in %.2f s", name, time.perf_counter() - started)
        return loaded
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_compiler(cwd: pathlib.Path, units: list, so_file: str, flags: list[str], name: str) -> None:
    """Compile source.c once per unit (its extra flags) into an object, all at
    once (one compiler process each), then link them into ``so_file``. Counts
    as one compiler invocation (``compiler_invocations``)."""
    global _invocations
    with _registry_lock:
        _invocations += 1
    compile_flags = [f for f in flags if f != "-shared" and not f.startswith("-l")]
    objects = [f"unit{k}.o" for k in range(len(units))]
    commands = [[*_compiler_command(), "-c", _SOURCE_FILE, "-o", obj, *compile_flags, *extra]
                for extra, obj in zip(units, objects)]
    processes = [_start(command, cwd, name) for command in commands]
    for command, process in zip(commands, processes):
        _check(command, process, cwd, name, so_file)
    link = [*_compiler_command(), *objects, "-o", so_file, *flags]
    _check(link, _start(link, cwd, name), cwd, name, so_file)
    for obj in objects:
        (cwd / obj).unlink()


def _start(command: list[str], cwd: pathlib.Path, name: str) -> subprocess.Popen:
    if _verbose():
        log.info("running: %s  (in %s)", shlex.join(command), cwd)
    try:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise BuildError(f"layer {name!r}: could not run the C compiler {command[0]!r} "
                         f"(CC={os.environ.get('CC') or 'cc'}): {exc}") from exc


def _check(command: list[str], process: subprocess.Popen, cwd: pathlib.Path, name: str, so_file: str) -> None:
    """Wait for a compiler process; raise ``BuildError`` with its messages when it failed."""
    stdout, stderr = process.communicate()
    output = (stderr + stdout).strip()
    if output:
        log.log(logging.INFO if _verbose() else logging.DEBUG, "compiler output for %s:\n%s", name, output)
    if process.returncode != 0:
        kept = _keep_failed_source(cwd, so_file.removesuffix(".so"))
        if kept is not None:
            # the messages name the kept copy, which outlives the build folder
            output = re.sub(rf"(?m)(^|\s){re.escape(_SOURCE_FILE)}:", lambda m: f"{m.group(1)}{kept}:", output)
        first = re.search(rf"(?m)^{re.escape(str(kept or _SOURCE_FILE))}:(\d+):", output)
        where = f"generated source: {kept or '(not kept: the cache folder is not writable)'}"
        if first:
            where += f", first error at line {first.group(1)}"
        raise BuildError(
            f"layer {name!r} failed to compile ({command[0]} exited with {process.returncode}); {where}\n"
            + _relevant_lines(output)
        )


def _keep_failed_source(build_folder: pathlib.Path, module_name: str) -> pathlib.Path | None:
    """Copy the source of a failed compile to ``failed/<module name>.c`` beside
    the entries, where the error message can point to it."""
    folder = build_folder.parent / _FAILED_DIR
    kept = folder / f"{module_name}.c"
    try:
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{module_name}.{os.getpid()}.{threading.get_ident()}.tmp"
        shutil.copyfile(build_folder / _SOURCE_FILE, tmp)
        os.replace(tmp, kept)
    except OSError as exc:
        log.debug("could not keep the failed source %s: %s", kept, exc)
        return None
    return kept


def _relevant_lines(output: str) -> str:
    """Compiler output without include chains, capped at _MAX_ERROR_LINES."""
    lines = [
        line for line in output.splitlines()
        if not line.startswith("In file included from") and not re.match(r"\s+from \S+:\d+[,:]$", line)
    ]
    if len(lines) > _MAX_ERROR_LINES:
        lines = lines[:_MAX_ERROR_LINES] + [f"... ({len(lines) - _MAX_ERROR_LINES} more lines)"]
    return "\n".join(lines)


def _verbose() -> bool:
    """Whether LAYERC_VERBOSE=1; if so, make sure INFO records of "layerc" get printed."""
    global _verbose_logging_ready
    if os.environ.get("LAYERC_VERBOSE") != "1":
        return False
    with _registry_lock:
        if not _verbose_logging_ready:
            if log.getEffectiveLevel() > logging.INFO:
                log.setLevel(logging.INFO)
            if not log.hasHandlers():
                log.addHandler(logging.StreamHandler(sys.stderr))
            _verbose_logging_ready = True
    return True


def _quiet_openmp_waits() -> None:
    """Idle OpenMP threads sleep instead of spinning, unless the user chose.

    Spinning threads between kernels compete with the Python thread for the
    cores: on a busy 2-core machine a 0.3 ms PReLU took 8 ms with two threads.
    libgomp reads this when it first loads, which is with the first layer."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def _load(folder: pathlib.Path, module_name: str) -> tuple:
    """``(ffi, lib)``: the ``ffi`` of ``folder``'s ffi.py and its shared library, opened."""
    _quiet_openmp_waits()
    spec = importlib.util.spec_from_file_location(f"{module_name}_ffi", folder / _FFI_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi, module.ffi.dlopen(str(folder / _so_name(module_name)))


def _import_entry(entry: pathlib.Path, name: str):
    try:
        return _load(entry, entry.name)
    except _LOAD_ERRORS as exc:
        raise BuildError(
            f"layer {name!r}: cached module {entry} does not load ({exc}); "
            "clear the cache with layerc.compiler.build.clear_cache()"
        ) from exc


def _build_root() -> pathlib.Path:
    """``cache_dir()`` when it can be written; else a temporary folder of this
    process (removed at exit), with a warning. Probed once per folder."""
    configured = cache_dir()
    with _registry_lock:
        root = _build_roots.get(configured)
    if root is not None:
        return root
    try:
        configured.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=configured)
        os.close(fd)
        os.unlink(probe)
        root = configured
    except OSError as exc:
        root = pathlib.Path(tempfile.mkdtemp(prefix="layerc-cache-"))
        atexit.register(shutil.rmtree, root, True)
        origin = ("set by LAYERC_CACHE_DIR" if os.environ.get("LAYERC_CACHE_DIR")
                  else "set LAYERC_CACHE_DIR to choose another")
        log.warning("the layerc cache folder %s (%s) cannot be written (%s); this process builds in %s, "
                    "which is removed at exit", configured, origin, exc, root)
    with _registry_lock:
        return _build_roots.setdefault(configured, root)


def _remove_dead_leftovers(root: pathlib.Path, module_name: str) -> None:
    """Remove temporary folders of killed builds. Called with ``module_name``'s
    file lock held, so that module's folders are all dead; another module's are
    removed when its lock is free (its build is not running)."""
    for leftover in _leftovers(root):
        owner = _leftover_module_name(leftover)
        if not owner.startswith(_ENTRY_PREFIX):
            continue
        if owner == module_name:
            shutil.rmtree(leftover, ignore_errors=True)
            continue
        try:
            with filelock.FileLock(str(root / f"{owner}.lock"), timeout=0):
                if leftover.exists():
                    log.debug("removing %s, left by a killed build", leftover)
                    shutil.rmtree(leftover, ignore_errors=True)
        except (filelock.Timeout, OSError):
            pass  # a build is in progress, or the lock cannot be taken


def _entries(root: pathlib.Path) -> list[pathlib.Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_ENTRY_PREFIX))


def _leftovers(root: pathlib.Path) -> list[pathlib.Path]:
    """Temporary folders: of builds in progress, or left by killed ones."""
    return sorted(root.glob(f"{_TMP_PREFIX}*")) if root.is_dir() else []


def _leftover_module_name(folder: pathlib.Path) -> str:
    # mkdtemp's random suffix has no "-", and neither has a module name.
    return folder.name[len(_TMP_PREFIX):].rpartition("-")[0]


def _module_names(root: pathlib.Path) -> list[str]:
    names = {p.name for p in _entries(root)} | {_leftover_module_name(p) for p in _leftovers(root)}
    return sorted(names)


@functools.lru_cache(maxsize=None)
def _asan_runtime_loaded() -> bool:
    return hasattr(ctypes.CDLL(None), "__asan_init")


def _asan_library() -> str:
    found = subprocess.run([*_compiler_command(), "-print-file-name=libasan.so"], capture_output=True, text=True)
    return found.stdout.strip() or "libasan.so"

