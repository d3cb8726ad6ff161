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
  function. Their code is covered by ``sources_digest`` (a sha256 over
  layerc's sources and templates), and ``owned_state`` lists what differs from
  those sources at run time: a module-level constant given another value, a
  function replaced by user code (``compiler/layer_cache.py`` puts both in its
  key). Not seen: layerc's tables changed in place, and class attributes;
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
import dis
import enum
import functools
import hashlib
import importlib.util
import itertools
import operator
import os
import sys
import sysconfig
import types

__all__ = ["Unfingerprintable", "owned_state", "spec_fingerprint", "value_fingerprint", "sources_digest"]

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
_OWNED_PACKAGES = ("layerc", "layerc.compiler", "layerc.runtime", "layerc.templates")
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)
_IMPORT_NAME = dis.opmap["IMPORT_NAME"]


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
                if entry.is_file() and (package == "layerc.templates" or entry.name.endswith(".py")):
                    files.append((package, entry.path))
    files.sort()
    stamp = hashlib.sha256()
    for package, path in files:
        st = os.stat(path) if path else None
        stamp.update(repr((package, path, st and st.st_size, st and st.st_mtime_ns)).encode())
    from .build import _build_root, write_memo
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
    write_memo(memo, digest)        # a read-only cache hashes the sources in every process
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
    real = os.path.realpath(file) if file else None
    for package in _OWNED_PACKAGES:
        if name == package or name.startswith(package + "."):
            folder = _package_folder(package)
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
        from .spec import Attr, LayerSpec, _Declared
        if isinstance(v, LayerSpec):
            # a spec reached from code: all of it, its class too (``L.cls.X``)
            if self.first_visit(v):
                self.spec(v)
                self.value(v.cls)
            return
        if isinstance(v, _Declared):
            self.emit("declared", type(v).__name__, v.shape, getattr(v, "role", None))
            for name in ("init", "fan_in", "fan_out"):
                self.value(getattr(v, name, None))
            return
        if isinstance(v, Attr):
            self.emit("attr")
            self.value(v.default)
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
        # a named object of a library (numpy's ufuncs and dispatchers): by its name
        module = sys.modules.get(getattr(v, "__module__", None) or "")
        name = getattr(v, "__qualname__", None) or getattr(v, "__name__", None)
        if (module is not None and isinstance(name, str) and _kind_of_module(module) == "library"
                and _kind_of(type(v)) == "library" and getattr(module, name, None) is v):
            if _impure(module.__name__):
                raise Unfingerprintable(f"{module.__name__}.{name} may read outside state")
            self.emit("library object", module.__name__, name)
            self.library_module(module)
            return
        raise Unfingerprintable(f"a {type(v).__module__}.{type(v).__qualname__} object")

    # ------------------------------------------------------------ code
    def function(self, f: types.FunctionType) -> None:
        if not self.first_visit(f):
            return
        module = sys.modules.get(f.__module__) if isinstance(f.__module__, str) else None
        kind = _kind_of_module(module) if module is not None else "user"
        if kind == "library":
            if _impure(module.__name__):
                raise Unfingerprintable(f"{module.__name__}.{f.__qualname__} may read outside state")
            self.emit("function", kind, f.__module__, f.__qualname__)
            self.library_module(module)
            # a library decorator around user code: the code it wraps
            wrapped = f.__dict__.get("__wrapped__")
            if wrapped is not None:
                self.value(wrapped)
            self.cells(f, lenient=True)
            return
        if kind == "owned":
            # layerc's own: its code is in sources_digest, a function or constant of
            # layerc replaced at run time in owned_state(); what was bound when it
            # was made (a factory's closure, its defaults) is walked here
            self.emit("function", kind, f.__module__, f.__qualname__)
            self.value(f.__defaults__)
            self.value(f.__kwdefaults__)
            self.cells(f, lenient=True)
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
        self.globals_of(f, names)
        self.imports(f, code)

    def globals_of(self, f, names: frozenset) -> None:
        """The globals and builtins ``f``'s code names, by name."""
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

    def imports(self, f, code: types.CodeType) -> None:
        """Modules imported inside the function (``import helpers`` in ``forward``):
        walked as modules, by the names the code uses."""
        for c in _all_codes(code):
            if _IMPORT_NAME not in c.co_code[::2]:
                continue
            instructions = list(dis.get_instructions(c))
            for k, ins in enumerate(instructions):
                if ins.opname != "IMPORT_NAME":
                    continue
                level = instructions[k - 2].argval if k >= 2 and instructions[k - 2].opname == "LOAD_CONST" else None
                if not isinstance(level, int):
                    raise Unfingerprintable(f"{f.__qualname__} imports {ins.argval!r} in an unknown way")
                name = ins.argval
                if level:
                    try:
                        name = importlib.util.resolve_name("." * level + name, f.__globals__.get("__package__") or "")
                    except (ImportError, ValueError) as exc:
                        raise Unfingerprintable(f"{f.__qualname__} imports {ins.argval!r}: {exc}") from None
                module = sys.modules.get(name)
                if module is None:
                    # not imported yet: what it holds is unknown until the forward runs
                    raise Unfingerprintable(f"{f.__qualname__} imports {name}, which is not imported yet")
                self.emit("import", name)
                self.names.append(_all_names(code))
                try:
                    self.module(module)
                finally:
                    self.names.pop()

    def cells(self, f, lenient: bool = False) -> None:
        for cell in f.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:
                self.emit("empty cell")
                continue
            self.emit("cell")
            (self.lenient_value if lenient else self.value)(contents)

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

    def lenient_value(self, v) -> None:
        """A value bound in a closure of layerc's or a library's function: walked
        when it can be, else by its type (their own state)."""
        if isinstance(v, types.ModuleType) and _impure(v.__name__):
            self.emit("module", "used by a library", v.__name__)
            return
        try:
            self.value(v)
        except Unfingerprintable:
            self.emit("opaque", type(v).__qualname__)

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


def _all_codes(code: types.CodeType) -> list:
    codes = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            codes += _all_codes(const)
    return codes


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


def owned_state() -> list:
    """How layerc's loaded modules differ from their sources, as sorted
    ``(module, name, fingerprint)``: a module-level constant given another value
    (``layerc.compiler.codegen.PARALLEL_MIN_WORK = ...``), a function or class
    replaced (a monkeypatched op). [] when nothing was changed, whichever of
    layerc's modules are loaded. Raises ``Unfingerprintable`` when a replacement
    cannot be fingerprinted. Not seen: mutated tables (a dict of layerc
    changed in place) and changed class attributes.

    The defaults are read from the sources with ``ast`` once per version of
    them (memoized beside the records, ~50 ms). A full check costs ~0.3 ms; the
    next calls only check that every name looked at still holds the same object
    (~0.05 ms), and check again in full when one does not, or when another of
    layerc's modules was loaded since.
    """
    global _owned_snapshot
    snapshot = _owned_snapshot
    if snapshot is not None:
        loaded, watched, result = snapshot
        if (all(sys.modules.get(m) is module for m, module in loaded)
                and all(all(map(operator.is_, map(attrs.get, names, itertools.repeat(_MISSING)), values))
                        for attrs, names, values in watched)
                and sum(1 for m in _owned_defaults() if m in sys.modules) == len(loaded)):
            return result
    defaults = _owned_defaults()
    changed, loaded, watched = [], [], []
    for module_name, (consts, defs, defined) in defaults.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue            # not loaded: as in its source
        loaded.append((module_name, module))
        attrs = module.__dict__
        for name, default in consts.items():
            v = attrs.get(name, _MISSING)
            watched.append((attrs, name, v))
            if v is not _MISSING and _constant_repr(v) != default:
                changed.append((module_name, name, value_fingerprint(v)))
        for name in defs:
            v = attrs.get(name, _MISSING)
            watched.append((attrs, name, v))
            if getattr(v, "__module__", None) != module_name or getattr(v, "__qualname__", None) != name:
                changed.append((module_name, name, "missing" if v is _MISSING else value_fingerprint(v)))
        for name in defined:
            # made by the module (``exp, log = (_unary(op) for ...)``): replaced
            # by user code? (a library's function there may be the default: an
            # alias); its other state (a logger, a lock, a Jinja2 environment) is
            # not looked at
            v = attrs.get(name, _MISSING)
            watched.append((attrs, name, v))
            func = v.func if isinstance(v, functools.partial) else v
            if not isinstance(func, (types.FunctionType, type)):
                continue
            origin = sys.modules.get(getattr(func, "__module__", None) or "")
            if origin is None or _kind_of_module(origin) == "user":
                changed.append((module_name, name, value_fingerprint(v)))
    result = sorted(changed)
    # per module: its attributes, the names looked at and the objects they held,
    # compared by identity in C loops on the next calls (~0.05 ms, not 0.5)
    grouped = {}
    for attrs, name, v in watched:
        _, names, values = grouped.setdefault(id(attrs), (attrs, [], []))
        names.append(name)
        values.append(v)
    _owned_snapshot = (loaded, [(attrs, tuple(names), tuple(values)) for attrs, names, values in grouped.values()],
                       result)
    return result


_MISSING = object()
_owned_snapshot = None


def _constant_repr(v):
    if type(v) in _SIMPLE:
        return f"{type(v).__name__}:{v!r}"
    if type(v) is tuple:
        items = [_constant_repr(x) for x in v]
        return None if None in items else "(" + ",".join(items) + ")"
    return None


_owned_defaults_memo: dict | None = None


def _owned_defaults() -> dict:
    """``{module name: ({constant: repr}, [names of undecorated defs and
    classes], [other names assigned at the top level])}`` for layerc's modules,
    from their sources; memoized on disk per sources_digest."""
    global _owned_defaults_memo
    if _owned_defaults_memo is not None:
        return _owned_defaults_memo
    import json
    from .build import _build_root, write_memo
    memo = _build_root() / "lowered" / f"owned-{sources_digest()}.json"
    try:
        loaded = json.loads(memo.read_text())
        _owned_defaults_memo = {k: (v[0], v[1], v[2]) for k, v in loaded.items()}
        return _owned_defaults_memo
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        pass
    result = {}
    for package in ("layerc", "layerc.compiler", "layerc.runtime"):
        folder = _package_folder(package)
        if folder is None:
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith(".py"):
                stem = entry.name[:-3]
                name = package if stem == "__init__" else f"{package}.{stem}"
                with open(entry.path, encoding="utf-8") as f:
                    result[name] = _defaults_of_source(f.read())
    write_memo(memo, json.dumps(result))
    _owned_defaults_memo = result
    return result


def _defaults_of_source(source: str) -> tuple:
    """(constants assigned once at the top level to a constant expression, and
    not declared ``global`` in any function: {name: repr}; names of the
    undecorated functions and classes defined once at the top level; the other
    names assigned at the top level, not by an import)."""
    import ast
    tree = ast.parse(source)
    rebound = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
    counts: dict = {}
    for node in tree.body:
        for target in _assigned_names(node):
            counts[target] = counts.get(target, 0) + 1
    consts, defs, env, defined = {}, [], {}, set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not node.decorator_list and counts.get(node.name) == 1 and node.name not in rebound:
                defs.append(node.name)
            elif node.name not in rebound:
                defined.add(node.name)
            continue
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update(n for n in _assigned_names(node) if n not in rebound)
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if value is None or len(targets) != 1 or not isinstance(targets[0], ast.Name):
            continue
        name = targets[0].id
        try:
            v = _evaluate(value, env)
        except (ValueError, TypeError, ArithmeticError, KeyError):
            continue
        env[name] = v
        r = _constant_repr(v)
        if r is not None and counts.get(name) == 1 and name not in rebound:
            consts[name] = r
    return consts, defs, sorted(defined - set(consts) - set(defs))


def _assigned_names(node) -> list:
    import ast
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.append(sub.id)
        elif isinstance(sub, ast.alias):
            names.append((sub.asname or sub.name).partition(".")[0])
    return names


def _evaluate(node, env: dict):
    """A constant expression: literals, tuples, unary and binary arithmetic,
    names of constants above."""
    import ast
    import operator
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(e, env) for e in node.elts)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        ops = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
        return ops[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BinOp):
        ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
               ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
               ast.BitAnd: operator.and_}
        if type(node.op) not in ops:
            raise ValueError("operator")
        return ops[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    raise ValueError("not a constant expression")


def value_fingerprint(v) -> str:
    """sha256 of one value as ``spec_fingerprint`` walks it (attribute values,
    set elements); raises ``Unfingerprintable``."""
    w = _Walker()
    w.value(v)
    return w.h.hexdigest()


def spec_fingerprint(spec) -> str:
    """sha256 of ``spec`` (see the module docstring); raises ``Unfingerprintable``."""
    w = _Walker()
    w.spec(spec)         # not marked visited: reached again from code, it is walked with its class
    return w.h.hexdigest()
