"""Losses with torch's names, arguments and semantics, as layerc specs compiled on
first use. Each returns a ``Tensor`` recorded on the autograd tape, so
``loss.backward()`` reaches every module that produced its input. A class
loss with fewer classes than a short row (``SHORT_CLASSES``, 16) is built
for its class count (its first 8 counts), so that its rows run in SIMD lanes.

====================  ===============================  ==========================================
module                functional                       input, target
====================  ===============================  ==========================================
``MSELoss``           ``mse_loss``                     any shape; target of the input's shape
``L1Loss``            ``l1_loss``                      same
``HuberLoss``         ``huber_loss(delta=1.0)``        same
``SmoothL1Loss``      ``smooth_l1_loss(beta=1.0)``     same
``BCELoss``           ``binary_cross_entropy``         probabilities; ``weight`` broadcasts
``BCEWithLogitsLoss`` ``binary_cross_entropy_with_     logits; ``weight``, ``pos_weight``
                      logits``                         broadcast
``KLDivLoss``         ``kl_div(log_target=False)``     log-probabilities; reduction "batchmean" too
``NLLLoss``           ``nll_loss``                     log-probabilities ``[N, C, d1, ...]`` or
                                                       ``[C]``; integer classes ``[N, d1, ...]``
``CrossEntropyLoss``  ``cross_entropy``                logits as above; integer classes, or
                                                       probabilities of the input's shape
====================  ===============================  ==========================================

``reduction`` is "mean", "sum" or "none". The class losses take ``weight`` (one
per class: the mean divides by the sum of the targets' weights) and
``ignore_index`` (default -100: those rows count for nothing, in the sum and in
the mean's divisor; with every row ignored the mean is nan, as torch's);
cross entropy also takes ``label_smoothing``. Unlike torch, a target of another
shape than the input's is refused rather than broadcast, and target, weight and
pos_weight are constants (they get no gradient).

Example::

    from layerc.losses import cross_entropy
    logits = model(x)                       # Tensor [N, C]
    loss = cross_entropy(logits, labels)    # labels: integer class indices [N]
    loss.backward()

The module forms are the same, called as ``loss_fn(input, target)``; their
``backward()`` (default upstream gradient 1) returns the gradient of the input.
"""
from __future__ import annotations

import numpy as np

from .loss_specs import CLASS_INDEX, PLAIN, POINTWISE, PROBABILITIES, CrossEntropySpec, class_layout, mse_spec
from .nn.base import _Stateless
from .runtime.tensor import Tensor

# fewer classes than this build for their count: the planner's SHORT_REDUCTION
# (compiler/schedule.py, not imported here: loading a cached layer imports no
# compiler pass), the row length below which a length known only at run time
# runs its rows element by element; tests/test_losses.py holds the two equal
SHORT_CLASSES = 16

__all__ = ["MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss",
           "NLLLoss", "CrossEntropyLoss", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "nll_loss",
           "cross_entropy", "CrossEntropySpec", "mse_spec"]


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _dtype_of(x):
    array = _array(x)
    return array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _float_array(loss, name, value, shape, dtype, broadcast=False) -> np.ndarray:
    """``value`` as a C-contiguous ``dtype`` array of ``shape`` (broadcast to it if allowed)."""
    array = _array(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{loss}: {name} must hold real numbers, got dtype {array.dtype}")
    if array.shape != shape:
        if not broadcast:
            raise ValueError(f"{loss}: {name} of shape {array.shape} for an input of shape {shape}; "
                             f"expected shape {shape}")
        try:
            array = np.broadcast_to(array, shape)
        except ValueError:
            raise ValueError(f"{loss}: {name} of shape {array.shape} does not broadcast to the input's "
                             f"shape {shape}") from None
    return np.ascontiguousarray(array, dtype=dtype)


def _optional_array(loss, name, value):
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{loss}: {name} must be an array, got {value!r} (pass reduction= by keyword)")
    return np.array(_array(value))


def _check(ok: bool, loss: str, name: str, expected: str, value):
    if not ok:
        raise ValueError(f"{loss}: {name} must be {expected}, got {value!r}")


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
    """A loss module: ``reduction`` and the loss's options are fixed when it is made;
    the compiled variant follows the input's dtype."""

    _reductions = ("mean", "sum", "none")

    def __init__(self, reduction: str = "mean", **options):
        super().__init__()
        _check(reduction in self._reductions, type(self).__name__, "reduction",
               " or ".join(map(repr, self._reductions)), reduction)
        self.reduction = reduction
        self._options = options
        object.__setattr__(self, "_spec_bindings",
                           {"reduction": reduction, "settings": tuple(sorted(options.items()))})

    def _run(self, spec, input, *others, **sizes):
        module = self.compiled_module(spec, dtype=_dtype_of(input), **sizes)
        object.__setattr__(self, "_active", module)
        return module.forward(input, *others)

    def backward(self, grad_output=None):
        """Gradient of the input (upstream gradient 1 by default; reduction "none" needs one
        of the loss's shape)."""
        name = type(self).__name__
        if self._active is None:
            raise RuntimeError(f"{name}: backward called before forward")
        if grad_output is None:
            if self.reduction == "none":
                raise ValueError(f"{name}: backward() of reduction='none' needs grad_output of the loss's shape")
            grad_output = _unit(self._active.dtype)
        return self._active.backward(grad_output)

    def extra_repr(self):
        return ", ".join([f"reduction={self.reduction!r}"] + [f"{k}={v!r}" for k, v in self._options.items()])


class _PointwiseLoss(_Loss):
    """``reduce(value(input, target))``, elementwise; ``target`` has the input's shape."""

    _specs = None

    def forward(self, input, target):
        return self._pointwise(input, target)

    def _pointwise(self, input, target, **tensors):
        loss, shape, dtype = type(self).__name__, np.shape(_array(input)), _dtype_of(input)
        given = {name: t for name, t in tensors.items() if t is not None}
        others = [_float_array(loss, "target", target, shape, dtype)]
        others += [_float_array(loss, name, t, shape, dtype, broadcast=True) for name, t in given.items()]
        return self._run(type(self)._specs(len(shape), tuple(given)), input, *others)


class MSELoss(_PointwiseLoss):
    """Mean (or sum) of squared differences (``torch.nn.MSELoss``)."""
    _specs = staticmethod(POINTWISE["MSELoss"])


class L1Loss(_PointwiseLoss):
    """Mean (or sum) of absolute differences (``torch.nn.L1Loss``)."""
    _specs = staticmethod(POINTWISE["L1Loss"])


class HuberLoss(_PointwiseLoss):
    """Quadratic below ``delta``, linear above (``torch.nn.HuberLoss``)."""
    _specs = staticmethod(POINTWISE["HuberLoss"])

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        _check(delta > 0, "HuberLoss", "delta", "> 0", delta)
        super().__init__(reduction, delta=float(delta))


class SmoothL1Loss(_PointwiseLoss):
    """Huber loss over ``beta``: quadratic below ``beta``, ``|d| - beta / 2`` above; L1 at
    ``beta=0`` (``torch.nn.SmoothL1Loss``)."""
    _specs = staticmethod(POINTWISE["SmoothL1Loss"])

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        _check(beta >= 0, "SmoothL1Loss", "beta", ">= 0", beta)
        super().__init__(reduction, beta=float(beta))


class KLDivLoss(_PointwiseLoss):
    """KL divergence of log-probabilities ``input`` from ``target`` (``torch.nn.KLDivLoss``);
    reduction "batchmean" divides the sum by the batch size (the true KL per sample)."""
    _specs = staticmethod(POINTWISE["KLDivLoss"])
    _reductions = ("mean", "sum", "none", "batchmean")

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction, log_target=bool(log_target))


class BCELoss(_PointwiseLoss):
    """Binary cross entropy of probabilities (``torch.nn.BCELoss``): each log is clamped
    at -100 and the gradient is torch's; ``weight`` scales the elements (it broadcasts)."""
    _specs = staticmethod(POINTWISE["BCELoss"])

    def __init__(self, weight=None, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = _optional_array("BCELoss", "weight", weight)

    def forward(self, input, target):
        return self._pointwise(input, target, weight=self.weight)


class BCEWithLogitsLoss(_PointwiseLoss):
    """Binary cross entropy of logits, stable for any logit (``torch.nn.BCEWithLogitsLoss``);
    ``pos_weight`` scales the positive term, ``weight`` the elements (both broadcast)."""
    _specs = staticmethod(POINTWISE["BCEWithLogitsLoss"])

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight = _optional_array("BCEWithLogitsLoss", "weight", weight)
        self.pos_weight = _optional_array("BCEWithLogitsLoss", "pos_weight", pos_weight)

    def forward(self, input, target):
        return self._pointwise(input, target, weight=self.weight, pos_weight=self.pos_weight)


class _ClassIndexLoss(_Loss):
    """A loss of an input ``[C]`` or ``[N, C, d1, ...]`` at integer classes ``[]`` or
    ``[N, d1, ...]``, with class weights and an ignored class index."""

    _log_probs = True

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean", **options):
        name = type(self).__name__
        _check(isinstance(ignore_index, (int, np.integer)) and not isinstance(ignore_index, bool),
               name, "ignore_index", "an integer", ignore_index)
        super().__init__(reduction, **options)
        self.weight = _optional_array(name, "weight", weight)
        self.ignore_index = int(ignore_index)

    def forward(self, input, target):
        return self._compute(input, target, self.weight)

    def _run(self, spec, input, *others):
        # fewer classes than a short row: built for the count, so that the rows
        # run in SIMD lanes (a row of a length known only at run time runs its
        # elements one by one: CrossEntropyLoss [4096, 10] 270 -> 109 us)
        shape = np.shape(_array(input))
        classes = shape[class_layout(len(shape))[0]]
        sizes = self._per_size({"C": classes}) if classes < SHORT_CLASSES else {}
        return super()._run(spec, input, *others, **sizes)

    def _compute(self, input, target, weight):
        shape, array = self._input_shape(input), _array(target)
        if self._plain(shape, weight):
            try:
                return self._run(PLAIN[self._log_probs], input, _class_targets(type(self).__name__, array, shape))
            except IndexError:
                # the plain spec's index check finds ignored rows at no cost to the plain case
                if not np.any(array == self.ignore_index):
                    raise
        return self._class_indices(input, array, weight)

    def _plain(self, shape, weight) -> bool:
        """Whether the plain spec fits: ``[N, C]``, no weight, no smoothing, no ignored
        class it could read."""
        return (len(shape) == 2 and weight is None and not self._options.get("label_smoothing")
                and not 0 <= self.ignore_index < shape[1])

    def _class_indices(self, input, target, weight):
        loss, shape, dtype = type(self).__name__, self._input_shape(input), _dtype_of(input)
        axis, _, _, _ = class_layout(len(shape))
        target = _class_targets(loss, target, shape)
        valid = target != self.ignore_index
        target = target if valid.all() else np.where(valid, target, 0)
        rows = shape[:axis] + (1,) + shape[axis + 1:]
        return self._run(CLASS_INDEX[self._log_probs](len(shape)), input, target.reshape(rows),
                         _class_weights(loss, weight, shape, dtype), valid.astype(dtype).reshape(rows))

    def _input_shape(self, input):
        shape = np.shape(_array(input))
        _check(1 <= len(shape) <= 6, type(self).__name__, "input", "[C] or [N, C, d1, ...] (rank 1..6): a shape",
               shape)
        return shape


def _index_shape(shape):
    return shape[:1] + shape[2:] if len(shape) > 1 else ()


def _class_targets(loss, target, shape) -> np.ndarray:
    array = _array(target)
    expected = _index_shape(shape)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{loss}: target must hold integer class indices of shape {expected}, "
                        f"got dtype {array.dtype}")
    if array.shape != expected:
        raise ValueError(f"{loss}: target of shape {array.shape} for an input of shape {shape}; "
                         f"expected class indices of shape {expected}")
    return array.astype(np.int64, copy=False)


def _class_weights(loss, weight, shape, dtype) -> np.ndarray:
    """The class weights ``[C]`` (ones by default; the spec lays them along the class axis)."""
    axis, _, _, _ = class_layout(len(shape))
    if weight is None:
        return np.ones(shape[axis], dtype)
    array = _array(weight)
    if array.shape != (shape[axis],) or array.dtype.kind not in "fiu":
        raise ValueError(f"{loss}: weight must hold one real weight per class, shape ({shape[axis]},); "
                         f"got shape {array.shape} and dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


class NLLLoss(_ClassIndexLoss):
    """Negative log-likelihood of log-probabilities (``torch.nn.NLLLoss``): per row
    ``-weight[t] * input[n, t]``; rows whose target is ``ignore_index`` count for
    nothing, and the mean divides by the sum of the other rows' weights."""


class CrossEntropyLoss(_ClassIndexLoss):
    """Cross entropy of logits (``torch.nn.CrossEntropyLoss``): integer class targets as
    ``NLLLoss`` of ``log_softmax(input)``, or class probabilities of the input's shape;
    ``label_smoothing`` mixes the target with the uniform distribution. The log-sum-exp
    subtracts the row maximum, so large logits do not overflow."""

    _log_probs = False

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        _check(0.0 <= label_smoothing <= 1.0, "CrossEntropyLoss", "label_smoothing", "in [0, 1]", label_smoothing)
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=float(label_smoothing))

    def _compute(self, input, target, weight):
        shape = self._input_shape(input)
        array = _array(target)
        if array.dtype.kind == "f":
            return self._probabilities(input, array, weight, shape)
        return super()._compute(input, array, weight)

    def _probabilities(self, input, target, weight, shape):
        if target.shape != shape:
            kind = TypeError if target.shape == _index_shape(shape) else ValueError
            raise kind(f"CrossEntropyLoss: target of shape {target.shape} and dtype {target.dtype} for an input "
                       f"of shape {shape}; expected integer class indices of shape {_index_shape(shape)} "
                       f"or float class probabilities of shape {shape}")
        _check(self.ignore_index < 0, "CrossEntropyLoss", "ignore_index",
               "negative with probability targets (it selects class indices)", self.ignore_index)
        dtype = _dtype_of(input)
        return self._run(PROBABILITIES(len(shape)), input, np.ascontiguousarray(target, dtype=dtype),
                         _class_weights("CrossEntropyLoss", weight, shape, dtype))


# ---------------------------------------------------------------- functional forms

_functional: dict = {}


def _shared(cls, **options):
    """One module per loss and options, for the functional forms (it keeps the compiled variants)."""
    key = (cls, tuple(sorted(options.items())))
    module = _functional.get(key)
    if module is None:
        module = _functional.setdefault(key, cls(**options))
    return module


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error (``torch.nn.functional.mse_loss``)."""
    return _shared(MSELoss, reduction=reduction)(input, target)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error (``torch.nn.functional.l1_loss``)."""
    return _shared(L1Loss, reduction=reduction)(input, target)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss (``torch.nn.functional.huber_loss``)."""
    return _shared(HuberLoss, reduction=reduction, delta=delta)(input, target)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1 loss (``torch.nn.functional.smooth_l1_loss``)."""
    return _shared(SmoothL1Loss, reduction=reduction, beta=beta)(input, target)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL divergence of log-probabilities ``input`` from ``target`` (``torch.nn.functional.kl_div``)."""
    return _shared(KLDivLoss, reduction=reduction, log_target=log_target)(input, target)


def binary_cross_entropy(input, target, weight=None, *, reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities (``torch.nn.functional.binary_cross_entropy``)."""
    return _shared(BCELoss, reduction=reduction)._pointwise(input, target, weight=weight)


def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Binary cross entropy of logits (``torch.nn.functional.binary_cross_entropy_with_logits``)."""
    return _shared(BCEWithLogitsLoss, reduction=reduction)._pointwise(input, target, weight=weight,
                                                                     pos_weight=pos_weight)


def nll_loss(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (``torch.nn.functional.nll_loss``)."""
    return _shared(NLLLoss, ignore_index=ignore_index, reduction=reduction)._compute(input, target, weight)


def cross_entropy(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``[N, C, ...]`` against integer classes ``[N, ...]`` or class
    probabilities (``torch.nn.functional.cross_entropy``), a Tensor on the tape."""
    return _shared(CrossEntropyLoss, ignore_index=ignore_index, reduction=reduction,
                   label_smoothing=label_smoothing)._compute(input, target, weight)
