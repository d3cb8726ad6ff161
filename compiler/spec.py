"""The spec front end: declaring a layer and tracing its forward into IR.

Example::

    from layerc import layer, Input, Param, ops

    @layer
    class PReLU:
        x = Input("N", "C")
        alpha = Param("C", init=0.25)

        def forward(x, alpha):
            return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)

    module = PReLU.build(C=256)        # N stays free at run time
"""
from __future__ import annotations

import inspect
import numbers

from . import ir
from .errors import SpecError, user_location
from .ir import IConst, ISym, Program
from .trace import Builder, Index, TensorExpr, shape_str


class _Declared:
    _order = 0

    def __init__(self, *shape):
        for d in shape:
            if not isinstance(d, (str, numbers.Integral)) or isinstance(d, bool):
                raise SpecError(type(self).__name__, f"sizes are names or integers, got {d!r}")
            if isinstance(d, str) and not d.isidentifier():
                raise SpecError(type(self).__name__, f"size name {d!r} is not an identifier")
        self.shape = tuple(shape)
        self.location = user_location()
        _Declared._order += 1
        self.order = _Declared._order


class Input(_Declared):
    """A differentiable (float) input, or an integer one with ``dtype="int64"``
    (class targets, read only as indices)::

        x = Input("N", "C")
        target = Input("N", dtype="int64")
    """

    def __init__(self, *shape, dtype: str = "float", differentiable: bool = True):
        super().__init__(*shape)
        if dtype not in ("float", "int64"):
            raise SpecError("Input", f"dtype must be 'float' or 'int64', got {dtype!r}")
        # "data": a float input no gradient is asked for (regression targets)
        self.role = "index" if dtype == "int64" else "input" if differentiable else "data"


class Param(_Declared):
    """A trainable parameter with an initializer: a number, ``"zeros"``, ``"ones"``,
    ``"normal"``, ``"uniform"``, ``"xavier"``/``"glorot"`` (normal),
    ``"xavier_uniform"``, ``"kaiming"``/``"he"`` (normal), ``"kaiming_uniform"``,
    or a callable ``(shape, rng) -> array``::

        weight = Param("O", "I", init="xavier")
    """

    role = "param"

    def __init__(self, *shape, init="zeros", fan_in=None, fan_out=None):
        super().__init__(*shape)
        self.init, self.fan_in, self.fan_out = init, fan_in, fan_out


class Buffer(_Declared):
    """Non-trainable state saved with the module (running statistics)::

        running_mean = Buffer("C", init=0.0)
    """

    role = "buffer"

    def __init__(self, *shape, init=0.0):
        super().__init__(*shape)
        self.init = init


class Attr:
    """A compile-time constant (stride, eps, gamma); ``build(name=value)`` overrides it."""

    def __init__(self, default):
        self.default = default


class LayerSpec:
    """A declared layer: its tensors, attributes and ``forward`` (and ``backward``).

    Declaring and tracing need nothing but the front end; ``layerc.layer``
    returns a ``layerc.layers.Layer``, a spec that also builds."""

    def __init__(self, cls):
        self.name = cls.__name__
        self.doc = inspect.getdoc(cls) or ""
        self.cls = cls
        members = dict(vars(cls))
        self.tensors = sorted(((k, v) for k, v in members.items() if isinstance(v, _Declared)),
                              key=lambda kv: kv[1].order)
        # where the spec is written: its first declaration, else its forward (parsing
        # the class's source for its line would cost more than the rest of the import)
        forward_code = getattr(members.get("forward"), "__code__", None)
        self.location = (self.tensors[0][1].location if self.tensors else
                         f"{forward_code.co_filename}:{forward_code.co_firstlineno}" if forward_code else
                         user_location())
        self.attrs = {k: v.default for k, v in members.items() if isinstance(v, Attr)}
        if not callable(members.get("forward")):
            raise SpecError(self.name, "a spec needs a forward(...) function", self.location)
        self.forward = members["forward"]
        self.backward = members.get("backward")
        self.sizes = sorted({d for _, t in self.tensors for d in t.shape if isinstance(d, str)})
        known = {k for k, _ in self.tensors} | set(self.attrs)
        for p in inspect.signature(self.forward).parameters:
            if p not in known:
                raise SpecError(self.name, f"forward takes {p!r}, which is not a declared Input, Param, "
                                f"Buffer or Attr (declared: {', '.join(sorted(known))})", self.location)

    def __repr__(self):
        return f"<layer spec {self.name}>"

    def split_bindings(self, bindings: dict):
        """Separate ``build(...)`` keywords into sizes and attributes, rejecting unknown names."""
        sizes, attrs = {}, dict(self.attrs)
        for k, v in bindings.items():
            if k in self.attrs:
                attrs[k] = v
            elif k in self.sizes:
                if not isinstance(v, numbers.Integral) or v < 0:
                    raise SpecError(self.name, f"size {k} must be a non-negative integer, got {v!r}", self.location)
                sizes[k] = int(v)
            else:
                raise SpecError(self.name, f"unknown size or attribute {k!r} (sizes: {', '.join(self.sizes) or 'none'};"
                                f" attributes: {', '.join(self.attrs) or 'none'})", self.location)
        return sizes, attrs

    def shape_of(self, decl: _Declared, sizes: dict) -> tuple:
        return tuple(IConst(d) if isinstance(d, numbers.Integral) else
                     IConst(sizes[d]) if d in sizes else ISym(d) for d in decl.shape)

    def trace(self, **bindings) -> Program:
        """Run ``forward`` on symbolic tensors and return the forward program."""
        sizes, attrs = self.split_bindings(bindings)
        return trace_function(self.name, self.forward, {
            name: (self.shape_of(decl, sizes), decl.role) for name, decl in self.tensors}, attrs)


def layer(cls) -> LayerSpec:
    """Declare a layer from a class holding Inputs, Params, Buffers, Attrs and
    ``forward`` (a plain declaration; ``layerc.layer`` gives one that builds)."""
    return LayerSpec(cls)


def trace_function(name: str, fn, tensors: dict, attrs: dict) -> Program:
    """Trace ``fn`` with symbolic tensors (``{name: (shape, role)}``) and attributes."""
    b = Builder(name)
    with b.active():
        args = {}
        for tname, (shape, role) in tensors.items():
            args[tname] = b.declare(tname, shape, role)
        args.update(attrs)
        params = inspect.signature(fn).parameters
        result = fn(**{p: args[p] for p in params})
    outputs = result if isinstance(result, tuple) else (result,)
    for out in outputs:
        if not isinstance(out, TensorExpr):
            raise SpecError(name, f"forward must return a tensor (or a tuple of tensors), got {out!r}")
    names = []
    stages = list(b.stages)
    for out in outputs:
        if out.name in b.decls or out.name in names:
            # an output that is an input (identity) or repeated gets its own stage
            stages.append(ir.Stage(b.fresh("out"), out._shape,
                                   tuple(ir.Axis(f"i{k}", d) for k, d in enumerate(out._shape)),
                                   ir.Load(out.name, tuple(ir.IVar(f"i{k}") for k in range(out.ndim)))))
            names.append(stages[-1].name)
        else:
            names.append(out.name)
    return Program(name, tuple(b.decls.values()), tuple(stages), tuple(names), tuple(b.updates))


__all__ = ["Input", "Param", "Buffer", "Attr", "layer", "LayerSpec", "trace_function", "Index", "shape_str"]
