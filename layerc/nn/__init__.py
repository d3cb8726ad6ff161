"""Built-in layers. Each one is a layerc spec (in this file), compiled on
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
"""
from .activation import GELU, GELUSpec, ReLU, ReLUSpec, Softmax, SoftmaxSpec, gelu, softmax_spec
from .base import SpecLayer
from .conv import Conv1D, Conv1DSpec, Conv2D, Conv2DSpec, conv, conv1d, conv2d
from .linear import Linear, LinearSpec
from .norm import BatchNorm2D, BatchNorm2DSpec, LayerNorm, batch_norm2d, layer_norm, layer_norm_spec
from .pool import AvgPool2D, AvgPool2DSpec, MaxPool2D, MaxPool2DSpec, avg_pool2d, max_pool2d
from .shape import Flatten, FlattenSpec

__all__ = ["SpecLayer", "Linear", "Conv1D", "Conv2D", "BatchNorm2D", "ReLU", "GELU", "Softmax", "LayerNorm",
           "MaxPool2D", "AvgPool2D", "Flatten"]
