"""layerc's runtime core: Tensor (autograd tape across modules), Module,
composition, optimizers, validation and seeded initialization.

It needs numpy and cffi only, imports nothing else of layerc, and ships as
is in every package ``layerc build`` writes. A compiled layer reaches it as a
``LayerRecord`` (plain data and library handles: runtime/record.py), which a
``LayerModule`` calls.

Example::

    from layerc import runtime
    runtime.manual_seed(0)
    x = runtime.Tensor([1.0, 2.0], requires_grad=True)
"""
from . import optim
from .containers import Residual, Sequential
from .base import Module
from .module import LayerModule
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR
from .random import manual_seed
from .record import LayerRecord
from .tensor import Tensor, no_grad

__all__ = ["Tensor", "no_grad", "manual_seed", "Module", "LayerModule", "LayerRecord", "Sequential", "Residual",
           "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "optim"]
