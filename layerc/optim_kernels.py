"""The optimizers' update rules as compiled kernels.

``layerc.runtime.optim`` holds the rules in numpy (what a package runs);
importing ``layerc`` installs these compiled twins in their place
(``install``). Each is a spec over the parameter flattened to one dimension
of size ``P`` (free at run time); the hyperparameters are one-element inputs,
so changing the learning rate never recompiles. Each spec's ``forward`` is
the runtime's own numpy rule, traced: the math is written once.
"""
from __future__ import annotations

import threading

import numpy as np

from .compiler.spec import Attr, Input
from .layers import layer
from .runtime import optim


def _scalar():
    return Input(1, differentiable=False)


def _flat():
    return Input("P", differentiable=False)


@layer
class SGDUpdate:
    param, grad = _flat(), _flat()
    lr, weight_decay = _scalar(), _scalar()
    forward = optim.sgd_rule


@layer
class SGDMomentumUpdate:
    param, grad, velocity = _flat(), _flat(), _flat()
    lr, momentum, weight_decay = _scalar(), _scalar(), _scalar()
    nesterov = Attr(False)
    forward = optim.sgd_momentum_rule


@layer
class AdamUpdate:
    param, grad, m, v = _flat(), _flat(), _flat(), _flat()
    lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt = (_scalar() for _ in range(7))
    decoupled = Attr(False)
    forward = optim.adam_rule


_kernels: dict = {}
_kernels_lock = threading.Lock()


def kernel(spec, dtype, **attrs):
    """The compiled update (a ``LayerModule``), built once per spec, dtype and attributes."""
    key = (spec.name, np.dtype(dtype).str, tuple(sorted(attrs.items())))
    with _kernels_lock:
        if key not in _kernels:
            _kernels[key] = spec.build(dtype=dtype, **attrs)
        return _kernels[key]


def _compiled(spec, *attr_names):
    def update(*arrays, **named):
        attrs = {k: named.pop(k) for k in attr_names}
        outputs = kernel(spec, arrays[0].dtype, **attrs).forward(*arrays, **named)
        return tuple(o.data for o in outputs) if isinstance(outputs, tuple) else outputs.data
    update.__doc__ = spec.doc
    return update


COMPILED_RULES = {"sgd": _compiled(SGDUpdate), "sgd_momentum": _compiled(SGDMomentumUpdate, "nesterov"),
                  "adam": _compiled(AdamUpdate, "decoupled")}


def install() -> None:
    """Make the optimizers run the compiled rules (``import layerc`` does this)."""
    optim.UPDATE_RULES.update(COMPILED_RULES)


__all__ = ["SGDUpdate", "SGDMomentumUpdate", "AdamUpdate", "kernel", "install"]
