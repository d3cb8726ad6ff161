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

import builtins
import inspect
import numbers

from . import ir
from .ir import Axis, Call, Const, IConst, IVar, Load, Stage
from .trace import (Index, Reduction, Scalar, TensorExpr, as_index, as_value,
                    current_builder, shape_str)

__all__ = [
    "elementwise", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf", "maximum",
    "minimum", "where", "stop_gradient", "equal", "not_equal", "sum", "mean", "max", "matmul",
    "transpose", "reshape", "softmax", "log_softmax", "logsumexp", "take_along_axis",
    "compute", "reduce_axis", "assign", "ones_like", "zeros_like", "full", "var",
]


# ---------------------------------------------------------------- elementwise


def _is_tensor(v):
    return isinstance(v, TensorExpr)


def broadcast_shapes(op: str, shapes: list) -> tuple:
    """numpy broadcasting on symbolic shapes: equal sizes, or 1."""
    rank = builtins.max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        size = None
        for s in shapes:
            d = s[k - rank + len(s)] if k - rank + len(s) >= 0 else IConst(1)
            if d == IConst(1):
                size = size or d
            elif size is None or size == IConst(1):
                size = d
            elif size != d:
                raise current_builder().error(
                    f"{op}: cannot broadcast shapes " + " and ".join(shape_str(s) for s in shapes))
        out.append(size)
    return tuple(out)


def _broadcast_load(t: TensorExpr, out_vars: tuple):
    """Read ``t`` at output indices ``out_vars`` under numpy broadcasting."""
    rank = len(out_vars)
    index = []
    for k, d in enumerate(t._shape):
        v = out_vars[rank - t.ndim + k]
        index.append(IConst(0) if d == IConst(1) else v)
    return Load(t.name, tuple(index))


def elementwise(op: str, *args):
    """Apply an op of the table (``layerc.compiler.ops_table.OPS``) with numpy broadcasting.

    On tensors this creates a stage; on index-notation values it builds an expression.
    """
    tensors = [a for a in args if _is_tensor(a)]
    if not tensors:
        return Scalar(Call(op, tuple(as_value(a) for a in args)))
    b = tensors[0].builder
    for a in args:
        # a size (an Index without loop indices) is a number; loop indices are not
        if isinstance(a, Scalar) or (isinstance(a, Index) and ir.ivars(a.expr)):
            raise b.error(f"{op}: cannot mix the tensor {tensors[0].name} with the index-notation value {a!r}")
        if _is_tensor(a) and a.integer:
            raise b.error(f"{op}: {a.name} is an integer (index) tensor; it can only be used to index")
    shape = broadcast_shapes(op, [t._shape for t in tensors])
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out_vars = tuple(IVar(a.name) for a in axes)
    operands = tuple(_broadcast_load(a, out_vars) if _is_tensor(a) else as_value(a) for a in args)
    return b.add_stage(Stage(b.fresh(op), shape, axes, Call(op, operands)))


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


def _normalize_axes(x: TensorExpr, axis, what: str) -> tuple:
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise x.builder.error(f"{what}: axis {a} is out of range for {x.name}{shape_str(x._shape)}")
        out.append(a % x.ndim)
    return tuple(sorted(set(out)))


def _reduce(kind: str, x, axis, keepdims: bool):
    if isinstance(x, Scalar):
        raise current_builder().error(f"{kind}: in index notation use ops.{kind}(value, over=(i, j))")
    b = x.builder
    reduced = _normalize_axes(x, axis, kind)
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


def sum(x, axis=None, keepdims=False, over=None):
    """Sum of a tensor over axes (numpy semantics), or, in index notation, of a
    value over reduction indices: ``ops.sum(x[n, c] * w[o, c], over=(c,))``."""
    if over is not None:
        return Reduction("sum", _over(over), as_value(x))
    return _reduce("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False, over=None):
    """Maximum over axes or reduction indices; the gradient goes to the maximal
    element, split evenly between ties."""
    if over is not None:
        return Reduction("max", _over(over), as_value(x))
    return _reduce("max", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over axes (numpy semantics)."""
    reduced = _normalize_axes(x, axis, "mean")
    count = IConst(1)
    for k in reduced:
        count = ir.imul(count, x._shape[k])
    return _reduce("sum", x, axis, keepdims) / Index(count)


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


def matmul(a, b):
    """``a @ b`` with numpy semantics (batched over leading dimensions)."""
    bld = (a if _is_tensor(a) else b).builder
    if not (_is_tensor(a) and _is_tensor(b)):
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


def _size_product(dims):
    total = IConst(1)
    for d in dims:
        total = ir.imul(total, d)
    return total


def _flatten(vars_, dims):
    flat = IConst(0)
    for v, d in zip(vars_, dims):
        flat = ir.iadd(ir.imul(flat, d), v)
    return flat


def _unflatten(flat, dims):
    out = []
    for k in range(len(dims) - 1, -1, -1):
        out.append(ir.imod(flat, dims[k]) if k else flat)
        flat = ir.ifloordiv(flat, dims[k])
    return tuple(reversed(out))


def _reshape_groups(src, dst):
    """Pair runs of source and destination dimensions with equal products, so
    that a split or a merge of dimensions indexes with a single affine map."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        gi, gj = [i], [j]
        if i >= len(src) or j >= len(dst):
            return [(list(range(len(src))), list(range(len(dst))))]
        ps, pd = _size_product([src[i]]), _size_product([dst[j]])
        while ps != pd:
            if not (isinstance(ps, IConst) and isinstance(pd, IConst)):
                return [(list(range(len(src))), list(range(len(dst))))]
            if ps.value < pd.value and gi[-1] + 1 < len(src):
                gi.append(gi[-1] + 1)
                ps = ir.imul(ps, src[gi[-1]])
            elif gj[-1] + 1 < len(dst):
                gj.append(gj[-1] + 1)
                pd = ir.imul(pd, dst[gj[-1]])
            else:
                return [(list(range(len(src))), list(range(len(dst))))]
        groups.append((gi, gj))
        i, j = gi[-1] + 1, gj[-1] + 1
    return groups


def reshape(x, shape):
    """numpy ``reshape`` (C order); one size may be ``-1``."""
    b = x.builder
    shape = [as_index(d) for d in shape]
    total = _size_product(x._shape)
    if builtins.sum(1 for d in shape if d == IConst(-1)) > 1:
        raise b.error(f"reshape: at most one size may be -1, got {shape_str(shape)}")
    if IConst(-1) in shape:
        known = _size_product([d for d in shape if d != IConst(-1)])
        shape[shape.index(IConst(-1))] = ir.ifloordiv(total, known)
    shape = tuple(shape)
    if not _same_size(_size_product(shape), total):
        raise b.error(f"reshape: cannot reshape {x.name}{shape_str(x._shape)} into {shape_str(shape)}")
    out_vars = [IVar(f"i{k}") for k in range(len(shape))]
    src_vars = [IVar(f"s{k}") for k in range(x.ndim)]
    # dimensions of size 1 take index 0 and stay out of the grouping, so that
    # [N, G, 1, H, W] -> [N, G, H, W] indexes with plain variables, no // or %
    index, inverse = [IConst(0)] * x.ndim, [IConst(0)] * len(shape)
    src_kept = [k for k, d in enumerate(x._shape) if d != IConst(1)]
    dst_kept = [j for j, d in enumerate(shape) if d != IConst(1)]
    for gs, gd in _reshape_groups([x._shape[k] for k in src_kept], [shape[j] for j in dst_kept]):
        gs, gd = [src_kept[k] for k in gs], [dst_kept[j] for j in gd]
        flat = _flatten([out_vars[j] for j in gd], [shape[j] for j in gd])
        for k, e in zip(gs, _unflatten(flat, [x._shape[k] for k in gs])):
            index[k] = e
        flat_src = _flatten([src_vars[k] for k in gs], [x._shape[k] for k in gs])
        for j, e in zip(gd, _unflatten(flat_src, [shape[j] for j in gd])):
            inverse[j] = e
    axes = tuple(Axis(v.name, d) for v, d in zip(out_vars, shape))
    return b.add_stage(Stage(b.fresh("reshape"), shape, axes, Load(x.name, tuple(index)),
                             inverse=tuple(inverse)))


def _same_size(a, b) -> bool:
    """Whether two symbolic sizes are equal for every binding of their symbols."""
    syms = sorted(ir.isyms(a) | ir.isyms(b))
    for base in (2, 3, 7):
        env = {s: base + k for k, s in enumerate(syms)}
        if ir.ievaluate(a, env) != ir.ievaluate(b, env):
            return False
    return True


# ---------------------------------------------------------------- composites


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, computed stably (max subtracted)."""
    m = stop_gradient(max(x, axis, keepdims=True))
    s = log(sum(exp(x - m), axis, keepdims=True)) + m
    return s if keepdims else reshape(s, tuple(d for k, d in enumerate(x._shape)
                                               if k not in _normalize_axes(x, axis, "logsumexp")))


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
    if not (_is_tensor(indices) and indices.integer):
        raise b.error("take_along_axis: indices must be an integer input (Input(..., dtype='int64'))")
    axis = _normalize_axes(x, axis, "take_along_axis")[0]
    if indices.ndim != x.ndim:
        raise b.error(f"take_along_axis: {indices.name}{shape_str(indices._shape)} must have the rank of "
                      f"{x.name}{shape_str(x._shape)}")
    shape = list(broadcast_shapes("take_along_axis", [x._shape[:axis] + x._shape[axis + 1:],
                                                      indices._shape[:axis] + indices._shape[axis + 1:]]))
    shape.insert(axis, indices._shape[axis])
    axes = tuple(Axis(f"i{k}", d) for k, d in enumerate(shape))
    out_vars = tuple(IVar(a.name) for a in axes)
    idx = _broadcast_load(indices, out_vars)
    read = [IConst(0) if d == IConst(1) and k != axis else out_vars[k] for k, d in enumerate(x._shape)]
    read[axis] = ir.ILoad(idx.tensor, idx.index)
    return b.add_stage(Stage(b.fresh("take"), tuple(shape), axes, Load(x.name, tuple(read))))


def assign(buffer: TensorExpr, value):
    """Write ``value`` into a buffer after the forward pass (running statistics).

    Not differentiated; the runtime applies it in training mode."""
    b = buffer.builder
    if b.decls.get(buffer.name) is None or b.decls[buffer.name].role != "buffer":
        raise b.error(f"assign: {buffer.name} is not a Buffer")
    if not _is_tensor(value):
        value = full(buffer._shape, value)
    if value._shape != buffer._shape:
        raise b.error(f"assign: value of shape {shape_str(value._shape)} for buffer "
                      f"{buffer.name}{shape_str(buffer._shape)}")
    b.updates.append((buffer.name, value.name))
