"""Built-in layers. Each one is a layerc spec (in this file), compiled on
first use at the sizes the layer was constructed with; the math runs in the
generated C, forward and derived backward alike.

Parameter and buffer names and layouts follow ``torch.nn`` (``Linear.weight``
is ``[out, in]``, ``Conv2D.weight`` is ``[out, in/groups, kh, kw]``,
``BatchNorm2D`` has ``weight``, ``bias`` and buffers ``running_mean``,
``running_var``), so weights move between the two without reshuffling.

Example::

    from runtime.nn import Linear
    layer = Linear(784, 256)
    y = layer(np.ones((32, 784), np.float32))     # Tensor [32, 256]
    gx = layer.backward(np.ones((32, 256), np.float32))
    layer.weight.grad.shape                        # (256, 784)
"""
from __future__ import annotations

import numpy as np

from compiler import Attr, Buffer, Input, Param, layer, ops
from compiler.pipeline import compile_layer

from .init import initialize
from .module import LayerModule, Module
from .tensor import Tensor

__all__ = ["SpecLayer", "Linear", "Conv2D", "BatchNorm2D", "ReLU", "GELU", "Softmax", "LayerNorm",
           "MaxPool2D", "AvgPool2D", "Flatten"]


def _pair(v) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


class SpecLayer(Module):
    """A module whose math is a layerc spec, compiled on first use.

    The parameters (``Tensor``) and buffers (arrays) live on this module; every
    compiled variant (per dtype, per input rank, training/eval) shares the same
    objects, so an optimizer step or a ``load_state_dict`` is seen by all of them.

    Subclasses set ``self._spec_bindings`` (sizes and attributes bound at build
    time) and implement ``_select(inputs) -> (spec, extra_bindings)``.
    """

    def __init__(self, dtype=np.float32):
        super().__init__()
        object.__setattr__(self, "dtype", np.dtype(dtype))
        object.__setattr__(self, "_variants", {})
        object.__setattr__(self, "_active", None)

    # ------------------------------------------------------------ declaration helpers
    def _declare(self, spec, **bindings):
        """Create the parameters and buffers ``spec`` declares, at ``bindings``."""
        object.__setattr__(self, "_spec_bindings", dict(bindings))
        for name, decl in spec.tensors:
            if decl.role not in ("param", "buffer") or name in self._parameters or name in self._buffers:
                continue
            shape = tuple(d if isinstance(d, int) else bindings[d] for d in decl.shape)
            if decl.role == "param":
                values = initialize(decl.init, shape, self.dtype, decl.fan_in, decl.fan_out)
                setattr(self, name, Tensor(values, requires_grad=True))
            else:
                self._buffers[name] = initialize(decl.init, shape, self.dtype)

    def _select(self, inputs) -> tuple:
        raise NotImplementedError

    # ------------------------------------------------------------ compiled variants
    def compiled_module(self, spec, dtype=None, **extra) -> LayerModule:
        """The ``LayerModule`` of ``spec`` at this layer's bindings (plus ``extra``),
        built once and sharing this layer's parameters and buffers."""
        dtype = np.dtype(dtype or self.dtype)
        bindings = {k: v for k, v in {**self._spec_bindings, **extra}.items()
                    if k in spec.sizes or k in spec.attrs}
        key = (id(spec), dtype.str, tuple(sorted((k, repr(v)) for k, v in bindings.items())))
        module = self._variants.get(key)
        if module is None:
            module = LayerModule(compile_layer(spec, **bindings), dtype=dtype)
            self._variants[key] = module
        self._share(module)
        return module

    def _share(self, module: LayerModule):
        for name in list(module._parameters):
            p = self._parameters[name]
            if p.data.dtype != module.dtype:
                raise TypeError(f"{type(self).__name__}: parameter {name} is {p.data.dtype}, the "
                                f"compiled variant is {module.dtype}; call .to({module.dtype.name}) first")
            if module._parameters[name] is not p:
                setattr(module, name, p)
        for name in list(module._buffers):
            module._buffers[name] = self._buffers[name]
        object.__setattr__(module, "training", self.training)

    def to(self, dtype):
        """Convert parameters and buffers to ``dtype`` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        object.__setattr__(self, "dtype", dtype)
        for p in self._parameters.values():
            p.data = np.ascontiguousarray(p.data, dtype=dtype)
            p.grad = None if p.grad is None else p.grad.astype(dtype)
        for name, b in list(self._buffers.items()):
            self._buffers[name] = np.ascontiguousarray(b, dtype=dtype)
        for _, m in self._modules.items():
            if hasattr(m, "to"):
                m.to(dtype)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ------------------------------------------------------------ calling
    def forward(self, *inputs):
        spec, extra = self._select(inputs)
        module = self.compiled_module(spec, **extra)
        object.__setattr__(self, "_active", module)
        return module.forward(*inputs)

    def backward(self, *grad_outputs):
        """Input gradient(s) of the latest forward; accumulates ``param.grad``."""
        if self._active is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._active.backward(*grad_outputs)

    @property
    def compiled(self):
        """The compiled layer of the latest forward (``.explain()``, ``.source``)."""
        if self._active is None:
            raise RuntimeError(f"{type(self).__name__}: nothing compiled yet; call forward first")
        return self._active.compiled

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _rank(inputs, k=0) -> int:
    return np.ndim(inputs[k].data if isinstance(inputs[k], Tensor) else inputs[k])


# ====================================================================== Linear


@layer
class LinearSpec:
    """``y = x @ weight.T + bias`` on ``[N, in]``."""
    x = Input("N", "I")
    weight = Param("O", "I", init="fan_in_uniform")
    bias = Param("O", init="zeros")   # Linear draws U(-1/sqrt(in), 1/sqrt(in))

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class LinearNoBiasSpec:
    x = Input("N", "I")
    weight = Param("O", "I", init="fan_in_uniform")

    def forward(x, weight):
        return x @ weight.T


@layer
class Linear3Spec:
    """``Linear`` on ``[B, N, in]`` (sequences)."""
    x = Input("B", "N", "I")
    weight = Param("O", "I", init="fan_in_uniform")
    bias = Param("O", init="zeros")   # Linear draws U(-1/sqrt(in), 1/sqrt(in))

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class Linear3NoBiasSpec:
    x = Input("B", "N", "I")
    weight = Param("O", "I", init="fan_in_uniform")

    def forward(x, weight):
        return x @ weight.T


class Linear(SpecLayer):
    """``y = x @ weight.T + bias``; ``weight`` is ``[output_size, input_size]``
    and both are initialized U(-1/sqrt(in), 1/sqrt(in)) as in ``torch.nn.Linear``.
    Takes ``[N, in]`` or ``[B, N, in]``."""

    def __init__(self, input_size: int, output_size: int, bias: bool = True, dtype=np.float32):
        super().__init__(dtype)
        self.input_size, self.output_size, self.has_bias = int(input_size), int(output_size), bool(bias)
        self._declare(LinearSpec if bias else LinearNoBiasSpec, I=self.input_size, O=self.output_size)
        if bias:
            # torch's bias bound is 1/sqrt(fan_in) of the weight
            bound = 1.0 / np.sqrt(self.input_size) if self.input_size else 0.0
            self.bias.data[...] = initialize("uniform", (self.output_size,), np.float64) * bound

    def _select(self, inputs):
        rank = _rank(inputs)
        if rank == 2:
            return (LinearSpec if self.has_bias else LinearNoBiasSpec), {}
        if rank == 3:
            return (Linear3Spec if self.has_bias else Linear3NoBiasSpec), {}
        raise ValueError(f"Linear: input must be [N, {self.input_size}] or [B, N, {self.input_size}], "
                         f"got rank {rank}")

    def extra_repr(self):
        return f"{self.input_size}, {self.output_size}, bias={self.has_bias}"
