"""``LayerRecord``: what the runtime knows of a compiled layer, as plain data.

The compiler side describes a layer it compiled (``CompiledLayer.record_fields``
in the JIT, ``layer.json`` in a package ``layerc build`` wrote); the runtime
reads only this record. Sizes are small plain data evaluated here:

- an ``int`` (a constant), a ``str`` (a size name such as ``"N"``), or
- a tuple ``(op, a, b)`` of sizes with ``op`` one of ``+ * // %`` (as in Python;
  ``//`` and ``%`` by zero give 0, as in the generated C).

Example::

    >>> shape = ("N", ("+", ("//", "H", 2), 1))
    >>> [evaluate(d, {"N": 4, "H": 9}) for d in shape]
    [4, 5]
    >>> format_size(shape[1]), sorted(size_names(shape[1]))
    ('H // 2 + 1', ['H'])
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

_OPS = {"+": operator.add, "*": operator.mul,
        "//": lambda a, b: a // b if b else 0, "%": lambda a, b: a % b if b else 0}
_PRECEDENCE = {"+": 1, "*": 2, "//": 2, "%": 2}
ROLES = ("input", "data", "index", "param", "buffer", "output")
# what a kernel's nonzero return may raise, by the name the record gives
EXCEPTIONS = {"MemoryError": MemoryError, "ValueError": ValueError, "IndexError": IndexError}


def evaluate(size, sizes: dict) -> int:
    """The value of a size with every name bound in ``sizes`` (``KeyError`` otherwise)."""
    if isinstance(size, str):
        return int(sizes[size])
    if isinstance(size, tuple):
        op, a, b = size
        return _OPS[op](evaluate(a, sizes), evaluate(b, sizes))
    return size


def size_names(size) -> set:
    """The size names a size mentions."""
    if isinstance(size, str):
        return {size}
    if isinstance(size, tuple):
        return size_names(size[1]) | size_names(size[2])
    return set()


def format_size(size) -> str:
    """A size in Python notation: ``H // 2 + 1``, ``W - 2``."""
    if not isinstance(size, tuple):
        return str(size)
    op, a, b = size
    if op == "+" and isinstance(b, int) and b < 0:
        return f"{format_size(a)} - {-b}"
    if op == "+" and isinstance(b, tuple) and b[0] == "*" and b[1] == -1:
        inner = format_size(b[2])
        return f"{format_size(a)} - ({inner})" if isinstance(b[2], tuple) and b[2][0] == "+" else \
            f"{format_size(a)} - {inner}"
    return f"{_operand(a, op)} {op} {_operand(b, op)}"


def _operand(size, parent: str) -> str:
    text = format_size(size)
    return f"({text})" if isinstance(size, tuple) and _PRECEDENCE[size[0]] < _PRECEDENCE[parent] else text


def as_size(value):
    """``value`` checked as a size (lists, as JSON gives them, become tuples)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 3 and value[0] in _OPS:
        return (value[0], as_size(value[1]), as_size(value[2]))
    raise ValueError(f"not a size: {value!r} (an int, a size name, or [op, a, b] with op in + * // %)")


def as_shape(value) -> tuple:
    return tuple(as_size(d) for d in value)


def _json_size(size):
    return [size[0], _json_size(size[1]), _json_size(size[2])] if isinstance(size, tuple) else size


def _exception_name(kind) -> str:
    if kind not in EXCEPTIONS:
        raise ValueError(f"unknown status exception {kind!r} (one of {', '.join(EXCEPTIONS)})")
    return str(kind)


@dataclass(frozen=True)
class TensorRecord:
    """An argument of the layer: an input (``input``: differentiable, ``data``,
    ``index``: int64), a ``param``, a ``buffer``, or an ``output``. ``init``,
    ``fan_in`` and ``fan_out`` say how a parameter or buffer starts (see
    ``layerc.runtime.init.initialize``)."""

    name: str
    role: str
    shape: tuple
    init: object = None
    fan_in: int | None = None
    fan_out: int | None = None
    ellipsis: int | None = None    # the axis that is the caller's ``...`` axes, collapsed into one

    @classmethod
    def of(cls, fields: dict) -> "TensorRecord":
        if fields["role"] not in ROLES:
            raise ValueError(f"{fields['name']}: unknown role {fields['role']!r}")
        ellipsis = fields.get("ellipsis")
        if ellipsis is not None and not (isinstance(ellipsis, int) and 0 <= ellipsis < len(fields["shape"])):
            raise ValueError(f"{fields['name']}: ellipsis must be an axis of its shape, got {ellipsis!r}")
        return cls(**{**fields, "name": str(fields["name"]), "shape": as_shape(fields["shape"])})


@dataclass(frozen=True)
class ArgRecord:
    """One argument of a compiled function. ``kind``: ``size`` (an int64 size),
    ``in`` (a pointer read), ``out`` (returned) or ``work`` (scratch); ``over``:
    a saved input an output may be written over."""

    kind: str
    name: str
    shape: tuple = ()
    integer: bool = False
    over: str = ""

    @classmethod
    def of(cls, fields: dict) -> "ArgRecord":
        if fields["kind"] not in ("size", "in", "out", "work"):
            raise ValueError(f"{fields['name']}: unknown argument kind {fields['kind']!r}")
        return cls(**{**fields, "shape": as_shape(fields.get("shape", ()))})


@dataclass(frozen=True)
class FunctionRecord:
    """A compiled function: its C name without the dtype suffix, and its arguments in order."""

    function: str
    args: tuple

    @classmethod
    def of(cls, fields: dict) -> "FunctionRecord":
        return cls(str(fields["function"]), tuple(ArgRecord.of(a) for a in fields["args"]))


@dataclass(frozen=True)
class LayerRecord:
    """A compiled layer as the runtime sees it.

    Plain data (``data()`` gives it as JSON-able dicts and ``LayerRecord.of``
    reads them back) and three handles: ``load_library(dtype, isa)`` (``"f32"``,
    ``"f64"``; an instruction-set level of ``runtime/isa.py``) returns the loaded library of that dtype (``ffi``, ``lib``,
    ``so_path``, ``cache_key``, ``module_name``), ``source`` is the generated C,
    and ``origin`` what the record was made from (``LayerModule.compiled``)."""

    name: str
    prefix: str                 # C name prefix: <prefix>_set_threads, _set_blas, _set_stream_bytes
    bindings: tuple             # (name, value) of the sizes and attributes bound at build
    tensors: tuple              # TensorRecord: inputs, parameters and buffers, in the forward's order
    outputs: tuple              # TensorRecord (role "output"), in the forward's order
    saved: tuple                # names of forward results the backward reads
    updates: tuple              # (buffer, output) pairs: new buffer values in training
    functions: tuple            # (role, FunctionRecord): "forward", "backward"
    calls_blas: bool
    statuses: tuple = ()        # (code, exception name, what happened): what a nonzero return means
    index_ranges: tuple = ()    # (integer input, offset, extent): 0 <= value + offset < extent
    views: tuple = ()           # (output, input): outputs that are an input as it is
    load_library: object = None
    source: str = ""
    origin: object = None

    @classmethod
    def of(cls, data: dict, **handles) -> "LayerRecord":
        """The record of ``data`` (the dicts and lists ``data()`` gives) and ``handles``."""
        return cls(
            name=str(data["name"]), prefix=str(data["prefix"]),
            bindings=tuple((str(k), v) for k, v in data["bindings"]),
            tensors=tuple(TensorRecord.of(t) for t in data["tensors"]),
            outputs=tuple(TensorRecord.of({**t, "role": "output"}) for t in data["outputs"]),
            saved=tuple(map(str, data["saved"])),
            updates=tuple((str(b), str(s)) for b, s in data["updates"]),
            functions=tuple((str(role), FunctionRecord.of(f)) for role, f in data["functions"]),
            calls_blas=bool(data["calls_blas"]),
            statuses=tuple((int(code), _exception_name(kind), str(what)) for code, kind, what in data["statuses"]),
            index_ranges=tuple((str(name), int(offset), as_size(extent))
                               for name, offset, extent in data.get("index_ranges", ())),
            views=tuple((str(out), str(source)) for out, source in data.get("views", ())),
            **handles)

    def data(self) -> dict:
        """The plain data of this record (no handles, no initializers), JSON-able
        when the bound attribute values are."""
        def tensor(t, role=True):
            return {"name": t.name, **({"role": t.role} if role else {}), "shape": list(t.shape),
                    **({} if t.ellipsis is None else {"ellipsis": t.ellipsis})}
        return {
            "name": self.name, "prefix": self.prefix, "bindings": [list(b) for b in self.bindings],
            "tensors": [tensor(t) for t in self.tensors],
            "outputs": [tensor(t, role=False) for t in self.outputs],
            **({"views": [list(v) for v in self.views]} if self.views else {}),
            "saved": list(self.saved), "updates": [list(u) for u in self.updates],
            "functions": [[role, {"function": f.function, "args": [
                {"kind": a.kind, "name": a.name, "shape": list(a.shape), "integer": a.integer, "over": a.over}
                for a in f.args]}] for role, f in self.functions],
            "calls_blas": self.calls_blas, "statuses": [list(s) for s in self.statuses],
            "index_ranges": [[name, offset, _json_size(extent)] for name, offset, extent in self.index_ranges]}

    def status_error(self, status: int) -> Exception:
        """The exception a function of this layer that returned ``status`` raises."""
        for code, kind, what in self.statuses:
            if code == status:
                return EXCEPTIONS[kind](f"{self.name}: {what} (status {status})")
        return RuntimeError(f"{self.name}: a kernel failed (status {status})")

    def function(self, role: str) -> FunctionRecord:
        return dict(self.functions)[role]

    def tensor(self, name: str) -> TensorRecord:
        for t in self.tensors + self.outputs:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no argument {name!r}")

    def of_role(self, *roles) -> tuple:
        return tuple(t for t in self.tensors if t.role in roles)

    def fixed_shape(self, t: TensorRecord) -> tuple:
        """A parameter's or buffer's shape: every size bound at build."""
        try:
            return tuple(evaluate(d, {}) for d in t.shape)
        except KeyError:
            raise ValueError(f"{self.name}: {t.role} {t.name} has shape {describe(t.shape, {})}; "
                             "bind its sizes when building") from None


def describe(shape: tuple, sizes: dict, ellipsis: int | None = None) -> str:
    """A declared shape, with bound sizes shown as ``N=32`` and the axis
    ``ellipsis`` (the caller's ``...`` axes) as ``...``."""
    parts = []
    for axis, d in enumerate(shape):
        text = format_size(d)
        names = size_names(d)
        if axis == ellipsis:
            text = "..."
        elif names and names <= sizes.keys():
            text = f"{d}={sizes[d]}" if isinstance(d, str) else f"{text}={evaluate(d, sizes)}"
        parts.append(text)
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
