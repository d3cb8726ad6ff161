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
            if d is Ellipsis:
                continue
            if not isinstance(d, (str, numbers.Integral)) or isinstance(d, bool):
                raise SpecError(type(self).__name__, f"sizes are names, integers or ..., got {d!r}")
            if isinstance(d, str) and not d.isidentifier():
                raise SpecError(type(self).__name__, f"size name {d!r} is not an identifier")
        if shape.count(Ellipsis) > 1:
            raise SpecError(type(self).__name__, f"one ... per shape, got {shape_text(shape)}")
        self.shape = tuple(shape)
        self.location = user_location()
        _Declared._order += 1
        self.order = _Declared._order


class Input(_Declared):
    """A differentiable (float) input, or an integer one with ``dtype="int64"``
    (class targets, read only as indices). One ``...`` stands for any number of
    axes (none too): the layer then takes inputs of any rank, and ``forward``
    sees those axes as one (see ``LayerSpec``)::

        x = Input("N", "C")
        target = Input("N", dtype="int64")
        x = Input(..., "C")                 # [C], [N, C], [B, S, C], ...
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
    or a callable ``(shape, rng) -> array``. ``optional=True``: ``build(name=False)``
    builds the layer without it, and ``forward`` then receives ``None``::

        weight = Param("O", "I", init="xavier")
        bias = Param("O", optional=True)    # Spec.build(..., bias=False)
    """

    role = "param"

    def __init__(self, *shape, init="zeros", fan_in=None, fan_out=None, optional: bool = False):
        super().__init__(*shape)
        if Ellipsis in shape:
            raise SpecError("Param", f"a parameter's shape is fixed when the layer is built: "
                            f"no ... in {shape_text(shape)}")
        self.init, self.fan_in, self.fan_out = init, fan_in, fan_out
        self.optional = bool(optional)


class Buffer(_Declared):
    """Non-trainable state saved with the module (running statistics)::

        running_mean = Buffer("C", init=0.0)
    """

    role = "buffer"

    def __init__(self, *shape, init=0.0):
        super().__init__(*shape)
        if Ellipsis in shape:
            raise SpecError("Buffer", f"a buffer's shape is fixed when the layer is built: "
                            f"no ... in {shape_text(shape)}")
        self.init = init


class Attr:
    """A compile-time constant (stride, eps, gamma); ``build(name=value)`` overrides it."""

    def __init__(self, default):
        self.default = default


class LayerSpec:
    """A declared layer: its tensors, attributes and ``forward`` (and ``backward``).

    Declaring and tracing need nothing but the front end; ``layerc.layer``
    returns a ``layerc.layers.Layer``, a spec that also builds.

    Rank polymorphism: the ``...`` of every declaration is one group of axes,
    the same in all inputs. ``forward`` sees it as ONE axis, of the size
    ``self.ellipsis`` (``E``: the product of the group's sizes), so one compiled
    kernel serves every rank; the runtime collapses each input's group into that
    axis and expands the outputs' axis of size ``E`` back. A spec whose output
    should keep the group collapsed (a flatten) says ``collapse_ellipsis = True``.
    Optional parameters (``Param(..., optional=True)``, or a ``None`` default in
    ``forward``) are bound like attributes: ``build(bias=False)``."""

    # what a spec made without a class (a derived one) has unless it says otherwise
    optional: tuple = ()
    ellipsis: str | None = None
    collapse_ellipsis = False

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
        signature = inspect.signature(self.forward).parameters
        for p in signature:
            if p not in known:
                raise SpecError(self.name, f"forward takes {p!r}, which is not a declared Input, Param, "
                                f"Buffer or Attr (declared: {', '.join(sorted(known))})", self.location)
        self.optional = tuple(k for k, t in self.tensors if getattr(t, "optional", False) or (
            t.role == "param" and k in signature and signature[k].default is None))
        self.attrs.update({k: True for k in self.optional})
        self.ellipsis = _fresh_size("E", known | set(self.sizes)) if any(
            Ellipsis in t.shape for _, t in self.tensors) else None
        self.collapse_ellipsis = bool(members.get("collapse_ellipsis", False))
        if self.ellipsis:
            # bindable like any size (build(E=6) fixes the product of the ... axes; tests do)
            self.sizes.append(self.ellipsis)

    def __repr__(self):
        return f"<layer spec {self.name}>"

    def split_bindings(self, bindings: dict):
        """Separate ``build(...)`` keywords into sizes and attributes, rejecting unknown names."""
        sizes, attrs = {}, dict(self.attrs)
        for k, v in bindings.items():
            if k in self.optional and not isinstance(v, bool):
                raise SpecError(self.name, f"{k} is an optional parameter: build({k}=True) or "
                                f"build({k}=False), got {v!r}", self.location)
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
        """A declaration's shape as IR sizes; its ``...`` is the one axis ``ISym(self.ellipsis)``."""
        return tuple(IConst(d) if isinstance(d, numbers.Integral) else ISym(self.ellipsis) if d is Ellipsis else
                     IConst(sizes[d]) if d in sizes else ISym(d) for d in decl.shape)

    def unit_sizes(self, sizes: dict) -> tuple:
        """The free sizes worth a variant compiled for the size 1: the ``...``
        group when a declaration ends with it (``Input("N", "C", ...)``). A
        caller's ``[N, C]`` leaves the group empty, and the innermost loop would
        run over it, one element long."""
        # a binding of the group's size leaves it a symbol (shape_of), so it counts too
        if self.ellipsis is None or self.collapse_ellipsis:
            return ()
        return (self.ellipsis,) if any(t.shape and t.shape[-1] is Ellipsis for _, t in self.tensors) else ()

    def forward_attrs(self, attrs: dict) -> dict:
        """What ``forward`` receives besides its tensors: the attributes, and None
        for each optional parameter built without (``attrs`` from ``split_bindings``)."""
        return {k: None if k in self.optional else v for k, v in attrs.items()
                if k not in self.optional or not v}

    def trace(self, **bindings) -> Program:
        """Run ``forward`` on symbolic tensors and return the forward program."""
        sizes, attrs = self.split_bindings(bindings)
        return trace_function(self.name, self.forward, {
            name: (self.shape_of(decl, sizes), decl.role) for name, decl in self.tensors
            if name not in self.optional or attrs[name]}, self.forward_attrs(attrs))

    def ellipsis_axis(self, name: str, shape: tuple) -> int | None:
        """Which axis of the tensor ``name`` (a declared input, or an output of
        ``shape``) is the ``...`` group: an input's is where it is declared, an
        output's is its one axis of size ``E`` (None: no group, or the spec
        keeps it collapsed)."""
        decl = dict(self.tensors).get(name)
        if decl is not None:
            return decl.shape.index(Ellipsis) if Ellipsis in decl.shape else None
        if self.ellipsis is None or self.collapse_ellipsis:
            return None
        axes = [k for k, d in enumerate(shape) if d == ISym(self.ellipsis)]
        if len(axes) > 1:
            raise SpecError(self.name, f"output {name} has shape {shape_str(shape)}: more than one axis is "
                            f"the ... group ({self.ellipsis}), so the caller's axes cannot be put back",
                            self.location)
        return axes[0] if axes else None


def shape_text(shape: tuple) -> str:
    """A declared shape as written: ``(..., C)``."""
    text = ", ".join("..." if d is Ellipsis else str(d) for d in shape)
    return f"({text},)" if len(shape) == 1 else f"({text})"


def _fresh_size(base: str, taken: set) -> str:
    """``base``, or ``base`` with a number, whichever no declaration uses."""
    name, k = base, 0
    while name in taken:
        name, k = f"{base}{k}", k + 1
    return name


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
