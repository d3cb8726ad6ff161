"""layerc's compiler: declare a layer as a spec, get compiled C forward and backward.

Example::

    from compiler import layer, Input, Param, ops

    @layer
    class Scaled:
        x = Input("N", "C")
        scale = Param(init=1.0)

        def forward(x, scale):
            return x * scale

    m = Scaled.build(C=8)
"""
from . import ops
from .errors import SpecError
from .spec import Attr, Buffer, Input, LayerSpec, Param, layer

__all__ = ["ops", "layer", "Input", "Param", "Buffer", "Attr", "LayerSpec", "SpecError",
           "check_grad", "compile_layer"]


def __getattr__(name):
    # the heavier stages load on first use, keeping `import compiler` light
    if name == "compile_layer":
        from .pipeline import compile_layer
        return compile_layer
    if name == "check_grad":
        from .gradcheck import check_grad
        return check_grad
    raise AttributeError(name)
