"""Losses as layerc specs: ``mse_loss`` and ``cross_entropy``, compiled on first
use. Each returns a scalar ``Tensor`` recorded on the autograd tape, so
``loss.backward()`` reaches every module that produced its input.

Example::

    from layerc.losses import cross_entropy
    logits = model(x)                       # Tensor [N, C]
    loss = cross_entropy(logits, labels)    # labels: integer class indices [N]
    loss.backward()

The module forms (``MSELoss()``, ``CrossEntropyLoss()``) are the same, called
as ``loss_fn(pred, target)``; their ``backward()`` (default upstream gradient 1)
returns the gradient of the prediction.
"""
from __future__ import annotations

import numpy as np

from .compiler import ops
from .compiler.spec import Attr, Input
from .layers import layer

from .nn import _by_rank, _Stateless
from .runtime.tensor import Tensor

__all__ = ["mse_loss", "cross_entropy", "MSELoss", "CrossEntropyLoss", "CrossEntropySpec", "mse_spec"]


def _reduce(values, reduction):
    if reduction == "mean":
        return ops.mean(values)
    if reduction == "sum":
        return ops.sum(values)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _mse_make(dims):
    class Spec:
        """``mean((pred - target)**2)`` over every element."""
        pred = Input(*dims)
        target = Input(*dims, differentiable=False)
        reduction = Attr("mean")

        def forward(pred, target, reduction):
            diff = pred - target
            return _reduce(diff * diff, reduction)
    return Spec


mse_spec = _by_rank("MSELoss", _mse_make)


def cross_entropy_values(logits, target):
    """Per-row ``-log softmax(logits)[n, target[n]]``, stably: ``logsumexp(row) - row[target]``
    with the row maximum subtracted inside the log-sum-exp (a spec function)."""
    N, C = logits.shape
    lse = ops.logsumexp(logits, axis=1)
    picked = ops.compute((N,), lambda n: logits[n, target[n]], name="picked")
    return lse - picked


@layer
class CrossEntropySpec:
    """Cross entropy of logits ``[N, C]`` against integer class indices ``[N]``."""
    logits = Input("N", "C")
    target = Input("N", dtype="int64")
    reduction = Attr("mean")

    def forward(logits, target, reduction):
        return _reduce(cross_entropy_values(logits, target), reduction)


def _dtype_of(x):
    array = x.data if isinstance(x, Tensor) else np.asarray(x)
    return array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)


# the default upstream gradient of a loss, per dtype (read-only: C only reads it)
_UNIT: dict = {}


def _unit(dtype) -> np.ndarray:
    one = _UNIT.get(dtype)
    if one is None:
        one = np.ones((), dtype)
        one.flags.writeable = False
        _UNIT[dtype] = one
    return one


class _Loss(_Stateless):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        object.__setattr__(self, "_spec_bindings", {"reduction": reduction})

    def backward(self, grad_output=None):
        """Gradient of the prediction (upstream gradient 1 by default)."""
        if self._active is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        if grad_output is None:
            grad_output = _unit(self._active.dtype)
        return self._active.backward(grad_output)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean (or sum) of squared differences; ``target`` has ``pred``'s shape and
    gets no gradient."""

    def _select(self, inputs):
        return mse_spec(np.ndim(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])), {}

    def forward(self, pred, target):
        dtype = _dtype_of(pred)
        target = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=dtype)
        pred_shape = np.shape(pred.data if isinstance(pred, Tensor) else pred)
        if target.shape != pred_shape:
            raise ValueError(f"MSELoss: target of shape {target.shape} for a prediction of shape {pred_shape}")
        return super().forward(pred, target)


class CrossEntropyLoss(_Loss):
    """Cross entropy of logits ``[N, C]`` with integer class targets ``[N]``
    (``torch.nn.functional.cross_entropy``); the log-sum-exp subtracts the row
    maximum, so large logits do not overflow."""

    def _select(self, inputs):
        return CrossEntropySpec, {}

    def forward(self, logits, target):
        shape = np.shape(logits.data if isinstance(logits, Tensor) else logits)
        target = np.asarray(target.data if isinstance(target, Tensor) else target)
        if len(shape) != 2:
            raise ValueError(f"CrossEntropyLoss: logits must be [N, C], got shape {shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss: targets must be integer class indices, got dtype {target.dtype}")
        if target.shape != shape[:1]:
            raise ValueError(f"CrossEntropyLoss: targets of shape {target.shape} for logits of shape {shape}")
        return super().forward(logits, target.astype(np.int64, copy=False))


_functional: dict = {}


def _shared(cls, reduction):
    key = (cls, reduction)
    if key not in _functional:
        _functional[key] = cls(reduction)
    return _functional[key]


def mse_loss(pred, target, reduction: str = "mean") -> Tensor:
    """Mean squared error as a scalar Tensor on the tape."""
    return _shared(MSELoss, reduction)(pred, target)


def cross_entropy(logits, target, reduction: str = "mean") -> Tensor:
    """Cross entropy of logits ``[N, C]`` against integer targets ``[N]``, a scalar Tensor on the tape."""
    return _shared(CrossEntropyLoss, reduction)(logits, target)

