"""Rank-polymorphic calls. A layer declared with ``...`` (``Input(..., "C")``)
is compiled once, with the ``...`` axes as ONE axis (the record's
``TensorRecord.ellipsis``); ``SpanCalls`` collapses each input's ``...`` axes
into that axis (a reshape: a view when the array allows it), runs the layer,
and expands the outputs' axis and the input gradients back to the caller's
axes. An empty span (a rank-1 input to ``[..., C]``) is one axis of size 1.

A layer whose every output is an input as it is (``LayerRecord.views``: a
flatten) runs no kernel: the output is the collapsed input itself.

Example::

    m = PReLU.build(C=4)              # x = Input(..., "C")
    m.forward(np.ones((2, 3, 4), np.float32)).shape     # (2, 3, 4): ran as [6, 4]
"""
from __future__ import annotations

import math

import numpy as np

from .record import describe
from .tensor import Tensor, grad_enabled, record_call
from .validate import check_array


def _on_tape(value) -> bool:
    return isinstance(value, Tensor) and grad_enabled() and (value.requires_grad or value.node is not None)


def _reshaped(value, shape: tuple, name: str):
    """``value`` (an array, or a Tensor kept on the tape) reshaped to ``shape``."""
    if not isinstance(value, Tensor):
        return value.reshape(shape)
    out = Tensor._wrap(value.data.reshape(shape))
    if _on_tape(value):
        source = value.shape
        record_call((out,), (value,), lambda g: (g.reshape(source),), name)
    return out


def _collapsed_input(value: Tensor, shape: tuple, originals: dict) -> Tensor:
    """``value``'s collapsed view, off the tape: ``_folded`` puts the call's node
    on ``value`` itself (one node for the call, where the collapse and the
    expand were two more, each run by every backward sweep)."""
    out = Tensor._wrap(value.data.reshape(shape))
    out.requires_grad = value.requires_grad or value.node is not None
    originals[id(out)] = value
    return out


def _folded(output: Tensor, shape: tuple, originals: dict) -> Tensor:
    """``output`` (of a call on collapsed inputs) as a tensor of ``shape``,
    whose node takes the caller's inputs and reshapes the gradients both ways."""
    node = output.node
    result = Tensor._wrap(output.data.reshape(shape))
    if node is None:
        return result
    collapsed, inner = output.shape, node.backward
    inputs = tuple(originals.get(id(t), t) for t in node.inputs)
    shapes = tuple(originals[id(t)].shape if id(t) in originals else None for t in node.inputs)

    def backward(g):
        return tuple(r if want is None or r is None else r.reshape(want)
                     for r, want in zip(inner(g.reshape(collapsed)), shapes))
    record_call((result,), inputs, backward, node.name)
    return result


def _expanded(shape: tuple, axis: int, span: tuple) -> tuple:
    return shape[:axis] + span + shape[axis + 1:]


def _collapsed(shape: tuple, axis: int, span: tuple) -> tuple:
    return shape[:axis] + (math.prod(span),) + shape[axis + len(span):]


class SpanCalls:
    """The ``...`` calls of ``LayerModule`` (a mixin: it uses the module's record,
    inputs, dtype and its forward and backward on collapsed arrays)."""

    def _prepare_spans(self):
        record, setup = self.record, object.__setattr__
        # per input with ...: its position, record, and the (axis, size) of each bound axis
        # around the ... (axes after it counted from the end), checked on every call
        setup(self, "_spans", tuple(
            (k, t, tuple((j if j < t.ellipsis else j - len(t.shape), d) for j, d in enumerate(t.shape)
                         if j != t.ellipsis and type(d) is int))
            for k, t in enumerate(self._inputs) if t.ellipsis is not None))
        setup(self, "_out_spans", tuple(t.ellipsis for t in record.outputs))
        views = dict(record.views)
        only_views = len(views) == len(record.outputs) and not record.of_role("param") and not record.updates
        setup(self, "_view_of", tuple(views[t.name] for t in record.outputs) if only_views else None)
        setup(self, "_span_last", None)

    def _span(self, t, bound: tuple, shape: tuple, span: tuple | None, first: str) -> tuple:
        """The ``...`` axes of the input ``t`` of ``shape``, checked against the other inputs'
        and against its ``bound`` sizes."""
        axis = t.ellipsis
        end = len(shape) - len(t.shape) + 1 + axis
        axes = shape[axis:end]
        if end < axis or (span is not None and axes != span):
            self._span_error(t, shape, span, first)
        for j, want in bound:
            if shape[j] != want:
                self._span_error(t, shape, span, first)
        return axes

    def _span_error(self, t, shape: tuple, span: tuple | None, first: str):
        expected = describe(t.shape, {}, t.ellipsis)
        fixed = len(t.shape) - 1
        if len(shape) < fixed:
            raise ValueError(f"{self.name}: argument {t.name} has shape {shape} (rank {len(shape)}), "
                             f"expected rank {fixed} or more: {expected}")
        axes = shape[t.ellipsis:len(shape) - fixed + t.ellipsis]
        if span is not None and axes != span:
            raise ValueError(f"{self.name}: argument {t.name} has shape {shape}, expected {expected} "
                             f"with the ... axes of {first}, {span}; its ... axes are {axes}")
        raise ValueError(f"{self.name}: argument {t.name} has shape {shape}, expected {expected}")

    def _as_array(self, t, value):
        """An input's array (a Tensor stays a Tensor); Python numbers take the module's dtype."""
        if isinstance(value, (Tensor, np.ndarray)):
            return value
        array = np.asarray(value)
        return array.astype(self.dtype) if t.role != "index" and array.dtype.kind in "iuf" else array

    def _span_forward(self, args: tuple, kwargs: dict, out):
        if kwargs or len(args) != len(self._inputs):
            given = self._bind_inputs(args, kwargs)
            args = tuple(given[t.name] for t in self._inputs)
        args, span, first = list(args), None, ""
        # a single-output call collapses its Tensors off the tape, then folds
        # the reshapes into its own node (_folded); the others record them
        fold = {} if len(self._outputs) == 1 and self._view_of is None else None
        for k, t, bound in self._spans:
            value = args[k]
            if type(value) is not np.ndarray:
                value = args[k] = self._as_array(t, value)
            shape = value.shape
            span = self._span(t, bound, shape, span, first)
            first = first or t.name
            if len(span) != 1:
                collapsed = _collapsed(shape, t.ellipsis, span)
                args[k] = _collapsed_input(value, collapsed, fold) if fold is not None and _on_tape(value) \
                    else _reshaped(value, collapsed, "collapse")
        object.__setattr__(self, "_span_last", span)
        if self._view_of is not None:
            return self._view_forward(args)
        if isinstance(out, np.ndarray) and self._out_spans[0] is not None and out.flags.c_contiguous:
            out = out.reshape(_collapsed(out.shape, self._out_spans[0], span))
        result = self._forward_plain(tuple(args), {}, out)
        if len(span) == 1:
            return result
        if fold is not None:
            k = self._out_spans[0]
            return _folded(result, result.shape if k is None else _expanded(result.shape, k, span), fold)
        outputs = result if isinstance(result, tuple) else (result,)
        outputs = tuple(o if k is None else _reshaped(o, _expanded(o.shape, k, span), "expand")
                        for o, k in zip(outputs, self._out_spans))
        return outputs[0] if len(outputs) == 1 else outputs

    def _view_forward(self, args: list):
        """The outputs of a layer whose outputs are its inputs as they are: the
        (collapsed) inputs themselves, checked as any input, no kernel run."""
        sizes, outputs = {}, []
        positions = {t.name: k for k, t in enumerate(self._inputs)}
        for source in self._view_of:
            t = self.record.tensor(source)
            value = args[positions[source]]
            array = check_array(self.name, source, value, t.shape, self.dtype, sizes, cast=self.cast)
            view = Tensor._wrap(array)
            if _on_tape(value):
                record_call((view,), (value,), lambda g: (g,), self.name)
            outputs.append(view)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _span_backward(self, grad_outputs: tuple):
        span = self._span_last
        if span is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        grads = tuple(g.data if isinstance(g, Tensor) else np.asarray(g) for g in grad_outputs)
        # a gradient of another rank goes on as it is: the checks of backward name it
        grads = tuple(g if k is None or len(span) == 1 or g.ndim < k + len(span) else
                      g.reshape(_collapsed(g.shape, k, span)) for g, k in zip(grads, self._out_spans))
        if self._view_of is not None:
            by_input = dict(zip(self._view_of, grads))
            result = tuple(Tensor._wrap(by_input[t.name]) for t in self._inputs if t.role == "input")
        else:
            result = self._backward_plain(*grads)
            result = result if isinstance(result, tuple) else (result,)
        differentiable = [t for t in self._inputs if t.role == "input"]
        result = tuple(g if t.ellipsis is None or len(span) == 1 else
                       Tensor._wrap(g.data.reshape(_expanded(g.shape, t.ellipsis, span)))
                       for g, t in zip(result, differentiable))
        return result[0] if len(result) == 1 else result
