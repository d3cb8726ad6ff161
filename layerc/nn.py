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
from __future__ import annotations

import numbers

import numpy as np

from .compiler import ops
from .compiler.spec import Attr, Buffer, Input, Param
from .layers import layer
from .compiler.pipeline import compile_layer

from .runtime.init import initialize
from .runtime.module import LayerModule, Module
from .runtime.tensor import Tensor

__all__ = ["SpecLayer", "Linear", "Conv1D", "Conv2D", "BatchNorm2D", "ReLU", "GELU", "Softmax", "LayerNorm",
           "MaxPool2D", "AvgPool2D", "Flatten"]


def _tuple(v, rank: int) -> tuple:
    """``rank`` ints from an int or a sequence of ``rank`` ints (kernel sizes, strides)."""
    if isinstance(v, (tuple, list)):
        if len(v) != rank:
            raise ValueError(f"expected an int or {rank} ints, got {v!r}")
        return tuple(int(k) for k in v)
    return (int(v),) * rank


def _pair(v) -> tuple:
    return _tuple(v, 2)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _count(layer: str, arg: str, value, least: int = 1) -> int:
    """``value`` as an int of at least ``least``, else ValueError naming the layer and the argument."""
    if not _is_int(value) or value < least:
        raise ValueError(f"{layer}: {arg} must be an integer >= {least}, got {value!r}")
    return int(value)


def _counts(layer: str, arg: str, value, least: int = 1, rank: int = 2) -> tuple:
    """``value`` (an int, or ``rank`` of them) as ``rank`` ints of at least ``least``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
    if len(values) != rank or not all(_is_int(v) and v >= least for v in values):
        raise ValueError(f"{layer}: {arg} must be an integer >= {least} or {rank} of them, got {value!r}")
    return tuple(int(v) for v in values)


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

    def __getattr__(self, name):
        # buffers read as attributes (``bn.running_mean``), as in torch
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

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
        self.input_size = _count("Linear", "input_size", input_size, least=0)
        self.output_size = _count("Linear", "output_size", output_size, least=0)
        self.has_bias = bool(bias)
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


# ====================================================================== Conv1D, Conv2D


@layer
class Conv1DSpec:
    """1-D convolution (cross-correlation, as torch) in index notation::

        y[n, o, w] = bias[o] + sum_{c, j} x[n, g(o)*CG + c, w*s + j*d - p] * weight[o, c, j]

    with ``g(o)`` the group of output channel ``o``; reads outside the
    sequence are zero (the padding). See ``conv``."""
    x = Input("N", "C", "L")
    weight = Param("O", "CG", "K", init="fan_in_uniform")
    bias = Param("O", init="zeros")
    stride = Attr((1,))
    padding = Attr((0,))
    dilation = Attr((1,))
    groups = Attr(1)

    def forward(x, weight, bias, stride, padding, dilation, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)


@layer
class Conv1DNoBiasSpec:
    x = Input("N", "C", "L")
    weight = Param("O", "CG", "K", init="fan_in_uniform")
    stride = Attr((1,))
    padding = Attr((0,))
    dilation = Attr((1,))
    groups = Attr(1)

    def forward(x, weight, stride, padding, dilation, groups):
        return conv(x, weight, None, stride, padding, dilation, groups)


@layer
class Conv2DSpec:
    """2-D convolution (cross-correlation, as torch) in index notation::

        y[n, o, h, w] = bias[o] + sum_{c, i, j} x[n, g(o)*CG + c, h*sh + i*dh - ph, w*sw + j*dw - pw]
                                                * weight[o, c, i, j]

    with ``g(o)`` the group of output channel ``o``. Reads outside the image are
    zero (the padding). Grouped convolutions compute ``[N, G, O/G, Ho, Wo]`` so
    that every read is affine, then merge the two channel axes."""
    x = Input("N", "C", "H", "W")
    weight = Param("O", "CG", "KH", "KW", init="fan_in_uniform")
    bias = Param("O", init="zeros")
    stride = Attr((1, 1))
    padding = Attr((0, 0))
    dilation = Attr((1, 1))
    groups = Attr(1)

    def forward(x, weight, bias, stride, padding, dilation, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)


@layer
class Conv2DNoBiasSpec:
    x = Input("N", "C", "H", "W")
    weight = Param("O", "CG", "KH", "KW", init="fan_in_uniform")
    stride = Attr((1, 1))
    padding = Attr((0, 0))
    dilation = Attr((1, 1))
    groups = Attr(1)

    def forward(x, weight, stride, padding, dilation, groups):
        return conv(x, weight, None, stride, padding, dilation, groups)


# ``compute`` names its indices after its function's parameters: one function
# per number of spatial axes, dense ([N, O, ...]) and grouped ([N, G, O/G, ...])
_DENSE = {1: lambda f: lambda n, o, w: f(n, o, (w,)),
          2: lambda f: lambda n, o, h, w: f(n, o, (h, w))}
_GROUPED = {1: lambda f: lambda n, g, og, w: f(n, g, og, (w,)),
            2: lambda f: lambda n, g, og, h, w: f(n, g, og, (h, w))}


def conv(x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
    """The convolution over the trailing 1 or 2 axes of ``x`` (``[N, C, L]``
    or ``[N, C, H, W]``) as a spec function, callable from any spec's
    ``forward``; ``weight`` is ``[O, C/groups, *kernel]``, ``bias`` ``[O]`` or None."""
    rank = len(x.shape) - 2
    N, _, *size = x.shape
    O, CG, *kernel = weight.shape
    stride, padding, dilation = (_tuple(v, rank) for v in (stride, padding, dilation))
    out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
    c = ops.reduce_axis(CG, "c")
    taps = [ops.reduce_axis(k, name) for k, name in zip(kernel, ("i", "j")[-rank:])]

    def window(n, channel, o, at):
        coords = [a * s + t * d - p for a, t, s, d, p in zip(at, taps, stride, dilation, padding)]
        return ops.sum(x[(n, channel, *coords)] * weight[(o, c, *taps)], over=(c, *taps))

    def with_bias(o, value):
        return value if bias is None else bias[o] + value

    if groups == 1:
        return ops.compute((N, O, *out), _DENSE[rank](lambda n, o, at: with_bias(o, window(n, c, o, at))),
                           name="conv")
    OG = int(O) // groups
    y = ops.compute((N, groups, OG, *out), _GROUPED[rank](lambda n, g, og, at: with_bias(
        g * OG + og, window(n, g * CG + c, g * OG + og, at))), name="gconv")
    return y.reshape(N, O, *out)


conv1d = conv2d = conv


class _Conv(SpecLayer):
    """``torch.nn.Conv1d``/``Conv2d``-compatible convolution (the subclasses
    set the spatial rank, the specs and the kernel's size names)."""

    RANK, SPECS, KERNEL = 0, (None, None), ()

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        super().__init__(dtype)
        name = type(self).__name__
        self.in_channels = _count(name, "in_channels", in_channels)
        self.out_channels = _count(name, "out_channels", out_channels)
        self.groups = _count(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        self.kernel_size = _counts(name, "kernel_size", kernel_size, rank=self.RANK)
        self.stride = _counts(name, "stride", stride, rank=self.RANK)
        self.padding = _counts(name, "padding", padding, least=0, rank=self.RANK)
        self.dilation = _counts(name, "dilation", dilation, rank=self.RANK)
        self.has_bias = bool(bias)
        self._declare(self._select(())[0], C=self.in_channels, O=self.out_channels,
                      CG=self.in_channels // self.groups, **dict(zip(self.KERNEL, self.kernel_size)),
                      stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        if bias:
            fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
            self.bias.data[...] = initialize("uniform", (self.out_channels,), np.float64) / np.sqrt(fan_in)

    def _select(self, inputs):
        return self.SPECS[0 if self.has_bias else 1], {}

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.has_bias}")


class Conv1D(_Conv):
    """``torch.nn.Conv1d``-compatible 1-D convolution on ``[N, C, L]``;
    ``weight`` is ``[out, in/groups, k]``. Batch and length stay free at run time.

    >>> Conv1D(4, 8, 3, padding=1)(np.ones((2, 4, 10), np.float32)).shape
    (2, 8, 10)
    """

    RANK, SPECS, KERNEL = 1, (Conv1DSpec, Conv1DNoBiasSpec), ("K",)


class Conv2D(_Conv):
    """``torch.nn.Conv2d``-compatible 2-D convolution on ``[N, C, H, W]``;
    ``weight`` is ``[out, in/groups, kh, kw]``, ``groups=in_channels`` is depthwise.
    Batch and image sizes stay free at run time."""

    RANK, SPECS, KERNEL = 2, (Conv2DSpec, Conv2DNoBiasSpec), ("KH", "KW")


# ====================================================================== BatchNorm2D


def batch_norm2d(x, weight, bias, running_mean, running_var, eps=1e-5, momentum=0.1, training=True):
    """Batch normalization over ``(N, H, W)`` per channel, as a spec function.

    Training: batch statistics (biased variance to normalize; the backward runs
    through them), and the running statistics move towards the batch's (unbiased
    variance, as torch). Eval: the running statistics."""
    N, C, H, W = x.shape
    if training:
        mean = ops.mean(x, axis=(0, 2, 3), keepdims=True)
        var = ops.var(x, axis=(0, 2, 3), keepdims=True)
        count = N * H * W
        ops.assign(running_mean, running_mean * (1.0 - momentum) + mean.reshape(C) * momentum)
        ops.assign(running_var, running_var * (1.0 - momentum)
                   + ops.stop_gradient(var.reshape(C)) * count / (count - 1) * momentum)
    else:
        mean = running_mean.reshape(C, 1, 1)
        var = running_var.reshape(C, 1, 1)
    scale = weight.reshape(C, 1, 1) / ops.sqrt(var + eps)
    return (x - mean) * scale + bias.reshape(C, 1, 1)


@layer
class BatchNorm2DSpec:
    x = Input("N", "C", "H", "W")
    weight = Param("C", init="ones")
    bias = Param("C", init="zeros")
    running_mean = Buffer("C", init=0.0)
    running_var = Buffer("C", init=1.0)
    eps = Attr(1e-5)
    momentum = Attr(0.1)
    training = Attr(True)

    def forward(x, weight, bias, running_mean, running_var, eps, momentum, training):
        return batch_norm2d(x, weight, bias, running_mean, running_var, eps, momentum, training)


class BatchNorm2D(SpecLayer):
    """``torch.nn.BatchNorm2d``: ``weight``, ``bias`` and buffers ``running_mean``,
    ``running_var``. ``train()``/``eval()`` pick the compiled variant (batch or
    running statistics); both share the same parameters and buffers."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(dtype)
        self.num_features = _count("BatchNorm2D", "num_features", num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        self._declare(BatchNorm2DSpec, C=self.num_features, eps=self.eps, momentum=self.momentum)

    def _select(self, inputs):
        shape = np.shape(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])
        if self.training and len(shape) == 4 and shape[0] * shape[2] * shape[3] <= 1:
            # the unbiased running variance divides by N*H*W - 1 (torch refuses this too)
            raise ValueError(f"BatchNorm2D: training needs more than one value per channel, got input "
                             f"of shape {tuple(shape)}; use eval() for single values")
        return BatchNorm2DSpec, {"training": bool(self.training)}

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


# ====================================================================== rank-generic specs

_DIMS = ("N", "D1", "D2", "D3", "D4", "D5")
_MAX_RANK = len(_DIMS)


def _by_rank(name: str, make):
    """Specs for ranks 1..6 of a layer whose input may have any rank: ``make(dims)``
    returns the spec class for input sizes ``dims``; built lazily, one per rank."""
    cache = {}

    def get(rank: int):
        if not 1 <= rank <= _MAX_RANK:
            raise ValueError(f"{name}: input rank must be 1..{_MAX_RANK}, got {rank}")
        if rank not in cache:
            cls = make(_DIMS[:rank])
            cls.__name__ = cls.__qualname__ = f"{name}{rank}D"
            cache[rank] = layer(cls)
        return cache[rank]
    return get


def _elementwise_spec(name, fn):
    def make(dims):
        class Spec:
            x = Input(*dims)

            def forward(x):
                return fn(x)
        return Spec
    return _by_rank(name, make)


def gelu(x):
    """GELU, erf form: ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return x * (ops.erf(x * 0.7071067811865476) + 1.0) * 0.5


relu_spec = _elementwise_spec("ReLU", ops.relu)
gelu_spec = _elementwise_spec("GELU", gelu)


class _Stateless(SpecLayer):
    """A parameterless layer whose spec depends on the input rank."""

    _spec_for_rank = None

    def __init__(self, dtype=None):
        super().__init__(dtype or np.float32)
        object.__setattr__(self, "_spec_bindings", {})

    def _select(self, inputs):
        return type(self)._spec_for_rank(_rank(inputs)), {}

    def forward(self, *inputs):
        # no parameters: the compiled variant follows the input's dtype
        spec, extra = self._select(inputs)
        x = inputs[0].data if isinstance(inputs[0], Tensor) else np.asarray(inputs[0])
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else self.dtype
        module = self.compiled_module(spec, dtype=dtype, **extra)
        object.__setattr__(self, "_active", module)
        return module.forward(*inputs)


class ReLU(_Stateless):
    """``max(x, 0)`` on any shape."""
    _spec_for_rank = staticmethod(relu_spec)


class GELU(_Stateless):
    """GELU (the exact erf form, torch's default) on any shape."""
    _spec_for_rank = staticmethod(gelu_spec)


def _softmax_make(dims):
    class Spec:
        x = Input(*dims)
        axis = Attr(-1)

        def forward(x, axis):
            return ops.softmax(x, axis=axis)
    return Spec


softmax_spec = _by_rank("Softmax", _softmax_make)


class Softmax(_Stateless):
    """Softmax along ``axis`` (stable: the maximum is subtracted)."""
    _spec_for_rank = staticmethod(softmax_spec)

    def __init__(self, axis=-1, dtype=None):
        super().__init__(dtype)
        self.axis = int(axis)
        object.__setattr__(self, "_spec_bindings", {"axis": self.axis})

    def extra_repr(self):
        return f"axis={self.axis}"


def _flatten_make(dims):
    class Spec:
        x = Input(*dims)

        def forward(x):
            shape = x.shape
            return x.reshape(shape[0], -1)
    return Spec


flatten_spec = _by_rank("Flatten", _flatten_make)


class Flatten(_Stateless):
    """``[N, d1, d2, ...] -> [N, d1*d2*...]``."""
    _spec_for_rank = staticmethod(flatten_spec)


# ====================================================================== LayerNorm

_LN_DIMS = ("L1", "L2", "L3")


def layer_norm(x, weight, bias, k, eps=1e-5):
    """Normalize over the last ``k`` axes, then scale and shift (spec function)."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    return centered / ops.sqrt(var + eps) * weight + bias


_layer_norm_specs: dict = {}


def layer_norm_spec(rank: int, k: int):
    """The LayerNorm spec for inputs of ``rank`` normalized over the last ``k`` axes."""
    if not 1 <= k <= min(rank, len(_LN_DIMS)) or rank > _MAX_RANK:
        raise ValueError(f"LayerNorm: cannot normalize the last {k} axes of a rank-{rank} input")
    if (rank, k) not in _layer_norm_specs:
        norm = _LN_DIMS[:k]
        dims = _DIMS[:rank - k] + norm

        class Spec:
            x = Input(*dims)
            weight = Param(*norm, init="ones")
            bias = Param(*norm, init="zeros")
            eps = Attr(1e-5)

            def forward(x, weight, bias, eps):
                return layer_norm(x, weight, bias, k, eps)
        Spec.__name__ = Spec.__qualname__ = f"LayerNorm{rank}D{k}"
        _layer_norm_specs[rank, k] = layer(Spec)
    return _layer_norm_specs[rank, k]


class LayerNorm(SpecLayer):
    """``torch.nn.LayerNorm(normalized_shape)``: normalize over the trailing
    ``normalized_shape`` axes (biased variance), with ``weight`` and ``bias`` of
    that shape."""

    def __init__(self, normalized_shape, eps=1e-5, dtype=np.float32):
        super().__init__(dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not 1 <= len(shape) <= len(_LN_DIMS):
            raise ValueError(f"LayerNorm: normalized_shape must have 1..{len(_LN_DIMS)} axes, got {shape}")
        self.normalized_shape = tuple(_count("LayerNorm", "normalized_shape", d, least=0) for d in shape)
        self.eps = float(eps)
        k = len(shape)
        self._declare(layer_norm_spec(k, k), eps=self.eps, **dict(zip(_LN_DIMS, self.normalized_shape)))

    def _select(self, inputs):
        rank = _rank(inputs)
        shape = np.shape(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0])
        k = len(self.normalized_shape)
        if tuple(shape[rank - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm: input of shape {tuple(shape)} does not end with "
                             f"{self.normalized_shape}")
        return layer_norm_spec(rank, k), {}

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


# ====================================================================== pooling


def max_pool2d(x, kernel_size, stride):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    i, j = ops.reduce_axis(kh, "i"), ops.reduce_axis(kw, "j")
    return ops.compute((N, C, (H - kh) // sh + 1, (W - kw) // sw + 1), lambda n, c, h, w: ops.max(
        x[n, c, h * sh + i, w * sw + j], over=(i, j)), name="maxpool")


def avg_pool2d(x, kernel_size, stride):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    i, j = ops.reduce_axis(kh, "i"), ops.reduce_axis(kw, "j")
    # scaled inside the sum: one pass over the window, not a second over the output
    return ops.compute((N, C, (H - kh) // sh + 1, (W - kw) // sw + 1), lambda n, c, h, w: ops.sum(
        x[n, c, h * sh + i, w * sw + j] * (1.0 / (kh * kw)), over=(i, j)), name="avgpool")


@layer
class MaxPool2DSpec:
    """Max over ``kernel_size`` windows (no padding); the gradient goes to the
    first maximal element of each window (row-major), or its first NaN."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))

    def forward(x, kernel_size, stride):
        return max_pool2d(x, kernel_size, stride)


@layer
class AvgPool2DSpec:
    """Mean over ``kernel_size`` windows (no padding)."""
    x = Input("N", "C", "H", "W")
    kernel_size = Attr((2, 2))
    stride = Attr((2, 2))

    def forward(x, kernel_size, stride):
        return avg_pool2d(x, kernel_size, stride)


class _Pool2D(_Stateless):
    _spec = None

    def __init__(self, kernel_size, stride=None, dtype=None):
        super().__init__(dtype)
        name = type(self).__name__
        self.kernel_size = _counts(name, "kernel_size", kernel_size)
        self.stride = _counts(name, "stride", stride) if stride is not None else self.kernel_size
        object.__setattr__(self, "_spec_bindings", {"kernel_size": self.kernel_size, "stride": self.stride})

    def _select(self, inputs):
        if _rank(inputs) != 4:
            raise ValueError(f"{type(self).__name__}: input must be [N, C, H, W], got rank {_rank(inputs)}")
        return type(self)._spec, {}

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2D(_Pool2D):
    """``torch.nn.MaxPool2d(kernel_size, stride)`` (stride defaults to the kernel size)."""
    _spec = MaxPool2DSpec


class AvgPool2D(_Pool2D):
    """``torch.nn.AvgPool2d(kernel_size, stride)`` (stride defaults to the kernel size)."""
    _spec = AvgPool2DSpec
