"""Tracing: the symbolic values a spec's ``forward`` computes with, the
builder that records the stages they create, and the tensor ops a tensor's
operators stand for (``x + y``, ``x @ w``, ``x.T``, ``x.reshape``, ``x.sum``).
``compiler/ops.py`` builds the rest of the ops on these; this module imports
nothing of it.

Three kinds of traced values:

- ``TensorExpr``: a whole tensor (an input, a parameter, or a stage's output).
  numpy-style operators on it create stages.
- ``Index``: an integer expression (a loop index, a size, ``h*stride + i - pad``).
- ``Scalar``: one element's value inside index notation (``x[n, c] * w[c]``).

Example::

    >>> from layerc.compiler.ir import ISym
    >>> b = Builder("Demo")
    >>> with b.active():
    ...     x = b.declare("x", (ISym("N"),), "input")
    ...     y = x * 2.0
    >>> print(format_stage(b.stages[-1]))
    mul_0[i0] = x[i0] * 2
"""
from __future__ import annotations

import contextlib
import contextvars
import numbers

from . import ir
from .errors import SpecError
from .indexing import basic_index, is_basic_indexing, shape_str
from .ops_table import OPS
from .ir import (Axis, Call, Const, IConst, ILoad, IndexValue, IVar, Load, Stage,
                 TensorDecl, format_iexpr, format_stage)  # noqa: F401  (format_stage: doctest)
from .shapes import broadcast, quotient, reshape_index, size_mismatch, size_product

_active: contextvars.ContextVar = contextvars.ContextVar("layerc_builder", default=None)


def current_builder() -> "Builder":
    b = _active.get()
    if b is None:
        raise RuntimeError("layerc ops can only be used inside a spec's forward (while tracing)")
    return b


class Builder:
    """Records declared tensors and the stages that tensor ops and index notation create."""

    def __init__(self, spec: str):
        self.spec = spec
        self.decls: dict[str, TensorDecl] = {}
        self.stages: list[Stage] = []
        self.updates: list[tuple[str, str]] = []
        self.extents: dict[str, ir.IExpr] = {}    # index variable -> extent
        self._counter = 0

    @contextlib.contextmanager
    def active(self):
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def error(self, message: str) -> SpecError:
        return SpecError(self.spec, message)

    def fresh(self, hint: str) -> str:
        # a generated name never takes a declared tensor's name, nor the grad_
        # prefix autodiff names gradients with
        hint = "v" + hint if hint.startswith("grad_") else hint
        while True:
            name = f"{hint}_{self._counter}"
            self._counter += 1
            if name not in self.decls:
                return name

    def new_var(self, extent, hint: str = "i") -> "Index":
        name = self.fresh(hint) if hint in self.extents or hint[-1:].isdigit() else hint
        while name in self.extents:
            name = self.fresh(hint)
        self.extents[name] = ir.as_iexpr(extent)
        return Index(IVar(name))

    def declare(self, name: str, shape: tuple, role: str) -> "TensorExpr":
        if name.startswith("grad_"):
            raise self.error(f"the name {name!r} is reserved: layerc names the gradient of x grad_x")
        self.decls[name] = TensorDecl(name, tuple(shape), role)
        return TensorExpr(name, tuple(shape), self, integer=role == "index")

    def add_stage(self, stage: Stage) -> "TensorExpr":
        self.stages.append(stage)
        return TensorExpr(stage.name, stage.shape, self)

    def shape_of(self, name: str) -> tuple:
        if name in self.decls:
            return self.decls[name].shape
        for s in self.stages:
            if s.name == name:
                return s.shape
        raise KeyError(name)


# ---------------------------------------------------------------- index expressions


class Index:
    """An integer expression in index notation or a size; supports ``+ - * // %``,
    ``abs`` and ``index_min``/``index_max``."""

    __slots__ = ("expr",)

    def __init__(self, expr):
        self.expr = ir.as_iexpr(expr)

    def __add__(self, o): return Index(ir.iadd(self.expr, as_index(o)))
    def __radd__(self, o): return Index(ir.iadd(as_index(o), self.expr))
    def __sub__(self, o): return Index(ir.isub(self.expr, as_index(o)))
    def __rsub__(self, o): return Index(ir.isub(as_index(o), self.expr))
    def __mul__(self, o): return Index(ir.imul(self.expr, as_index(o)))
    def __rmul__(self, o): return Index(ir.imul(as_index(o), self.expr))
    def __floordiv__(self, o): return Index(_divide("//", self.expr, as_index(o)))
    def __rfloordiv__(self, o): return Index(_divide("//", as_index(o), self.expr))
    def __mod__(self, o): return Index(_divide("%", self.expr, as_index(o)))
    def __rmod__(self, o): return Index(_divide("%", as_index(o), self.expr))
    def __neg__(self): return Index(ir.imul(-1, self.expr))
    def __abs__(self): return Index(ir.imax(self.expr, ir.imul(-1, self.expr)))

    # comparisons of indices are values (0 or 1), e.g. a causal mask ``j <= i``
    def __lt__(self, o): return Scalar(Call("lt", (IndexValue(self.expr), as_value(o))))
    def __le__(self, o): return Scalar(Call("le", (IndexValue(self.expr), as_value(o))))
    def __gt__(self, o): return Scalar(Call("gt", (IndexValue(self.expr), as_value(o))))
    def __ge__(self, o): return Scalar(Call("ge", (IndexValue(self.expr), as_value(o))))

    def __index__(self):
        if isinstance(self.expr, IConst):
            return self.expr.value
        raise TypeError(f"size {format_iexpr(self.expr)} is not bound to a number at build time")

    __int__ = __index__

    def __eq__(self, o):
        try:
            return self.expr == as_index(o)
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self.expr)

    def __repr__(self):
        return format_iexpr(self.expr)


def index_min(a, b) -> Index:
    """The smaller of two indices (an index, not a value: ``x[n, index_min(i, L - 1)]``)."""
    return Index(ir.imin(as_index(a), as_index(b)))


def index_max(a, b) -> Index:
    """The larger of two indices (an index, not a value: ``x[n, index_max(i - 1, 0)]``)."""
    return Index(ir.imax(as_index(a), as_index(b)))


def _divide(op: str, a: ir.IExpr, b: ir.IExpr) -> ir.IExpr:
    """``a // b`` or ``a % b``. A divisor that is 0 when the layer is built is
    the spec's error; one known only when a call runs is checked then (the
    generated function returns ``LC_ZERO_DIVISOR``)."""
    if b == IConst(0):
        raise current_builder().error(
            f"the index expression {format_iexpr(a)} {op} {format_iexpr(b)} divides by 0 "
            "(its divisor is 0 at the sizes and attributes the layer is built with)")
    return ir.IBIN_BUILDERS[op](a, b)


def as_index(v) -> ir.IExpr:
    if isinstance(v, Index):
        return v.expr
    return ir.as_iexpr(v)


# ---------------------------------------------------------------- scalar values


# numpy's ufuncs on a traced tensor: the op of the table each stands for
NUMPY_UFUNCS = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
                "power": "pow", "remainder": "remainder", "negative": "neg", "absolute": "abs",
                "exp": "exp", "expm1": "expm1", "log": "log", "log2": "log2", "log1p": "log1p",
                "logaddexp": "logaddexp", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tan": "tan",
                "tanh": "tanh", "floor": "floor", "ceil": "ceil", "rint": "round", "trunc": "trunc",
                "sign": "sign", "maximum": "maximum", "minimum": "minimum",
                "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
                "equal": "eq", "not_equal": "ne"}
# numpy functions a traced tensor has as methods (np.sum(x, axis=1) is x.sum(axis=1))
NUMPY_METHODS = frozenset({"sum", "mean", "max", "reshape", "transpose"})


def _traced_truth(builder, what: str) -> SpecError:
    return builder.error(
        f"{what} has no truth value while forward is traced: `if`, `and`, `or`, `not` and bool() "
        "would decide once, for every element. Use ops.where(condition, a, b) to choose per element, "
        "ops.maximum/ops.minimum for max()/min() of tensors, or an Attr to choose at build time")


def _rounded(builder, value, what: str, ndigits):
    """``round(value)``: the round op (half to even, as Python's); no ``ndigits``."""
    if ndigits is not None:
        raise builder.error(f"round({what}, {ndigits!r}): layerc rounds to integers only; "
                            "scale first, e.g. ops.round(x * 100) / 100")
    return elementwise("round", value)


class Scalar:
    """One element's value in index notation; arithmetic builds IR expressions."""

    __slots__ = ("expr",)

    def __init__(self, expr):
        self.expr = expr

    def _bin(self, op, o, reverse=False):
        a, b = as_value(self), as_value(o)   # as_value hoists a Reduction on the left
        return Scalar(Call(op, (b, a) if reverse else (a, b)))

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __mod__(self, o): return self._bin("remainder", o)
    def __rmod__(self, o): return self._bin("remainder", o, True)
    def __neg__(self): return Scalar(Call("neg", (as_value(self),)))
    def __lt__(self, o): return self._bin("lt", o)
    def __le__(self, o): return self._bin("le", o)
    def __gt__(self, o): return self._bin("gt", o)
    def __ge__(self, o): return self._bin("ge", o)
    def __abs__(self): return Scalar(Call("abs", (as_value(self),)))

    def __bool__(self):
        raise _traced_truth(current_builder(), repr(self))

    def __round__(self, ndigits=None):
        return _rounded(current_builder(), self, repr(self), ndigits)

    def __repr__(self):
        return ir.format_expr(self.expr)


class Reduction(Scalar):
    """``sum``/``max`` of a value over reduction indices, pending its stage."""

    __slots__ = ("kind", "over", "body")

    def __init__(self, kind, over, body):
        self.kind, self.over, self.body = kind, tuple(over), body
        super().__init__(None)

    def hoist(self) -> Load:
        """Materialize as a stage over the free indices (when used inside a larger expression)."""
        b = current_builder()
        free = ir.ivars_of_expr(self.body) - {v.name for v in self.over}
        order = [name for name in b.extents if name in free]
        axes = tuple(Axis(n, b.extents[n]) for n in order)
        stage = Stage(b.fresh(self.kind), tuple(a.extent for a in axes), axes, self.body, self.kind,
                      tuple(Axis(v.name, b.extents[v.name]) for v in self.over))
        b.add_stage(stage)
        return Load(stage.name, tuple(IVar(n) for n in order))


def as_value(v):
    """An IR value expression from a Scalar, Index or Python/numpy number."""
    if isinstance(v, Reduction):
        return v.hoist()
    if isinstance(v, Scalar):
        return v.expr
    if isinstance(v, Index):
        return IndexValue(v.expr)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return Const(float(v))
    if isinstance(v, bool):
        return Const(1.0 if v else 0.0)
    if isinstance(v, TensorExpr):
        raise current_builder().error(
            f"tensor {v.name}{shape_str(v.shape)} used inside index notation; index it, e.g. {v.name}[i, j]")
    raise TypeError(f"not a layerc value: {v!r}")


# ---------------------------------------------------------------- whole tensors


class TensorExpr:
    """A traced tensor. numpy-style operators create stages; indexing with
    index expressions reads one element (index notation)."""

    __array_priority__ = 1000   # numpy scalars on the left defer to our operators

    def __init__(self, name: str, shape: tuple, builder: Builder, integer: bool = False):
        self.name, self.builder, self.integer = name, builder, integer
        self._shape = tuple(shape)

    @property
    def shape(self) -> tuple:
        return tuple(Index(d) for d in self._shape)

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def __getitem__(self, idx):
        """An element in index notation (``x[n, c, h*s + i]``: an index for
        every axis), or numpy's basic indexing (``x[:, 1:3]``, ``x[..., ::-1]``,
        ``x[0]``, ``x[None]``): a tensor (``compiler/slicing.py``)."""
        idx = idx if isinstance(idx, tuple) else (idx,)
        key = tuple(_key_part(self, k) for k in idx)
        if is_basic_indexing(key, self.ndim):
            return basic_index(self, key)
        if len(idx) != self.ndim:
            raise self.builder.error(
                f"{self.name}{shape_str(self._shape)} has rank {self.ndim} but is indexed with {len(idx)} indices")
        index = tuple(as_index(i) for i in idx)
        if self.integer:
            return Index(ILoad(self.name, index))
        return Scalar(Load(self.name, index))

    def __repr__(self):
        return f"{self.name}{shape_str(self._shape)}"

    def _elementwise(self, op, other, reverse=False):
        return elementwise(op, other, self) if reverse else elementwise(op, self, other)

    def __add__(self, o): return self._elementwise("add", o)
    def __radd__(self, o): return self._elementwise("add", o, True)
    def __sub__(self, o): return self._elementwise("sub", o)
    def __rsub__(self, o): return self._elementwise("sub", o, True)
    def __mul__(self, o): return self._elementwise("mul", o)
    def __rmul__(self, o): return self._elementwise("mul", o, True)
    def __truediv__(self, o): return self._elementwise("div", o)
    def __rtruediv__(self, o): return self._elementwise("div", o, True)
    def __pow__(self, o): return self._elementwise("pow", o)
    def __rpow__(self, o): return self._elementwise("pow", o, True)
    def __mod__(self, o): return self._elementwise("remainder", o)
    def __rmod__(self, o): return self._elementwise("remainder", o, True)
    def __lt__(self, o): return self._elementwise("lt", o)
    def __le__(self, o): return self._elementwise("le", o)
    def __gt__(self, o): return self._elementwise("gt", o)
    def __ge__(self, o): return self._elementwise("ge", o)
    def __neg__(self): return elementwise("neg", self)
    def __abs__(self): return elementwise("abs", self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)

    def __bool__(self):
        raise _traced_truth(self.builder, self.name)

    def __round__(self, ndigits=None):
        return _rounded(self.builder, self, self.name, ndigits)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy's ufuncs on a traced tensor run the op of the same meaning, or say which to use."""
        op = NUMPY_UFUNCS.get(ufunc.__name__)
        if method != "__call__" or kwargs or op is None or len(inputs) != OPS[op].arity:
            raise self.builder.error(f"numpy's {ufunc.__name__} cannot run on the traced tensor {self.name}: "
                                     f"use layerc's ops (ops.exp, ops.maximum, ...; see docs/spec.md)")
        return elementwise(op, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        method = getattr(TensorExpr, func.__name__, None)
        if func.__name__ in NUMPY_METHODS and method is not None:
            return method(*args, **kwargs)
        raise self.builder.error(f"numpy's {func.__name__} cannot run on the traced tensor {self.name}: "
                                 f"use layerc's ops (ops.{func.__name__} if it exists; see docs/spec.md)")

    @property
    def T(self):
        return transpose(self)

    def transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def sum(self, axis=None, keepdims=False):
        return reduce("sum", self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return reduce("max", self, axis, keepdims)


def _key_part(x: TensorExpr, k):
    """A part of ``x[...]``'s key as ``compiler/indexing.py`` takes it: an
    ``Index`` as its expression, a slice's bounds too."""
    if isinstance(k, TensorExpr):
        raise x.builder.error(f"{x.name}{shape_str(x._shape)} indexed with the tensor {k.name}: to read "
                              "along an axis at integer indices use ops.take_along_axis")
    if isinstance(k, slice):
        return slice(*(_key_part(x, v) for v in (k.start, k.stop, k.step)))
    return k.expr if isinstance(k, Index) else k


# ---------------------------------------------------------------- tensor ops
# the ops a tensor's operators and methods stand for (``ops`` exports them too)


def elementwise(op: str, *args):
    """Apply an op of the table (``layerc.compiler.ops_table.OPS``) with numpy broadcasting.

    On tensors this creates a stage; on index-notation values it builds an expression.
    """
    tensors = [a for a in args if isinstance(a, TensorExpr)]
    if not tensors:
        return Scalar(Call(op, tuple(as_value(a) for a in args)))
    b = tensors[0].builder
    for a in args:
        # a size (an Index without loop indices) is a number; loop indices are not
        if isinstance(a, Scalar) or (isinstance(a, Index) and ir.ivars(a.expr)):
            raise b.error(f"{op}: cannot mix the tensor {tensors[0].name} with the index-notation value {a!r}")
        if isinstance(a, TensorExpr) and a.integer:
            raise b.error(f"{op}: {a.name} is an integer (index) tensor; it can only be used to index")
    shape = broadcast_shapes(op, [t._shape for t in tensors])
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out_vars = tuple(IVar(a.name) for a in axes)
    operands = tuple(broadcast_load(a, out_vars) if isinstance(a, TensorExpr) else as_value(a) for a in args)
    return b.add_stage(Stage(b.fresh(op), shape, axes, Call(op, operands)))


def broadcast_shapes(op: str, shapes: list) -> tuple:
    """numpy broadcasting on symbolic shapes: equal sizes, or 1."""
    out = broadcast(shapes)
    if out is None:
        raise current_builder().error(f"{op}: cannot broadcast shapes " + " and ".join(shape_str(s) for s in shapes))
    return out


def broadcast_load(t: TensorExpr, out_vars: tuple) -> Load:
    """Read ``t`` at output indices ``out_vars`` under numpy broadcasting."""
    rank = len(out_vars)
    index = []
    for k, d in enumerate(t._shape):
        v = out_vars[rank - t.ndim + k]
        index.append(IConst(0) if d == IConst(1) else v)
    return Load(t.name, tuple(index))


def normalize_axes(x: TensorExpr, axis, what: str) -> tuple:
    """``axis`` (None, an int or several; negative from the end) as sorted axes of ``x``."""
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise x.builder.error(f"{what}: axis {a} is out of range for {x.name}{shape_str(x._shape)}")
        out.append(a % x.ndim)
    return tuple(sorted(set(out)))


def reduce(kind: str, x, axis, keepdims: bool):
    """``kind`` ("sum", "max") of a tensor over axes, numpy semantics."""
    if isinstance(x, Scalar):
        raise current_builder().error(f"{kind}: in index notation use ops.{kind}(value, over=(i, j))")
    b = x.builder
    reduced = normalize_axes(x, axis, kind)
    out_axes, red_axes, index, shape = [], [], [], []
    for k, d in enumerate(x._shape):
        if k in reduced:
            red_axes.append(Axis(f"r{k}", d))
            index.append(IVar(f"r{k}"))
            if keepdims:
                out_axes.append(Axis(f"i{k}", IConst(1)))
                shape.append(IConst(1))
        else:
            out_axes.append(Axis(f"i{k}", d))
            index.append(IVar(f"i{k}"))
            shape.append(d)
    stage = Stage(b.fresh(kind), tuple(shape), tuple(out_axes), Load(x.name, tuple(index)), kind, tuple(red_axes))
    return b.add_stage(stage)


def mean(x, axis=None, keepdims=False):
    """Mean over axes (numpy semantics)."""
    count = size_product([x._shape[k] for k in normalize_axes(x, axis, "mean")])
    return reduce("sum", x, axis, keepdims) / Index(count)


def matmul(a, b):
    """``a @ b`` with numpy semantics (batched over leading dimensions)."""
    bld = (a if isinstance(a, TensorExpr) else b).builder
    if not (isinstance(a, TensorExpr) and isinstance(b, TensorExpr)):
        raise bld.error("matmul takes two tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise bld.error("matmul: operands must have rank >= 1 (use * for scalars)")
    ash = a._shape if a.ndim > 1 else (IConst(1),) + a._shape
    bsh = b._shape if b.ndim > 1 else b._shape + (IConst(1),)
    if ash[-1] != bsh[-2]:
        raise bld.error(f"matmul: contracted sizes differ: {a.name}{shape_str(a._shape)} @ "
                        f"{b.name}{shape_str(b._shape)}")
    batch = broadcast_shapes("matmul", [ash[:-2], bsh[:-2]])
    rank = len(batch)
    bvars = tuple(IVar(f"b{k}") for k in range(rank))
    m, p, k = IVar("m"), IVar("p"), IVar("k")

    def read(t, last_two):
        lead = t._shape[:-2]
        index = tuple(IConst(0) if d == IConst(1) else bvars[rank - len(lead) + j] for j, d in enumerate(lead))
        return Load(t.name, index + last_two)

    body = Call("mul", (read(a, (m, k)) if a.ndim > 1 else Load(a.name, (k,)),
                        read(b, (k, p)) if b.ndim > 1 else Load(b.name, (k,))))
    axes = tuple(Axis(v.name, d) for v, d in zip(bvars, batch))
    if a.ndim > 1:
        axes += (Axis("m", ash[-2]),)
    if b.ndim > 1:
        axes += (Axis("p", bsh[-1]),)
    shape = tuple(ax.extent for ax in axes)
    return bld.add_stage(Stage(bld.fresh("matmul"), shape, axes, body, "sum", (Axis("k", ash[-1]),)))


def transpose(x, axes=None):
    """Permute dimensions (reverse them when ``axes`` is None), as numpy."""
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise x.builder.error(f"transpose: {axes} is not a permutation of the axes of {x.name}{shape_str(x._shape)}")
    out_axes = tuple(Axis(f"i{k}", x._shape[p]) for k, p in enumerate(perm))
    index = [None] * x.ndim
    for k, p in enumerate(perm):
        index[p] = IVar(f"i{k}")
    b = x.builder
    return b.add_stage(Stage(b.fresh("transpose"), tuple(a.extent for a in out_axes), out_axes,
                             Load(x.name, tuple(index))))


def reshape(x, shape):
    """numpy ``reshape`` (C order); one size may be ``-1``."""
    b = x.builder
    shape = [as_index(d) for d in shape]
    total = size_product(x._shape)
    if sum(1 for d in shape if d == IConst(-1)) > 1:
        raise b.error(f"reshape: at most one size may be -1, got {shape_str(shape)}")
    if IConst(-1) in shape:
        known = [d for d in shape if d != IConst(-1)]
        if size_product(known) == IConst(0):
            raise b.error(f"reshape: the size -1 stands for cannot be found beside a size 0, in {shape_str(shape)}")
        shape[shape.index(IConst(-1))] = quotient(x._shape, known)
    shape = tuple(shape)
    mismatch = size_mismatch(f"{x.name}{shape_str(x._shape)} into {shape_str(shape)}", total, size_product(shape))
    if mismatch:
        raise b.error(f"reshape: cannot reshape {mismatch}")
    index, inverse = reshape_index(x._shape, shape)
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    return b.add_stage(Stage(b.fresh("reshape"), shape, axes, Load(x.name, index), inverse=inverse))
