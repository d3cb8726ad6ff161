"""``Spec.grad()``: a layer's backward as a layer of its own, which builds,
checks and differentiates again (higher-order gradients).

In: a spec. Out: a ``GradSpec`` whose forward is the spec's derived backward,
made self-contained (the forward stages it needs are recomputed, not read as
saved tensors, so the result is a function of its declared inputs only):

- inputs: the spec's inputs, parameters and buffers (parameters stay
  parameters, so differentiating the grad spec gives their gradients), then
  ``grad_<output>`` for each output of the forward, as inputs;
- outputs: ``d_<x>`` (the gradient of ``x``) for each differentiable input and parameter in
  declaration order (or those named in ``wrt``).

Its own backward is the second derivative: for a loss ``L(grad_x)`` of the
input gradient (a gradient penalty), it gives ``dL/dparams`` and ``dL/dx``;
given ``v`` as the gradient of ``grad_params`` it gives a Hessian-vector
product. A spec's user-written ``backward`` is not used here: the grad spec
is built from the derived backward, which ``layerc check`` holds equal to it.
Buffers are read as they are, not updated (a batch norm's running statistics
move in the forward only).

``grad_module(module)`` builds the grad spec of a built module at the same
sizes, sharing its parameters (the same Tensors, so gradients accumulate in
one place) and buffers.

Example::

    @layer
    class Tanh:
        x = Input("N", "C")
        w = Param("C", init=1.0)

        def forward(x, w):
            return ops.tanh(x * w)

    dTanh = Tanh.grad()                       # (x, w, grad_<out>) -> (grad_x, grad_w)
    m = dTanh.build(C=4)
    gx, gw = m(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32))
    check_grad(dTanh, N=2, C=4).assert_ok()   # second derivatives vs finite differences
"""
from __future__ import annotations

import numpy as np

from .compiler import ir
from .compiler.errors import SpecError
from .compiler.pipeline import compile_layer
from .layers import Layer
from .runtime.module import LayerModule
from .runtime.tensor import Tensor, record_call


class GradSpec(Layer):
    """The derived backward of ``base`` as a spec (see the module docstring)."""

    def __init__(self, base, wrt: tuple | None = None):
        # no class to read: everything but the program comes from the base spec
        self.base = base
        self.depth = getattr(base, "depth", 0) + 1      # how many times differentiated
        self.wrt = wrt
        self.name = f"{base.name}_grad"
        self.doc = f"The backward of {base.name} as a layer: inputs, parameters and output gradients " \
                   f"in, {'gradients of ' + ', '.join(self.wrt) if self.wrt else 'their gradients'} out."
        self.cls = None
        self.tensors = list(base.tensors)
        self.location = base.location
        self.attrs = dict(base.attrs)
        self.sizes = list(base.sizes)
        self.forward, self.backward = base.forward, None

    def __repr__(self):
        return f"<layer spec {self.name}: the backward of {self.base.name}>"

    def build(self, dtype=None, cast: bool = False, options=None, checked: bool | None = None, **bindings):
        """The grad spec compiled at ``bindings``: a ``GradModule`` (``checked`` has
        nothing to check: the backward is the derived one)."""
        return GradModule(compile_layer(self, options, **bindings), dtype=dtype, cast=cast)

    def _check_wrt(self, forward: ir.Program):
        from .compiler.autodiff import DIFFERENTIABLE_ROLES
        differentiable = [t.name for t in forward.tensors if t.role in DIFFERENTIABLE_ROLES]
        unknown = [n for n in self.wrt or () if n not in differentiable]
        if unknown:
            raise SpecError(self.name, f"grad(wrt=...): {', '.join(unknown)} is not a differentiable input or "
                            f"parameter of {self.base.name} (differentiable: {', '.join(differentiable)})",
                            self.location)

    def trace(self, **bindings) -> ir.Program:
        """The base spec's self-contained backward at ``bindings``, its output
        gradients declared as inputs."""
        # the passes load when a layer is lowered, as in compiler/pipeline.py, not on import
        from .compiler.autodiff import gradient_program
        from .compiler.simplify import simplify_program
        forward = simplify_program(self.base.trace(**bindings))
        self._check_wrt(forward)
        backward = gradient_program(forward, wrt=self.wrt, self_contained=True)
        decls = tuple(ir.replace(t, role="input") if t.role == "grad" else t for t in backward.tensors)
        saved = [t.name for t in decls if t.role == "saved"]
        assert not saved, f"a self-contained backward reads saved tensors {saved}"
        program = ir.replace(backward, name=self.name, tensors=decls, updates=())
        return _names_for_autodiff(program, self)

    def gradient_output(self, name: str) -> str:
        """The output holding the gradient of ``name``: ``d_<name>``, and
        ``d_d_<name>`` for the grad spec of a grad spec (whose inputs include
        ``grad_d_<name>``), and so on."""
        return "d_" * self.depth + name


class GradModule(LayerModule):
    """A built grad spec. It has as many outputs as gradients, and a call puts
    them all on the tape as one node, so a loss of any of them (a gradient
    penalty of ``grad_x``) backpropagates through its compiled backward."""

    def _record(self, outputs: tuple, diff_inputs: list, context: dict):
        if len(outputs) == 1:
            return super()._record(outputs, diff_inputs, context)
        inputs = diff_inputs + list(self._parameters.values())
        if not any(isinstance(t, Tensor) and (t.requires_grad or t.node is not None) for t in inputs):
            return
        names = self._diff_grad_names + tuple(f"grad_{n}" for n in self._parameters)
        blanks = [(o.shape, o.dtype) for o in outputs]       # not the outputs: no cycle through the tape

        def backward(grads):
            grads = tuple(np.zeros(*blank) if g is None else g for g, blank in zip(grads, blanks))
            results = self._run_backward(context, grads)
            return tuple(results[n] for n in names)
        record_call(outputs, inputs, backward, self.name)


def _names_for_autodiff(program: ir.Program, spec) -> ir.Program:
    """``program`` with its stages renamed so that differentiating it again
    names nothing twice: autodiff calls the gradient of a tensor ``t``
    ``grad_<t>``, so no stage may start with ``grad_``, nor be a ``t`` whose
    ``grad_<t>`` is declared (the output-gradient inputs). The outputs become
    ``d_<name>`` (``GradSpec.gradient_output``); the other stages are internal."""
    from .compiler.custom_backward import rename_stages
    decls = {t.name for t in program.tensors}
    renames = {o: spec.gradient_output(o[len("grad_"):]) for o in program.outputs}
    clash = [n for n in renames.values() if n in decls or f"grad_{n}" in decls]
    if clash:
        raise SpecError(spec.name, f"the gradient outputs {', '.join(clash)} would have the names of declared "
                        f"tensors; rename the spec's tensors")
    taken = decls | set(renames.values())
    for s in program.stages:
        if s.name in renames:
            continue
        new = s.name
        while new.startswith("grad_") or new in taken or f"grad_{new}" in decls:
            new = f"f_{new}"
        if new != s.name:
            renames[s.name] = new
        taken.add(new)
    return ir.replace(program, stages=tuple(rename_stages(program.stages, renames)),
                      outputs=tuple(renames.get(o, o) for o in program.outputs))


def grad_spec(spec, wrt=None) -> GradSpec:
    """``spec``'s backward as a spec: what ``Spec.grad(wrt)`` returns, made once
    per ``wrt`` (so its builds are memoized like the spec's own)."""
    key = None if wrt is None else tuple([wrt] if isinstance(wrt, str) else wrt)
    made = spec.__dict__.setdefault("_grad_specs", {})
    if key not in made:
        made[key] = GradSpec(spec, key)
    return made[key]


def grad_module(module, wrt=None, inputs=None) -> GradModule:
    """The grad spec of ``module`` built at its sizes, attributes and dtype,
    sharing its parameter Tensors and buffers. ``module`` is a built spec
    (``Spec.build``) or a built-in layer (``layerc.nn``; ``inputs`` then pick
    its variant, as its forward would).

    Example: ``dD = grad_module(D, wrt="x"); gx = dD(x, ones)``."""
    spec, bindings = grad_target(module, wrt, inputs)
    built = spec.build(dtype=module.dtype, **bindings)
    share_state(module, built)
    return built


def grad_target(module, wrt=None, inputs=None) -> tuple:
    """``(grad spec, bindings)`` of what ``grad_module`` builds."""
    if hasattr(module, "_select") and hasattr(module, "_spec_bindings"):     # a built-in layer
        if inputs is None:
            raise TypeError(f"grad_module({type(module).__name__}): a built-in layer needs the inputs= "
                            f"its forward takes, to pick its variant")
        spec, extra = module._select(tuple(inputs))
        bindings = {k: v for k, v in {**module._spec_bindings, **extra}.items()
                    if k in spec.sizes or k in spec.attrs}
        return spec.grad(wrt), bindings
    compiled = getattr(module, "compiled", None)
    spec = getattr(compiled, "spec", None)
    if not isinstance(spec, Layer):
        raise TypeError(f"grad_module takes a module built from a spec (Spec.build, or a built-in layer), "
                        f"got {type(module).__name__}")
    return spec.grad(wrt), {**compiled.sizes, **compiled.attrs}


def share_state(source, target) -> None:
    """Point ``target``'s parameters and buffers at ``source``'s of the same names."""
    for name, p in source._parameters.items():
        if name in target._parameters:
            setattr(target, name, p)
    for name, b in source._buffers.items():
        if name in target._buffers:
            target._buffers[name] = b


__all__ = ["GradSpec", "GradModule", "grad_spec", "grad_module", "grad_target", "share_state"]
