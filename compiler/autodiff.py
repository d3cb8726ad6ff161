"""Reverse-mode autodiff over stages: a forward program in, a backward program out.

For a stage ``Y[i] = R_r f(X[a(i, r)], …)`` the adjoint of the read ``X[a(i, r)]``
is ``dX[j] += sum over (i, r) with a(i, r) = j of dY[i] * df/dX``. It is built
in *gather* form when the read can be solved for its index variables: each
coordinate of ``a`` picks a pivot variable, solves for it (guarding divisibility
and range), and the variables left over become reductions of the adjoint. Each
``dX`` element is then owned by one loop iteration (race-free in parallel). A
read that cannot be solved (an integer tensor indexing through unsolved
variables, or ``//``/``%``) falls back to a *scatter* stage; under a ``max``,
one write per output, at its first maximum (``_scatter_at_first``).

Local derivatives come from the op table (``layerc.compiler.ops_table.OPS``); the
result is ordinary IR, simplified and compiled like any forward.

Example::

    >>> from layerc.compiler.spec import trace_function
    >>> from layerc.compiler.ir import ISym, format_program
    >>> fwd = trace_function("Scale", lambda x: x * 3.0, {"x": ((ISym("N"),), "input")}, {})
    >>> print(format_program(gradient_program(fwd)).splitlines()[-2])
    grad_x[i0] = 3 * grad_mul_0[i0]
"""
from __future__ import annotations

import math

from . import ir
from .ir import (Axis, Call, Const, IConst, ILoad, IndexValue, IVar, Load, Program, Stage, TensorDecl,
                 affine, grad_name, isubst, ivars)
from .ops_table import OPS, ONE, ZERO
from .simplify import eliminate_dead_stages, simplify_program

DIFFERENTIABLE_ROLES = ("input", "param")


def parameter_gradients(backward: Program, inputs: tuple) -> Program | None:
    """``backward`` without the gradients of ``inputs``: what a call runs when
    no input needs its gradient (a model's first layer, whose input is data),
    the work only they need left out. None when that would leave no output, or
    every output."""
    dropped = {grad_name(name) for name in inputs}
    outputs = tuple(name for name in backward.outputs if name not in dropped)
    if not outputs or len(outputs) == len(backward.outputs):
        return None
    return eliminate_dead_stages(ir.replace(backward, outputs=outputs))


def gradient_program(fwd: Program, wrt: tuple | None = None, self_contained: bool = False) -> Program:
    """The backward of ``fwd``: reads the forward's tensors, the forward stages it
    needs (role ``saved``) and ``grad_<output>`` for each output; returns
    ``grad_<x>`` for every differentiable input and parameter (or those in ``wrt``).

    ``self_contained`` recomputes the forward stages it needs instead of reading
    them as saved tensors, so the result can be differentiated again."""
    wrt = tuple(t.name for t in fwd.tensors if t.role in DIFFERENTIABLE_ROLES) if wrt is None else tuple(wrt)
    builder = _Backward(fwd)
    differentiable = set(wrt)
    for s in fwd.stages:
        if _reads_any(s.body, differentiable):
            differentiable.add(s.name)
    builder.differentiable = differentiable

    for out in fwd.outputs:
        if out in differentiable:
            builder.contributions.setdefault(out, []).append(grad_name(out))
    for stage in reversed(fwd.stages):
        if stage.name in differentiable and stage.name in builder.contributions:
            builder.backprop_stage(stage)

    outputs = []
    for name in wrt:
        contributions = builder.contributions.get(name, [])
        target = grad_name(name)
        shape = fwd.shape_of(name)
        if len(contributions) == 1 and contributions[0] in {s.name for s in builder.stages}:
            builder.rename(contributions[0], target)
        elif contributions:
            builder.accumulate(contributions, shape, target)
        else:
            axes = _axes_for(shape)
            builder.stages.append(Stage(target, shape, axes, ZERO))
        outputs.append(target)

    stages = (list(fwd.stages) if self_contained else []) + builder.stages
    stage_names = {s.name for s in stages}
    read = set().union(*(ir.tensors_read(s.body) | _index_tensors(s) for s in stages)) if stages else set()
    decls = list(fwd.tensors)
    decls += [TensorDecl(s.name, s.shape, "saved") for s in fwd.stages if s.name in read and s.name not in stage_names]
    decls += [TensorDecl(grad_name(o), fwd.shape_of(o), "grad") for o in fwd.outputs]
    program = Program(f"{fwd.name}_backward", tuple(decls), tuple(stages), tuple(outputs))
    return simplify_program(program)


def _reads_any(body, names: set) -> bool:
    return any(isinstance(e, Load) and e.tensor in names for e in ir.postorder(body))


def _index_tensors(s: Stage) -> set:
    return set().union(*(ir.index_tensors(i) for i in s.scatter_index)) if s.scatter_index else set()


def _axes_for(shape, prefix="j") -> tuple:
    return tuple(Axis(f"{prefix}{k}", d) for k, d in enumerate(shape))


def expr_partials(body, differentiable, value=None) -> dict:
    """``{load: d body / d load}`` for each load of a differentiable tensor in ``body``.
    ``value``: an expression equal to ``body`` (the stage's stored result), which
    partials that are functions of the result (tanh's ``1 - out^2``) read
    instead of computing ``body`` again."""
    order = ir.postorder(body)
    depends = {}
    for e in order:
        if isinstance(e, Load):
            depends[e] = e.tensor in differentiable
        elif isinstance(e, Call):
            depends[e] = OPS[e.op].grad is not None and any(depends[a] for a in e.args)
        else:
            depends[e] = False
    adjoint = {body: ONE}
    for e in reversed(order):
        if not depends[e] or e not in adjoint or not isinstance(e, Call):
            continue
        local = OPS[e.op].grad(*e.args, out=value if e is body and value is not None else e)
        for arg, partial in zip(e.args, local):
            if partial is None or not depends[arg]:
                continue
            term = Call("mul", (adjoint[e], partial))
            adjoint[arg] = Call("add", (adjoint[arg], term)) if arg in adjoint else term
    return {e: adjoint[e] for e in order if isinstance(e, Load) and depends[e] and e in adjoint}


def _all(conditions):
    cond = None
    for c in conditions:
        cond = c if cond is None else Call("mul", (cond, c))
    return cond


class _Backward:
    def __init__(self, fwd: Program):
        self.fwd = fwd
        self.stages: list[Stage] = []
        self.contributions: dict[str, list[str]] = {}
        self.differentiable: set = set()
        self._counter = 0

    def fresh(self, hint: str) -> str:
        # never a forward tensor's or stage's name, nor the gradient name of one
        taken = {t.name for t in self.fwd.tensors} | {s.name for s in self.fwd.stages}
        while True:
            self._counter += 1
            name = f"{hint}_{self._counter}"
            if name not in taken and name not in {grad_name(t) for t in taken}:
                return name

    def accumulate(self, names: list, shape: tuple, target: str | None = None) -> str:
        """A tensor holding the sum of the contributions (a new stage when needed)."""
        if len(names) == 1 and target is None:
            return names[0]
        axes = _axes_for(shape)
        body = None
        for n in names:
            load = Load(n, tuple(IVar(a.name) for a in axes))
            body = load if body is None else Call("add", (body, load))
        name = target or self.fresh("acc")
        self.stages.append(Stage(name, shape, axes, body))
        return name

    def rename(self, old: str, new: str):
        """Give a contribution stage its final name (its only reader is the final sum)."""
        self.stages = [ir.replace(s, name=new) if s.name == old else
                       ir.replace(s, body=ir.rename_tensors(s.body, {old: new})) for s in self.stages]

    def backprop_stage(self, stage: Stage):
        # an output's incoming gradient is the tensor grad_<output> itself: its sum
        # with the other contributions needs a name of its own
        target = None
        if len(self.contributions[stage.name]) > 1:
            target = self.fresh(grad_name(stage.name)) if stage.name in self.fwd.outputs else grad_name(stage.name)
        adjoint = self.accumulate(self.contributions[stage.name], stage.shape, target)
        weight = Load(adjoint, stage.index)
        first = None
        if stage.reduce == "max":
            # selected, not multiplied: an infinite gradient reaches the maximum alone
            share, first = self._argmax_share(stage)
            weight = Call("select", (share, weight, Const(0.0)))
        if stage.inverse is not None:
            source = ir.loads(stage.body)[0].tensor
            shape = self.fwd.shape_of(source)
            axes = _axes_for(shape, "s")
            mapping = {a.name: e for a, e in zip(stage.axes, stage.inverse)}
            body = ir.subst_indices(weight, mapping)
            self._contribute(source, Stage(self.fresh(grad_name(source)), shape, axes, body))
            return
        # a pointwise stage's result is the body's value at each element: fusion
        # inlines an intermediate one again, and an output (stored anyway) is read
        value = Load(stage.name, stage.index) if stage.reduce is None and stage.scatter_index is None else None
        for load, partial in expr_partials(stage.body, self.differentiable, value).items():
            shape = self.fwd.shape_of(load.tensor)
            contribution = adjoint_of_read(stage, load, Call("mul", (weight, partial)), shape,
                                           self.fresh(grad_name(load.tensor)))
            if first is not None and contribution.scatter_index is not None and _known_window(stage):
                contribution = _scatter_at_first(stage, load, Call("mul", (Load(adjoint, stage.index), partial)),
                                                 first, contribution.name, shape)
            self._contribute(load.tensor, contribution)

    def _contribute(self, tensor: str, stage: Stage):
        self.stages.append(stage)
        self.contributions.setdefault(tensor, []).append(stage.name)

    def _argmax_share(self, stage: Stage):
        """``[position(r) == first[i]]``: a max routes its gradient to its first
        maximal element, in the row-major order of its reduction indices, a NaN
        counting as maximal (as PyTorch's max_pool2d and argmax do). ``first``
        holds the window's size minus that position: the largest of ``hit *
        (size - position)`` (a product, not a select: tests and products run
        without branches where the window's loops are scalar)."""
        value, top = stage.body, Load(stage.name, stage.index)
        if self._calls_libm(stage.body):
            value, top = self._stored_values(stage)
        hit = Call("add", (Call("eq", (value, top)), Call("ne", (value, value))))
        rank = IndexValue(ir.isub(_window_size(stage), _position(stage.reduce_axes)))
        first = Stage(self.fresh(f"first_{stage.name}"), stage.shape, stage.axes,
                      Call("mul", (hit, rank)), "max", stage.reduce_axes)
        self.stages.append(first)
        return Call("eq", (rank, Load(first.name, stage.index))), first

    def _stored_values(self, stage: Stage) -> tuple:
        """The reduced values kept in a tensor of their own, and their maximum
        taken again from it: ``(value, maximum)`` to find the argmax with.

        Vectorized libm (libmvec) and scalar libm may differ by an ulp, and
        fusion evaluates a body wherever it is read: the forward's maximum and a
        value recomputed in another loop may then never compare equal, and the
        gradient would vanish. Values read from memory compare exactly. The
        tensor is a scatter onto its own indices (``values[i, r] += body``)
        because fusion recomputes pointwise stages in their readers instead of
        storing them."""
        axes = stage.axes + stage.reduce_axes
        index = tuple(IVar(a.name) for a in axes)
        values = Stage(self.fresh(f"values_{stage.name}"), tuple(a.extent for a in axes), axes, stage.body,
                       "sum", (), scatter_index=index)
        value = Load(values.name, index)
        top = Stage(self.fresh(f"top_{stage.name}"), stage.shape, stage.axes, value, "max", stage.reduce_axes)
        self.stages += [values, top]
        return value, Load(top.name, stage.index)

    def _calls_libm(self, body) -> bool:
        """Whether ``body`` calls an expensive (libm) op, itself or through the
        pointwise forward stages it reads, which fusion inlines into it."""
        pointwise = {s.name: s for s in self.fwd.stages if s.reduce is None and s.scatter_index is None}
        pending, seen = [body], set()
        while pending:
            for e in ir.postorder(pending.pop()):
                if isinstance(e, Call) and OPS[e.op].expensive:
                    return True
                if isinstance(e, Load) and e.tensor in pointwise and e.tensor not in seen:
                    seen.add(e.tensor)
                    pending.append(pointwise[e.tensor].body)
        return False


def _window_size(stage: Stage) -> ir.IExpr:
    """How many elements ``stage`` reduces over."""
    size = IConst(1)
    for a in stage.reduce_axes:
        size = ir.imul(size, a.extent)
    return size


def _position(axes) -> ir.IExpr:
    """The row-major position of the index variables ``axes`` in their box."""
    position = IConst(0)
    for a in axes:
        position = ir.iadd(ir.imul(position, a.extent), IVar(a.name))
    return position


def adjoint_of_read(stage: Stage, load: Load, weight, shape: tuple, name: str) -> Stage:
    """The stage holding ``stage``'s contribution to the adjoint of ``load.tensor``
    (gather form when the read can be solved, scatter form otherwise)."""
    products = stage.reduce == "sum" and len(ir.tensors_read(stage.body)) > 1
    extents = {a.name: a.extent for a in stage.all_axes}
    outer = [a.name for a in stage.axes]
    unsolved = set(extents)
    taken = set()
    targets = []
    earlier: set = set()
    for k, coord in enumerate(load.index):
        # keep the forward's index name when the coordinate is that index alone,
        # first seen here (it is then the pivot, solved as itself)
        if (isinstance(coord, IVar) and coord.name not in earlier and coord.name not in taken
                and extents.get(coord.name) == shape[k]):
            targets.append(coord.name)
        else:
            targets.append(f"j{k}")
            while targets[-1] in extents or targets[-1] in taken:
                targets[-1] += "_"
        taken.add(targets[-1])
        earlier |= ivars(coord)

    solutions: list[tuple[str, ir.IExpr]] = []
    guards = []
    for k, coord in enumerate(load.index):
        target = IVar(targets[k])
        split = affine(coord, unsolved)
        if split is None:
            if ivars(coord) & unsolved:
                return _scatter(stage, load, weight, shape, name)
            guards.append(("eq", target, coord))
            continue
        coefs, rest = split
        if not coefs:
            if not (shape[k] == IConst(1) and rest == IConst(0)):
                guards.append(("eq", target, rest))
            continue
        later = set().union(*(ivars(c) for c in load.index[k + 1:])) if k + 1 < len(load.index) else set()
        # in a sum of products (a grouped convolution's channels), or a window
        # wider than WIDE_WINDOW that tiles its input (a global pool: one read
        # per element, where the gather over the window read 256); a small
        # window (a pool) keeps the scatter-shaped gather compiler/windows.py runs
        digits = _mixed_radix(coefs, rest, extents, later)
        if digits is not None and not (products or coefs[digits[0]] > WIDE_WINDOW):
            digits = None
        if digits is not None:
            # K*g + c with 0 <= c < K: each value is one (g, c), g = j // K, c = j % K
            (high, low), radix = digits, coefs[digits[0]]
            solutions += [(high, ir.ifloordiv(target, radix)), (low, ir.imod(target, radix))]
            unsolved -= {high, low}
            if ir.imul(radix, extents[high]) != shape[k]:
                guards.append(("lt", ir.ifloordiv(target, radix), extents[high]))
            continue
        pivot = min(coefs, key=lambda v: (v in later, v not in outer, abs(coefs[v]) != 1, v))
        c = coefs[pivot]
        others = rest
        for v, cv in coefs.items():
            if v != pivot:
                others = ir.iadd(others, ir.imul(cv, IVar(v)))
        numerator = ir.isub(target, others)
        if abs(c) == 1:
            solution = ir.imul(c, numerator)
        else:
            solution = ir.ifloordiv(numerator, c)
            guards.append(("eq", ir.imod(numerator, abs(c)), IConst(0)))
        unsolved.discard(pivot)
        solutions.append((pivot, solution))
        if not (solution == target and extents[pivot] == shape[k]):
            guards.append(("ge", solution, IConst(0)))
            guards.append(("lt", solution, extents[pivot]))

    # a solution may mention variables solved later: resolve back to front
    final: dict[str, ir.IExpr] = {}
    for v, sol in reversed(solutions):
        final[v] = isubst(sol, final)
    body = ir.subst_indices(weight, final)
    conditions = [Call(op, (IndexValue(isubst(a, final)), IndexValue(isubst(b, final)))) for op, a, b in guards]
    if conditions:
        body = Call("select", (_all(conditions), body, Const(0.0)))
    axes = tuple(Axis(t, d) for t, d in zip(targets, shape))
    reduce_axes = tuple(a for a in stage.all_axes if a.name in unsolved)
    return Stage(name, shape, axes, body, "sum" if reduce_axes else None, reduce_axes)


WIDE_WINDOW = 4


def _mixed_radix(coefs: dict, rest, extents: dict, later: set):
    """``(g, c)`` when a coordinate is ``K*g + c`` with ``c``'s extent ``K``
    (a channel of a group, a head's column), neither read elsewhere; else None."""
    if len(coefs) != 2 or rest != IConst(0) or set(coefs) & later:
        return None
    low, high = sorted(coefs, key=lambda v: abs(coefs[v]))
    radix = coefs[high]
    if coefs[low] != 1 or radix < 2 or extents[low] != IConst(radix):
        return None
    return high, low


def _known_window(stage: Stage) -> bool:
    """Whether every reduced axis of ``stage`` has a known, positive length:
    then each output has a first maximum to write at (``_scatter_at_first``);
    a window of a run-time length, possibly empty, keeps the scatter."""
    return all(isinstance(a.extent, IConst) and a.extent.value > 0 for a in stage.reduce_axes)


def _scatter_at_first(stage: Stage, load: Load, term, first: Stage, name: str, shape: tuple) -> Stage:
    """A max's adjoint of a read it cannot invert (an adaptive window's
    ``x[.., min(13*h//7 + i, ..)]``), as one write per output: its first
    maximal element's window offsets decoded from ``first`` (the window's
    size minus the row-major position, ``_argmax_share``), where the scatter
    over the window wrote zero at every other offset. The position is clamped
    into the window: never needed (each window has a first maximum), but it
    keeps every write inside the target whatever ``first`` holds."""
    count = math.prod(a.extent.value for a in stage.reduce_axes)
    position = ir.imin(ir.imax(ir.isub(count, ILoad(first.name, stage.index)), 0), count - 1)
    digits, rest = {}, position
    for k, a in reversed(list(enumerate(stage.reduce_axes))):
        digits[a.name] = ir.imod(rest, a.extent) if k else rest
        rest = ir.ifloordiv(rest, a.extent)
    index = tuple(isubst(c, digits) for c in load.index)
    return Stage(name, shape, stage.axes, ir.subst_indices(term, digits), "sum", (), scatter_index=index)


def _scatter(stage: Stage, load: Load, weight, shape: tuple, name: str) -> Stage:
    return Stage(name, shape, stage.axes, weight, "sum", stage.reduce_axes, scatter_index=load.index)
