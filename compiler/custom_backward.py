"""User-written backward passes, and their verification against the derived one.

A spec may define ``backward`` next to ``forward``. layerc then compiles the
user's backward instead of the derived one (the derived backward is still
computed, kept as ``compiled.derived``, and used to verify the user's).

Syntax
------

``backward`` is traced exactly like ``forward`` (same tensor ops, same index
notation). Its parameters are chosen by name from:

- ``grad_output``: the gradient of the forward's output (a tuple of gradients
  when the forward returns several outputs; ``grad_outputs`` is a synonym);
- ``output``: the forward's output value (``outputs``: the tuple), e.g. for
  ``sigmoid``: ``grad_output * output * (1 - output)``;
- any declared ``Input``, ``Param`` or ``Buffer`` of the spec (integer inputs
  may be used as indices, as in ``forward``);
- any ``Attr`` (a compile-time number).

It returns the gradients of the differentiable tensors (float inputs that are
not ``differentiable=False``, and parameters): either a dict
``{name: tensor}`` or a tuple in declaration order (a single tensor when there
is just one). Each gradient must have exactly the shape of its tensor; a dict
entry ``None`` means "zero gradient". Every differentiable tensor must be
given::

    @layer
    class CustomLinear:
        x = Input("N", "I")
        weight = Param("O", "I", init="xavier")
        bias = Param("O")

        def forward(x, weight, bias):
            return x @ weight.T + bias

        def backward(grad_output, x, weight):
            return {"x": grad_output @ weight,
                    "weight": grad_output.T @ x,
                    "bias": grad_output.sum(axis=0)}

The result of ``trace_backward`` follows the conventions of
``compiler.autodiff.gradient_program``: a Program named ``<Layer>_backward``
whose tensors are the forward's declarations (plus the forward output when
``output`` is used, role ``saved``) and ``grad_<output>`` (role ``grad``), and
whose outputs are ``grad_<name>`` for each differentiable input and parameter
in declaration order. So fusion, code generation and the runtime treat it
exactly like a derived backward.

Verification
------------

``verify_backward(spec, **sizes)`` runs the user's backward and the derived
backward on the same random inputs, parameters and output gradients (float64)
and reports the relative error of every gradient, plus a finite-difference
check on a sample of elements of each tensor. ``report.ok``;
``report.assert_ok()`` raises ``BackwardMismatch`` naming each wrong tensor.
It runs automatically when a spec with a backward is built in checked mode:
``spec.build(..., checked=True)`` or the environment variable
``LAYERC_CHECK_BACKWARD=1`` (see ``check_on_build``).
"""
from __future__ import annotations

import copy
import inspect
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from . import ir
from .autodiff import DIFFERENTIABLE_ROLES, grad_name
from .errors import SpecError
from .gradcheck import numeric_gradient, relative_error, sample_inputs
from .ir import Axis, IVar, Load, Program, Stage, TensorDecl
from .simplify import simplify_program
from .trace import Builder, TensorExpr, shape_str

CHECK_ENV = "LAYERC_CHECK_BACKWARD"
TOLERANCE = 1e-6


# ---------------------------------------------------------------- tracing


def trace_backward(spec, traced_forward: Program, attrs: dict, sizes: dict) -> Program:
    """Trace ``spec.backward`` into a backward Program (see the module docstring)."""
    fwd = traced_forward
    location = spec.location
    try:
        location = f"{inspect.getsourcefile(spec.backward)}:{inspect.getsourcelines(spec.backward)[1]}"
    except (OSError, TypeError):
        pass

    def error(message):
        return SpecError(spec.name, f"backward: {message}", location)

    wrt = [t.name for t in fwd.tensors if t.role in DIFFERENTIABLE_ROLES]
    b = Builder(f"{spec.name}.backward")
    forward_names = {s.name for s in fwd.stages} | {t.name for t in fwd.tensors}
    with b.active():
        args = {}
        for t in fwd.tensors:
            args[t.name] = b.declare(t.name, t.shape, t.role)
        grads = tuple(_declare_grad(b, grad_name(o), fwd.shape_of(o)) for o in fwd.outputs)
        single = len(grads) == 1
        args["grad_output"] = args["grad_outputs"] = grads[0] if single else grads
        saved = {}
        params = list(inspect.signature(spec.backward).parameters)
        if "output" in params or "outputs" in params:
            values = []
            for o in fwd.outputs:
                if o in b.decls:               # the output is an input (identity)
                    values.append(args[o])
                else:
                    saved[o] = b.declare(o, fwd.shape_of(o), "saved")
                    values.append(saved[o])
            args["output"] = args["outputs"] = values[0] if single else tuple(values)
        args.update(attrs)
        for p in params:
            if p not in args:
                raise error(f"takes {p!r}, which is neither grad_output, output, nor a declared "
                            f"Input, Param, Buffer or Attr (declared: {', '.join(sorted(t.name for t in fwd.tensors))})")
        result = spec.backward(**{p: args[p] for p in params})

    given = _gradients_by_name(result, wrt, error)
    stages = list(b.stages)
    # backward stages get names that no forward tensor or stage has
    renames = {}
    for s in stages:
        new = f"bw_{s.name}"
        while new in forward_names or new in renames.values():
            new = "_" + new
        renames[s.name] = new
    stages = [ir.replace(s, name=renames[s.name], body=ir.rename_tensors(s.body, renames),
                         scatter_index=None if s.scatter_index is None else
                         tuple(_rename_iexpr(i, renames) for i in s.scatter_index)) for s in stages]
    produced = {s.name for s in stages}
    outputs = []
    renamed_to = {}        # a stage returned as a gradient is renamed grad_<name>
    for name in wrt:
        value = given[name]
        target = grad_name(name)
        shape = fwd.decl(name).shape
        axes = tuple(Axis(f"j{k}", d) for k, d in enumerate(shape))
        if value is None:
            stages.append(Stage(target, shape, axes, ir.Const(0.0)))
        else:
            if not _same_shape(value._shape, shape):
                raise error(f"the gradient of {name} has shape {shape_str(value._shape)} but {name} has shape "
                            f"{shape_str(shape)}")
            source = renames.get(value.name, value.name)
            if source in produced and source not in renamed_to:
                stages = [_rename_stage(s, source, target) for s in stages]
                renamed_to[source] = target
            else:   # a declared tensor, or a stage already returned for another gradient
                source = renamed_to.get(source, source)
                stages.append(Stage(target, shape, axes, Load(source, tuple(IVar(a.name) for a in axes))))
        outputs.append(target)

    decls = list(fwd.tensors)
    decls += [TensorDecl(o, fwd.shape_of(o), "saved") for o in saved]
    decls += [TensorDecl(grad_name(o), fwd.shape_of(o), "grad") for o in fwd.outputs]
    program = Program(f"{fwd.name}_backward", tuple(decls), tuple(stages), tuple(outputs))
    return simplify_program(program)


def _declare_grad(b: Builder, name: str, shape: tuple) -> TensorExpr:
    """Declare ``grad_<output>`` (a name ``Builder.declare`` reserves for layerc)."""
    b.decls[name] = TensorDecl(name, tuple(shape), "grad")
    return TensorExpr(name, tuple(shape), b)


def _rename_iexpr(e, mapping):
    if isinstance(e, ir.ILoad):
        return ir.ILoad(mapping.get(e.tensor, e.tensor), tuple(_rename_iexpr(i, mapping) for i in e.index))
    if isinstance(e, ir.IBin):
        return ir.IBin(e.op, _rename_iexpr(e.a, mapping), _rename_iexpr(e.b, mapping))
    return e


def _rename_stage(s: Stage, old: str, new: str) -> Stage:
    if s.name == old:
        return ir.replace(s, name=new)
    return ir.replace(s, body=ir.rename_tensors(s.body, {old: new}))


def _same_shape(a: tuple, b: tuple) -> bool:
    from .ops import _same_size
    return len(a) == len(b) and all(x == y or _same_size(x, y) for x, y in zip(a, b))


def _gradients_by_name(result, wrt: list, error) -> dict:
    if isinstance(result, dict):
        unknown = [k for k in result if k not in wrt]
        if unknown:
            raise error(f"returns gradients for {', '.join(map(repr, unknown))}, which "
                        f"{'is' if len(unknown) == 1 else 'are'} not differentiable inputs or parameters "
                        f"(differentiable: {', '.join(wrt) or 'none'})")
        missing = [k for k in wrt if k not in result]
        if missing:
            raise error(f"gives no gradient for {', '.join(missing)} (return None for a zero gradient)")
        given = dict(result)
    else:
        values = result if isinstance(result, (tuple, list)) else (result,)
        if len(values) != len(wrt):
            raise error(f"returns {len(values)} gradient(s) but the spec has {len(wrt)} differentiable "
                        f"tensor(s) ({', '.join(wrt)}); return a dict {{name: gradient}} or a tuple in that order")
        given = dict(zip(wrt, values))
    for k, v in given.items():
        if v is not None and not isinstance(v, TensorExpr):
            raise error(f"the gradient of {k} must be a tensor expression (or None), got {v!r}")
    return given


# ---------------------------------------------------------------- verification


class BackwardMismatch(AssertionError):
    """A user-written backward disagrees with the derived backward or with finite differences."""


@dataclass
class BackwardReport:
    """Per tensor: relative error of the user's backward against the derived one
    (``max |user - derived| / max(1, max |derived|)``, all elements) and against
    central finite differences (on ``fd_samples`` sampled elements)."""

    layer: str
    derived: dict = field(default_factory=dict)
    finite_differences: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE
    sizes: dict = field(default_factory=dict)

    def wrong(self) -> list:
        names = list(self.derived) + [n for n in self.finite_differences if n not in self.derived]
        return [n for n in names if self.derived.get(n, 0.0) > self.tolerance
                or self.finite_differences.get(n, 0.0) > self.tolerance]

    @property
    def ok(self) -> bool:
        return not self.wrong()

    def __str__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        lines = [f"user-written backward of {self.layer} ({sizes}; float64, tolerance {self.tolerance:g}):"]
        for name in self.derived:
            d, f = self.derived[name], self.finite_differences.get(name)
            fd = f"{f:.2e}" if f is not None else "   -    "
            verdict = "ok" if name not in self.wrong() else "WRONG"
            lines.append(f"  grad {name:<20} vs derived {d:.2e}   vs finite differences {fd}   {verdict}")
        wrong = self.wrong()
        lines.append("passed" if not wrong else f"FAILED: the user-written gradient of {', '.join(wrong)} is wrong")
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise BackwardMismatch(str(self))
        return self


_twins: dict = {}
_twins_lock = threading.Lock()


def derived_twin(spec):
    """The same spec without its ``backward`` (so it runs the derived backward)."""
    with _twins_lock:
        entry = _twins.get(id(spec))
        if entry is None or entry[0] is not spec:
            twin = copy.copy(spec)
            twin.backward = None
            entry = _twins[id(spec)] = (spec, twin)
        return entry[1]


def _free_sizes(module, bindings: dict, default: int) -> dict:
    sizes = dict(bindings)
    for t in module._inputs:
        for d in t.shape:
            for s in ir.isyms(d):
                sizes.setdefault(s, default)
    return sizes


def verify_backward(spec, inputs: dict | None = None, seed: int = 0, eps: float = 1e-6,
                    tolerance: float = TOLERANCE, fd_samples: int = 8, free_size: int = 3,
                    **bindings) -> BackwardReport:
    """Compare ``spec``'s user-written backward with the derived backward (every
    element) and with central finite differences (``fd_samples`` random elements
    of each tensor), in float64.

    ``bindings`` bind sizes and attributes as in ``build``; sizes left free
    (the batch) take ``free_size``. Float inputs are drawn from N(0, 1);
    integer inputs (class targets) must be given in ``inputs``.
    """
    if spec.backward is None:
        raise ValueError(f"verify_backward({spec.name}): the spec has no user-written backward")
    from runtime.module import LayerModule

    from .pipeline import compile_layer
    user = LayerModule(compile_layer(spec, **bindings), dtype=np.float64)
    derived = LayerModule(compile_layer(derived_twin(spec), **bindings), dtype=np.float64)
    sizes = _free_sizes(user, {k: v for k, v in bindings.items() if k in spec.sizes}, free_size)
    rng = np.random.default_rng(seed)
    arrays = sample_inputs(user, inputs, lambda d: ir.ievaluate(d, sizes), rng, f"verify_backward({spec.name})")
    for name, p in user.named_parameters():
        p.data[...] = rng.standard_normal(p.data.shape) * 0.5 + p.data * 0.5
        dict(derived.named_parameters())[name].data[...] = p.data
    buffers = {name: b.copy() for name, b in user.named_buffers()}

    def run(module):
        for name, b in module.named_buffers():
            b[...] = buffers[name]
        out = module.forward(**arrays)
        return out if isinstance(out, tuple) else (out,)

    weights = [rng.standard_normal(o.shape) for o in run(user)]

    def gradients(module):
        module.zero_grad()
        run(module)
        g = module.backward(*weights)
        g = g if isinstance(g, tuple) else (g,)
        result = {t.name: x.numpy() for t, x in zip(module._differentiable_inputs(), g)}
        result.update({n: p.grad.copy() for n, p in module.named_parameters()})
        return result

    got, want = gradients(user), gradients(derived)

    def loss():
        return float(sum(np.sum(o.numpy() * w) for o, w in zip(run(user), weights)))

    report = BackwardReport(spec.name, tolerance=tolerance,
                            sizes={**sizes, **{k: v for k, v in bindings.items() if k not in sizes}})
    params = dict(user.named_parameters())
    for name in got:
        report.derived[name] = relative_error(got[name], want[name])
        target = arrays[name] if name in arrays else params[name].data
        if fd_samples and target.size:
            picks = rng.choice(target.size, size=min(fd_samples, target.size), replace=False)
            numeric = numeric_gradient(loss, target, eps, positions=picks)
            report.finite_differences[name] = relative_error(got[name].reshape(-1)[picks], numeric)
    return report


def checking_requested(checked: bool | None = None) -> bool:
    """Checked mode: ``checked=True``, else the environment variable ``LAYERC_CHECK_BACKWARD``."""
    if checked is not None:
        return bool(checked)
    return os.environ.get(CHECK_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


_verified: dict = {}


def check_on_build(spec, checked: bool | None = None, **bindings):
    """Verify a user-written backward when checked mode is on (once per spec and
    bindings); raises ``BackwardMismatch`` with the report when a gradient is wrong."""
    if spec.backward is None or not checking_requested(checked):
        return None
    key = (id(spec), repr(sorted(bindings.items())))
    entry = _verified.get(key)
    if entry is None or entry[0] is not spec:
        entry = _verified[key] = (spec, verify_backward(spec, **bindings))
    return entry[1].assert_ok()


__all__ = ["trace_backward", "verify_backward", "BackwardReport", "BackwardMismatch", "check_on_build",
           "checking_requested", "derived_twin"]
