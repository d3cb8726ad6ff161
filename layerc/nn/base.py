"""What every built-in layer stands on: ``SpecLayer`` (a module whose math is a
spec, compiled per variant on first use), the argument checks that name the
layer and the argument, and specs of any rank (``_any_rank``: one spec of
``Input(...)``) or made per input rank (``_by_rank``)."""
from __future__ import annotations

import numbers

import numpy as np

from ..compiler.pipeline import compile_layer
from ..compiler.spec import Input
from ..layers import layer
from ..runtime.init import initialize
from ..runtime.module import LayerModule, Module
from ..runtime.tensor import Tensor


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


def _divides(layer: str, part: str, part_value: int, whole: str, whole_value: int) -> None:
    """ValueError naming the layer and both arguments unless ``part_value`` divides ``whole_value``."""
    if whole_value % part_value:
        raise ValueError(f"{layer}: {whole} ({whole_value}) must be divisible by {part} ({part_value})")


def _grouped_channels(layer: str, in_channels, out_channels, groups) -> tuple:
    """``(in_channels, out_channels, groups)`` of a convolution, each a count and
    both channel counts divisible by ``groups``, else ValueError naming the layer."""
    counts = tuple(_count(layer, arg, value) for arg, value in
                   (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)))
    if counts[0] % counts[2] or counts[1] % counts[2]:
        raise ValueError(f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                         f"must be divisible by groups ({groups})")
    return counts


def _counts(layer: str, arg: str, value, least: int = 1, rank: int = 2) -> tuple:
    """``value`` (an int, or ``rank`` of them) as ``rank`` ints of at least ``least``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
    if len(values) != rank or not all(_is_int(v) and v >= least for v in values):
        raise ValueError(f"{layer}: {arg} must be an integer >= {least} or {rank} of them, got {value!r}")
    return tuple(int(v) for v in values)


# a layer built per input size builds at most this many sizes (see SpecLayer._per_size)
SIZED_BUILDS = 8


class SpecLayer(Module):
    """A module whose math is a layerc spec, compiled on first use.

    The parameters (``Tensor``) and buffers (arrays) live on this module; every
    compiled variant (per dtype, training/eval) shares the same
    objects, so an optimizer step or a ``load_state_dict`` is seen by all of them.

    Subclasses set ``self._spec_bindings`` (sizes and attributes bound at build
    time) and implement ``_select(inputs) -> (spec, extra_bindings)``.
    """

    def __init__(self, dtype=np.float32):
        super().__init__()
        object.__setattr__(self, "dtype", np.dtype(dtype))
        object.__setattr__(self, "_variants", {})
        object.__setattr__(self, "_active", None)
        object.__setattr__(self, "_last_variant", None)
        object.__setattr__(self, "_sizes_built", set())

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
            if name in spec.optional and not bindings.get(name, True):
                continue        # an optional parameter this layer is built without
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
        last = self._last_variant
        # a call like the one before (the usual case) skips building the key
        if last is not None and last[0] is spec and last[1] == dtype and last[3] == extra:
            module = last[2]
        else:
            bindings = {k: v for k, v in {**self._spec_bindings, **extra}.items()
                        if k in spec.sizes or k in spec.attrs}
            key = (id(spec), dtype.str, tuple(sorted((k, repr(v)) for k, v in bindings.items())))
            module = self._variants.get(key)
            if module is None:
                module = LayerModule(compile_layer(spec, **bindings), dtype=dtype)
                self._variants[key] = module
            object.__setattr__(self, "_last_variant", (spec, dtype, module, extra))
        self._share(module)
        return module

    def _per_size(self, sizes: dict) -> dict:
        """``sizes`` as extra bindings (a build of their own, the sizes constants:
        a padded copy's turns, a short row's length) for the first SIZED_BUILDS
        distinct ones this layer meets; past those, none: one build with the sizes
        free serves the rest, so that a sequence of many lengths does not compile
        once per length. Example (in a ``_select``)::

            return spec, self._per_size({"H": h, "W": w})
        """
        key = tuple(sorted(sizes.items()))
        if key not in self._sizes_built:
            if len(self._sizes_built) >= SIZED_BUILDS:
                return {}
            self._sizes_built.add(key)
        return sizes

    def _spec_parameters(self) -> dict:
        """The parameters by their names in the spec (a layer with submodules maps dotted names)."""
        return self._parameters

    def _share(self, module: LayerModule):
        params = self._spec_parameters()
        for name in list(module._parameters):
            p = params[name]
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


_DIMS = ("N", "D1", "D2", "D3", "D4", "D5")
_MAX_RANK = len(_DIMS)


def _by_rank(name: str, make):
    """Specs for ranks 1..6 of a layer whose input may have any rank: ``make(dims)``
    returns the spec class for input sizes ``dims``; built lazily, one per rank.
    Prefer one spec of ``Input(...)`` (``_any_rank``) where the math allows."""
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


def _any_rank(name: str, make):
    """``_by_rank``'s interface for a layer one spec serves at every rank:
    ``make((...,))``, built on first use, whatever the rank asked for."""
    built = []

    def get(rank: int = 0):
        if not built:
            cls = make((...,))
            cls.__name__ = cls.__qualname__ = name
            built.append(layer(cls))
        return built[0]
    return get


def _elementwise_spec(name, fn):
    """``fn(x)`` on any shape: one spec, ``Input(...)`` (``get(rank)`` gives it for any rank)."""
    def make(dims):
        return type(name, (), {"x": Input(*dims), "forward": lambda x: fn(x)})
    return _any_rank(name, make)


class _Stateless(SpecLayer):
    """A parameterless layer of one spec (``SPEC``, of any rank: declared with
    ``...``), or of one per input rank (``_spec_for_rank(rank)``)."""

    SPEC = None
    _spec_for_rank = None

    def __init__(self, dtype=None):
        super().__init__(dtype or np.float32)
        object.__setattr__(self, "_spec_bindings", {})

    def _select(self, inputs):
        if type(self).SPEC is not None:
            return type(self).SPEC, {}
        return type(self)._spec_for_rank(_rank(inputs)), {}

    def forward(self, *inputs):
        # no parameters: the compiled variant follows the input's dtype
        spec, extra = self._select(inputs)
        x = inputs[0].data if isinstance(inputs[0], Tensor) else np.asarray(inputs[0])
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else self.dtype
        module = self.compiled_module(spec, dtype=dtype, **extra)
        object.__setattr__(self, "_active", module)
        return module.forward(*inputs)
