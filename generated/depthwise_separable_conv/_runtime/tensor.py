"""``Tensor``: a numpy array with a gradient and a place on the autograd tape.

Modules return Tensors. Each module call records a ``Node`` holding what its
compiled backward needs, and so does each Tensor op (operators, reductions,
``exp``..., the table in runtime/tensor_ops.py); ``loss.backward()`` runs the
nodes in reverse topological order, accumulating gradients where a tensor is
used twice. Nothing is recorded for tensors that need no gradient.

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
    input gradients (``None`` where an input needs none). A call with several
    outputs has one node they all point to (``Tensor.output_index`` says
    which): its ``backward`` takes a tuple with one gradient per output
    (``None`` for an output that received none) and runs once."""

    __slots__ = ("inputs", "backward", "name", "n_outputs")

    def __init__(self, inputs, backward, name, n_outputs: int = 1):
        self.inputs, self.backward, self.name = tuple(inputs), backward, name
        self.n_outputs = n_outputs


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
        """Read elements (numpy indexing); the result is a copy, on the tape."""
        if isinstance(item, Tensor):
            item = item.data
        return _ops.apply("getitem", self, item=item)

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

    # ------------------------------------------------------------ ops on the tape (runtime/tensor_ops.py)
    def __add__(self, other):
        return _ops.apply("add", self, other)

    def __radd__(self, other):
        return _ops.apply("add", other, self)

    def __sub__(self, other):
        return _ops.apply("sub", self, other)

    def __rsub__(self, other):
        return _ops.apply("sub", other, self)

    def __mul__(self, other):
        return _ops.apply("mul", self, other)

    def __rmul__(self, other):
        return _ops.apply("mul", other, self)

    def __truediv__(self, other):
        return _ops.apply("div", self, other)

    def __rtruediv__(self, other):
        return _ops.apply("div", other, self)

    def __pow__(self, exponent):
        if isinstance(exponent, (int, float)):     # the common x ** 2: no gradient for the exponent
            return _ops.apply("pow_scalar", self, exponent=exponent)
        return _ops.apply("pow", self, exponent)

    def __rpow__(self, base):
        return _ops.apply("pow", base, self)

    def __matmul__(self, other):
        return _ops.apply("matmul", self, other)

    def __rmatmul__(self, other):
        return _ops.apply("matmul", other, self)

    def __neg__(self):
        return _ops.apply("neg", self)

    @property
    def T(self) -> "Tensor":
        """The axes reversed (numpy's ``.T``)."""
        return _ops.apply("transpose", self)

    def transpose(self, *axes) -> "Tensor":
        """``x.transpose(1, 0, 2)`` or ``x.transpose((1, 0, 2))``; no axes reverses them."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return _ops.transpose(self, axes or None)

    def reshape(self, *shape) -> "Tensor":
        return _ops.reshape(self, *shape)

    def sum(self, axis=None, keepdims=False) -> "Tensor":
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False) -> "Tensor":
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False) -> "Tensor":
        """The largest element (over ``axis``); tied maxima share the gradient equally."""
        return _ops.max(self, axis, keepdims)

    def exp(self) -> "Tensor":
        return _ops.apply("exp", self)

    def log(self) -> "Tensor":
        return _ops.apply("log", self)

    def sqrt(self) -> "Tensor":
        return _ops.apply("sqrt", self)

    def tanh(self) -> "Tensor":
        return _ops.apply("tanh", self)

    def sigmoid(self) -> "Tensor":
        return _ops.apply("sigmoid", self)

    def relu(self) -> "Tensor":
        return _ops.apply("relu", self)

    def abs(self) -> "Tensor":
        return _ops.apply("abs", self)

    __abs__ = abs

    def clip(self, low=None, high=None) -> "Tensor":
        return _ops.clip(self, low, high)

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


def backpropagate(root: Tensor, grad: np.ndarray):
    """Reverse-mode sweep over the tape from ``root``: each node runs once,
    after every node that reads its outputs, with their gradients summed."""
    pending = {}         # (id(node), output index) -> gradient so far
    leaves = {}          # id(tensor) -> [tensor, gradient so far], for tensors off the tape

    def send(t, g):
        if t.node is not None:
            key = (id(t.node), t.output_index)
            pending[key] = g if key not in pending else pending[key] + g
        elif t.requires_grad:
            if id(t) in leaves:
                leaves[id(t)][1] = leaves[id(t)][1] + g
            else:
                leaves[id(t)] = [t, g]

    send(root, grad)
    for node in _nodes_consumers_first(root):
        grads = [pending.pop((id(node), k), None) for k in range(node.n_outputs)]
        if all(g is None for g in grads):
            continue
        results = node.backward(grads[0]) if node.n_outputs == 1 else node.backward(tuple(grads))
        for parent, pg in zip(node.inputs, results):
            if pg is not None and isinstance(parent, Tensor) and (parent.requires_grad or parent.node):
                send(parent, pg)
    for t, g in leaves.values():
        t.grad = g.copy() if t.grad is None else t.grad + g


def _nodes_consumers_first(root: Tensor) -> list:
    """The nodes ``root`` depends on, each before the nodes that made its inputs."""
    order, seen = [], set()
    stack = [(root.node, False)] if root.node is not None else []
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node.inputs:
            if isinstance(parent, Tensor) and parent.node is not None and id(parent.node) not in seen:
                stack.append((parent.node, False))
    return order[::-1]


def record_call(outputs, inputs, backward, name: str) -> None:
    """Put a call with one or several ``outputs`` on the tape (one node; see ``Node``)."""
    node = Node(inputs, backward, name, len(outputs))
    for k, out in enumerate(outputs):
        out.node, out.output_index = node, k


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


# the op table needs Tensor and Node, defined above; Tensor's methods reach it at call time
from . import tensor_ops as _ops  # noqa: E402
