"""The C compiler: which one, with which flags, and running it.

In: a folder holding ``source.c``, ``BuildOptions`` and ``$CC``/``$CFLAGS``.
Out: a shared library in that folder, or ``BuildError`` naming the layer, with
the compiler's messages. ``key_inputs`` describes the compiler as data (its
path and ``--version``, the final flags, the Python ABI, cffi's version, the
CPU's features for native flags): everything but the source that a build
depends on, so it goes into the cache key.

The compiler is ``$CC`` if set, else ``cc``; flags are ``BuildOptions`` (see
there), then ``$CFLAGS``. ``LAYERC_VERBOSE=1`` logs every compiler command and
its output through the ``"layerc"`` logger (attaching a stderr handler if
logging is not configured).

Floating-point state is the process's, not the library's: ``-ffast-math``,
``-Ofast`` or ``-funsafe-math-optimizations`` at link time make gcc add
``crtfastmath.o``, whose constructor turns on flush-to-zero and
denormals-are-zero for the whole process when the library loads (numpy then
computes ``1e-310 * 1.0 == 0``). They are kept for compiling and dropped from
the link (gcc 12 has no ``-mno-daz-ftz``; gcc 13 added it).

Example::

    flags = compile_flags(BuildOptions(portable=True))
    compile_units(folder, [[]], "lib.so", flags, name="PReLU")   # folder/source.c -> folder/lib.so
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass

import cffi

from . import store

__all__ = [
    "DEFAULT_FLAGS", "ISA_FLAGS", "KEEP_LOADED", "isa_levels", "PARTS_MACRO", "SOURCE_FILE", "BuildError", "BuildOptions",
    "asan_library", "asan_runtime_loaded", "compile_flags", "compile_units", "compiler_invocations",
    "key_inputs", "link_flags",
]

log = logging.getLogger("layerc")

# -fno-math-errno and -fno-trapping-math keep IEEE results (NaN, Inf, signed
# zeros) while letting gcc vectorize: without the latter it will not compute
# both sides of a select (`x > 0 ? x : a * x`) in a loop. -O3, not -O2 with
# -O3's vectorizer cost model: that compiles attention's backward in 0.62 s
# instead of 0.78 s, but focal loss's forward ran 1.7x slower
DEFAULT_FLAGS: tuple[str, ...] = ("-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-std=c11")
# A library is built for an instruction-set level, never for the CPU at hand
# (-march=native): the runtime picks the level when it loads a library
# (runtime/isa.py), so one cache or package serves every x86-64 CPU. The
# levels are x86-64's v4 (AVX-512), v3 (AVX2, FMA) and v2 (the baseline);
# elsewhere only the baseline, the compiler's own. Each is tuned for a CPU of its level:
# gcc 12's generic tuning left focal loss's 10-class row loops scalar (18 of
# 23 loops vectorized), and an Intel tuning alone prefers 32-byte vectors.
# The baseline is v2 (SSE4.2): gcc 12 stops with an internal error on a
# max-pool's vector selects at the bare x86-64 level.
ISA_FLAGS = {"avx512": ("-march=x86-64-v4", "-mtune=icelake-server", "-mprefer-vector-width=512"),
             "avx2": ("-march=x86-64-v3", "-mtune=haswell"), "baseline": ("-march=x86-64-v2",)}
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def isa_levels() -> tuple:
    """The levels worth a library of their own here (only the baseline off x86-64)."""
    return tuple(ISA_FLAGS) if _X86_64 else ("baseline",)
_WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
_SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer")
# -fopenmp again at link time pulls in libgomp even when the user's flags drop it.
# A library closed at exit (cffi closes what it opened) must not take libgomp
# with it while OpenMP's idle threads still run its code: they spin there under
# OMP_WAIT_POLICY=active, and the process died with SIGSEGV
KEEP_LOADED = "-Wl,-z,nodelete"
_LINK_FLAGS = ("-fPIC", "-shared", "-fopenmp", "-lm", KEEP_LOADED)
# flags that make gcc link crtfastmath.o (see the module docstring): compile only
_PROCESS_FP_FLAGS = frozenset({"-Ofast", "-ffast-math", "-funsafe-math-optimizations"})
# the macro that selects the parts of a source built in parts that one of
# compile_units' units holds: bit k set for part k
PARTS_MACRO = "LC_PARTS"
SOURCE_FILE = "source.c"
_MAX_ERROR_LINES = 40


class BuildError(RuntimeError):
    """The C source of a layer did not compile, or the module built from it did not load."""


@dataclass(frozen=True)
class BuildOptions:
    """How to compile; every field changes the cache key.

    - ``flags``: base compiler flags (default ``DEFAULT_FLAGS``).
    - ``isa``: the instruction-set level (``ISA_FLAGS``: ``avx512``, ``avx2``,
      ``baseline``); the runtime asks for the one it loads (runtime/isa.py).
    - ``portable``: drop ``*=native`` flags a user added, so the module runs on
      any CPU of its level.
    - ``warnings_as_errors``: add ``-Wall -Wextra -Werror``.
    - ``sanitize``: add ``-fsanitize=address,undefined -fno-omit-frame-pointer``.
      Such a module only loads in a process started with the ASan runtime
      preloaded, e.g.
      ``LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python ...``
      (add ``UBSAN_OPTIONS=halt_on_error=1`` to make undefined behaviour fatal);
      ``compile_c`` raises ``BuildError`` saying so otherwise.
    - ``extra_flags``: appended last, so they override earlier ones. Fast-math
      flags apply to the layer's code only (see ``link_flags``).

    >>> BuildOptions(portable=True, extra_flags=("-ffast-math",)).final_flags()
    ['-O3', '-fopenmp', '-fno-math-errno', '-fno-trapping-math', '-std=c11', '-ffast-math', '-fPIC', '-shared', '-fopenmp', '-lm', '-Wl,-z,nodelete']
    """

    flags: tuple[str, ...] = DEFAULT_FLAGS
    isa: str = "baseline"
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
        if self.isa not in ISA_FLAGS:
            raise ValueError(f"BuildOptions: isa must be one of {', '.join(ISA_FLAGS)}, got {self.isa!r}")
        flags = [f for f in self.flags if not (self.portable and _is_native(f))]
        flags += ISA_FLAGS[self.isa] if _X86_64 else ()
        if self.warnings_as_errors:
            flags += _WARNING_FLAGS
        if self.sanitize:
            flags += _SANITIZE_FLAGS
        return flags + list(self.extra_flags) + list(_LINK_FLAGS)


def compile_flags(options: BuildOptions) -> list[str]:
    """The options' flags, then ``$CFLAGS`` (so they override, as in other build tools)."""
    return options.final_flags() + shlex.split(os.environ.get("CFLAGS") or "")


def link_flags(flags: list[str]) -> list[str]:
    """``flags`` without those that would link ``crtfastmath.o`` (flush-to-zero
    for the whole process).

    >>> link_flags(["-Ofast", "-ffast-math", "-shared", "-lm"])
    ['-shared', '-lm']
    """
    return [f for f in flags if f not in _PROCESS_FP_FLAGS]


def key_inputs(options: BuildOptions = BuildOptions()) -> dict:
    """Everything but the source and the cdef that a build depends on (the
    compiler and its version, the final flags with ``$CFLAGS``, the Python ABI,
    cffi's version, the CPU's features for native flags), as JSON-able data.
    Memoized per process for the same options, ``$CC``, ``$CFLAGS`` and
    ``$PATH`` while the compiler's file keeps its size and mtime (one stat).

    >>> sorted(key_inputs())[:3]
    ['cffi', 'cflags_env', 'compiler']
    """
    env = (options, os.environ.get("CC"), os.environ.get("CFLAGS"), os.environ.get("PATH"))
    memo = _key_inputs_memo.get(env)
    if memo is not None:
        inputs, stamp = memo
        if _file_stamp(inputs["compiler"][0]) == stamp:
            return inputs
    flags = compile_flags(options)
    command = _compiler_command()
    compiler_path, compiler_version = _compiler_identity(tuple(command))
    inputs = {
        "compiler": [compiler_path, *command[1:]],
        "compiler_version": compiler_version,
        "flags": flags,
        "cflags_env": shlex.split(os.environ.get("CFLAGS") or ""),
        "python_abi": [sysconfig.get_config_var("EXT_SUFFIX"), sys.implementation.cache_tag],
        "cffi": cffi.__version__,
        "cpu_features": _cpu_features() if any(map(_is_native, flags)) else None,
    }
    stamp = _file_stamp(compiler_path)
    if stamp is not None:
        _key_inputs_memo[env] = (inputs, stamp)
    return inputs


def compile_units(folder, units: list, so_file: str, flags: list[str], name: str, keep_failed=None,
                  meanwhile=None, linked: tuple = ()) -> None:
    """Compile ``folder/source.c`` once per unit (its extra flags, e.g.
    ``-DLC_PARTS=6``) into an object, all at once (one compiler process each),
    then link them, and the object files ``linked`` (paths), into
    ``folder/so_file``; a single unit is compiled and linked by one compiler
    process when the link keeps every flag (``link_flags``), which saves the
    start of another. Counts as one invocation (``compiler_invocations``).
    ``meanwhile()`` runs in this process while the compilers do (Python work
    the build needs, off its critical path); should it raise, the compilers are
    stopped. On failure ``keep_failed()`` may copy the source somewhere lasting
    and return that path, which the error names. ``so_file`` ending in ``.o``:
    the one unit is compiled into that object file, not linked."""
    global _invocations
    with _lock:
        _invocations += 1
    compile_only = [f for f in flags if f != "-shared" and not f.startswith("-l")]
    if so_file.endswith(".o"):
        [extra] = units
        _run_side_by_side([[*_compiler_command(), "-c", SOURCE_FILE, "-o", so_file, *compile_only, *extra]],
                          folder, name, keep_failed, meanwhile)
        return
    linked = [str(path) for path in linked]
    direct = len(units) == 1 and link_flags(flags) == flags
    objects = [] if direct else [f"unit{k}.o" for k in range(len(units))]
    commands = ([[*_compiler_command(), SOURCE_FILE, *linked, "-o", so_file, *flags, *units[0]]] if direct else
                [[*_compiler_command(), "-c", SOURCE_FILE, "-o", obj, *compile_only, *extra]
                 for extra, obj in zip(units, objects)])
    _run_side_by_side(commands, folder, name, keep_failed, meanwhile)
    if direct:
        return
    link = [*_compiler_command(), *objects, *linked, "-o", so_file, *link_flags(flags)]
    _check(link, _start(link, folder, name), name, keep_failed)
    for obj in objects:
        os.unlink(os.path.join(folder, obj))


def compiler_invocations() -> int:
    """How many times this process has run the C compiler (failed runs included).

    >>> from layerc.compiler.build import compile_c
    >>> before = compiler_invocations()
    >>> _ = compile_c("int one(void) { return 1; }", "int one(void);", name="one")
    >>> compiler_invocations() - before   # 0 when "one" was already in the cache
    1
    """
    return _invocations


@functools.lru_cache(maxsize=None)
def asan_runtime_loaded() -> bool:
    """Whether this process runs with AddressSanitizer's runtime (preloaded)."""
    return hasattr(ctypes.CDLL(None), "__asan_init")


def asan_library() -> str:
    """The path of the compiler's ``libasan.so``, to preload."""
    found = subprocess.run([*_compiler_command(), "-print-file-name=libasan.so"], capture_output=True, text=True)
    return found.stdout.strip() or "libasan.so"


# ---------------------------------------------------------------- internals

_lock = threading.Lock()
_key_inputs_memo: dict = {}
_invocations = 0
_verbose_logging_ready = False


def _is_native(flag: str) -> bool:
    return flag.endswith("=native")


def _compiler_command() -> list[str]:
    return shlex.split(os.environ.get("CC") or "") or ["cc"]


def _file_stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _start(command: list[str], cwd, name: str) -> subprocess.Popen:
    if _verbose():
        log.info("running: %s  (in %s)", shlex.join(command), cwd)
    try:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise BuildError(f"layer {name!r}: could not run the C compiler {command[0]!r} "
                         f"(CC={os.environ.get('CC') or 'cc'}): {exc}") from exc


def _run_side_by_side(commands: list, folder, name: str, keep_failed, meanwhile) -> None:
    """Start every command, run ``meanwhile()``, then wait for each; on any
    failure stop the compilers still running (no process outlives the build)."""
    processes = []
    try:
        for command in commands:
            processes.append(_start(command, folder, name))
        if meanwhile is not None:
            meanwhile()
        for command, process in zip(commands, processes):
            _check(command, process, name, keep_failed)
    except BaseException:
        for process in processes:
            if process.returncode is None:
                process.kill()
                process.communicate()
        raise


def _check(command: list[str], process: subprocess.Popen, name: str, keep_failed) -> None:
    """Wait for a compiler process; raise ``BuildError`` with its messages when it failed."""
    stdout, stderr = process.communicate()
    output = (stderr + stdout).strip()
    if output:
        log.log(logging.INFO if _verbose() else logging.DEBUG, "compiler output for %s:\n%s", name, output)
    if process.returncode == 0:
        return
    kept = keep_failed() if keep_failed is not None else None
    if kept is not None:
        # the messages name the kept copy, which outlives the build folder
        output = re.sub(rf"(?m)(^|\s){re.escape(SOURCE_FILE)}:", lambda m: f"{m.group(1)}{kept}:", output)
    first = re.search(rf"(?m)^{re.escape(str(kept or SOURCE_FILE))}:(\d+):", output)
    where = f"generated source: {kept or '(not kept: the cache folder is not writable)'}"
    if first:
        where += f", first error at line {first.group(1)}"
    raise BuildError(f"layer {name!r} failed to compile ({command[0]} exited with {process.returncode}); "
                     f"{where}\n" + _relevant_lines(output))


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
    with _lock:
        if not _verbose_logging_ready:
            if log.getEffectiveLevel() > logging.INFO:
                log.setLevel(logging.INFO)
            if not log.hasHandlers():
                log.addHandler(logging.StreamHandler(sys.stderr))
            _verbose_logging_ready = True
    return True


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
    memo = hashlib.sha256(f"{real}:{size}:{mtime_ns}:{' '.join(command[1:])}".encode()).hexdigest()
    version = store.read_memo("compilers", memo)
    if version is not None:
        return version
    try:
        version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError as exc:
        raise BuildError(f"the C compiler {command[0]!r} (CC={os.environ.get('CC') or 'cc'}) "
                         f"does not run: {exc}") from exc
    store.write_memo("compilers", memo, version)
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
