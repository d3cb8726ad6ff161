"""The core IR: small immutable nodes for index expressions, value expressions,
stages and programs.

A *stage* is ``T[i] = R_r body(i, r)``: an output tensor defined over index
variables ``i`` (its axes), optionally reduced (``sum`` or ``max``) over more
index variables ``r``. A *program* is an ordered tuple of stages over declared
tensors. Every node is a frozen dataclass: structurally equal nodes are equal
and hash alike, which gives common-subexpression elimination and the cache key
for free.

Example::

    >>> n, c = IVar("n"), IVar("c")
    >>> x = Load("x", (n, c))
    >>> print(format_expr(Call("mul", (x, Const(2.0)))))
    x[n, c] * 2
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Union


def node(cls):
    """A frozen dataclass whose (deep, structural) hash is computed once."""
    cls = dataclass(frozen=True)(cls)
    structural_hash = cls.__hash__

    def cached_hash(self):
        try:
            return self.__dict__["_hash"]
        except KeyError:
            h = structural_hash(self)
            object.__setattr__(self, "_hash", h)
            return h

    cls.__hash__ = cached_hash
    return cls


# ---------------------------------------------------------------- index expressions
# Integer expressions: loop indices, sizes, and index arithmetic.


@node
class IConst:
    value: int


@node
class IVar:
    """A loop index variable."""

    name: str


@node
class ISym:
    """A size symbol left free at build time (passed to C as ``int64_t``)."""

    name: str


@node
class IBin:
    """``a op b`` with op in ``+ * // %`` (floor division and modulo, as in Python)
    or ``min max`` (a clamped or mirrored coordinate: a padding's read)."""

    op: str
    a: "IExpr"
    b: "IExpr"


@node
class ILoad:
    """A data-dependent index: an element of an integer tensor."""

    tensor: str
    index: tuple


IExpr = Union[IConst, IVar, ISym, IBin, ILoad]


def as_iexpr(v) -> IExpr:
    if isinstance(v, (IConst, IVar, ISym, IBin, ILoad)):
        return v
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return IConst(int(v))
    if hasattr(v, "__index__"):
        return IConst(v.__index__())
    raise TypeError(f"not an index expression: {v!r}")


def iadd(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(a.value + b.value)
    if isinstance(a, IConst) and a.value == 0:
        return b
    if isinstance(b, IConst) and b.value == 0:
        return a
    if isinstance(a, IConst):
        a, b = b, a
    # keep constants at the right end so (x + 1) + 2 folds to x + 3
    if isinstance(b, IConst) and isinstance(a, IBin) and a.op == "+" and isinstance(a.b, IConst):
        return iadd(a.a, a.b.value + b.value)
    return IBin("+", a, b)


def imul(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(a.value * b.value)
    if isinstance(b, IConst):
        a, b = b, a
    if isinstance(a, IConst):
        if a.value == 0:
            return IConst(0)
        if a.value == 1:
            return b
    return IBin("*", a, b)


def isub(a, b) -> IExpr:
    return iadd(a, imul(-1, b))


def ifloordiv(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(a.value // b.value)
    if isinstance(b, IConst) and b.value == 1:
        return a
    return IBin("//", a, b)


def imod(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(a.value % b.value)
    if isinstance(b, IConst) and b.value == 1:
        return IConst(0)
    return IBin("%", a, b)


def imin(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(min(a.value, b.value))
    return a if a == b else IBin("min", a, b)


def imax(a, b) -> IExpr:
    a, b = as_iexpr(a), as_iexpr(b)
    if isinstance(a, IConst) and isinstance(b, IConst):
        return IConst(max(a.value, b.value))
    return a if a == b else IBin("max", a, b)


IBIN_BUILDERS = {"+": iadd, "*": imul, "//": ifloordiv, "%": imod, "min": imin, "max": imax}


def isubst(e: IExpr, mapping: dict) -> IExpr:
    """Replace index variables and size symbols by name (``mapping[name] -> IExpr``)."""
    if isinstance(e, (IVar, ISym)):
        return as_iexpr(mapping[e.name]) if e.name in mapping else e
    if isinstance(e, IBin):
        return IBIN_BUILDERS[e.op](isubst(e.a, mapping), isubst(e.b, mapping))
    if isinstance(e, ILoad):
        return ILoad(e.tensor, tuple(isubst(i, mapping) for i in e.index))
    return e


def ivars(e: IExpr) -> set:
    """Names of the index variables an index expression mentions."""
    if isinstance(e, IVar):
        return {e.name}
    if isinstance(e, IBin):
        return ivars(e.a) | ivars(e.b)
    if isinstance(e, ILoad):
        return set().union(*(ivars(i) for i in e.index)) if e.index else set()
    return set()


def isyms(e: IExpr) -> set:
    if isinstance(e, ISym):
        return {e.name}
    if isinstance(e, IBin):
        return isyms(e.a) | isyms(e.b)
    if isinstance(e, ILoad):
        return set().union(*(isyms(i) for i in e.index)) if e.index else set()
    return set()


def affine(e: IExpr, variables: set):
    """Split ``e`` into ``sum(coef * var) + rest`` over ``variables``.

    Returns ``(coefs, rest)`` with integer coefficients and ``rest`` free of those
    variables, or ``None`` when ``e`` is not affine in them (a variable under
    ``//``, ``%``, a symbolic coefficient, or a data-dependent read).
    """
    if isinstance(e, IVar) and e.name in variables:
        return {e.name: 1}, IConst(0)
    if not (ivars(e) & variables):
        return {}, e
    if isinstance(e, IBin) and e.op == "+":
        left, right = affine(e.a, variables), affine(e.b, variables)
        if left is None or right is None:
            return None
        coefs = dict(left[0])
        for k, v in right[0].items():
            coefs[k] = coefs.get(k, 0) + v
        return {k: v for k, v in coefs.items() if v}, iadd(left[1], right[1])
    if isinstance(e, IBin) and e.op == "*":
        for scale, other in ((e.a, e.b), (e.b, e.a)):
            if isinstance(scale, IConst):
                inner = affine(other, variables)
                if inner is None:
                    return None
                return ({k: v * scale.value for k, v in inner[0].items() if v * scale.value},
                        imul(scale.value, inner[1]))
    return None


def istride(e: IExpr, var: str):
    """How much ``e`` grows when ``var`` grows by one, for ``e`` a sum of
    products (symbolic factors too: a block's length); None when ``var``
    sits under ``//``, ``%``, ``min``, ``max`` or in a read."""
    if var not in ivars(e):
        return IConst(0)
    if isinstance(e, IVar):
        return IConst(1)
    if isinstance(e, IBin) and e.op == "+":
        a, b = istride(e.a, var), istride(e.b, var)
        return None if a is None or b is None else iadd(a, b)
    if isinstance(e, IBin) and e.op == "*":
        for varying, fixed in ((e.a, e.b), (e.b, e.a)):
            if var not in ivars(fixed):
                inner = istride(varying, var)
                return None if inner is None else imul(inner, fixed)
    return None


def ievaluate(e: IExpr, sizes: dict) -> int:
    """Evaluate an index/size expression with every symbol bound in ``sizes``."""
    if isinstance(e, IConst):
        return e.value
    if isinstance(e, (ISym, IVar)):
        return int(sizes[e.name])
    if isinstance(e, IBin):
        a, b = ievaluate(e.a, sizes), ievaluate(e.b, sizes)
        return {"+": a + b, "*": a * b, "//": a // b if b else 0, "%": a % b if b else 0,
                "min": min(a, b), "max": max(a, b)}[e.op]
    raise ValueError(f"cannot evaluate {format_iexpr(e)} without data")


# ---------------------------------------------------------------- value expressions


@node
class Const:
    value: float


@node
class Load:
    """``tensor[index]``; an index outside the tensor reads zero."""

    tensor: str
    index: tuple


@node
class IndexValue:
    """An index expression used as a value (``j <= i`` masks, iota)."""

    expr: IExpr


@node
class Call:
    """An elementwise op from ``layerc.compiler.ops_table.OPS`` applied to arguments."""

    op: str
    args: tuple


Expr = Union[Const, Load, IndexValue, Call]


def children(e):
    return e.args if isinstance(e, Call) else ()


# the ops whose value is a test: 1 where it holds, else 0
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


def is_test(e) -> bool:
    """Whether ``e`` is a comparison, or a sum or product of them (0 or 1 each)."""
    return isinstance(e, Call) and (e.op in COMPARISONS or e.op in ("add", "mul") and all(map(is_test, e.args)))


def _finite(e) -> bool:
    """Whether ``e`` is built of tests, indices and finite constants by sums and
    products: never NaN or infinite."""
    if isinstance(e, Const):
        return math.isfinite(e.value)
    if isinstance(e, IndexValue):
        return True
    return isinstance(e, Call) and (e.op in COMPARISONS or e.op in ("add", "mul") and all(map(_finite, e.args)))


def never_nan(e) -> bool:
    """Whether ``e`` is a choice between indices and constants other than NaN,
    or tests times indices (a maximum of them, the first maximum's position,
    needs no NaN test)."""
    if isinstance(e, Const):
        return not math.isnan(e.value)
    if _finite(e):
        return True
    return isinstance(e, Call) and e.op == "select" and all(map(never_nan, e.args[1:]))


def postorder(root) -> list:
    """Every distinct sub-expression of ``root``, children before parents."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        e, expanded = stack.pop()
        if expanded:
            order.append(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        stack.append((e, True))
        for c in reversed(children(e)):
            if c not in seen:
                stack.append((c, False))
    return order


def loads(e) -> list:
    """The distinct loads in ``e`` (including loads feeding data-dependent indices)."""
    found = []
    for sub in postorder(e):
        if isinstance(sub, Load):
            found.append(sub)
    return found


def tensors_read(e) -> set:
    names = set()
    for sub in postorder(e):
        if isinstance(sub, Load):
            names.add(sub.tensor)
            for i in sub.index:
                names |= index_tensors(i)
        elif isinstance(sub, IndexValue):
            names |= index_tensors(sub.expr)
    return names


def ivars_of_expr(e) -> set:
    """Names of the index variables a value expression mentions."""
    names = set()
    for sub in postorder(e):
        if isinstance(sub, Load):
            for i in sub.index:
                names |= ivars(i)
        elif isinstance(sub, IndexValue):
            names |= ivars(sub.expr)
    return names


def index_tensors(e) -> set:
    """Integer tensors an index expression reads (data-dependent indices)."""
    if isinstance(e, ILoad):
        return {e.tensor}.union(*(index_tensors(i) for i in e.index))
    if isinstance(e, IBin):
        return index_tensors(e.a) | index_tensors(e.b)
    return set()


def map_expr(e, leaf):
    """Rebuild ``e`` bottom-up, replacing each leaf (Const/Load/IndexValue) by ``leaf(node)``."""
    memo = {}
    for sub in postorder(e):
        if isinstance(sub, Call):
            memo[sub] = Call(sub.op, tuple(memo[a] for a in sub.args))
        else:
            memo[sub] = leaf(sub)
    return memo[e]


def map_calls(e, call):
    """Rebuild ``e`` bottom-up, replacing each call (its arguments rebuilt
    first) by ``call(node)``."""
    memo = {}
    for sub in postorder(e):
        memo[sub] = call(Call(sub.op, tuple(memo[a] for a in sub.args))) if isinstance(sub, Call) else sub
    return memo[e]


def subst_indices(e, mapping: dict):
    """Substitute index variables (by name) in every index of ``e``."""
    def leaf(x):
        if isinstance(x, Load):
            return Load(x.tensor, tuple(isubst(i, mapping) for i in x.index))
        if isinstance(x, IndexValue):
            return IndexValue(isubst(x.expr, mapping))
        return x
    return map_expr(e, leaf)


def rename_tensors(e, mapping: dict):
    def rename_i(i):
        if isinstance(i, ILoad):
            return ILoad(mapping.get(i.tensor, i.tensor), tuple(rename_i(k) for k in i.index))
        if isinstance(i, IBin):
            return IBin(i.op, rename_i(i.a), rename_i(i.b))
        return i

    def leaf(x):
        if isinstance(x, Load):
            return Load(mapping.get(x.tensor, x.tensor), tuple(rename_i(i) for i in x.index))
        if isinstance(x, IndexValue):
            return IndexValue(rename_i(x.expr))
        return x
    return map_expr(e, leaf)


# ---------------------------------------------------------------- stages and programs


@node
class Axis:
    name: str
    extent: IExpr


@node
class Stage:
    """``name[axes] = reduce over reduce_axes of body``.

    ``reduce`` is ``None`` (pointwise), ``"sum"`` or ``"max"``. A *scatter* stage
    (``scatter_index`` set) zero-fills its output of ``shape`` and accumulates
    ``name[scatter_index] += body`` over all of ``axes + reduce_axes``; it is the
    autodiff fallback for reads it cannot invert. A pure re-indexing stage
    (reshape) may carry its ``inverse``: its own coordinates as functions of the
    source coordinates ``s0, s1, …``, which autodiff uses to gather.
    """

    name: str
    shape: tuple
    axes: tuple
    body: Expr
    reduce: str | None = None
    reduce_axes: tuple = ()
    scatter_index: tuple | None = None
    inverse: tuple | None = None

    @property
    def index(self) -> tuple:
        return tuple(IVar(a.name) for a in self.axes)

    @property
    def all_axes(self) -> tuple:
        return self.axes + self.reduce_axes


@node
class TensorDecl:
    """A tensor the program reads. ``role``: input, param, buffer, index (int64), saved, grad."""

    name: str
    shape: tuple
    role: str


@node
class Program:
    name: str
    tensors: tuple          # TensorDecl, the program's arguments that it reads
    stages: tuple           # Stage, in execution order
    outputs: tuple          # names of stages the caller receives
    updates: tuple = ()     # (buffer name, stage name): new buffer values (e.g. running stats)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def decl(self, name: str) -> TensorDecl:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def shape_of(self, name: str) -> tuple:
        for s in self.stages:
            if s.name == name:
                return s.shape
        return self.decl(name).shape

    def shapes(self) -> dict:
        """``{name: shape}`` of every tensor the program reads and every stage."""
        return {t.name: t.shape for t in self.tensors} | {s.name: s.shape for s in self.stages}

    def readers(self) -> dict:
        """``{tensor: names of the stages that read it, in order}`` (reads of
        values and of scatter indices alike)."""
        readers = {}
        for s in self.stages:
            for name in tensors_read(s.body).union(*(index_tensors(i) for i in s.scatter_index or ())):
                readers.setdefault(name, []).append(s.name)
        return readers


def fresh_name(name: str, taken: set) -> str:
    """``name``, with ``_`` appended until ``taken`` does not have it; the name
    returned is added to ``taken``."""
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def bind_sizes(p: Program, sizes: dict) -> Program:
    """``p`` with the size symbols named in ``sizes`` made constants (``{name:
    int}``): the same program, specialized; a loop over a size bound to 1 is
    then a unit loop that scheduling drops."""
    mapping = {name: IConst(value) for name, value in sizes.items()}

    def dims(shape):
        return tuple(isubst(d, mapping) for d in shape)

    def axes(found):
        return tuple(Axis(a.name, isubst(a.extent, mapping)) for a in found)

    def stage(s):
        return replace(s, shape=dims(s.shape), axes=axes(s.axes), reduce_axes=axes(s.reduce_axes),
                       body=subst_indices(s.body, mapping),
                       scatter_index=None if s.scatter_index is None else dims(s.scatter_index),
                       inverse=None if s.inverse is None else dims(s.inverse))
    return replace(p, tensors=tuple(replace(t, shape=dims(t.shape)) for t in p.tensors),
                   stages=tuple(stage(s) for s in p.stages))


def replace(n, **changes):
    return dataclasses.replace(n, **changes)


# ---------------------------------------------------------------- math notation

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**",
         "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 3}


def format_iexpr(e: IExpr) -> str:
    if isinstance(e, IConst):
        return str(e.value)
    if isinstance(e, (IVar, ISym)):
        return e.name
    if isinstance(e, ILoad):
        return f"{e.tensor}[{', '.join(format_iexpr(i) for i in e.index)}]"
    if e.op in ("min", "max"):
        return f"{e.op}({format_iexpr(e.a)}, {format_iexpr(e.b)})"
    if e.op == "+" and isinstance(e.b, IConst) and e.b.value < 0:
        return f"{format_iexpr(e.a)} - {-e.b.value}"
    if e.op == "+" and isinstance(e.b, IBin) and e.b.op == "*" and isinstance(e.b.a, IConst) and e.b.a.value == -1:
        inner = format_iexpr(e.b.b)
        return f"{format_iexpr(e.a)} - ({inner})" if isinstance(e.b.b, IBin) and e.b.b.op == "+" else \
            f"{format_iexpr(e.a)} - {inner}"
    return f"{_iparen(e.a, e.op)} {e.op} {_iparen(e.b, e.op, right=True)}"


def _iparen(e, parent_op, right=False):
    text = format_iexpr(e)
    rank = {"+": 1, "*": 2, "//": 2, "%": 2, "min": 3, "max": 3}
    # a right operand of the same rank needs them too, but for a * (b * c): a * (b // 2)
    if isinstance(e, IBin) and (rank[e.op] < rank[parent_op] or
                                right and rank[e.op] == rank[parent_op] and {e.op, parent_op} != {"*"}
                                and {e.op, parent_op} != {"+"}):
        return f"({text})"
    return text


def format_const(v: float) -> str:
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v)) if not (v == 0 and math.copysign(1, v) < 0) else "-0"
    return repr(float(v))


def format_expr(e) -> str:
    """Math notation for a value expression (the IR's pretty-printer)."""
    if isinstance(e, Const):
        return format_const(e.value)
    if isinstance(e, Load):
        return f"{e.tensor}[{', '.join(format_iexpr(i) for i in e.index)}]" if e.index else e.tensor
    if isinstance(e, IndexValue):
        return format_iexpr(e.expr)
    if e.op in INFIX:
        sym = INFIX[e.op]
        a, b = (_paren(x, sym, right=k == 1) for k, x in enumerate(e.args))
        return f"{a} {sym} {b}"
    if e.op == "neg":
        return f"-{_paren(e.args[0], '**')}"
    if e.op == "select":
        c, a, b = (format_expr(x) for x in e.args)
        return f"({a} if {c} else {b})"
    return f"{e.op}({', '.join(format_expr(a) for a in e.args)})"


def _paren(e, parent, right=False):
    text = format_expr(e)
    if isinstance(e, Call) and e.op in INFIX:
        mine, theirs = PRECEDENCE.get(INFIX[e.op], 0), PRECEDENCE.get(parent, 0)
        if mine < theirs or (right and mine == theirs and parent in "-/") or (mine == theirs == 3):
            return f"({text})"
    elif isinstance(e, Call) and e.op == "neg" and parent != "+":
        return f"({text})"
    return text


def format_stage(s: Stage) -> str:
    if s.scatter_index is not None:
        lhs = f"{s.name}[{', '.join(format_iexpr(i) for i in s.scatter_index)}] +="
        over = ", ".join(a.name for a in s.all_axes)
        return f"{lhs} {format_expr(s.body)}    (scatter over {over})"
    lhs = f"{s.name}[{', '.join(a.name for a in s.axes)}]" if s.axes else s.name
    if s.reduce:
        over = ", ".join(a.name for a in s.reduce_axes)
        return f"{lhs} = {s.reduce}_{{{over}}} {format_expr(s.body)}"
    return f"{lhs} = {format_expr(s.body)}"


def format_program(p: Program) -> str:
    lines = [f"# {p.name}"]
    for t in p.tensors:
        dims = ", ".join(format_iexpr(d) for d in t.shape)
        lines.append(f"#   {t.role} {t.name}[{dims}]")
    lines += [format_stage(s) for s in p.stages]
    lines += [f"{buf} <- {stage}" for buf, stage in p.updates]
    if p.outputs:
        lines.append("return " + ", ".join(p.outputs))
    return "\n".join(lines)


def grad_name(tensor: str) -> str:
    """The name of ``tensor``'s gradient in a backward program."""
    return f"grad_{tensor}"
