"""Fingerprints of layer specs: a sha256 over everything a spec's lowering can
depend on, computed without tracing it. ``compiler/layer_cache.py`` keys its
records with it, so a new process finds a built layer without lowering it.

A wrong hit (a changed spec that fingerprints as before) would load code that
computes the old layer, so the walk is conservative: whatever it cannot
account for makes ``spec_fingerprint`` raise ``Unfingerprintable``, and the
layer is then lowered as if nothing were cached (the C cache still applies).

What goes in, for a spec:

- its name, its declared tensors (name, kind, shape, role) and its ``forward``
  and ``backward`` functions;
- for a function written outside layerc: its code (bytecode, constants, names,
  argument names, flags; nested functions, lambdas and comprehensions
  included), defaults, closure cells, attributes, and every global or builtin
  its code names, walked the same way: values by content, functions and
  classes recursively, a module by the attributes the code names on it;
- for a function or class of layerc itself (``compiler``, ``runtime``,
  ``templates``): its qualified name, plus the defaults and closure cells of a
  function. Their code, and the module-level state of layerc, are covered by
  ``sources_digest`` (a sha256 over layerc's sources and templates): layerc's
  modules are not meant to be changed at run time;
- for a library module (standard library, site-packages) or anything defined
  in one: its name, its version and the size and mtime of its file, not its
  code;
- values: None, bools, numbers, strings, bytes, ranges, slices, tuples, lists,
  dicts, sets, enums, numpy arrays and scalars, by content; a ``LayerSpec`` as
  a spec.

What makes a spec unfingerprintable: any other object (an instance of a user
class, a random generator, a file), and anything that reads state outside the
values reachable from the spec: the modules ``os``, ``sys``, ``random``,
``time``, ``numpy.random`` and the like (``_IMPURE_MODULES``), and the builtins
``open``, ``input``, ``getattr``, ``globals``, ``eval``... (``_IMPURE_BUILTINS``).

Line numbers and file names are left out: moving a spec in its file does not
change what it computes.

Example::

    >>> from compiler import Input, layer
    >>> @layer
    ... class Twice:
    ...     x = Input("N")
    ...     def forward(x):
    ...         return x * 2
    >>> len(spec_fingerprint(Twice))
    64
"""
from __future__ import annotations

import builtins
import enum
import functools
import hashlib
import importlib.util
import os
import sys
import sysconfig
import types

__all__ = ["Unfingerprintable", "spec_fingerprint", "value_fingerprint", "sources_digest"]

# Modules whose functions read or change state outside the values a forward
# can see (environment, files, clocks, random streams, other modules).
_IMPURE_MODULES = frozenset({
    "os", "posix", "nt", "sys", "random", "time", "datetime", "io", "pathlib", "subprocess", "socket",
    "secrets", "uuid", "tempfile", "shutil", "glob", "importlib", "threading", "multiprocessing",
    "concurrent", "asyncio", "ctypes", "pickle", "shelve", "sqlite3", "urllib", "http", "inspect",
    "linecache", "gc", "signal", "platform", "locale", "getpass", "fileinput", "_thread", "_random", "_io", "_socket", "requests",
})
_IMPURE_SUBMODULES = ("numpy.random", "torch")
_IMPURE_BUILTINS = frozenset({
    "open", "input", "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "dir",
    "getattr", "setattr", "delattr", "hasattr", "id", "hash", "breakpoint", "help", "memoryview",
})
# Layerc's own packages: covered by ``sources_digest``.
_OWNED_PACKAGES = ("compiler", "runtime", "templates")
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


class Unfingerprintable(Exception):
    """The spec reaches something whose effect on its lowering cannot be hashed."""


@functools.lru_cache(maxsize=None)
def _package_folder(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return os.path.realpath(locations[0]) if locations else None


@functools.lru_cache(maxsize=None)
def sources_digest() -> str:
    """sha256 over the sources of layerc's packages (every ``.py`` of
    ``compiler`` and ``runtime``, every file of ``templates``), by name and
    content; once per process. The content digest is memoized in the cache
    folder under the files' names, sizes and mtimes (what Python trusts to reuse
    a ``.pyc``): ~0.3 ms instead of reading and hashing them (~1.5 ms)."""
    files = []
    for package in _OWNED_PACKAGES:
        folder = _package_folder(package)
        if folder is None:
            files.append((package, None))
            continue
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_file() and (package == "templates" or entry.name.endswith(".py")):
                    files.append((package, entry.path))
    files.sort()
    stamp = hashlib.sha256()
    for package, path in files:
        st = os.stat(path) if path else None
        stamp.update(repr((package, path, st and st.st_size, st and st.st_mtime_ns)).encode())
    from .build import _build_root
    memo = _build_root() / "lowered" / f"sources-{stamp.hexdigest()}.digest"
    try:
        digest = memo.read_text()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    h = hashlib.sha256()
    for package, path in files:
        h.update(f"{package} {os.path.basename(path) if path else None}\n".encode())
        if path:
            with open(path, "rb") as f:
                data = f.read()
            h.update(f"{len(data)}\n".encode())
            h.update(data)
    digest = h.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    except OSError:
        pass        # a read-only cache hashes the sources in every process
    return digest


@functools.lru_cache(maxsize=None)
def _library_roots() -> tuple:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        import site
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except (AttributeError, ImportError):
        pass
    return tuple(sorted(os.path.join(os.path.realpath(r), "") for r in roots if r))


@functools.lru_cache(maxsize=None)
def _module_kind(name: str, file: str | None) -> str:
    """"owned" (layerc), "library" or "user", by where the module's file is."""
    top = name.partition(".")[0]
    real = os.path.realpath(file) if file else None
    if top in _OWNED_PACKAGES:
        folder = _package_folder(top)
        if folder is not None and real is not None and real.startswith(os.path.join(folder, "")):
            return "owned"
    if real is None:
        return "library" if name in sys.builtin_module_names or name in sys.stdlib_module_names else "user"
    return "library" if real.startswith(_library_roots()) else "user"


def _kind_of_module(module: types.ModuleType) -> str:
    return _module_kind(module.__name__, getattr(module, "__file__", None))


def _impure(module_name: str) -> bool:
    return (module_name.partition(".")[0] in _IMPURE_MODULES or
            any(module_name == m or module_name.startswith(m + ".") for m in _IMPURE_SUBMODULES))


class _Walker:
    def __init__(self):
        self.h = hashlib.sha256()
        self.visited: dict[int, int] = {}
        self.alive: list = []          # keeps visited objects alive, so ids stay unique
        self.names: list[frozenset] = [frozenset()]   # the co_names of the function being walked

    def emit(self, *parts) -> None:
        self.h.update(repr(parts).encode())
        self.h.update(b"\x1f")

    def first_visit(self, obj) -> bool:
        """False (and a back reference emitted) when ``obj`` was walked before."""
        seen = self.visited.get(id(obj))
        if seen is not None:
            self.emit("seen", seen)
            return False
        self.visited[id(obj)] = len(self.visited)
        self.alive.append(obj)
        return True

    # ------------------------------------------------------------ values
    def value(self, v) -> None:
        t = type(v)
        if t in _SIMPLE:
            self.emit(t.__name__, v)
        elif v is Ellipsis or v is NotImplemented:
            self.emit("singleton", repr(v))
        elif t in (range, slice):
            self.emit(t.__name__, repr(v))
        elif t in (tuple, list):
            if self.first_visit(v):
                self.emit(t.__name__, len(v))
                for item in v:
                    self.value(item)
        elif t in (dict, types.MappingProxyType):
            if self.first_visit(v):
                self.mapping(v)
        elif t in (set, frozenset):
            if self.first_visit(v):
                self.emit(t.__name__, sorted(value_fingerprint(item) for item in v))
        elif isinstance(v, enum.Enum):
            self.emit("enum", _qualified(type(v)), v.name)
            self.value(v.value)
        elif t is types.FunctionType:
            self.function(v)
        elif t is types.MethodType:
            self.emit("method")
            self.value(v.__self__)
            self.value(v.__func__)
        elif t in (staticmethod, classmethod):
            self.emit(t.__name__)
            self.value(v.__func__)
        elif t is property:
            self.emit("property")
            for f in (v.fget, v.fset, v.fdel):
                self.value(f)
        elif t is functools.partial:
            if self.first_visit(v):
                self.emit("partial")
                self.value(v.func)
                self.value(v.args)
                self.value(v.keywords)
        elif t is types.ModuleType:
            self.module(v)
        elif isinstance(v, type):
            self.cls(v)
        elif t is types.BuiltinFunctionType:
            self.builtin(v)
        elif t in (types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType,
                   types.GetSetDescriptorType, types.MemberDescriptorType):
            self.emit("descriptor", v.__name__)
            self.value(v.__objclass__)
        elif t is types.MethodWrapperType:
            self.emit("method-wrapper", v.__name__)
            self.value(v.__self__)
        elif t is types.CodeType:
            self.code(v)
        else:
            self.other(v)

    def mapping(self, d) -> None:
        items = sorted(((value_fingerprint(k), k, v) for k, v in d.items()), key=lambda kv: kv[0])
        self.emit("dict", len(items))
        for kf, _, v in items:
            self.emit("key", kf)
            self.value(v)

    def other(self, v) -> None:
        from .spec import LayerSpec
        if isinstance(v, LayerSpec):
            if self.first_visit(v):
                self.spec(v)
            return
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            if type(v) is numpy.ndarray:
                if v.dtype.hasobject:
                    raise Unfingerprintable("a numpy array of objects")
                self.emit("ndarray", v.dtype.str, v.shape,
                          hashlib.sha256(numpy.ascontiguousarray(v).tobytes()).hexdigest())
                return
            if isinstance(v, numpy.generic) and not isinstance(v, numpy.object_):
                self.emit("npscalar", v.dtype.str, v.tobytes())
                return
            if type(v) is numpy.dtype:
                self.emit("dtype", v.str, repr(v))
                return
            if type(v) is numpy.ufunc:
                self.emit("ufunc", v.__name__)
                self.library_module(numpy)
                return
        raise Unfingerprintable(f"a {type(v).__module__}.{type(v).__qualname__} object")

    # ------------------------------------------------------------ code
    def function(self, f: types.FunctionType) -> None:
        if not self.first_visit(f):
            return
        module = sys.modules.get(f.__module__) if isinstance(f.__module__, str) else None
        kind = _kind_of_module(module) if module is not None else "user"
        if kind != "user":
            if kind == "library" and _impure(module.__name__):
                raise Unfingerprintable(f"{module.__name__}.{f.__qualname__} may read outside state")
            self.emit("function", kind, f.__module__, f.__qualname__)
            if kind == "library":
                self.library_module(module)
                return
            # layerc's own: the code is in sources_digest; what was bound at run time is not
            self.value(f.__defaults__)
            self.value(f.__kwdefaults__)
            self.cells(f)
            return
        code = f.__code__
        names = _all_names(code)
        self.emit("function", "user", f.__qualname__)
        self.code(code)
        self.value(f.__defaults__)
        self.value(f.__kwdefaults__)
        self.cells(f)
        if f.__dict__:
            self.mapping(f.__dict__)
        self.names.append(names)
        try:
            globals_ = f.__globals__
            for name in sorted(names):
                if name in globals_:
                    self.emit("global", name)
                    self.value(globals_[name])
                elif hasattr(builtins, name):
                    if name in _IMPURE_BUILTINS:
                        raise Unfingerprintable(f"{f.__qualname__} uses the builtin {name}")
                    self.emit("builtin", name)
                    self.value(getattr(builtins, name))
        finally:
            self.names.pop()

    def cells(self, f) -> None:
        for cell in f.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:
                self.emit("empty cell")
                continue
            self.emit("cell")
            self.value(contents)

    def code(self, code: types.CodeType) -> None:
        self.emit("code", code.co_name, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                  code.co_flags, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                  len(code.co_consts))
        self.h.update(code.co_code)
        self.h.update(getattr(code, "co_exceptiontable", b""))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            else:
                self.value(const)

    def builtin(self, f) -> None:
        owner = f.__self__
        if owner is None or isinstance(owner, types.ModuleType):
            module = getattr(f, "__module__", None) or getattr(owner, "__name__", None) or "builtins"
            if f.__name__ in _IMPURE_BUILTINS if module == "builtins" else _impure(module):
                raise Unfingerprintable(f"{module}.{f.__name__} may read outside state")
            self.emit("builtin function", module, f.__qualname__)
            if isinstance(owner, types.ModuleType) and module != "builtins":
                self.library_module(owner)
            return
        self.emit("bound builtin", f.__name__)
        self.value(owner)

    # ------------------------------------------------------------ modules and classes
    def module(self, m: types.ModuleType) -> None:
        if _impure(m.__name__):
            raise Unfingerprintable(f"module {m.__name__} reads outside state")
        kind = _kind_of_module(m)
        self.emit("module", kind, m.__name__)
        if kind == "library":
            self.library_module(m)
        # the attributes the code names (``ops.exp``: "ops" and "exp"); each time,
        # since another function names others (functions are walked once each)
        attrs = m.__dict__
        for name in sorted(self.names[-1]):
            if name in attrs:
                self.emit("attribute", name)
                self.value(attrs[name])

    def library_module(self, m: types.ModuleType) -> None:
        top = sys.modules.get(m.__name__.partition(".")[0], m)
        self.emit("library", m.__name__, str(getattr(top, "__version__", "")),
                  _file_identity(getattr(m, "__file__", None)))

    def cls(self, c: type) -> None:
        kind = _kind_of(c)
        if kind != "user":
            if kind == "library" and _impure(c.__module__):
                raise Unfingerprintable(f"{c.__module__}.{c.__qualname__} may read outside state")
            self.emit("class", kind, _qualified(c))
            if kind == "library" and c.__module__ in sys.modules:
                self.library_module(sys.modules[c.__module__])
            return
        if not self.first_visit(c):
            return
        self.emit("class", "user", c.__qualname__, len(c.__bases__))
        for base in c.__bases__:
            self.value(base)
        skip = {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__firstlineno__",
                "__static_attributes__"}
        self.mapping({k: v for k, v in vars(c).items() if k not in skip})

    def spec(self, spec) -> None:
        self.emit("spec", spec.name, [(name, type(decl).__name__, decl.shape, decl.role)
                                      for name, decl in spec.tensors])
        self.emit("attrs")
        self.mapping(spec.attrs)
        self.emit("forward")
        self.value(spec.forward)
        self.emit("backward")
        self.value(spec.backward)


def _all_names(code: types.CodeType) -> frozenset:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return frozenset(names)


def _qualified(c) -> str:
    return f"{c.__module__}.{c.__qualname__}"


def _kind_of(c: type) -> str:
    module = sys.modules.get(c.__module__)
    if module is None:
        return "library" if c.__module__ == "builtins" else "user"
    return _kind_of_module(module)


def _file_identity(file: str | None):
    if not file:
        return None
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def value_fingerprint(v) -> str:
    """sha256 of one value as ``spec_fingerprint`` walks it (attribute values,
    set elements); raises ``Unfingerprintable``."""
    w = _Walker()
    w.value(v)
    return w.h.hexdigest()


def spec_fingerprint(spec) -> str:
    """sha256 of ``spec`` (see the module docstring); raises ``Unfingerprintable``."""
    w = _Walker()
    w.first_visit(spec)
    w.spec(spec)
    return w.h.hexdigest()
