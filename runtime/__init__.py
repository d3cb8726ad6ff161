"""layerc's runtime: Tensor (autograd tape across modules), Module, composition,
optimizers, and seeded initialization.

Example::

    import runtime
    runtime.manual_seed(0)
    model = runtime.Sequential([runtime.nn.Linear(64, 10)])
    opt = runtime.SGD(model.parameters(), lr=0.1)
"""
from . import losses, nn, optim
from .containers import Residual, Sequential
from .losses import cross_entropy, mse_loss
from .module import LayerModule, Module
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR
from .random import manual_seed
from .tensor import Tensor, no_grad

__all__ = ["Tensor", "no_grad", "manual_seed", "Module", "LayerModule", "Sequential", "Residual",
           "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "mse_loss", "cross_entropy",
           "nn", "optim", "losses"]
