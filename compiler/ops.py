"""The ops a spec's ``forward`` uses: numpy-style tensor ops and index notation.

Every tensor op lowers to one stage of the core IR (``T[i] = R_r body``), so
tensor ops and index notation mix freely. Elementwise functions also work on
single values inside index notation.

Example (inside a spec's ``forward``)::

    y = ops.maximum(x, 0) + alpha * ops.minimum(x, 0)       # tensor ops
    c, i = ops.reduce_axis(C), ops.reduce_axis(K)             # index notation
    y = ops.compute((N, O, L), lambda n, o, l: ops.sum(x[n, c, l + i] * w[o, c, i], over=(c, i)))
"""
from __future__ import annotations

import difflib
import inspect
import math
import numbers

from . import ir
from .ir import Axis, Call, Const, IConst, IndexValue, IVar, Load, Stage, format_iexpr
from .shapes import size_mismatch
from .slicing import concatenate, flip, pad, roll, stack
from .trace import (Index, Reduction, TensorExpr, as_index, as_value, broadcast_load,
                    broadcast_shapes, current_builder, elementwise, index_max, index_min, matmul, mean,
                    normalize_axes, reduce, reshape, shape_str, transpose)

__all__ = [
    "elementwise", "exp", "expm1", "log", "log2", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh",
    "sigmoid", "erf", "erfc", "ndtr", "abs", "floor", "ceil", "round", "trunc", "sign", "remainder", "logaddexp", "lerp",
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "softplus", "logsigmoid", "silu", "mish", "gelu",
    "hardswish", "hardsigmoid", "softsign", "maximum", "minimum", "clip", "where", "stop_gradient",
    "equal", "not_equal", "sum", "mean", "max", "min", "prod", "var", "matmul", "transpose", "reshape",
    "split", "glu", "softmax", "log_softmax", "logsumexp", "take_along_axis", "compute", "reduce_axis",
    "assign", "ones_like", "zeros_like", "full", "pad", "flip", "roll", "concatenate", "stack",
    "index_min", "index_max",
]


# ---------------------------------------------------------------- elementwise


def _unary(op):
    def f(x):
        return elementwise(op, x)
    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}`` of a tensor or an index-notation value."
    return f


exp, expm1, log, log2, log1p, sqrt, rsqrt, sin, cos, tan, tanh, sigmoid, erf, erfc, ndtr, abs = (
    _unary(op) for op in ("exp", "expm1", "log", "log2", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
                          "tanh", "sigmoid", "erf", "erfc", "ndtr", "abs"))
# integer-valued, with a zero gradient; round is half to even (as numpy, torch and Python)
floor, ceil, round, trunc, sign = (_unary(op) for op in ("floor", "ceil", "round", "trunc", "sign"))
relu, relu6, selu, logsigmoid, silu, mish, hardswish, hardsigmoid, softsign = (
    _unary(op) for op in ("relu", "relu6", "selu", "logsigmoid", "silu", "mish", "hardswish", "hardsigmoid",
                          "softsign"))


def leaky_relu(x, negative_slope=0.01):
    """``x`` where positive, else ``negative_slope * x`` (the slope may be a tensor)."""
    return elementwise("leaky_relu", x, negative_slope)


def elu(x, alpha=1.0):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return elementwise("elu", x, alpha)


def celu(x, alpha=1.0):
    """``x`` where positive, else ``alpha * (exp(x / alpha) - 1)``."""
    return elementwise("celu", x, alpha)


def softplus(x, beta=1.0):
    """``log(1 + exp(beta * x)) / beta``, computed without overflow for any ``x``."""
    if beta == 1:
        return elementwise("softplus", x)
    return elementwise("softplus", x * beta) / beta


def gelu(x, approximate="none"):
    """``x * Phi(x)`` (``Phi`` the normal distribution's CDF), or with
    ``approximate="tanh"`` its tanh approximation, as ``torch.nn.functional.gelu``."""
    rows = {"none": "gelu", "tanh": "gelu_tanh"}
    if approximate not in rows:
        raise current_builder().error(f"gelu: approximate={approximate!r}; it is 'none' or 'tanh'")
    return elementwise(rows[approximate], x)


def remainder(a, b):
    """``a % b`` with the sign of ``b`` (Python's and ``torch.remainder``'s)."""
    return elementwise("remainder", a, b)


def logaddexp(a, b):
    """``log(exp(a) + exp(b))``, without overflow."""
    return elementwise("logaddexp", a, b)


def lerp(start, end, weight):
    """``start + weight * (end - start)``."""
    return elementwise("lerp", start, end, weight)


def maximum(a, b):
    """Elementwise maximum (NaN propagates; the gradient splits evenly at ties)."""
    return elementwise("maximum", a, b)


def minimum(a, b):
    """Elementwise minimum (NaN propagates; the gradient splits evenly at ties)."""
    return elementwise("minimum", a, b)


def clip(x, min=None, max=None):
    """``x`` clamped into ``[min, max]`` (either may be None; bounds may be tensors). As
    ``torch.clamp``: ``x`` keeps its gradient at the bounds, and ``min > max`` gives ``max``."""
    if min is None and max is None:
        raise current_builder().error("clip: give min, max or both")
    return elementwise("clip", x, -math.inf if min is None else min, math.inf if max is None else max)


def where(cond, a, b):
    """``a`` where ``cond`` is nonzero, else ``b`` (``cond`` is not differentiated)."""
    return elementwise("select", cond, a, b)


def equal(a, b):
    return elementwise("eq", a, b)


def not_equal(a, b):
    return elementwise("ne", a, b)


def stop_gradient(x):
    """``x``, with no gradient flowing through it."""
    return elementwise("stop_gradient", x)


def full(shape, value):
    """A constant tensor."""
    b = current_builder()
    shape = tuple(as_index(d) for d in shape)
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    return b.add_stage(Stage(b.fresh("full"), shape, axes, Const(float(value))))


def zeros_like(x):
    return full(x._shape, 0.0)


def ones_like(x):
    return full(x._shape, 1.0)


# ---------------------------------------------------------------- reductions


def sum(x, axis=None, keepdims=False, over=None):
    """Sum of a tensor over axes (numpy semantics), or, in index notation, of a
    value over reduction indices: ``ops.sum(x[n, c] * w[o, c], over=(c,))``."""
    if over is not None:
        return Reduction("sum", _over(over), as_value(x))
    return reduce("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False, over=None):
    """Maximum over axes or reduction indices; the gradient goes to the maximal
    element, split evenly between ties."""
    if over is not None:
        return Reduction("max", _over(over), as_value(x))
    return reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False, over=None):
    """Minimum over axes or reduction indices (``-max(-x)``); the gradient goes to
    the minimal element, split evenly between ties."""
    if over is not None:
        return -Reduction("max", _over(over), Call("neg", (as_value(x),)))
    return -reduce("max", -x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    """Product over axes (numpy semantics). Each element's gradient is the product
    of the others, exact where some are zero (as PyTorch's). Each reduced size
    must be bound when the layer is built: the product runs as a tree of
    pairwise products, ceil(log2(size)) stages per axis."""
    axes = normalize_axes(x, axis, "prod")
    y = x
    for a in axes:
        y = _product_along(y, a)
    if keepdims or not axes:
        return y
    return reshape(y, tuple(d for k, d in enumerate(y._shape) if k not in axes))


def _product_along(x, axis: int):
    """The product over ``axis`` of ``x``, kept as a dimension of size 1."""
    size = x._shape[axis]
    if not isinstance(size, IConst):
        raise x.builder.error(f"prod: {x.name}{shape_str(x._shape)} along axis {axis} has the size "
                              f"{format_iexpr(size)}, free at build time; bind it (build({format_iexpr(size)}=...))")
    if size.value == 0:
        return full(x._shape[:axis] + (IConst(1),) + x._shape[axis + 1:], 1.0)
    size = size.value
    while size > 1:
        x, size = _pairwise_product(x, axis, size), (size + 1) // 2
    return x


def _pairwise_product(x, axis: int, size: int):
    """``y[..., k, ...] = x[..., 2k, ...] * x[..., 2k + 1, ...]`` along ``axis``
    (the last of an odd ``size`` alone)."""
    b = x.builder
    shape = x._shape[:axis] + (IConst((size + 1) // 2),) + x._shape[axis + 1:]
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    index = [IVar(a.name) for a in axes]
    even, odd = ir.imul(2, index[axis]), ir.iadd(ir.imul(2, index[axis]), 1)
    second = Load(x.name, tuple(index[:axis] + [odd] + index[axis + 1:]))
    if size % 2:
        second = Call("select", (Call("lt", (IndexValue(odd), Const(float(size)))), second, Const(1.0)))
    body = Call("mul", (Load(x.name, tuple(index[:axis] + [even] + index[axis + 1:])), second))
    return b.add_stage(Stage(b.fresh("prod"), shape, axes, body))


def var(x, axis=None, keepdims=False):
    """Biased variance over axes (as numpy's ``var`` with ``ddof=0``)."""
    centered = x - mean(x, axis, keepdims=True)
    return mean(centered * centered, axis, keepdims)


def _over(over) -> tuple:
    over = over if isinstance(over, (tuple, list)) else (over,)
    for v in over:
        if not (isinstance(v, Index) and isinstance(v.expr, IVar)):
            raise current_builder().error(f"reduction indices must come from ops.reduce_axis, got {v!r}")
    return tuple(v.expr for v in over)


# ---------------------------------------------------------------- index notation


def reduce_axis(extent, name: str = "r") -> Index:
    """A reduction index running over ``range(extent)``, for ``ops.sum(..., over=...)``."""
    return current_builder().new_var(as_index(extent), name)


def compute(shape, fn, name: str = "compute"):
    """A tensor defined elementwise by index notation.

    ``fn`` receives one index per dimension (named after its parameters) and
    returns a value: an expression of tensor reads ``x[i, j]`` (reads outside a
    tensor are zero), numbers and indices, or ``ops.sum/max(value, over=...)``.
    Example: ``ops.compute((N, O), lambda n, o: ops.sum(x[n, k] * w[o, k], over=k))``.
    """
    b = current_builder()
    shape = tuple(as_index(d) for d in shape)
    params = list(inspect.signature(fn).parameters)
    if len(params) != len(shape):
        raise b.error(f"compute {name}: shape {shape_str(shape)} has rank {len(shape)} "
                      f"but the function takes {len(params)} indices")
    idx = [b.new_var(d, p) for p, d in zip(params, shape)]
    result = fn(*idx)
    axes = tuple(Axis(i.expr.name, d) for i, d in zip(idx, shape))
    if isinstance(result, Reduction):
        red = tuple(Axis(v.name, b.extents[v.name]) for v in result.over)
        return b.add_stage(Stage(b.fresh(name), shape, axes, result.body, result.kind, red))
    return b.add_stage(Stage(b.fresh(name), shape, axes, as_value(result)))


# ---------------------------------------------------------------- layout ops


def split(x, sections, axis=-1) -> tuple:
    """``x`` cut along ``axis`` into ``sections`` equal parts (an int), or into
    parts of the given sizes (a list), as ``torch.chunk``/``torch.split``. Parts
    that would not cover the axis exactly are a SpecError; a size free at build
    time must divide for every value it may take, so bind it."""
    b = x.builder
    axis = normalize_axes(x, axis, "split")[0]
    parts, start = [], IConst(0)
    for part in _split_sizes(x, axis, sections):
        shape = x._shape[:axis] + (part,) + x._shape[axis + 1:]
        axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
        index = [IVar(a.name) for a in axes]
        index[axis] = ir.iadd(index[axis], start)
        parts.append(b.add_stage(Stage(b.fresh("split"), shape, axes, Load(x.name, tuple(index)))))
        start = ir.iadd(start, part)
    return tuple(parts)


def _split_sizes(x, axis: int, sections) -> list:
    size = x._shape[axis]
    if isinstance(sections, numbers.Integral):
        sizes = [ir.ifloordiv(size, sections)] * sections if sections > 0 else []
        wanted = f"{sections} equal parts"
    else:
        sizes = [as_index(s) for s in sections]
        wanted = "parts of sizes " + ", ".join(format_iexpr(s) for s in sizes)
    total = IConst(0)
    for part in sizes:
        total = ir.iadd(total, part)
    what = f"{x.name}{shape_str(x._shape)} along axis {axis} into {wanted}"
    mismatch = size_mismatch(what, size, total) if sizes else what
    if mismatch:
        raise x.builder.error(f"split: cannot cut {mismatch}")
    return sizes


def glu(x, axis=-1):
    """The gated linear unit: ``a * sigmoid(b)`` for the two halves ``a, b`` of
    ``x`` along ``axis`` (an odd size there is a SpecError)."""
    a, gate = split(x, 2, axis)
    return a * sigmoid(gate)


# ---------------------------------------------------------------- composites


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, computed stably (max subtracted)."""
    m = stop_gradient(max(x, axis, keepdims=True))
    s = log(sum(exp(x - m), axis, keepdims=True)) + m
    return s if keepdims else reshape(s, tuple(d for k, d in enumerate(x._shape)
                                               if k not in normalize_axes(x, axis, "logsumexp")))


def softmax(x, axis=-1):
    """Softmax over ``axis``, stable for large inputs (max subtracted)."""
    e = exp(x - stop_gradient(max(x, axis, keepdims=True)))
    return e / sum(e, axis, keepdims=True)


def log_softmax(x, axis=-1):
    """``log(softmax(x))`` over ``axis``, without forming the probabilities."""
    return x - logsumexp(x, axis, keepdims=True)


def take_along_axis(x, indices, axis):
    """numpy ``take_along_axis``: read ``x`` along ``axis`` at integer ``indices``
    (an integer input; indices outside the axis read zero)."""
    b = x.builder
    if not (isinstance(indices, TensorExpr) and indices.integer):
        raise b.error("take_along_axis: indices must be an integer input (Input(..., dtype='int64'))")
    axis = normalize_axes(x, axis, "take_along_axis")[0]
    if indices.ndim != x.ndim:
        raise b.error(f"take_along_axis: {indices.name}{shape_str(indices._shape)} must have the rank of "
                      f"{x.name}{shape_str(x._shape)}")
    shape = list(broadcast_shapes("take_along_axis", [x._shape[:axis] + x._shape[axis + 1:],
                                                      indices._shape[:axis] + indices._shape[axis + 1:]]))
    shape.insert(axis, indices._shape[axis])
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out_vars = tuple(IVar(a.name) for a in axes)
    idx = broadcast_load(indices, out_vars)
    read = [IConst(0) if d == IConst(1) and k != axis else out_vars[k] for k, d in enumerate(x._shape)]
    read[axis] = ir.ILoad(idx.tensor, idx.index)
    return b.add_stage(Stage(b.fresh("take"), tuple(shape), axes, Load(x.name, tuple(read))))


def assign(buffer: TensorExpr, value):
    """Write ``value`` into a buffer after the forward pass (running statistics).

    Not differentiated; the runtime applies it in training mode."""
    b = buffer.builder
    if b.decls.get(buffer.name) is None or b.decls[buffer.name].role != "buffer":
        raise b.error(f"assign: {buffer.name} is not a Buffer")
    if not isinstance(value, TensorExpr):
        value = full(buffer._shape, value)
    if value._shape != buffer._shape:
        raise b.error(f"assign: value of shape {shape_str(value._shape)} for buffer "
                      f"{buffer.name}{shape_str(buffer._shape)}")
    b.updates.append((buffer.name, value.name))


def __getattr__(name: str):
    """An op layerc does not have: say so, with the nearest names."""
    if name.startswith("__"):
        raise AttributeError(name)
    close = difflib.get_close_matches(name, __all__, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(f'ops.{c}' for c in close)}? " if close else ""
    raise AttributeError(f"layerc.ops has no {name!r}; {hint}the ops are: {', '.join(sorted(__all__))}")
