"""layerc: declare a neural-network layer as a small Python spec; get a
compiled C forward and a derived backward, as a module that trains.

Example::

    import layerc
    from layerc import Input, Param, layer, ops

    @layer
    class Scaled:
        x = Input("N", "C")
        scale = Param(init=1.0)

        def forward(x, scale):
            return x * scale

    model = layerc.Sequential(layerc.nn.Linear(8, 8), Scaled.build(C=8))
    opt = layerc.Adam(model.parameters(), lr=1e-3)

The package is layered: ``layerc.compiler`` (spec → C → library) and
``layerc.runtime`` (numpy and cffi only) below; the built-in layers
(``nn``, ``losses``), the PyTorch bridge, the checks, AOT packages and the CLI
above both, in this folder.
"""
# nn before losses: nn re-exports the loss modules, which build on nn.base
from . import nn  # isort: skip
from . import losses, optim_kernels
from .compiler import ops
from .compiler.errors import SpecError
from .compiler.pipeline import compile_layer
from .compiler.spec import Attr, Buffer, Input, LayerSpec, Param
from .gradcheck import check_grad
from .layers import Layer, build, layer
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
                     l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from .runtime import optim
from .runtime.containers import Identity, ModuleList, Residual, Sequential
from .runtime.module import LayerModule, Module
from .runtime.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR
from .runtime.random import manual_seed
from .runtime.tensor import Tensor, no_grad

optim_kernels.install()

__all__ = ["layer", "Layer", "build", "Input", "Param", "Buffer", "Attr", "LayerSpec", "SpecError", "ops",
           "check_grad", "compile_layer", "nn", "losses", "optim", "Tensor", "no_grad", "manual_seed",
           "Module", "LayerModule", "Sequential", "ModuleList", "Identity", "Residual", "SGD", "Adam", "AdamW", "StepLR",
           "CosineAnnealingLR", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "nll_loss", "cross_entropy"]
