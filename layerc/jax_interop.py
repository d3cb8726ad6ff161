"""JAX interop: a layerc module as a function that ``jax.jit`` and ``jax.grad`` take.

``to_jax(module)`` returns ``(apply, params)``: ``apply(params, *inputs)`` is a
pure JAX function (its forward and its vector-Jacobian product run layerc's
compiled kernels through ``jax.pure_callback``, tied together by
``jax.custom_vjp``), and ``params`` a dict of the module's parameters, named
as in its ``state_dict``, as JAX arrays. Gradients flow to the float inputs
and to ``params``; integer inputs (class targets) get none.

Example::

    import jax
    from layerc.jax_interop import to_jax

    apply, params = to_jax(PReLU.build(C=16))
    loss = lambda params, x: (apply(params, x) ** 2).sum()
    grads = jax.jit(jax.grad(loss))(params, x)       # {"alpha": ...}

Each call copies ``params`` into the layerc module before it runs, so the
module's own arrays hold the values of the latest call. Only reverse mode is
offered (``jax.grad``, ``jax.vjp``); a module in training mode still updates its
running statistics when called, so use ``module.eval()`` where purity matters.
"""
from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from .runtime.module import Module
from .runtime.tensor import Tensor, backpropagate_outputs, no_grad


class _Callbacks:
    """The host side: run the layerc module on numpy arrays, serialized by a lock."""

    def __init__(self, module: Module):
        self.module = module
        self.names = [name for name, _ in module.named_parameters()]
        self.lock = threading.Lock()
        self.shapes: dict = {}

    def _load(self, params: dict) -> list:
        tensors = dict(self.module.named_parameters())
        for name in self.names:
            np.copyto(tensors[name].data, np.asarray(params[name]), casting="same_kind")
        return [tensors[name] for name in self.names]

    def output_shapes(self, inputs) -> tuple:
        """Shapes and dtypes of the outputs for inputs like these (the module run once on zeros)."""
        key = tuple((x.shape, np.dtype(x.dtype).str) for x in inputs)
        if key not in self.shapes:
            with self.lock, no_grad():
                outputs = self.module(*(np.zeros(x.shape, x.dtype) for x in inputs))
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            self.shapes[key] = tuple(jax.ShapeDtypeStruct(o.shape, o.dtype) for o in outputs)
        return self.shapes[key]

    def forward(self, params: dict, *inputs) -> tuple:
        with self.lock, no_grad():
            self._load(params)
            outputs = self.module(*(np.asarray(x) for x in inputs))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return tuple(np.asarray(o.data) for o in outputs)

    def vjp(self, params: dict, inputs: tuple, cotangents: tuple) -> tuple:
        """``(gradients of params as a dict, gradients of the float inputs)``."""
        with self.lock:
            tensors = self._load(params)
            kept = [t.grad for t in tensors]
            for t in tensors:
                t.grad = None
            try:
                leaves = [Tensor(np.asarray(x), requires_grad=np.asarray(x).dtype.kind == "f",
                                 dtype=np.asarray(x).dtype) for x in inputs]
                outputs = self.module(*leaves)
                outputs = outputs if isinstance(outputs, tuple) else (outputs,)
                backpropagate_outputs(outputs, cotangents)
                param_grads = {n: _zero_if_none(t.grad, t.data) for n, t in zip(self.names, tensors)}
                input_grads = tuple(_zero_if_none(t.grad, t.data) for t in leaves if t.requires_grad)
            finally:
                for t, g in zip(tensors, kept):
                    t.grad = g
        return param_grads, input_grads


def _zero_if_none(grad, like: np.ndarray) -> np.ndarray:
    return np.zeros_like(like) if grad is None else np.asarray(grad, dtype=like.dtype)


def to_jax(module: Module):
    """``(apply, params)`` for a layerc module: see the module docstring."""
    if not isinstance(module, Module):
        raise TypeError(f"to_jax takes a layerc Module (a built layer, a built-in layer, a Sequential "
                        f"or a Module subclass), got {type(module).__name__}")
    host = _Callbacks(module)

    def call(params, *inputs):
        shapes = host.output_shapes(inputs)
        outputs = jax.pure_callback(host.forward, shapes, params, *inputs, vmap_method="sequential")
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def call_fwd(params, *inputs):
        return call(params, *inputs), (params, inputs)

    def call_bwd(residuals, cotangent):
        params, inputs = residuals
        cotangents = cotangent if isinstance(cotangent, tuple) else (cotangent,)
        floats = [x for x in inputs if jnp.issubdtype(x.dtype, jnp.floating)]
        shapes = ({n: jax.ShapeDtypeStruct(p.shape, p.dtype) for n, p in params.items()},
                  tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in floats))
        param_grads, float_grads = jax.pure_callback(host.vjp, shapes, params, inputs, cotangents,
                                                     vmap_method="sequential")
        float_grads = iter(float_grads)
        input_grads = tuple(next(float_grads) if jnp.issubdtype(x.dtype, jnp.floating)
                            else np.zeros(x.shape, jax.dtypes.float0) for x in inputs)
        return (param_grads, *input_grads)

    apply = jax.custom_vjp(call)
    apply.defvjp(call_fwd, call_bwd)
    params = {name: jnp.asarray(p.data) for name, p in module.named_parameters()}
    return apply, params


__all__ = ["to_jax"]
