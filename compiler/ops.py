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

from . import ir
from .ir import Axis, Const, IConst, IVar, Load, Stage
from .trace import (Index, Reduction, TensorExpr, as_index, as_value, broadcast_load,
                    broadcast_shapes, current_builder, elementwise, matmul, mean, normalize_axes,
                    reduce, reshape, shape_str, transpose)

__all__ = [
    "elementwise", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf", "maximum",
    "minimum", "where", "stop_gradient", "equal", "not_equal", "sum", "mean", "max", "matmul",
    "transpose", "reshape", "softmax", "log_softmax", "logsumexp", "take_along_axis",
    "compute", "reduce_axis", "assign", "ones_like", "zeros_like", "full", "var",
]


# ---------------------------------------------------------------- elementwise


def _unary(op):
    def f(x):
        return elementwise(op, x)
    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}`` of a tensor or an index-notation value."
    return f


exp, log, sqrt, tanh, sigmoid, relu, abs, erf = (
    _unary(op) for op in ("exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf"))


def maximum(a, b):
    """Elementwise maximum (NaN propagates; the gradient splits evenly at ties)."""
    return elementwise("maximum", a, b)


def minimum(a, b):
    """Elementwise minimum (NaN propagates; the gradient splits evenly at ties)."""
    return elementwise("minimum", a, b)


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
