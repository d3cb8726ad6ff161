"""PyTorch interop: run any layerc module inside a ``torch.nn.Module``.

``to_torch(module)`` wraps a layerc ``Module`` in a ``torch.nn.Module``: a
compiled layer (what ``Spec.build(...)`` returns), a built-in layer, a
``Sequential`` or any user subclass. Its forward and backward call layerc's
compiled C kernels through a ``torch.autograd.Function`` (a whole model's
backward is layerc's own tape, run from the gradients torch hands over);
tensors cross the boundary
without copies where the layout allows (``Tensor.numpy()`` /
``torch.from_numpy`` on contiguous CPU tensors of the layer's dtype). layerc's
parameters become ``torch.nn.Parameter``s sharing storage with the layerc
arrays, under the names of the layerc ``state_dict`` (submodules mirrored), so
``torch.optim`` (or ``DistributedDataParallel``) trains the layerc module in
place; buffers (running statistics) are shared the same way.

Example::

    import torch
    from layerc.torch_interop import to_torch

    layer = to_torch(PReLU.build(C=16))
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), layer, torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(4, 8)).pow(2).mean()
    loss.backward(); opt.step()

Every call keeps its own tape, so a module may be used several times in one
graph; a second backward through one call (``retain_graph=True``) replays that
call's forward first.

Double backward (``create_graph=True``: gradient penalties, Hessian-vector
products) works for modules built from specs (``Spec.build``, the built-in
layers): the backward then calls the module's grad spec (``Spec.grad()``,
``layerc/spec_grad.py``, built once and sharing the parameters) through the
same ``torch.autograd.Function``, so torch can differentiate it again, to any
order. Compositions (``Sequential``, ``Module`` subclasses) refuse it: wrap
each layer with ``to_torch`` and compose them in torch.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .runtime import tensor as _tensor
from .runtime.module import Module
from .runtime.tensor import Tensor, backpropagate_outputs
from .spec_grad import grad_target, share_state

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


class _ModuleFunction(torch.autograd.Function):
    """``forward(ctx, wrapper, n_inputs, *inputs, *params)``: any layerc module,
    its backward the layerc tape of this call, run from torch's gradients.

    A tape runs backward once (a layer's backward may write over what its
    forward saved); a second backward of the same call (``retain_graph``,
    ``gradcheck``) replays the forward first, with the buffers (running
    statistics) restored afterwards so the replay leaves no trace."""

    @staticmethod
    def forward(ctx, wrapper, n_inputs, *tensors):
        ctx.wrapper, ctx.n_inputs, ctx.needs = wrapper, n_inputs, ctx.needs_input_grad[2:]
        with wrapper._lock:
            ctx.inputs, ctx.outputs = _run_module(wrapper, tensors[:n_inputs], ctx.needs)
        ctx.taped = True
        if any(ctx.needs):
            ctx.save_for_backward(*tensors)
        results = tuple(_from_numpy(o.data if isinstance(o, Tensor) else o) for o in ctx.outputs)
        return results[0] if len(results) == 1 else results

    @staticmethod
    def backward(ctx, *grad_outputs):
        if torch.is_grad_enabled():            # create_graph=True: a backward torch differentiates again
            return (None, None, *_differentiable_backward(ctx, grad_outputs))
        saved = ctx.saved_tensors              # raises if an input was modified in place
        wrapper = ctx.wrapper
        params = wrapper.layerc_parameters()
        with wrapper._lock:
            if not ctx.taped:
                ctx.inputs, ctx.outputs = _replay(wrapper, saved[:ctx.n_inputs], ctx.needs)
            ctx.taped = False
            kept = [p.grad for p in params]    # layerc's own accumulated gradients stay as they were
            for t in (*params, *ctx.inputs):
                t.grad = None
            try:
                backpropagate_outputs(ctx.outputs, [None if g is None else _to_numpy("backward", "grad_output", g.contiguous())
                                                    for g in grad_outputs])
                grads = [t.grad for t in (*ctx.inputs, *params)]
            finally:
                for p, g in zip(params, kept):
                    p.grad = g
        return (None, None, *(None if g is None else _from_numpy(g) for g in grads))


def _differentiable_backward(ctx, grad_outputs) -> list:
    """The input and parameter gradients as torch operations: the module's grad
    spec (``Spec.grad()``, sharing its parameters) called through
    ``_ModuleFunction``, so its own backward (the second derivative) is on
    torch's graph, and so on for higher orders."""
    wrapper, n = ctx.wrapper, ctx.n_inputs
    saved = ctx.saved_tensors
    inputs, params = saved[:n], saved[n:]
    twin = wrapper.grad_twin([_to_numpy("backward", "input", x) for x in inputs])
    grads = [torch.zeros(o.shape, dtype=_TORCH_DTYPES[o.dtype]) if g is None else g
             for o, g in zip(ctx.outputs, grad_outputs)]
    order = {id(p): k for k, p in enumerate(wrapper.layerc_parameters())}
    twin_params = [params[order[id(p)]] for p in twin.layerc_parameters()]
    results = _ModuleFunction.apply(twin, n + len(grads), *inputs, *grads, *twin_params)
    results = dict(zip((o.name for o in twin.module.record.outputs),
                       results if isinstance(results, tuple) else (results,)))
    module, output = twin.module, twin.module.compiled.spec.gradient_output
    by_name = [results.get(output(t.name)) for t in module.record.of_role("input", "data", "index")[:n]]
    by_name += [results.get(output(name)) for name, _ in wrapper.named_layerc_parameters()]
    return [g if need else None for g, need in zip(by_name, ctx.needs)]


def _run_module(wrapper, tensors, needs) -> tuple:
    """Call the layerc module on torch inputs: (its layerc inputs, its outputs as a tuple)."""
    name = type(wrapper.module).__name__
    with _GradMode(any(needs)):
        inputs = [_layerc_input(name, f"input {k}", x, needs[k]) for k, x in enumerate(tensors)]
        outputs = wrapper.module(*inputs)
    return inputs, outputs if isinstance(outputs, tuple) else (outputs,)


def _replay(wrapper, tensors, needs) -> tuple:
    buffers = [(b, b.copy()) for _, b in wrapper.module.named_buffers()]
    try:
        return _run_module(wrapper, tensors, needs)
    finally:
        for b, before in buffers:
            np.copyto(b, before)


def _layerc_input(name: str, arg: str, x, needs_grad: bool) -> Tensor:
    array = _to_numpy(name, arg, x)
    return Tensor(array, requires_grad=needs_grad and array.dtype.kind == "f", dtype=array.dtype)


class _Mirror(torch.nn.Module):
    """The torch twin of one layerc module: its parameters and buffers (the
    same memory) under their layerc names, and a twin of each submodule."""

    def __init__(self, module: Module):
        super().__init__()
        self._layerc = module
        for name, p in module._parameters.items():
            self.register_parameter(name, torch.nn.Parameter(torch.from_numpy(p.data)))
        for name, b in module._buffers.items():
            self.register_buffer(name, torch.from_numpy(b))
        for name, child in module._modules.items():
            self.add_module(name, _Mirror(child))

    def _sync(self) -> None:
        """Point the layerc arrays at the torch storage again if either side was
        rebound (``param.data = ...``, ``load_state_dict(assign=True)``)."""
        for twin in self.modules():
            module = twin._layerc
            for name, target in module._parameters.items():
                p = getattr(twin, name)
                if p.dtype != _TORCH_DTYPES.get(target.data.dtype) or p.device.type != "cpu":
                    raise TypeError(f"{type(module).__name__}: parameter {name!r} is {p.dtype} on {p.device}; "
                                    f"the module runs {target.data.dtype} on CPU")
                if target.data.ctypes.data != p.data_ptr() or target.data.shape != tuple(p.shape):
                    target.data = p.detach().numpy()
            for name, array in list(module._buffers.items()):
                b = getattr(twin, name)
                if array.ctypes.data != b.data_ptr() or array.shape != tuple(b.shape):
                    module._buffers[name] = b.numpy()


class TorchModule(_Mirror):
    """A ``torch.nn.Module`` running any layerc module (a ``Sequential``, a
    built-in layer, a user's ``Module`` subclass): parameters and buffers
    shared and named as in the layerc ``state_dict``; ``train()``/``eval()``
    switch the layerc module too."""

    def __init__(self, module: Module):
        if not isinstance(module, Module):
            raise TypeError(f"to_torch takes a layerc Module (a built layer, a built-in layer, a Sequential "
                            f"or a Module subclass), got {type(module).__name__}")
        super().__init__(module)
        self.module = module
        self._lock = threading.Lock()
        self._grad_twins = {}       # {(grad spec, bindings, dtype): TorchModule}: not submodules of this one
        self.train(module.training)

    def layerc_parameters(self) -> list:
        """The layerc Tensors behind ``self.parameters()``, in the same order."""
        owners = {id(p): (twin._layerc, name) for twin in self.modules() for name, p in twin._parameters.items()}
        return [owner._parameters[name] for owner, name in (owners[id(p)] for p in self.parameters())]

    def named_layerc_parameters(self) -> list:
        """``(name in the layerc module, Tensor)`` in the order of ``self.parameters()``."""
        names = {id(p): name for name, p in self.module.named_parameters()}
        return [(names[id(p)], p) for p in self.layerc_parameters()]

    def grad_twin(self, inputs) -> "TorchModule":
        """The torch twin of this module's backward as a module (its grad spec,
        sharing the parameters), made once per variant: what double backward calls."""
        try:
            spec, bindings = grad_target(self.module, inputs=inputs)
        except TypeError as exc:
            raise NotImplementedError(
                f"to_torch({type(self.module).__name__}): backward with create_graph=True (double backward) "
                f"needs a module built from a spec (Spec.build or a built-in layer), whose backward layerc "
                f"derives as a spec of its own; wrap each layer with to_torch and compose them in torch") from exc
        key = (id(spec), repr(sorted(bindings.items())), self.module.dtype.str)
        twin = self._grad_twins.get(key)
        if twin is None:
            grad = spec.build(dtype=self.module.dtype, **bindings)
            share_state(self.module, grad)
            twin = self._grad_twins[key] = TorchModule(grad)
        return twin

    def forward(self, *inputs):
        self._sync()
        tensors = [x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in inputs]
        return _ModuleFunction.apply(self, len(tensors), *tensors, *self.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        self.module.train(mode)
        return self

    def extra_repr(self) -> str:
        return type(self.module).__name__


def to_torch(module: Module) -> torch.nn.Module:
    """Wrap a layerc module as a ``torch.nn.Module`` (see the module docstring)."""
    return TorchModule(module)


__all__ = ["to_torch", "TorchModule"]
