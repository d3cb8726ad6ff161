"""Where the pipeline meets the runtime: a declared spec built into a module.

``layerc.layer`` declares a ``Layer``: a spec (``layerc.compiler.spec``) that
also builds. ``build`` runs the pipeline (``compile_layer``) and wraps the
compiled layer in a runtime ``LayerModule``.

Example::

    from layerc import Input, layer

    @layer
    class Double:
        x = Input("N")

        def forward(x):
            return x * 2

    module = Double.build()
"""
from __future__ import annotations

from .backward_check import check_on_build
from .compiler.pipeline import compile_layer
from .compiler.spec import LayerSpec
from .runtime.module import LayerModule


def build(spec: LayerSpec, dtype=None, cast: bool = False, options=None, checked: bool | None = None,
          **bindings) -> LayerModule:
    """Compile ``spec``'s forward and backward (cached) and return a runtime module.

    ``bindings`` bind sizes (``C=256``) and override attributes (``stride=2``);
    ``dtype`` is float32 (default) or float64; ``cast=True`` converts inputs of
    another float dtype instead of refusing them. A user-written ``backward``
    is verified against the derived one and finite differences on its first
    build (``layerc.backward_check``; the verdict is cached), raising
    ``BackwardMismatch`` on a wrong gradient; ``checked=False`` (or the
    environment variable ``LAYERC_CHECK_BACKWARD=0``) skips it.
    """
    module = LayerModule(compile_layer(spec, options, **bindings), dtype=dtype, cast=cast)
    if spec.backward is not None:
        check_on_build(spec, checked, **bindings)
    return module


class Layer(LayerSpec):
    """A declared layer that builds: ``Layer.build(**sizes)`` is ``build(spec, **sizes)``."""

    def build(self, dtype=None, cast: bool = False, options=None, checked: bool | None = None, **bindings):
        """See ``layerc.layers.build``: compile this layer and return a runtime module."""
        return build(self, dtype=dtype, cast=cast, options=options, checked=checked, **bindings)

    def grad(self, wrt=None) -> "Layer":
        """This layer's backward as a layer (``layerc/spec_grad.py``): inputs,
        parameters and ``grad_<output>`` in; ``d_<x>`` (the gradient of ``x``) for each differentiable
        input and parameter (or those named in ``wrt``) out. It builds, checks
        with ``check_grad`` and has a ``grad()`` of its own: ``Tanh.grad().build(C=4)``."""
        from .spec_grad import grad_spec
        return grad_spec(self, wrt)


def layer(cls) -> Layer:
    """Declare a layer from a class holding Inputs, Params, Buffers, Attrs and ``forward``."""
    return Layer(cls)


__all__ = ["Layer", "layer", "build"]
