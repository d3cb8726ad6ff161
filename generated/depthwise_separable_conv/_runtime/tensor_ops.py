"""The ops a ``Tensor`` has on the tape: one row per op, its numpy forward and
its vector-Jacobian product (VJP), and ``apply``, which runs a row and records
its backward.

A row's ``forward(*arrays, **attrs)`` returns the output array; its
``vjp(g, out, *arrays, **attrs)`` returns one gradient per operand (``None``
where an operand has none). Rows marked ``broadcasts`` follow numpy
broadcasting: ``apply`` sums each gradient back to its operand's shape
(un-broadcasting), so the rules are written as if the shapes were equal.
Nothing is recorded when no operand requires a gradient, or under ``no_grad``.

The functions below the table (``exp``, ``relu``, ``matmul``, ...) are the ops
as plain functions; ``Tensor`` has them as operators and methods.

Example::

    >>> from layerc.runtime.tensor import Tensor
    >>> from layerc.runtime.tensor_ops import relu
    >>> x = Tensor([[-1.0, 2.0]], requires_grad=True)
    >>> w = Tensor([[3.0], [4.0]], requires_grad=True)
    >>> relu(x @ w + 1.0).sum().backward()
    >>> x.grad.tolist(), w.grad.tolist()
    ([[3.0, 4.0]], [[-1.0], [2.0]])
"""
from __future__ import annotations

import builtins     # sum, max and abs below are the ops of the same names
from typing import Callable, NamedTuple

import numpy as np

from .tensor import Node, Tensor, grad_enabled


class Op(NamedTuple):
    forward: Callable
    vjp: Callable            # (g, out, *operands, **attrs) -> one gradient per operand
    broadcasts: bool = False


# ---------------------------------------------------------------- helpers of the rules

def _sigmoid(a):
    return np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)   # no overflow for large |a|


def _safe_log(a):
    """log a where a > 0, else 0: the exponent's gradient of ``a ** b`` where a
    real power of a non-positive base has no derivative in b (torch gives nan)."""
    return np.log(np.where(a > 0, a, 1))


def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


def _expand(g, a, axis, keepdims):
    """A reduction's output gradient, its reduced axes put back (size 1)."""
    return g if keepdims or a.ndim == 0 else np.expand_dims(g, _axes(axis, a.ndim))


def _reduce_vjp(scale):
    def vjp(g, y, a, axis=None, keepdims=False):
        g = _expand(g, a, axis, keepdims) * a.dtype.type(scale(a, axis))
        return (np.broadcast_to(g, a.shape).astype(a.dtype),)
    return vjp


def _count(a, axis) -> int:
    return int(np.prod([a.shape[k] for k in _axes(axis, a.ndim)], dtype=np.int64))


def _max_vjp(g, y, a, axis=None, keepdims=False):
    # ties share the gradient equally (torch's amax), so it is a valid subgradient
    mask = a == _expand(y, a, axis, keepdims)
    share = mask / mask.sum(axis=_axes(axis, a.ndim), keepdims=True)
    return ((_expand(g, a, axis, keepdims) * share).astype(a.dtype),)


def _matmul_vjp(g, y, a, b):
    """numpy ``matmul`` semantics: 1-D operands are a row (a) or a column (b);
    batch dimensions broadcast."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
    return ga, gb


def _getitem_vjp(g, y, a, item):
    full = np.zeros_like(a)
    np.add.at(full, item, g)      # a read repeated by an integer-array index adds up
    return (full,)


def _transpose_vjp(g, y, a, axes=None):
    inverse = None if axes is None else tuple(np.argsort(axes))
    return (np.transpose(g, inverse),)


def _in_range(a, low, high):
    inside = np.ones(a.shape, bool)
    if low is not None:
        inside &= a >= low
    if high is not None:
        inside &= a <= high
    return inside


# ---------------------------------------------------------------- the table: one row per op
# (math of each VJP in its comment; g is the output's gradient, y the output)

OPS = {
    "add": Op(np.add, lambda g, y, a, b: (g, g), True),                         # d(a+b) = da + db
    "sub": Op(np.subtract, lambda g, y, a, b: (g, -g), True),                   # d(a-b) = da - db
    "mul": Op(np.multiply, lambda g, y, a, b: (g * b, g * a), True),            # d(ab) = b da + a db
    "div": Op(np.divide, lambda g, y, a, b: (g / b, -g * y / b), True),         # d(a/b) = da/b - a/b^2 db
    "pow": Op(np.power, lambda g, y, a, b: (g * b * np.power(a, b - 1),         # d a^b = b a^(b-1) da
                                            g * y * _safe_log(a)), True),       #       + a^b log a db
    "pow_scalar": Op(lambda a, exponent: np.power(a, exponent),                  # a ** c, c a number:
                     lambda g, y, a, exponent: (g * exponent * np.power(a, exponent - 1),)),  # no log a
    "maximum": Op(np.maximum, lambda g, y, a, b: (g * (a >= b), g * (a < b)), True),
    "minimum": Op(np.minimum, lambda g, y, a, b: (g * (a <= b), g * (a > b)), True),
    "matmul": Op(np.matmul, _matmul_vjp),                                       # dA = G B^T, dB = A^T G
    "neg": Op(np.negative, lambda g, y, a: (-g,)),
    "exp": Op(np.exp, lambda g, y, a: (g * y,)),                                # d e^a = e^a da
    "log": Op(np.log, lambda g, y, a: (g / a,)),                                # d log a = da / a
    "sqrt": Op(np.sqrt, lambda g, y, a: (g / (2 * y),)),                        # d sqrt a = da / (2 sqrt a)
    "tanh": Op(np.tanh, lambda g, y, a: (g * (1 - y * y),)),                    # d tanh a = (1 - tanh^2) da
    "sigmoid": Op(_sigmoid, lambda g, y, a: (g * y * (1 - y),)),                # d s(a) = s (1 - s) da
    "relu": Op(lambda a: np.maximum(a, 0), lambda g, y, a: (g * (a > 0),)),     # 0 at the kink, as torch
    "abs": Op(np.abs, lambda g, y, a: (g * np.sign(a),)),                       # sign a (0 at 0, as torch)
    "clip": Op(lambda a, low=None, high=None: np.clip(a, low, high),            # 1 inside [low, high]
               lambda g, y, a, low=None, high=None: (g * _in_range(a, low, high),)),
    "sum": Op(lambda a, axis=None, keepdims=False: a.sum(axis, keepdims=keepdims),
              _reduce_vjp(lambda a, axis: 1)),                                  # g spread over the axes
    "mean": Op(lambda a, axis=None, keepdims=False: a.mean(axis, keepdims=keepdims),
               _reduce_vjp(lambda a, axis: 1 / builtins.max(_count(a, axis), 1))),       # g / count
    "max": Op(lambda a, axis=None, keepdims=False: a.max(axis, keepdims=keepdims), _max_vjp),
    "transpose": Op(lambda a, axes=None: np.transpose(a, axes), _transpose_vjp),
    "reshape": Op(lambda a, shape: np.reshape(a, shape), lambda g, y, a, shape: (g.reshape(a.shape),)),
    "getitem": Op(lambda a, item: np.array(a[item]), _getitem_vjp),             # a copy: a later edit of a
}                                                                               # does not change it


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing numpy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + k for k, d in enumerate(shape) if d == 1 and grad.shape[lead + k] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _constant(x, like) -> Tensor:
    """A Tensor, off the tape, for an operand that is a number or an array: it
    takes the dtype of a float Tensor operand ``like`` (float32 stays float32)."""
    array = np.asarray(x)
    if like is not None and like.dtype.kind == "f" and array.dtype != like.dtype and array.dtype.kind in "biuf":
        array = array.astype(like.dtype)
    return Tensor._wrap(array)


def _on_tape(tensors) -> bool:
    if not grad_enabled():
        return False
    for t in tensors:
        if t.requires_grad or t.node is not None:
            return True
    return False


def apply(name: str, *operands, **attrs) -> Tensor:
    """Run the op ``name`` on ``operands`` (Tensors, arrays or numbers) and
    record its backward when an operand is on the tape."""
    op = OPS[name]
    like = None
    for x in operands:
        if isinstance(x, Tensor):
            like = x
            break
    tensors = tuple(x if isinstance(x, Tensor) else _constant(x, like) for x in operands)
    arrays = tuple(t.data for t in tensors)
    out = Tensor._wrap(np.asarray(op.forward(*arrays, **attrs)))
    if _on_tape(tensors):
        out.node = Node(tensors, _backward(op, out.data, arrays, attrs), name)
    return out


def _backward(op: Op, out, arrays: tuple, attrs: dict):
    """The node's function: output gradient -> operand gradients, each of its operand's shape and dtype."""
    def backward(g):
        grads = op.vjp(g, out, *arrays, **attrs)
        if op.broadcasts:
            grads = tuple(unbroadcast(d, a.shape) for d, a in zip(grads, arrays))
        return tuple(None if d is None else np.asarray(d, a.dtype) for d, a in zip(grads, arrays))
    return backward


# ---------------------------------------------------------------- the ops as functions

def matmul(a, b) -> Tensor:
    """``a @ b`` (numpy ``matmul``: batched, 1-D operands as vectors)."""
    return apply("matmul", a, b)


def maximum(a, b) -> Tensor:
    """Elementwise maximum; at ties the gradient goes to ``a``."""
    return apply("maximum", a, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; at ties the gradient goes to ``a``."""
    return apply("minimum", a, b)


def exp(x) -> Tensor:
    return apply("exp", x)


def log(x) -> Tensor:
    return apply("log", x)


def sqrt(x) -> Tensor:
    return apply("sqrt", x)


def tanh(x) -> Tensor:
    return apply("tanh", x)


def sigmoid(x) -> Tensor:
    return apply("sigmoid", x)


def relu(x) -> Tensor:
    return apply("relu", x)


def abs(x) -> Tensor:    # noqa: A001 -- the numpy name, as np.abs
    return apply("abs", x)


def clip(x, low=None, high=None) -> Tensor:
    """``x`` limited to ``[low, high]`` (either may be None); gradient 1 inside, 0 outside."""
    return apply("clip", x, low=low, high=high)


def sum(x, axis=None, keepdims=False) -> Tensor:    # noqa: A001
    return apply("sum", x, axis=_axis(axis), keepdims=keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    return apply("mean", x, axis=_axis(axis), keepdims=keepdims)


def max(x, axis=None, keepdims=False) -> Tensor:    # noqa: A001
    """The largest element (over ``axis``); tied maxima share the gradient equally."""
    return apply("max", x, axis=_axis(axis), keepdims=keepdims)


def transpose(x, axes=None) -> Tensor:
    return apply("transpose", x, axes=None if axes is None else tuple(axes))


def reshape(x, *shape) -> Tensor:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return apply("reshape", x, shape=shape)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


__all__ = ["OPS", "Op", "apply", "unbroadcast", "matmul", "maximum", "minimum", "exp", "log", "sqrt", "tanh",
           "sigmoid", "relu", "abs", "clip", "sum", "mean", "max", "transpose", "reshape"]
