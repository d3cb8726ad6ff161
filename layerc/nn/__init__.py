"""Built-in layers. Each one is a layerc spec (in this package), compiled on
first use at the sizes the layer was constructed with; the math runs in the
generated C, forward and derived backward alike.

Parameter and buffer names and layouts follow ``torch.nn`` (``Linear.weight``
is ``[out, in]``, ``Conv2D.weight`` is ``[out, in/groups, kh, kw]``,
``BatchNorm2D`` has ``weight``, ``bias`` and buffers ``running_mean``,
``running_var``), so weights move between the two without reshuffling.

Example::

    from layerc.nn import Linear
    layer = Linear(784, 256)
    y = layer(np.ones((32, 784), np.float32))     # Tensor [32, 256]
    gx = layer.backward(np.ones((32, 256), np.float32))
    layer.weight.grad.shape                        # (256, 784)

torch.nn's spellings (``Conv2d``, ``BatchNorm2d``, ``MaxPool2d`` ...), its loss
modules and ``Module``/``Sequential`` are here too, so that a model written
against torch.nn runs by changing its import.
"""
from .activation import (GELU, GLU, GELUSpec, GELUTanhSpec, LogSoftmax, PReLU, ReLU, ReLUSpec, Softmax, SoftmaxSpec,
                         gelu, softmax_spec)
from .base import SpecLayer
from .conv import Conv1D, Conv1DSpec, Conv2D, Conv2DSpec, conv, conv1d, conv2d
from .conv_transpose import (ConvTranspose1D, ConvTranspose1DNoBiasSpec, ConvTranspose1DSpec, ConvTranspose2D,
                             ConvTranspose2DNoBiasSpec, ConvTranspose2DSpec, conv_transpose)
from .dropout import Dropout, dropout, dropout_spec
from .linear import Linear, LinearSpec
from .pad import (PADS, CircularPad1d, CircularPad2d, ConstantPad1d, ConstantPad2d, ReflectionPad1d,
                  ReflectionPad2d, ReplicationPad1d, ReplicationPad2d, ZeroPad1d, ZeroPad2d)
from .upsample import Upsample, UpsamplingNearest2d
from .norm import BatchNorm2DSpec, LayerNorm, batch_norm2d, layer_norm, layer_norm_spec
from .pool import (AdaptiveAvgPool2D, AdaptiveAvgPool2DSpec, AdaptiveMaxPool2D, AdaptiveMaxPool2DSpec, AvgPool2D,
                   AvgPool2DSpec, MaxPool2D, MaxPool2DSpec, adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,
                   max_pool2d)
from .shape import Flatten, FlattenSpec, Unflatten
from .torch_state import from_torch_state_dict, to_torch_state_dict
from .activation import (CELU, ELU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid, Mish, ReLU6,
                         Sigmoid, SiLU, Softplus, Softsign, Tanh)
from .attention import MultiheadAttention, attention_spec, multihead_attention
from .embedding import Embedding, embedding, embedding_spec
from .normalization import (BatchNorm1D, BatchNorm2D, GroupNorm, InstanceNorm2D, RMSNorm, batch_norm, group_norm,
                            group_norm_spec, instance_norm, per_channel_spec, rms_norm, rms_norm_spec)
# the loss modules where torch has them, torch.nn (they live in layerc.losses)
from ..losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,  # noqa: E402
                      NLLLoss, SmoothL1Loss)

from ..runtime.containers import Identity, ModuleList, Sequential  # noqa: E402
from ..runtime.module import Module  # noqa: E402

LOSSES = ("BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss",
          "NLLLoss", "SmoothL1Loss")

# torch.nn's spellings of the same classes, and its Module and Sequential: a
# model written against torch.nn runs on layerc.nn by its import alone
Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d = Conv1D, Conv2D, ConvTranspose1D, ConvTranspose2D
BatchNorm1d, BatchNorm2d, InstanceNorm2d = BatchNorm1D, BatchNorm2D, InstanceNorm2D
MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d = MaxPool2D, AvgPool2D, AdaptiveAvgPool2D, AdaptiveMaxPool2D
TORCH_SPELLINGS = ("Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d",
                   "InstanceNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Module",
                   "Sequential", "ModuleList", "Identity")

__all__ = ["SpecLayer", "Linear", "Conv1D", "Conv2D", "ConvTranspose1D", "ConvTranspose2D", "BatchNorm2D", "ReLU",
           "GELU", "Softmax", "LayerNorm", "MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
           "Dropout", "Flatten", "BatchNorm1D", "GroupNorm", "InstanceNorm2D", "RMSNorm", "Embedding",
           "MultiheadAttention", "LeakyReLU", "ELU", "CELU", "Hardtanh", "SELU", "SiLU", "Mish", "Hardswish",
           "Hardsigmoid", "ReLU6", "Softsign", "Softplus", "Tanh", "Sigmoid", "LogSigmoid", "LogSoftmax", "PReLU",
           "GLU", "Unflatten", *PADS, "Upsample", "UpsamplingNearest2d", *LOSSES, *TORCH_SPELLINGS]
