"""``Tensor``: a numpy array with a gradient and a place on the autograd tape.

Modules return Tensors. Each module call records a ``Node`` holding what its
compiled backward needs; ``loss.backward()`` walks the nodes in reverse
topological order, accumulating gradients where a tensor is used twice.

Example::

    >>> x = Tensor([1.0, -2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([ 2., -4.], dtype=float32)
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from .random import generator

class _GradState(threading.local):
    enabled = True          # each thread starts with recording on


_state = _GradState()


def grad_enabled() -> bool:
    # an attribute every thread has (a class default): ``getattr`` with a
    # default raised and caught AttributeError, which cost layer calls 10 us
    return _state.enabled


@contextlib.contextmanager
def no_grad():
    """Inside this block module calls record nothing on the tape (inference)."""
    previous = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Node:
    """One recorded call: its inputs and a function from output gradients to
    input gradients (``None`` where an input needs none)."""

    __slots__ = ("inputs", "backward", "name")

    def __init__(self, inputs, backward, name):
        self.inputs, self.backward, self.name = tuple(inputs), backward, name


class Tensor:
    """A numpy-backed tensor. ``.numpy()`` is the array itself (a writable view
    for parameters, so weights can be edited in place)."""

    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype.kind in "biu" and requires_grad:
            raise TypeError("an integer Tensor cannot require a gradient")
        if dtype is None and array.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
            array = array.astype(np.float32)   # Python numbers and lists default to float32
        self.data = array
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.node: Node | None = None
        self.output_index = 0

    # ------------------------------------------------------------ construction
    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        """A Tensor holding ``array`` itself, off the tape: what ``Tensor(array)``
        makes of a float ndarray, without its conversions (for arrays the runtime
        allocated, whose dtype is already right)."""
        t = object.__new__(cls)
        t.data = array
        t.grad = None
        t.requires_grad = False
        t.node = None
        t.output_index = 0
        return t

    @classmethod
    def randn(cls, *shape, dtype=np.float32, requires_grad=False):
        return cls(generator().standard_normal(shape).astype(dtype), requires_grad)

    @classmethod
    def zeros(cls, *shape, dtype=np.float32, requires_grad=False):
        return cls(np.zeros(shape, dtype), requires_grad)

    @classmethod
    def ones(cls, *shape, dtype=np.float32, requires_grad=False):
        return cls(np.ones(shape, dtype), requires_grad)

    @classmethod
    def zeros_like(cls, other, requires_grad=False):
        return cls(np.zeros_like(_array(other)), requires_grad)

    @classmethod
    def ones_like(cls, other, requires_grad=False):
        return cls(np.ones_like(_array(other)), requires_grad)

    # ------------------------------------------------------------ array protocol
    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def __getitem__(self, item):
        """Read elements (numpy indexing); the result is a new Tensor on the tape."""
        if isinstance(item, Tensor):
            item = item.data
        out = Tensor(np.array(self.data[item]))   # a copy: later in-place updates don't change it
        if tracks_grad(self):
            def backward(g):
                full = np.zeros_like(self.data)
                np.add.at(full, item, g)
                return (full,)
            out.node = Node((self,), backward, "index")
        return out

    def __bool__(self):
        return bool(self.data)

    # comparisons read values: they return numpy booleans, not Tensors on the tape
    def __eq__(self, other):
        return self.data == _array(other)

    def __ne__(self, other):
        return self.data != _array(other)

    def __lt__(self, other):
        return self.data < _array(other)

    def __le__(self, other):
        return self.data <= _array(other)

    def __gt__(self, other):
        return self.data > _array(other)

    def __ge__(self, other):
        return self.data >= _array(other)

    __hash__ = object.__hash__          # identity, as the tape and optimizers key tensors by it

    def item(self):
        return self.data.item()

    def __float__(self):
        return float(self.data.item())

    def __int__(self):
        return int(self.data.item())

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{grad})"

    def detach(self) -> "Tensor":
        """The same data, off the tape."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError("an integer Tensor cannot require a gradient")
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------ a few ops on the tape
    def __add__(self, other):
        return _record_binary(self, other, np.add, lambda g, a, b: (g, g), "add")

    __radd__ = __add__

    def __mul__(self, other):
        return _record_binary(self, other, np.multiply, lambda g, a, b: (g * b, g * a), "mul")

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-_as_tensor(other, self.dtype))

    def __rsub__(self, other):
        return _as_tensor(other, self.dtype) + (-self)

    def __truediv__(self, other):
        return _record_binary(self, other, np.divide, lambda g, a, b: (g / b, -g * a / (b * b)), "div")

    def __rtruediv__(self, other):
        return _as_tensor(other, self.dtype) / self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("Tensor ** Tensor is not on the tape; use a number as the exponent")
        e = self.dtype.type(exponent)
        out = Tensor(np.power(self.data, e))
        if tracks_grad(self):
            out.node = Node((self,), lambda g: (g * e * np.power(self.data, e - 1),), "pow")
        return out

    def sum(self, axis=None, keepdims=False):
        return _record_reduction(self, axis, keepdims, 1.0, "sum")

    def mean(self, axis=None, keepdims=False):
        count = self.data.size if axis is None else np.prod([self.data.shape[a] for a in np.atleast_1d(axis)])
        return _record_reduction(self, axis, keepdims, 1.0 / max(int(count), 1), "mean")

    # ------------------------------------------------------------ autograd
    def backward(self, grad=None):
        """Backpropagate from this tensor: ``grad`` defaults to ones for a scalar."""
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar, got shape {self.shape}; "
                                 "pass grad=")
            grad = np.ones_like(self.data)
        if self.node is None and not self.requires_grad:
            raise RuntimeError("backward: this tensor is not on the tape (computed under no_grad, "
                               "or from inputs and modules that need no gradient)")
        grad = np.asarray(_array(grad), dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        backpropagate(self, grad)


def _array(x):
    return x.data if isinstance(x, Tensor) else x


def _as_tensor(x, dtype) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=dtype))


def tracks_grad(*tensors) -> bool:
    return grad_enabled() and any(isinstance(t, Tensor) and (t.requires_grad or t.node) for t in tensors)


def _unbroadcast(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for k, d in enumerate(shape):
        if d == 1 and grad.shape[k] != 1:
            grad = grad.sum(axis=k, keepdims=True)
    return grad


def _record_binary(a, b, fn, grads, name):
    a, b = _as_tensor(a, None), _as_tensor(b, a.dtype if isinstance(a, Tensor) else None)
    out = Tensor(fn(a.data, b.data))
    if tracks_grad(a, b):
        def backward(g):
            ga, gb = grads(g, a.data, b.data)
            return _unbroadcast(ga, a.shape), _unbroadcast(gb, b.shape)
        out.node = Node((a, b), backward, name)
    return out


def _record_reduction(x, axis, keepdims, scale, name):
    out = Tensor(np.asarray(x.data.sum(axis=axis, keepdims=keepdims) * x.dtype.type(scale), dtype=x.dtype))
    if tracks_grad(x):
        def backward(g):
            g = g if keepdims or axis is None else np.expand_dims(g, axis)
            return (np.broadcast_to(g * x.dtype.type(scale), x.shape).copy(),)
        out.node = Node((x,), backward, name)
    return out


def backpropagate(root: Tensor, grad: np.ndarray):
    """Reverse-mode sweep over the tape from ``root``."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t.node is not None:
            for parent in t.node.inputs:
                if isinstance(parent, Tensor) and id(parent) not in seen:
                    stack.append((parent, False))
    grads = {id(root): grad}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t.node is None:
            if t.requires_grad:
                t.grad = g.copy() if t.grad is None else t.grad + g
            continue
        for parent, pg in zip(t.node.inputs, t.node.backward(g)):
            if pg is None or not isinstance(parent, Tensor) or not (parent.requires_grad or parent.node):
                continue
            grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg


def backpropagate_outputs(outputs: tuple, grads: tuple) -> None:
    """One sweep of the tape from several outputs at once, each with its
    gradient (``None`` for an output that received none)."""
    pairs = [(o, np.asarray(g).astype(o.dtype, copy=False)) for o, g in zip(outputs, grads)
             if g is not None and isinstance(o, Tensor) and (o.node is not None or o.requires_grad)]
    if not pairs:
        return
    root = Tensor._wrap(np.zeros(1, pairs[0][0].dtype))
    root.node = Node([o for o, _ in pairs], lambda _: [g for _, g in pairs], "outputs")
    backpropagate(root, root.data)
