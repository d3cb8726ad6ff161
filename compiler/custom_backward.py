"""User-written backward passes: traced into a backward Program.

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
``layerc.compiler.autodiff.gradient_program``: a Program named ``<Layer>_backward``
whose tensors are the forward's declarations (plus the forward output when
``output`` is used, role ``saved``) and ``grad_<output>`` (role ``grad``), and
whose outputs are ``grad_<name>`` for each differentiable input and parameter
in declaration order. So fusion, code generation and the runtime treat it
exactly like a derived backward.

Verification against the derived backward lives above the compiler, in
``layerc.backward_check``.
"""
from __future__ import annotations

import inspect


from . import ir
from .autodiff import DIFFERENTIABLE_ROLES
from .errors import SpecError
from .ir import Axis, IVar, Load, Program, Stage, TensorDecl, grad_name
from .simplify import simplify_program
from .shapes import same_size
from .trace import Builder, TensorExpr, shape_str



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
    stages = rename_stages(stages, renames)
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


def rename_stages(stages, mapping: dict) -> list:
    """``stages`` with the tensors in ``mapping`` renamed: the stages' own
    names and every read of them (loads, and the indices of scatter stages)."""
    return [ir.replace(s, name=mapping.get(s.name, s.name), body=ir.rename_tensors(s.body, mapping),
                       scatter_index=None if s.scatter_index is None else
                       tuple(_rename_iexpr(i, mapping) for i in s.scatter_index)) for s in stages]


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
    return len(a) == len(b) and all(x == y or same_size(x, y) for x, y in zip(a, b))


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


__all__ = ["trace_backward", "rename_stages"]
