"""The specs of the built-in losses (``layerc.losses`` holds their modules and
functional forms): the losses as spec functions of traced tensors, and spec
classes built from them. Inputs are declared ``[N, ...]`` (``[N, C, ...]`` for
the class losses, plus an unbatched ``[C]``), so one spec serves every rank
(one per set of extra inputs).

Example::

    >>> from layerc.loss_specs import POINTWISE
    >>> POINTWISE["HuberLoss"](2)                    # doctest: +SKIP
    <layer spec HuberLoss>
"""
from __future__ import annotations

import inspect
import math

from .compiler import ops
from .compiler.spec import Attr, Input
from .layers import layer

# ---------------------------------------------------------------- spec functions
_REDUCE = {
    "mean": ops.mean,
    "sum": ops.sum,
    "none": lambda values: values,
    "batchmean": lambda values: ops.sum(values) / values.shape[0],
}

# the gradient of the values from the upstream gradient of their reduction
_REDUCE_GRAD = {
    "mean": lambda grad_output, grad: grad_output * grad / math.prod(grad.shape),
    "sum": lambda grad_output, grad: grad_output * grad,
    "none": lambda grad_output, grad: grad_output * grad,
}


def squared_error(input, target):
    """``(input - target)**2``."""
    diff = input - target
    return diff * diff


def absolute_error(input, target):
    """``|input - target|`` (its gradient at 0 is 0, as torch's)."""
    return ops.abs(input - target)


def huber(input, target, delta=1.0):
    """``d**2 / 2`` where ``|d| < delta``, else ``delta * (|d| - delta / 2)``, for ``d = input - target``."""
    diff = input - target
    size = ops.abs(diff)
    return ops.where(size < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))


def smooth_l1(input, target, beta=1.0):
    """``huber / beta``; ``|input - target|`` when ``beta`` is 0 (torch's smooth_l1_loss)."""
    return huber(input, target, beta) * (1.0 / beta) if beta else absolute_error(input, target)


def kl_divergence(input, target, log_target=False):
    """``target * (log(target) - input)`` for log-probabilities ``input``, 0 where the target
    is 0 (torch's xlogy); ``exp(target) * (target - input)`` for a target in log space."""
    if log_target:
        return ops.exp(target) * (target - input)
    return ops.where(ops.equal(target, 0.0), 0.0, target * ops.log(target)) - target * input


def _clamped_log(x):
    # torch clamps the logs at -100: a probability of exactly 0 or 1 costs 100, not inf
    return ops.maximum(ops.log(x), -100.0)


def binary_cross_entropy_values(input, target):
    """``-(target * log(input) + (1 - target) * log(1 - input))``, each log at least -100."""
    return -(target * _clamped_log(input) + (1.0 - target) * _clamped_log(1.0 - input))


def binary_cross_entropy_grad(input, target):
    """torch's gradient of it, ``(input - target) / max(input * (1 - input), 1e-12)``: finite at
    probabilities 0 and 1, where the clamped logs' own derivative is not."""
    return (input - target) / ops.maximum((1.0 - input) * input, 1e-12)


def bce_with_logits_values(input, target, pos_weight=None):
    """``(1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)``; ``softplus(-x)`` is
    ``max(-x, 0) + log(1 + exp(-|x|))``, so no exponential overflows (and the maximum,
    splitting its gradient at 0, gives softplus's slope 1/2 there)."""
    softplus = ops.maximum(-input, 0.0) + ops.log(1.0 + ops.exp(-ops.abs(input)))
    scale = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * target
    return (1.0 - target) * input + scale * softplus


def class_index_loss(input, target, weight, valid, axis, log_probs, label_smoothing=0.0):
    """Per row, ``weight[t] * -log p[t]`` (mixed by ``label_smoothing`` with the weighted sum
    of ``-log p`` over the classes, over C), zero where ``valid`` is 0; and each row's
    weight ``weight[t] * valid``. ``input`` holds logits, or log-probabilities (``log_probs``)."""
    lse = None if log_probs else ops.logsumexp(input, axis, keepdims=True)
    picked = ops.take_along_axis(input, target, axis)
    row_weight = ops.take_along_axis(weight, target, axis) * valid
    loss = row_weight * (-picked if log_probs else lse - picked)
    if label_smoothing:
        log_p = input if log_probs else input - lse
        smooth = -ops.sum(weight * log_p, axis=axis, keepdims=True) * valid
        loss = loss * (1.0 - label_smoothing) + smooth * label_smoothing / input.shape[axis]
    return loss, row_weight


def weighted_mean(loss, row_weight):
    """``sum(loss) / sum(row_weight)``. Over no rows (every target ignored) the loss is nan
    and its gradient zero, as torch's: the divisor is then 1, and ``total / total - 1`` (0,
    or nan when the total is 0) adds the nan where no gradient flows."""
    total = ops.sum(row_weight)
    return ops.sum(loss) / ops.where(ops.equal(total, 0.0), 1.0, total) + (total / total - 1.0)


def soft_cross_entropy(input, target, weight, axis, label_smoothing=0.0):
    """Per row, ``-sum_c weight[c] * target[c] * log_softmax(input)[c]``; label smoothing
    mixes the target with the uniform ``1 / C``."""
    weighted = weight * (input - ops.logsumexp(input, axis, keepdims=True))
    loss = -ops.sum(target * weighted, axis=axis)
    if label_smoothing:
        loss = loss * (1.0 - label_smoothing) - ops.sum(weighted, axis=axis) * label_smoothing / input.shape[axis]
    return loss


def cross_entropy_values(logits, target):
    """Per-row ``-log softmax(logits)[n, target[n]]``, stably: ``logsumexp(row) - row[target]``
    with the row maximum subtracted inside the log-sum-exp (a spec function)."""
    N, C = logits.shape
    lse = ops.logsumexp(logits, axis=1)
    picked = ops.compute((N,), lambda n: logits[n, target[n]], name="picked")
    return lse - picked


# ---------------------------------------------------------------- specs


def _taking(fn, names):
    # a generated spec's forward takes its declarations by keyword; the signature names them,
    # as a written spec's parameters would
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names])
    return fn


def _plain_spec(name: str, doc: str, scores: str, values):
    """The spec of ``reduce(values(scores, target))`` on scores ``[N, C]`` (named
    ``scores``) at integer class indices ``[N]``."""
    def forward(reduction, target, **given):
        return _REDUCE[reduction](values(given[scores], target))
    declared = {scores: Input("N", "C"), "target": Input("N", dtype="int64"), "reduction": Attr("mean")}
    return layer(type(name, (), {"__doc__": doc, **declared, "forward": _taking(forward, list(declared))}))


CrossEntropySpec = _plain_spec("CrossEntropySpec", "Cross entropy of logits ``[N, C]`` against integer class "
                               "indices ``[N]``.", "logits", cross_entropy_values)
NLLSpec = _plain_spec("NLLSpec", "Negative log-likelihood of log-probabilities ``[N, C]`` at integer class "
                      "indices ``[N]``.", "log_probs",
                      lambda log_probs, target: -ops.compute(
                          (log_probs.shape[0],), lambda n: log_probs[n, target[n]], name="picked"))

# the spec of a plain class-index loss (no weight, smoothing or ignorable class), by ``log_probs``
PLAIN = {False: CrossEntropySpec, True: NLLSpec}


def _pointwise_spec(name, value, extras, gradient, dims):
    """The spec of ``reduce(weight * value(input, target, ...))`` on ``dims``."""
    declared = {"input": Input(*dims), "target": Input(*dims, differentiable=False),
                **{extra: Input(*dims, differentiable=False) for extra in extras},
                "reduction": Attr("mean"), "settings": Attr(())}

    def forward(input, target, reduction, settings, weight=None, **tensors):
        loss = value(input, target, **tensors, **dict(settings))
        return _REDUCE[reduction](loss if weight is None else weight * loss)

    def backward(grad_output, input, target, reduction, weight=None, **unused):
        grad = gradient(input, target)
        return _REDUCE_GRAD[reduction](grad_output, grad if weight is None else weight * grad)

    methods = {"forward": _taking(forward, declared)}
    if gradient is not None:
        methods["backward"] = _taking(backward, ("grad_output", *declared))
    suffix = "".join(extra.title().replace("_", "") for extra in extras)
    return layer(type(f"{name}{suffix}", (), {"__doc__": value.__doc__, **declared, **methods}))


def _pointwise_specs(name, value, gradient=None, dims=(...,)):
    """``specs(rank, extras=())``: the spec of ``reduce(weight * value(input, target, ...))``
    on ``dims`` (``[...]``: every rank, the runtime runs the axes as one; ``[N, ...]`` for a
    loss that reads the batch size), with the extra float inputs ``extras`` of the input's
    shape ('weight' scales the values; the others go to ``value``, with the ``settings``
    Attr); ``gradient(input, target)`` replaces the derived one. Built once per set of extras."""
    specs_by_extras: dict = {}

    def specs(rank, extras=()):
        if rank < len(dims) - 1:
            raise ValueError(f"{name}: input must have rank {len(dims) - 1} or more, got {rank}")
        if extras not in specs_by_extras:
            specs_by_extras[extras] = _pointwise_spec(name, value, extras, gradient, dims)
        return specs_by_extras[extras]
    return specs


def class_layout(rank):
    """``(class axis, dims, one-per-row dims, one-per-class dims)`` of an input of ``rank``:
    ``[C]`` unbatched, ``[N, C]``, else ``[N, C, ...]`` (as the spec sees it: the ``...``
    axes as one). ``[N, C]`` keeps a spec of its own: as ``[N, C, ...]`` its innermost
    loop would run over the empty ``...`` (one element)."""
    dims = ("C",) if rank == 1 else ("N", "C") if rank == 2 else ("N", "C", ...)
    rows = tuple(1 if d == "C" else d for d in dims)
    classes = tuple(d if d == "C" else 1 for d in dims)
    return dims.index("C"), dims, rows, classes


def _class_weights(weight, classes):
    """The class weights ``[C]`` laid along the class axis of the traced input."""
    return weight.reshape(*(weight.shape[0] if d == "C" else 1 for d in classes))


def _class_index_spec(name, rank, log_probs):
    axis, dims, rows, classes = class_layout(rank)

    class Spec:
        """Class-index loss: ``target`` in range (ignored rows read class 0), ``valid`` 0 on
        ignored rows, ``weight`` one per class; ``settings``: label smoothing."""
        input = Input(*dims)
        target = Input(*rows, dtype="int64")
        weight = Input("C", differentiable=False)
        valid = Input(*rows, differentiable=False)
        reduction = Attr("mean")
        settings = Attr(())

        def forward(input, target, weight, valid, reduction, settings):
            loss, row_weight = class_index_loss(input, target, _class_weights(weight, classes), valid, axis,
                                                log_probs, **dict(settings))
            if reduction == "mean":
                return weighted_mean(loss, row_weight)
            kept = tuple(d for k, d in enumerate(loss.shape) if k != axis)
            return _REDUCE[reduction](ops.reshape(loss, kept))
    Spec.__name__ = Spec.__qualname__ = f"{name}{_LAYOUT_NAMES[rank]}"
    return layer(Spec)


def _soft_spec(rank):
    axis, dims, _, classes = class_layout(rank)

    class Spec:
        """Cross entropy against class probabilities ``target``; ``settings``: label smoothing."""
        input = Input(*dims)
        target = Input(*dims, differentiable=False)
        weight = Input("C", differentiable=False)
        reduction = Attr("mean")
        settings = Attr(())

        def forward(input, target, weight, reduction, settings):
            return _REDUCE[reduction](soft_cross_entropy(input, target, _class_weights(weight, classes), axis,
                                                         **dict(settings)))
    Spec.__name__ = Spec.__qualname__ = f"CrossEntropyProbabilities{_LAYOUT_NAMES[rank]}"
    return layer(Spec)


_LAYOUT_NAMES = {1: "Unbatched", 2: "", 3: "Spatial"}


def _layouts(make):
    """``specs(rank)``: ``make(1)`` for an unbatched ``[C]``, ``make(2)`` for ``[N, C]``,
    ``make(3)`` for ``[N, C, ...]`` (every rank from 3); built on first use."""
    built: dict = {}

    def specs(rank):
        if rank < 1:
            raise ValueError(f"input must be [C] or [N, C, ...], got rank {rank}")
        layout = min(rank, 3)
        if layout not in built:
            built[layout] = make(layout)
        return built[layout]
    return specs


# class-index targets, of logits (cross entropy) or of log-probabilities (NLL)
CLASS_INDEX = {False: _layouts(lambda rank: _class_index_spec("CrossEntropyLoss", rank, False)),
               True: _layouts(lambda rank: _class_index_spec("NLLLoss", rank, True))}
# probability targets
PROBABILITIES = _layouts(_soft_spec)

# per set of extra inputs: the elementwise losses, every rank
POINTWISE = {
    "MSELoss": _pointwise_specs("MSELoss", squared_error),
    "L1Loss": _pointwise_specs("L1Loss", absolute_error),
    "HuberLoss": _pointwise_specs("HuberLoss", huber),
    "SmoothL1Loss": _pointwise_specs("SmoothL1Loss", smooth_l1),
    "KLDivLoss": _pointwise_specs("KLDivLoss", kl_divergence, dims=("N", ...)),   # batchmean: / N
    "BCELoss": _pointwise_specs("BCELoss", binary_cross_entropy_values, binary_cross_entropy_grad),
    "BCEWithLogitsLoss": _pointwise_specs("BCEWithLogitsLoss", bce_with_logits_values),
}
mse_spec = POINTWISE["MSELoss"]

__all__ = ["POINTWISE", "CLASS_INDEX", "PROBABILITIES", "PLAIN", "CrossEntropySpec", "NLLSpec", "mse_spec", "class_layout",
           "squared_error", "absolute_error", "huber", "smooth_l1", "kl_divergence",
           "binary_cross_entropy_values", "binary_cross_entropy_grad", "bce_with_logits_values",
           "class_index_loss", "weighted_mean", "soft_cross_entropy", "cross_entropy_values"]
