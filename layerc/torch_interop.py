"""PyTorch interop: run a compiled layerc layer inside a ``torch.nn.Module``.

``to_torch(module)`` wraps a ``LayerModule`` (what ``Spec.build(...)`` returns)
in a ``torch.nn.Module``. Its forward and backward call layerc's compiled C
kernels through a ``torch.autograd.Function``; tensors cross the boundary
without copies where the layout allows (``Tensor.numpy()`` /
``torch.from_numpy`` on contiguous CPU tensors of the layer's dtype). layerc's
parameters become ``torch.nn.Parameter``s sharing storage with the layerc
arrays, so ``torch.optim`` (or ``DistributedDataParallel``) trains the layerc
module in place; buffers (running statistics) are shared the same way.

Example::

    import torch
    from layerc.torch_interop import to_torch

    layer = to_torch(PReLU.build(C=16))
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), layer, torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(4, 8)).pow(2).mean()
    loss.backward(); opt.step()

Every call of the Function keeps its own saved context, so a layer may be used
several times in one graph. Double backward is not supported (the backward is
one compiled kernel, not a differentiable torch graph).
"""
from __future__ import annotations

import threading

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .runtime import tensor as _tensor
from .runtime.module import LayerModule

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _to_numpy(layer_name: str, arg: str, t) -> np.ndarray:
    """A numpy view of a CPU tensor (a copy only when torch cannot give a view)."""
    if not isinstance(t, torch.Tensor):
        return np.asarray(t)
    if t.device.type != "cpu":
        raise TypeError(f"{layer_name}: input {arg!r} is on {t.device}; layerc kernels run on CPU tensors")
    t = t.detach()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    return t.numpy()


def _from_numpy(a) -> torch.Tensor:
    a = np.asarray(a)
    if not a.flags.writeable:          # torch.from_numpy warns on read-only arrays
        a = a.copy()
    return torch.from_numpy(a)


class _GradMode:
    """Set layerc's own grad mode for the duration of a call (thread-local)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.previous = _tensor.grad_enabled()
        _tensor._state.enabled = self.enabled

    def __exit__(self, *exc):
        _tensor._state.enabled = self.previous


class _LayerFunction(torch.autograd.Function):
    """``forward(ctx, wrapper, *inputs, *params)``: inputs in the spec's order,
    then the parameters in ``wrapper.param_names`` order."""

    @staticmethod
    def forward(ctx, wrapper, *tensors):
        layer = wrapper.layer
        n_inputs = len(wrapper.input_names)
        arrays = [_to_numpy(layer.name, n, t) for n, t in zip(wrapper.input_names, tensors[:n_inputs])]
        needs_grad = any(ctx.needs_input_grad[1:])
        with wrapper._lock, _GradMode(needs_grad):
            outputs = layer.forward(*arrays)
            context = layer._last if needs_grad else None
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        ctx.layerc_context = context          # this call's own saved state
        ctx.wrapper = wrapper
        if needs_grad:
            # saved only so torch's version counters catch in-place edits before backward
            ctx.save_for_backward(*tensors)
        results = tuple(_from_numpy(o.data) for o in outputs)
        return results[0] if len(results) == 1 else results

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outputs):
        ctx.saved_tensors                      # raises if an input was modified in place
        wrapper = ctx.wrapper
        layer = wrapper.layer
        if ctx.layerc_context is None:
            raise RuntimeError(f"{layer.name}: backward through a call that needed no gradient")
        context = dict(ctx.layerc_context, used=False)   # a retained graph may run backward again
        grads = [_to_numpy(layer.name, "grad_output", g.contiguous()) for g in grad_outputs]
        result = layer._run_backward(context, tuple(grads))
        out = [None]                           # the wrapper argument
        for name, kind in zip(wrapper.input_names, wrapper.input_kinds):
            wanted = ctx.needs_input_grad[len(out)]
            out.append(_from_numpy(result[f"grad_{name}"]) if kind == "input" and wanted else None)
        for name in wrapper.param_names:
            wanted = ctx.needs_input_grad[len(out)]
            out.append(_from_numpy(result[f"grad_{name}"]) if wanted else None)
        return tuple(out)


class TorchLayer(torch.nn.Module):
    """A ``torch.nn.Module`` running a layerc ``LayerModule``'s compiled kernels.

    ``.layer`` is the wrapped layerc module; its parameters are this module's
    ``torch.nn.Parameter``s (same memory), its buffers this module's buffers.
    ``train()``/``eval()`` switch the layerc module too (buffers such as running
    statistics update only in training mode).
    """

    def __init__(self, layer: LayerModule):
        super().__init__()
        if not isinstance(layer, LayerModule):
            raise TypeError(f"to_torch takes a compiled layerc layer (what Spec.build(...) returns), "
                            f"got {type(layer).__name__}")
        self.layer = layer
        self._lock = threading.Lock()
        self.input_names = [t.name for t in layer._inputs]
        self.input_kinds = [t.role for t in layer._inputs]
        self.param_names = list(layer._parameters)
        for name, p in layer._parameters.items():
            self.register_parameter(name, torch.nn.Parameter(torch.from_numpy(p.data)))
        for name, b in layer._buffers.items():
            self.register_buffer(name, torch.from_numpy(b))
        self.train(layer.training)

    def _sync(self):
        """Point the layerc arrays at the torch storage again if either side was
        rebound (``param.data = ...``, ``load_state_dict(assign=True)``)."""
        for name in self.param_names:
            p = getattr(self, name)
            if p.dtype != _TORCH_DTYPES[self.layer.dtype] or p.device.type != "cpu":
                raise TypeError(f"{self.layer.name}: parameter {name!r} is {p.dtype} on {p.device}; "
                                f"the layer runs {self.layer.dtype} on CPU")
            target = self.layer._parameters[name]
            if target.data.ctypes.data != p.data_ptr() or target.data.shape != tuple(p.shape):
                target.data = p.detach().numpy()
        for name in list(self.layer._buffers):
            b = getattr(self, name)
            if self.layer._buffers[name].ctypes.data != b.data_ptr():
                self.layer._buffers[name] = b.numpy()

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"{self.layer.name}: forward takes {len(self.input_names)} inputs "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        self._sync()
        params = [getattr(self, n) for n in self.param_names]
        tensors = [x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in inputs]
        return _LayerFunction.apply(self, *tensors, *params)

    def train(self, mode: bool = True):
        super().train(mode)
        self.layer.train(mode)
        return self

    def extra_repr(self) -> str:
        return repr(self.layer)


def to_torch(module: LayerModule) -> TorchLayer:
    """Wrap a compiled layerc layer as a ``torch.nn.Module`` (see the module docstring)."""
    return TorchLayer(module)


__all__ = ["to_torch", "TorchLayer"]
