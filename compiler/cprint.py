"""C text for the code generator: the templates, C names for IR names,
literals, and the expression printer.

Python decides every token; the Jinja2 templates in ``templates/`` hold the
shape of the C. This module prints *expressions* (an op's C form from the op
table, an index, a row-major offset); a statement, a loop or a pragma is a
record (``compiler/cstatements.py``) that names the macro of
``templates/statements.c.j2`` laying it out. User names never reach the C as
written: every identifier is mangled from its IR name.

Example::

    >>> from layerc.compiler.ir import Call, IVar, ISym, Load
    >>> printer = Printer({"x": (ISym("N"),)}, {"i": ISym("N")}, "f32")
    >>> printer.value(Call("exp", (Load("x", (IVar("i"),)),)))
    't1'
    >>> printer.lets
    [Let(ctype='float', name='t0', value='T_x[v_i]'), Let(ctype='float', name='t1', value='expf(t0)')]
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from . import ir
from .ir import Const, IConst, ILoad, IndexValue, ISym, IVar, Load
from .cstatements import Let
from .ops_table import AT_MOST_ZERO, COMPARISONS, OPS, QUOTIENT_SCALE, sign
from .schedule import index_in_range, range_condition
from .template_env import environment

DTYPES = {"f32": ("float", "f"), "f64": ("double", "")}
# the C type of a test on indices (0 or 1), as wide as the dtype's lanes: tests
# combined with & and a select on the result, where float 0/1 products cost a
# conversion and a multiplication each (a flat depthwise row: 1.47x faster)
MASKS = {"f32": "int32_t", "f64": "int64_t"}
# the C type of a test on values in scalar loops: gcc 12 turns a float 0/1 from
# a comparison into branches on its outcome there (an adaptive max pool's first
# maximum mispredicted most of them: 1.9x slower)
SCALAR_TEST = "int32_t"
# index operators printed as calls of module.c.j2's helpers (Python's floor
# division and modulo; C's own would round toward zero)
INDEX_CALLS = {"//": "lc_floordiv", "%": "lc_mod", "min": "lc_min_i64", "max": "lc_max_i64"}


def render(template: str, **context) -> str:
    return environment.get_template(template).render(**context)


# ---------------------------------------------------------------- names and literals


def mangle(prefix: str, name: str) -> str:
    """A C identifier for an IR name that cannot collide with C keywords,
    library names, macros or another mangled name."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"{prefix}_{name}"
    return f"{prefix}x_" + name.encode("utf-8").hex()


def tensor_c(name: str) -> str:
    return mangle("T", name)


def size_c(name: str) -> str:
    return mangle("S", name)


def var_c(name: str) -> str:
    return mangle("v", name)


def c_comment(text: str) -> str:
    """``text`` made safe inside ``/* ... */``: user names (a class name, a
    ``compute``/``reduce_axis`` name) reach comments, so only printable ASCII
    without backslashes or ``?`` (no line splices, no trigraphs under
    ``-std=c11``) is kept, and ``*/`` cannot close it nor ``/*`` nest in it."""
    text = re.sub(r"[^\x20-\x7e]|[\\?]", "_", text)
    while "*/" in text or "/*" in text:
        text = text.replace("*/", "* /").replace("/*", "/ *")
    return text


def c_literal(value: float, dtype: str) -> str:
    ctype, suffix = DTYPES[dtype]
    if math.isnan(value):
        return f"(({ctype})NAN)"
    if math.isinf(value):
        return f"(({ctype})INFINITY)" if value > 0 else f"(-({ctype})INFINITY)"
    text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return f"{text}{suffix}" if not text.startswith("-") else f"({text}{suffix})"


def init_value(reduce: str, dtype: str) -> str:
    """What a ``reduce`` ("sum", "max") starts from."""
    return c_literal(-math.inf if reduce == "max" else 0.0, dtype)


@dataclass(frozen=True)
class Context:
    """What the renderers of one function's nests share: its tensors' shapes,
    the dtype, its outputs (their stores may stream), the iterations below which
    a nest runs on one thread, the renderer of each form of nest, and whether
    nests may start threads (not inside a ``"rows"`` nest's row loops)."""

    shapes: dict
    dtype: str
    outputs: frozenset
    min_work: int
    renderers: dict
    threads: bool = True        # False inside a loop that already runs in threads
    # inside a "rows" nest decided to stream: the sizes of the outputs its nests
    # stream, which they then do without a test of their own
    streaming: list | None = None
    # inside a "rows" nest: tensor -> (the thread's buffer of its row, the row's coordinates)
    local: dict = dataclasses.field(default_factory=dict)
    # inside a "rows" nest that accumulates: tensor -> the thread's partial sums of it
    accumulators: dict = dataclasses.field(default_factory=dict)

    @property
    def ctype(self) -> str:
        return DTYPES[self.dtype][0]

    def render(self, nest) -> str:
        """The C of ``nest``, by the renderer of its form."""
        return self.renderers[nest.form](nest, self)

    def printer(self, stages) -> "Printer":
        """A printer for nests computing ``stages``, which know their loops' extents."""
        printer = Printer(self.shapes, {a.name: a.extent for st in stages for a in st.all_axes}, self.dtype)
        printer.local = self.local
        return printer


# ---------------------------------------------------------------- expressions


class Printer:
    """Prints IR expressions as C for one nest: every distinct sub-expression
    becomes one ``const`` temporary (a ``Let``: CSE), so a select never hides
    work and the innermost loop stays branch-free."""

    def __init__(self, shapes: dict, extents: dict, dtype: str):
        self.shapes, self.extents, self.dtype = shapes, extents, dtype
        self.ctype, self.suffix = DTYPES[dtype]
        self.lets: list[Let] = []
        self.names: dict = {}
        self.nodes: list = []      # the expression behind each temporary
        self.in_range: frozenset = frozenset()  # reads known to be inside their tensor
        # when a dict: row lengths known at compile time printed as names
        # (``opaque_strides``), each length by its name
        self.hidden: dict | None = None
        self.zero: frozenset = frozenset()      # variables of dropped loops (``collapse``)
        self.merged: dict = {}
        self.split: dict = {}       # variables of split loops (``collapse.Collapsed.split``)
        self.reciprocal: set = set()    # temporaries printed as products by reciprocals
        self.local: dict = {}       # tensors held a row at a time (``Context.local``)
        # in a nest of scalar loops, tests on values are integers (``SCALAR_TEST``)
        self.scalar = False

    def collapse(self, collapsed) -> None:
        """Print for a nest whose loops are ``collapsed`` (compiler/collapse.py):
        the variables of dropped loops as 0, merged coordinates as one."""
        if collapsed is not None:
            self.zero, self.merged, self.split = collapsed.zero, collapsed.merged, collapsed.split

    def index(self, e: ir.IExpr) -> str:
        if isinstance(e, IConst):
            return str(e.value)
        if isinstance(e, IVar) and e.name in self.split:
            outer, inner, q, offset = self.split[e.name]
            return f"({q} * {var_c(outer)} + {var_c(inner)}{f' + {offset}' if offset else ''})"
        quotient = self._split_quotient(e)
        if quotient is not None:
            return quotient
        if isinstance(e, IVar):
            return "0" if e.name in self.zero else var_c(e.name)
        if isinstance(e, ISym):
            return size_c(e.name)
        if isinstance(e, ILoad):
            return self.element(e.tensor, e.index)
        a, b = self.index(e.a), self.index(e.b)
        if e.op in INDEX_CALLS:
            return f"{INDEX_CALLS[e.op]}({a}, {b})"
        return f"({a} {e.op} {b})"

    def _split_quotient(self, e) -> str | None:
        """``(v + c) // q`` and ``(v + c) % q`` of a split variable ``v = q * outer
        + inner + offset`` where ``q`` divides ``offset + c``: ``outer + (offset +
        c) / q`` and ``inner``, no division left."""
        if not (isinstance(e, ir.IBin) and e.op in ("//", "%") and isinstance(e.b, IConst)):
            return None
        for name, (outer, inner, q, offset) in self.split.items():
            form = ir.affine(e.a, {name})
            if form is not None and form[0] == {name: 1} and isinstance(form[1], IConst) and \
                    e.b.value == q and (form[1].value + offset) % q == 0:
                whole = (form[1].value + offset) // q
                if e.op == "%":
                    return var_c(inner)
                return f"({var_c(outer)} + {whole})" if whole else var_c(outer)
        return None

    def offset(self, tensor: str, index: tuple) -> str:
        """Row-major offset, 64-bit."""
        shape = self.shapes[tensor]
        if not index:
            return "0"
        text, d = None, 0
        while d < len(index):
            # a merged variable runs over its coordinate and the next ones at once
            run = self.merged.get(index[d].name, ()) if isinstance(index[d], IVar) else ()
            run = run if index[d + 1:d + 1 + len(run)] == tuple(IVar(v) for v in run) else ()
            coord = self.index(index[d])
            if text is not None:
                sizes = " * ".join(self.stride(size) for size in shape[d:d + 1 + len(run)])
                coord = f"({text}) * {sizes} + {coord}"
            text, d = coord, d + 1 + len(run)
        return text

    def stride(self, size: ir.IExpr) -> str:
        """A dimension's size as a factor of an offset (hidden, see ``opaque_strides``)."""
        if self.hidden is None or not isinstance(size, IConst) or size.value <= 1:
            return self.index(size)
        name = f"lc_stride{size.value}"
        self.hidden[name] = size.value
        return name

    def hide_strides(self) -> None:
        """Hide from gcc the sizes in offsets printed from now on: each is read
        once through ``lc_opaque_i64`` (the ``Let``s of ``stride_lets``, after
        printing). Reads across rows in SIMD lanes then compile to gathers; with
        a known row length gcc 12 tries interleaved loads and gives up when that
        length is not a power of 2."""
        self.hidden = {}

    def stride_lets(self) -> list:
        """The hidden sizes' temporaries (none unless ``hide_strides``)."""
        hidden = sorted((self.hidden or {}).items())
        return [Let("int64_t", name, f"lc_opaque_i64({value})") for name, value in hidden]

    def at(self, array: str, tensor: str, index: tuple) -> str:
        """The element of C array ``array`` laid out as ``tensor``."""
        return f"{array}[{self.offset(tensor, index)}]"

    def element(self, tensor: str, index: tuple) -> str:
        if tensor in self.local:
            buffer, k = self.local[tensor]
            return self.at(buffer, tensor, (IConst(0),) * k + tuple(index[k:]))
        return self.at(tensor_c(tensor), tensor, index)

    def call(self, op: str, *args: str) -> str:
        """Op ``op`` of the table on printed arguments."""
        return OPS[op].c.format(*args, f=self.suffix)

    def value(self, e) -> str:
        """The C text naming ``e``'s value (emitting temporaries as needed)."""
        if isinstance(e, Const):
            return c_literal(e.value, self.dtype)
        if isinstance(e, IndexValue):
            # through 32 bits where the index fits: AVX2 has no vector int64-to-float conversion
            narrow = "(int32_t)" if _within(_bounds(e.expr, self.extents), 2 ** 31 - 1) else ""
            return f"(({self.ctype}){narrow}{self.index(e.expr)})"
        if e in self.names:
            return self.names[e]
        ctype = self.ctype
        if isinstance(e, Load):
            text = self.element(e.tensor, e.index)
            if e not in self.in_range and not index_in_range(e.index, self.shapes[e.tensor], self.extents):
                # outside the tensor reads zero (padding); never touch memory there
                guard = range_condition(e.index, self.shapes[e.tensor], self.extents)
                text = self.call("select", self.value(guard), text, "0")
        elif e.op in COMPARISONS and _index_test(e):
            # compare indices as integers: int64-to-float conversions do not vectorize
            text = OPS[e.op].c.format(*(self.index(a.expr) if isinstance(a, IndexValue) else str(int(a.value))
                                        for a in e.args))
            ctype = MASKS[self.dtype]
        elif e.op == "mul" and all(map(_index_test, e.args)):
            text = " & ".join(self.value(a) for a in e.args)
            text, ctype = f"({text})", MASKS[self.dtype]
        elif self.scalar and ir.is_test(e):
            text, ctype = self.call(e.op, *(self.value(a) for a in e.args)), SCALAR_TEST
        elif e.op in AT_MOST_ZERO and sign(e.args[0]) < 0:
            text = AT_MOST_ZERO[e.op].format(self.value(e.args[0]), f=self.suffix)
        else:
            text = self.call(e.op, *(self.value(a) for a in e.args))
        name = f"t{len(self.names)}"
        self.names[e] = name
        self.lets.append(Let(ctype, name, text))
        self.nodes.append(e)
        return name

    def _varies(self, node, var: str) -> bool:
        names = ir.ivars_of_expr(node)
        # a split loop's variable changes with both loops (``index``)
        names |= {v for name in names & set(self.split) for v in self.split[name][:2]}
        return var in names

    def hoist(self, var: str) -> tuple[list, list]:
        """The temporaries split into those that do not depend on loop variable
        ``var`` (computed once, outside its loop) and those that do. A value read
        through a pointer inside the innermost loop can stop gcc vectorizing it.
        Divisions along ``var`` by a value that does not change along it
        multiply by its reciprocal (``reciprocals``)."""
        self.reciprocals(var)
        invariant, variant = [], []
        for let, node in zip(self.lets, self.nodes):
            (variant if self._varies(node, var) else invariant).append(let)
        return invariant, variant

    def reciprocals(self, var: str) -> None:
        """Each division ``a / d`` along loop variable ``var`` by a ``d`` that
        does not change along it becomes ``(a * s) * r``, with ``s`` a power of
        two that brings ``d`` into the range where its reciprocal is a normal
        number (``lc_quotient_scale``) and ``r = 1 / (d * s)``, both computed
        outside the loop: a vector division costs 10 to 20 times a
        multiplication, and a row's normalization (softmax's sum, a norm's
        deviation) was bound by them. Within 1.5 ulp of the quotient; zeros,
        infinities and NaN give what the division gives."""
        found = {}          # divisor -> its scale and reciprocal, shared by its divisions
        lets, nodes = [], []
        for let, node in zip(self.lets, self.nodes):
            if (isinstance(node, ir.Call) and node.op == "div" and self._varies(node, var)
                    and not self._varies(node.args[1], var) and let.name not in self.reciprocal):
                divisor = node.args[1]
                if divisor not in found:
                    d = self.value(divisor)
                    found[divisor] = scale, recip = f"{let.name}_s", f"{let.name}_r"
                    lets += [Let(self.ctype, scale, QUOTIENT_SCALE.format(d, f=self.suffix)),
                             Let(self.ctype, recip, self.call("div", c_literal(1.0, self.dtype),
                                                              self.call("mul", d, scale)))]
                    nodes += [divisor, divisor]
                scale, recip = found[divisor]
                product = self.call("mul", self.call("mul", self.value(node.args[0]), scale), recip)
                let = Let(let.ctype, let.name, product)
                self.reciprocal.add(let.name)
            lets.append(let)
            nodes.append(node)
        self.lets, self.nodes = lets, nodes

    # integer expressions of loop bounds and sizes, in 64 bits

    def product(self, extents) -> str:
        """The product of index expressions ("1" for none)."""
        return " * ".join(f"(int64_t)({self.index(e)})" for e in extents) or "1"

    def size(self, axes) -> str:
        """Iterations of ``axes`` (or loops) together."""
        return self.product(a.extent for a in axes)

    @staticmethod
    def larger(a: str, b: str) -> str:
        return f"lc_max_i64({a}, {b})"

    @staticmethod
    def smaller(a: str, b: str) -> str:
        return f"lc_min_i64({a}, {b})"

    @staticmethod
    def when_all(values: list, then: str, otherwise: str) -> str:
        """``then`` where every value is nonzero, else ``otherwise``."""
        passed = " && ".join(f"{v} != 0" for v in values)
        return f"(({passed}) ? {then} : {otherwise})"

    def decode(self, flat: str, axes: tuple) -> list:
        """``Let``s recovering the index variables ``axes`` (row-major) from the flat index ``flat``."""
        lets, stride = [], "1"
        for a in reversed(axes):
            value = flat if stride == "1" else f"{flat} / ({stride})"
            if a is not axes[0]:
                value = f"({value}) % ({self.index(a.extent)})"
            lets.append(Let("int64_t", var_c(a.name), value))
            stride = self.index(a.extent) if stride == "1" else f"({stride}) * ({self.index(a.extent)})"
        return lets


def _bounds(e, extents: dict) -> tuple | None:
    """The least and greatest value of an index expression over its loops'
    ranges, or None where a size is free or an operation unknown."""
    if isinstance(e, IConst):
        return e.value, e.value
    if isinstance(e, IVar):
        extent = extents.get(e.name)
        return (0, extent.value - 1) if isinstance(extent, IConst) and extent.value > 0 else None
    if not isinstance(e, ir.IBin):
        return None
    a, b = _bounds(e.a, extents), _bounds(e.b, extents)
    if a is None or b is None:
        return None
    if e.op == "+":
        return a[0] + b[0], a[1] + b[1]
    if e.op == "*":
        corners = [x * y for x in a for y in b]
        return min(corners), max(corners)
    if e.op in ("min", "max"):
        pick = min if e.op == "min" else max
        return pick(a[0], b[0]), pick(a[1], b[1])
    if e.op in ("//", "%") and b[0] == b[1] and b[0] > 0:
        return (a[0] // b[0], a[1] // b[0]) if e.op == "//" else (0, b[0] - 1)
    return None


def _within(bounds: tuple | None, limit: int) -> bool:
    return bounds is not None and -limit <= bounds[0] and bounds[1] <= limit


def _index_test(e) -> bool:
    """Whether ``e`` is a test on indices alone (a comparison of index values,
    or a product of such tests): 0 or 1, printed as an integer mask."""
    if not isinstance(e, ir.Call):
        return False
    if e.op == "mul":
        return all(map(_index_test, e.args))
    return e.op in COMPARISONS and all(_integral(a) for a in e.args)


def _integral(e) -> bool:
    return isinstance(e, IndexValue) or (isinstance(e, Const) and math.isfinite(e.value)
                                         and e.value == int(e.value) and abs(e.value) < 2 ** 53)
