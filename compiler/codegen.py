"""C code generation: loop plans and expressions printed into Jinja2 templates.

Python decides every token; the templates in ``templates/`` hold the shape of
the C (headers, signatures, loop nests). User names never reach the C text
as written: every identifier is mangled from its IR name.

Example::

    source, cdef, signatures, libraries = render_module("lc_prelu", "PReLU", {"forward": fwd, "backward": bwd})
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import jinja2

from . import ir
from .build import LibraryPlan, cache_dir
from .ir import Const, IConst, ILoad, IndexValue, ISym, IVar, Load
from .ops_table import COMPARISONS, OPS
from .patches import WORKSPACE_BYTES
from .plan import plan_program
from .schedule import Nest, index_in_range, plan_loops, range_condition
from .signature import Signature, signature

# below this many loop iterations a nest runs on one thread: starting an
# OpenMP team costs more than the work
PARALLEL_MIN_WORK = 1 << 17

DTYPES = {"f32": ("float", "f"), "f64": ("double", "")}



def _template_bytecode_cache():
    """Compiled templates kept beside the build cache: compiling them anew costs
    a fresh process more than loading a cached layer does."""
    folder = cache_dir() / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("layerc.templates", "."),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
    bytecode_cache=_template_bytecode_cache(),
)


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


# ---------------------------------------------------------------- expressions


class Printer:
    """Prints IR expressions as C for one nest: every distinct sub-expression
    becomes one ``const`` temporary (CSE), so a select never hides work and
    the innermost loop stays branch-free."""

    def __init__(self, shapes: dict, extents: dict, dtype: str):
        self.shapes, self.extents, self.dtype = shapes, extents, dtype
        self.ctype, self.suffix = DTYPES[dtype]
        self.lines: list[str] = []
        self.names: dict = {}
        self.nodes: list = []      # the expression behind each line
        self.in_range: frozenset = frozenset()  # reads known to be inside their tensor

    def index(self, e: ir.IExpr) -> str:
        if isinstance(e, IConst):
            return str(e.value)
        if isinstance(e, IVar):
            return var_c(e.name)
        if isinstance(e, ISym):
            return size_c(e.name)
        if isinstance(e, ILoad):
            return f"{tensor_c(e.tensor)}[{self.offset(e.tensor, e.index)}]"
        a, b = self.index(e.a), self.index(e.b)
        if e.op == "//":
            return f"lc_floordiv({a}, {b})"
        if e.op == "%":
            return f"lc_mod({a}, {b})"
        return f"({a} {e.op} {b})"

    def offset(self, tensor: str, index: tuple) -> str:
        """Row-major offset, 64-bit."""
        shape = self.shapes[tensor]
        if not index:
            return "0"
        text = self.index(index[0])
        for coord, size in zip(index[1:], shape[1:]):
            text = f"({text}) * {self.index(size)} + {self.index(coord)}"
        return text

    def value(self, e) -> str:
        """The C text naming ``e``'s value (emitting temporaries as needed)."""
        if isinstance(e, Const):
            return c_literal(e.value, self.dtype)
        if isinstance(e, IndexValue):
            return f"(({self.ctype}){self.index(e.expr)})"
        if e in self.names:
            return self.names[e]
        if isinstance(e, Load):
            text = f"{tensor_c(e.tensor)}[{self.offset(e.tensor, e.index)}]"
            if e not in self.in_range and not index_in_range(e.index, self.shapes[e.tensor], self.extents):
                # outside the tensor reads zero (padding); never touch memory there
                guard = range_condition(e.index, self.shapes[e.tensor], self.extents)
                text = f"({self.value(guard)} != 0 ? {text} : 0)"
        elif e.op in COMPARISONS and all(_integral(a) for a in e.args):
            # compare indices as integers: int64-to-float conversions do not vectorize
            text = OPS[e.op].c.format(*(self.index(a.expr) if isinstance(a, IndexValue) else str(int(a.value))
                                        for a in e.args))
        else:
            op = OPS[e.op]
            text = op.c.format(*(self.value(a) for a in e.args), f=self.suffix)
        name = f"t{len(self.names)}"
        self.names[e] = name
        self.lines.append(f"const {self.ctype} {name} = {text};")
        self.nodes.append(e)
        return name


    def hoist(self, var: str) -> tuple[list, list]:
        """The lines split into those that do not depend on loop variable ``var``
        (computed once, outside its loop) and those that do. A value read
        through a pointer inside the innermost loop can stop gcc vectorizing it."""
        invariant, variant = [], []
        for line, node in zip(self.lines, self.nodes):
            (variant if var in ir.ivars_of_expr(node) else invariant).append(line)
        return invariant, variant


def _integral(e) -> bool:
    return isinstance(e, IndexValue) or (isinstance(e, Const) and math.isfinite(e.value)
                                         and e.value == int(e.value) and abs(e.value) < 2 ** 53)


# ---------------------------------------------------------------- nests


def _loop(var: str, start: str, extent: str, pragma: str = "", advance: str = "") -> dict:
    """One loop as templates/loops.c.j2 takes it, with the lines it runs on
    entering and before leaving each iteration."""
    return dict(var=var, start=start, extent=extent, pragma=pragma, advance=advance or f"++{var}",
                enter=[], exit=[])


def _nest_loop(loop, printer: Printer, pragma: str = "") -> dict:
    """A nest's loop, from 0 to its extent."""
    return _loop(var_c(loop.var), "0", printer.index(loop.extent), pragma)


def _product(extents, printer: Printer) -> str:
    """The product of index expressions, in 64 bits ("1" for none)."""
    return " * ".join(f"(int64_t)({printer.index(e)})" for e in extents) or "1"


def _size(axes, printer: Printer) -> str:
    """Iterations of ``axes`` (or loops) together."""
    return _product((a.extent for a in axes), printer)


def _threads(loops, printer: Printer) -> str:
    """The team clauses of a nest's ``parallel for``. The ``if`` names the
    parallel construct: unnamed, it also applies to a combined ``simd``, and a
    nest below the threshold would run its loop unvectorized."""
    return f"num_threads(lc_num_threads()) if(parallel: {_size(loops, printer)} >= {PARALLEL_MIN_WORK})"


def _accumulate(reduce: str, target: str, value: str) -> str:
    if reduce == "max":
        # NaN wins, as in numpy's max. The NaN test is the outer select: a branch
        # that is almost never taken, while the data-dependent one compiles to maxss
        return f"{target} = ({value} != {value}) ? {value} : (({value} > {target}) ? {value} : {target});"
    return f"{target} += {value};"


def _init_value(reduce: str, dtype: str) -> str:
    return c_literal(-math.inf if reduce == "max" else 0.0, dtype)


@dataclass(frozen=True)
class Store:
    """``tensor[index] = value`` in a nest's innermost loop."""
    tensor: str
    index: tuple
    value: str

    def line(self, printer: Printer) -> str:
        return f"{tensor_c(self.tensor)}[{printer.offset(self.tensor, self.index)}] = {self.value};"


# tiles of this many elements (LC_TILE) are computed in a small array, then
# streamed out; a loop shorter than two tiles is not worth it
STREAM_TILE = 64
# per dtype: the copy of a tile to memory, and the 16-byte streaming store it uses
STREAMS = {dtype: dict(name=f"lc_stream_{dtype}", ctype=ctype, vtype=f"lc_v{16 // width}{dtype}",
                       lanes=16 // width, store=f"__builtin_ia32_movntp{letter}")
           for dtype, ctype, width, letter in (("f32", "float", 4, "s"), ("f64", "double", 8, "d"))}


def _streams(plans: tuple, stores: list, outputs: frozenset) -> list:
    """The stores a nest can stream: those of the function's ``outputs``
    written along its innermost loop, when that loop is vectorized, at least
    two tiles long and inside another loop (whose iterations end with a
    fence). An intermediate is left out: the next nest reads it at once, from
    the cache if it fits, and a second nest would only cost build time."""
    if len(plans) < 2:
        return []
    inner = plans[-1]
    if not inner.simd or inner.parallel or inner.reduction or (
            isinstance(inner.extent, IConst) and inner.extent.value < 2 * STREAM_TILE):
        return []
    along = IVar(inner.var)
    return [st for st in stores
            if st.tensor in outputs and st.index and st.index[-1] == along
            and all(inner.var not in ir.ivars(i) for i in st.index[:-1])]


def _render_streamed(template: str, plans: tuple, loops: list, body: list, stores: list, printer: Printer,
                     outputs: frozenset, **context) -> str:
    """A nest rendered from ``template``, given its ``loops`` and the ``body``
    (lines without the stores) of its innermost loop, plus ``stores``. Stores
    along the innermost loop of an output larger than the caches (decided at
    run time) go through tiles streamed to memory (``lc_stream_*``); a nest
    without such stores is rendered once."""
    streamed = _streams(plans, stores, outputs)
    plain = _env.get_template(template).render(loops=loops, body=body + [st.line(printer) for st in stores],
                                               **context)
    if not streamed:
        return plain
    var, first, stop = loops[-1]["var"], loops[-1]["start"], loops[-1]["extent"]
    tile = _loop("lc_tile_start", first, stop, advance="lc_tile_start += LC_TILE")
    tile["enter"] = [f"const int64_t lc_tile_n = lc_min_i64(LC_TILE, {stop} - lc_tile_start);"]
    tile["exit"] = ["{", f"const int64_t {var} = lc_tile_start;"]
    statements = []
    for st in stores:
        if st not in streamed:
            statements.append(st.line(printer))
            continue
        buffer = f"lc_tile{len(tile['enter']) - 1}"
        tile["enter"].append(f"{printer.ctype} {buffer}[LC_TILE] __attribute__((aligned(64)));")
        tile["exit"].append(f"{STREAMS[printer.dtype]['name']}({tensor_c(st.tensor)} + "
                            f"({printer.offset(st.tensor, st.index)}), {buffer}, lc_tile_n);")
        statements.append(f"{buffer}[{var} - lc_tile_start] = {st.value};")
    tile["exit"].append("}")
    elements = dict(loops[-1], start="lc_tile_start", extent="lc_tile_start + lc_tile_n")
    # streaming stores are weakly ordered: fenced before the loop around them moves on
    parent = dict(loops[-2], exit=loops[-2]["exit"] + ["lc_fence();"])
    tiled = _env.get_template(template).render(loops=loops[:-2] + [parent, tile, elements],
                                               body=body + statements, **context)
    sizes = " + ".join(_product(printer.shapes[st.tensor], printer) for st in streamed)
    return _env.get_template("streamed.c.j2").render(
        condition=f"(int64_t)sizeof({printer.ctype}) * ({sizes}) >= lc_stream_min()", streamed=tiled, plain=plain)


def render_pass(nest: Nest, shapes: dict, dtype: str, outputs: frozenset) -> str:
    """Sibling stages in one pass over shared loops (one printer, so a value
    read by several of them is loaded once). Accumulate members reduce into
    per-thread partial outputs over a static split of the outermost loop."""
    extents = {a.name: a.extent for _, st in nest.members for a in st.all_axes}
    printer = Printer(shapes, extents, dtype)
    ctype = DTYPES[dtype][0]
    statements, stores, partials = [], [], []
    for kind, st in nest.members:
        value = printer.value(st.body)
        target = tensor_c(st.name)
        if kind == "accumulate":
            acc = f"lc_acc{len(partials)}"
            size = _product(printer.shapes[st.name], printer)
            partials.append(dict(ctype=ctype, acc=acc, out=target, size=size, ok=f"(lc_want == 1 || lc_part{len(partials)})",
                                 init=_init_value(st.reduce, dtype),
                                 combine=_accumulate(st.reduce, f"{target}[k]", "lc_p[k]")))
            statements.append(_accumulate(st.reduce, f"{acc}[{printer.offset(st.name, st.index)}]", value))
        else:
            stores.append(Store(st.name, st.index, value))
    outer = nest.loops[0]
    loops = [_loop(var_c(outer.var), "lc_lo", "lc_hi")] + [
        _nest_loop(l, printer, "#pragma omp simd" if l.simd else "") for l in nest.loops[1:]]
    comment = c_comment("; ".join(ir.format_stage(st) for _, st in nest.members))
    return _render_streamed("pass.c.j2", nest.loops, loops, printer.lines + statements, stores, printer, outputs,
                            comment=comment, work=_size(nest.loops, printer), min_work=PARALLEL_MIN_WORK,
                            partials=partials, outer_extent=printer.index(outer.extent))


KERNELS = {dtype: dict(name=f"lc_kernel_{dtype}", ctype=DTYPES[dtype][0], vtype=f"lc_v{dtype}",
                      nr=f"LC_NR_{dtype.upper()}") for dtype in DTYPES}


def _decode(flat: str, axes: tuple, printer: Printer) -> list:
    """Statements recovering the index variables ``axes`` (row-major) from the flat index ``flat``."""
    lines, stride = [], "1"
    for a in reversed(axes):
        value = flat if stride == "1" else f"{flat} / ({stride})"
        if a is not axes[0]:
            value = f"({value}) % ({printer.index(a.extent)})"
        lines.append(f"const int64_t {var_c(a.name)} = {value};")
        stride = printer.index(a.extent) if stride == "1" else f"({stride}) * ({printer.index(a.extent)})"
    return lines


GEMMS = {dtype: dict(name=f"lc_gemm_{dtype}", ctype=DTYPES[dtype][0], pointer=f"lc_{letter}gemm",
                    type64=f"lc_{letter}gemm64_t", type32=f"lc_{letter}gemm32_t",
                    kernel=KERNELS[dtype]["name"], nr=KERNELS[dtype]["nr"])
         for dtype, letter in (("f32", "s"), ("f64", "d"))}


def render_contraction(nest: Nest, shapes: dict, dtype: str) -> str:
    """A sum of products: calls of the module's gemm (numpy's BLAS, or the
    packed kernel without one) when its operands are matrices in memory
    (templates/gemm.c.j2), else a packed, register-tiled matrix product that
    reads any expression (templates/contract.c.j2)."""
    s, gemm = nest.stage, nest.contraction.gemm
    if gemm is None:
        return render_packed_contraction(nest, shapes, dtype)
    c = nest.contraction
    extents = {a.name: a.extent for a in s.all_axes}
    printer = Printer(shapes, extents, dtype)
    rows, cols, depth = _size(gemm.m, printer), _size(gemm.n, printer), _size(gemm.k, printer)
    m_size, n_size, k_size = _size(c.m, printer), _size(c.n, printer), _size(c.k, printer)
    a, b, out = gemm.a, gemm.b, gemm.out
    first = " && ".join(f"{var_c(x.name)} == 0" for x in gemm.accumulate)
    beta = f"({first}) ? 0 : 1" if first else "0"
    out_size = _size(s.axes, printer)
    start, empty_sum = "", ["/* an empty sum is zero */",
                            f"for (int64_t k = 0; k < {out_size}; ++k) {tensor_c(s.name)}[k] = 0;"]
    if c.start is not None:
        # the output holds the sum's starting value first; the products add onto it
        start = _start(s, c.start, shapes, dtype)
        beta, empty_sum = "1", ["/* an empty sum leaves the starting value */"]
    # row-major calls C = op(A) op(B); a transposed result is computed as out^T = b^T a^T
    left, right, call_rows, call_cols = (b, a, cols, rows) if out.transposed else (a, b, rows, cols)
    trans_left = left.transposed != out.transposed
    trans_right = right.transposed != out.transposed

    def operand(matrix, step=None):
        # ``step``: how far one of the call's rows is, for a block starting lc_first rows in
        start = f"{tensor_c(matrix.tensor)} + ({printer.offset(matrix.tensor, matrix.index)})"
        return f"{start} + lc_first * {step}" if step else start, printer.index(matrix.ld)

    ld = printer.index
    call = [str(int(trans_left)), str(int(trans_right)), "lc_count", call_cols, depth, c_literal(gemm.alpha, dtype),
            *operand(left, "1" if trans_left else ld(left.ld)), *operand(right), beta, *operand(out, ld(out.ld))]
    return _env.get_template("gemm.c.j2").render(
        comment=c_comment(ir.format_stage(s)), start=start, empty_sum=empty_sum, k_size=k_size, m_size=m_size,
        n_size=n_size,
        calls=_size(gemm.loops, printer), rows=call_rows,
        work=f"{m_size} * {n_size} * {k_size}", min_work=PARALLEL_MIN_WORK,
        decode=_decode("lc_task / lc_parts", gemm.loops, printer),
        accumulate=[dict(var=var_c(x.name), extent=printer.index(x.extent)) for x in gemm.accumulate],
        gemm=GEMMS[dtype]["name"], call=call)


def _start(s, start, shapes: dict, dtype: str) -> str:
    """The nest writing a sum's starting value into its output ("" for none)."""
    if start is None:
        return ""
    return render_nest(plan_loops(ir.replace(s, body=start, reduce=None, reduce_axes=()), shapes), shapes, dtype)


def render_packed_contraction(nest: Nest, shapes: dict, dtype: str) -> str:
    """A sum of products as a packed, register-tiled matrix product (templates/contract.c.j2)."""
    s, c = nest.stage, nest.contraction
    extents = {a.name: a.extent for a in s.all_axes}
    index_printer = Printer(shapes, extents, dtype)
    sides = {}
    for side, value in (("a", c.a), ("b", c.b)):
        printer = Printer(shapes, extents, dtype)
        sides[f"{side}_value"] = printer.value(value)
        sides[f"{side}_lines"] = printer.lines
    kernel = KERNELS[dtype]
    return _env.get_template("contract.c.j2").render(
        start=_start(s, c.start, shapes, dtype), started=c.start is not None,
        first_block="0" if c.start is not None else "lc_pc == 0",
        comment=c_comment(ir.format_stage(s)), ctype=DTYPES[dtype][0], nr=kernel["nr"], kernel=kernel["name"],
        m_size=_size(c.m, index_printer), n_size=_size(c.n, index_printer), k_size=_size(c.k, index_printer),
        out=tensor_c(s.name), out_size=_size(s.axes, index_printer), min_work=PARALLEL_MIN_WORK,
        batch=[dict(var=var_c(a.name), extent=index_printer.index(a.extent)) for a in c.batch],
        m_decode=_decode("lc_m", c.m, index_printer), n_decode=_decode("lc_n", c.n, index_printer),
        k_decode=_decode("(lc_pc + lc_k)", c.k, index_printer),
        store=f"{tensor_c(s.name)}[{index_printer.offset(s.name, s.index)}]", **sides)


# ---------------------------------------------------------------- GEMMs over packed patches


def render_patch_gemm(nest: Nest, shapes: dict, dtype: str) -> str:
    """A contraction as GEMM calls over packed workspaces, one per task
    (compiler/patches.py plans it; templates/patch_gemm.c.j2 lays it out)."""
    plan = nest.patch
    s = plan.view or nest.stage
    shapes = {**shapes, s.name: s.shape}
    extents = {a.name: a.extent for a in s.all_axes}
    printer = Printer(shapes, extents, dtype)
    ix = printer.index
    packs = [_pack_rows(p, Printer(shapes, extents, dtype)) for p in plan.packs]
    per_task = [p for p, pack in zip(packs, plan.packs) if not pack.once]
    room = IConst(0)
    for p, pack in zip(packs, plan.packs):
        if not pack.once:
            p["at"], room = ix(room), ir.iadd(room, pack.capacity)
    scatter = plan.scatter and _scatter_rows(plan.scatter, s.name, printer)
    if scatter:
        scatter["at"], room = ix(room), ir.iadd(room, plan.scatter.capacity)
    block = plan.block
    start = _start(s, plan.start, shapes, dtype)

    def operand(op) -> list:
        base = op.tensor if op.index is None else f"{tensor_c(op.tensor)} + ({printer.offset(op.tensor, op.index)})"
        return [base, ix(op.ld)]

    out = plan.out
    target = "lc_cols" if out.index is None else f"lc_out + ({printer.offset(out.tensor, out.index)})"
    beta = "1" if plan.accumulate or (plan.start is not None and not scatter) else "0"
    (a, lda), (b, ldb) = operand(plan.a), operand(plan.b)

    def strides(transposed: bool, ld: str) -> list:
        # (rows, columns) apart: a transposed matrix's rows are its memory's columns
        return ["1", ld] if transposed else [ld, "1"]

    # A read element by element, B's rows where they lie, C written either way
    call = [ix(plan.rows), ix(plan.cols), ix(plan.depth), c_literal(plan.alpha, dtype), a, *strides(plan.a.transposed, lda),
            b, ldb, beta, target, *strides(out.transposed, ix(out.ld)), "lc_scratch"]
    return _env.get_template("patch_gemm.c.j2").render(
        comment=c_comment(ir.format_stage(s)), ctype=DTYPES[dtype][0], start=start, started=plan.start is not None,
        terms=ix(plan.terms), out=tensor_c(s.name), out_size=_size(s.axes, printer), budget=WORKSPACE_BYTES,
        block=dict(axis=block.axis.name, extent=ix(block.axis.extent), unit=ix(ir.isubst(room, {block.step: 1})),
                   start=var_c(block.start),
                   stop=var_c(block.stop), step=var_c(block.step)) if block else
        dict(axis="none", extent="1", unit=f"lc_max_i64({ix(room)}, 1)", start="", stop="", step=""),
        tasks=_size(plan.loops, printer), work=_size(s.all_axes, printer), min_work=PARALLEL_MIN_WORK,
        room=ix(room), once=[p for p in packs if p not in per_task], per_task=per_task,
        decode=_decode("lc_task / lc_blocks", plan.loops, printer), accumulate=plan.accumulate,
        scatter=scatter, gemm=f"{KERNELS[dtype]['name']}_tiles", call=call,
        scratch=f"LC_TILE_SCRATCH({KERNELS[dtype]['nr']})")


def _scatter_rows(scatter, out: str, printer: Printer) -> dict:
    """What templates/patch_gemm.c.j2 needs to add the calls' workspace into the output."""
    ix = printer.index
    tests = Printer(printer.shapes, printer.extents, printer.dtype)
    passed = [tests.value(t) for t in scatter.tests]
    inner = scatter.loops[-1]
    lo, hi = ix(inner.start), ix(inner.stop)
    for bound in scatter.lo:
        lo = f"lc_max_i64({lo}, {ix(bound)})"
    for bound in scatter.hi:
        hi = f"lc_min_i64({hi}, {ix(bound)})"
    return dict(loops=[dict(var=var_c(l.var), start=ix(l.start), stop=ix(l.stop)) for l in scatter.loops],
                inner=dict(var=var_c(inner.var), start=ix(inner.start), stop=ix(inner.stop)),
                row=ix(ir.isubst(scatter.offset, {inner.var: inner.start})), tests=tests.lines, lo=lo, hi=hi,
                passed=" && ".join(f"{t} != 0" for t in passed) or "1",
                target=f"{tensor_c(out)}[{printer.offset(out, scatter.index)}]")


def _pack_rows(pack, printer: Printer) -> dict:
    """What templates/patch_gemm.c.j2 needs to write one workspace."""
    ix = printer.index
    tests = [printer.value(t) for t in pack.tests]
    n_tests = len(printer.lines)
    printer.in_range = pack.in_range
    value = printer.value(pack.value)
    inner = pack.loops[-1]
    hoisted, lines = printer.hoist(inner.var)
    loops = [dict(var=var_c(l.var), start=ix(l.start), stop=ix(l.stop), enter=[]) for l in pack.loops]
    enter = []
    # the row's bounds are worked out in the loop of the last variable they read
    for name, combine, first, bounds in (("lc_lo_bound", "lc_max_i64", inner.start, pack.lo),
                                          ("lc_hi_bound", "lc_min_i64", inner.stop, pack.hi)):
        text, names = ix(first), ir.ivars(first)
        for bound in bounds:
            text, names = f"{combine}({text}, {ix(bound)})", names | ir.ivars(bound)
        depth = max((k for k, l in enumerate(pack.loops[:-1]) if l.var in names), default=None)
        (enter if depth is None else loops[depth]["enter"]).append(f"const int64_t {name} = {text};")
    return dict(name=pack.name, loops=loops, enter=enter,
                inner=dict(var=var_c(inner.var), start=ix(inner.start), stop=ix(inner.stop)),
                row=ix(ir.isubst(pack.offset, {inner.var: inner.start})), capacity=ix(pack.capacity),
                tests=hoisted[:n_tests], hoisted=hoisted[n_tests:], lines=lines, value=value, simd=pack.simd,
                passed=" && ".join(f"{t} != 0" for t in tests) or "1")


# the online max-and-sum's shift: the maximum of a row's first SHIFT_PROBE
# elements. Exponentials against it stay finite while the row's maximum is at
# most SHIFT_LIMIT above it (exp(64) * 2^32 terms < float's maximum); else the
# row is summed again against its maximum
SHIFT_PROBE = 32
SHIFT_LIMIT = 64


def render_online(nest: Nest, shapes: dict, dtype: str) -> str:
    """A row's maximum m and sum of exp(x - m) in one pass over the row: the
    exponentials are taken against a shift s (the maximum of the row's first
    elements) while the maximum is found, then the sum is scaled by exp(s - m).
    A row whose maximum is far above s, or not finite (NaN, infinities), is
    summed again against m: every row gives what the two passes give. Kept
    terms (``nest.terms``) are stored as they are summed, and scaled with the sum."""
    (_, maximum), total = nest.siblings[0], nest.stage
    extents = {a.name: a.extent for a in maximum.all_axes}
    outer, row = nest.loops[:-1], nest.loops[-1]
    ctype, suffix = DTYPES[dtype]
    var = var_c(row.var)
    probe, fused, again = (Printer(shapes, extents, dtype) for _ in range(3))
    x_probe, x_fused, x_again = (printer.value(maximum.body) for printer in (probe, fused, again))
    length = probe.index(row.extent)

    def exp(arg):
        return OPS["exp"].c.format(arg, f=suffix)

    def loop(printer, clause, statements, stop=length):
        return [f"#pragma omp simd {clause}".rstrip(),
                f"for (int64_t {var} = 0; {var} < {stop}; ++{var}) {{",
                *(f"    {line}" for line in printer.lines + statements), "}"]

    def kept(printer):
        return f"{tensor_c(nest.terms.name)}[{printer.offset(nest.terms.name, nest.terms.index)}]"

    def add(value, printer):
        """Sum ``value`` (an exponential); store it too when the terms are kept."""
        lines = [f"const {ctype} lc_term = {value};", "lc_sum += lc_term;"]
        return lines + [f"{kept(printer)} = lc_term;"] if nest.terms else lines

    # kept terms were taken against the shift: scaled by exp(shift - max) with the sum
    scaled = Printer(shapes, extents, dtype)
    rescale = loop(scaled, "", [f"{kept(scaled)} *= lc_scale;"]) if nest.terms else []
    lowest = _init_value("max", dtype)
    body = [
        f"{ctype} lc_shift = {lowest}, lc_max = {lowest}, lc_sum = 0;",
        *loop(probe, "reduction(max:lc_shift)", [_accumulate("max", "lc_shift", x_probe)],
              stop=f"lc_min_i64({length}, {SHIFT_PROBE})"),
        "if (lc_shift - lc_shift == 0) {    /* finite */",
        *(f"    {line}" for line in loop(fused, "reduction(max:lc_max) reduction(+:lc_sum)",
                                         [_accumulate("max", "lc_max", x_fused),
                                          *add(exp(f"({x_fused} - lc_shift)"), fused)])),
        "}",
        f"if (lc_shift - lc_shift == 0 && lc_max - lc_shift <= {SHIFT_LIMIT}) {{",
        f"    const {ctype} lc_scale = {exp('(lc_shift - lc_max)')};",
        "    lc_sum *= lc_scale;",
        *(f"    {line}" for line in rescale),
        "} else {    /* far above the shift, NaN or infinite: both passes, against the maximum */",
        f"    lc_max = {lowest};",
        "    lc_sum = 0;",
        *(f"    {line}" for line in loop(again, "reduction(max:lc_max)", [_accumulate("max", "lc_max", x_again)])),
        *(f"    {line}" for line in loop(again, "reduction(+:lc_sum)", add(exp(f"({x_again} - lc_max)"), again))),
        "}",
        f"{tensor_c(maximum.name)}[{probe.offset(maximum.name, maximum.index)}] = lc_max;",
        f"{tensor_c(total.name)}[{probe.offset(total.name, total.index)}] = lc_sum;",
    ]
    threads = _threads(nest.loops, probe)
    loops = [_nest_loop(l, probe, f"#pragma omp parallel for {threads}" if k == 0 else "")
             for k, l in enumerate(outer)]
    comment = c_comment("; ".join(ir.format_stage(st) for st in (maximum, nest.terms, total) if st) + " (one pass)")
    return _env.get_template("nest.c.j2").render(comment=comment, prologue=[], loops=loops, body=body,
                                                epilogue=[])


def render_nest(nest: Nest, shapes: dict, dtype: str, outputs: frozenset = frozenset()) -> str:
    """One nest's C. Stores of ``outputs`` (the function's) may stream."""
    if nest.kind == "contract":
        return render_contraction(nest, shapes, dtype)
    if nest.kind == "patch_gemm":
        return render_patch_gemm(nest, shapes, dtype)
    if nest.kind == "online":
        return render_online(nest, shapes, dtype)
    if nest.is_pass:
        return render_pass(nest, shapes, dtype, outputs)
    if nest.siblings:
        return render_siblings(nest, shapes, dtype, outputs)
    s = nest.stage
    extents = {a.name: a.extent for a in s.all_axes}
    printer = Printer(shapes, extents, dtype)
    ctype = DTYPES[dtype][0]
    out = tensor_c(s.name)
    loops = [_nest_loop(l, printer) for l in nest.loops]
    threads = _threads(nest.loops, printer)
    prologue, epilogue = [], []
    body = s.body
    if nest.window is not None:
        # the innermost loop runs where the term can be nonzero, without tests
        body, printer.in_range = nest.window.body, nest.window.in_range
        for bound in nest.window.start:
            loops[-1]["start"] = f"lc_max_i64({loops[-1]['start']}, {printer.index(bound)})"
        for bound in nest.window.stop:
            loops[-1]["extent"] = f"lc_min_i64({loops[-1]['extent']}, {printer.index(bound)})"
        if nest.window.tests:
            passed = " && ".join(f"{printer.value(t)} != 0" for t in nest.window.tests)
            loops[-1]["extent"] = f"(({passed}) ? {loops[-1]['extent']} : {loops[-1]['start']})"
    value = printer.value(nest.terms.body if nest.terms else body)
    statements, stores = [], []    # a pointwise stage has one store, any other nest one statement
    if nest.terms:
        stores.append(Store(nest.terms.name, nest.terms.index, value))
    if nest.kind == "inner":
        n_axes = len(s.axes)
        store = f"{out}[{printer.offset(s.name, s.index)}]"
        if s.reduce:
            acc_decl = f"{ctype} acc = {_init_value(s.reduce, dtype)};"
            (loops[n_axes - 1]["enter"] if n_axes else prologue).append(acc_decl)
            (loops[n_axes - 1]["exit"] if n_axes else epilogue).append(f"{store} = acc;")
            statements.append(_accumulate(s.reduce, "acc", value))
        else:
            stores.append(Store(s.name, s.index, value))
        clause = f" reduction({'max' if s.reduce == 'max' else '+'}:acc)"
        for loop, plan in zip(loops, nest.loops):
            words = (["parallel for"] if plan.parallel else []) + (["simd"] if plan.simd else [])
            if words:
                # the accumulator is private to the loop that reduces into it
                needs_clause = plan.reduction and (plan.simd or not n_axes)
                parallel = f" {threads}" if plan.parallel else ""
                loop["pragma"] = f"#pragma omp {' '.join(words)}{parallel}{clause if needs_clause else ''}"
    elif nest.kind == "row":
        # zero one output row, accumulate the window into it, columns innermost
        last = nest.loops[-1]
        row = tuple(IConst(0) if i == IVar(last.var) else i for i in s.index)
        zero = (f"for (int64_t k = 0; k < {printer.index(last.extent)}; ++k) "
                f"{out}[{printer.offset(s.name, row)} + k] = {_init_value(s.reduce, dtype)};")
        n_outer = len(s.axes) - 1
        (loops[n_outer - 1]["enter"] if n_outer else prologue).append(zero)
        statements.append(_accumulate(s.reduce, f"{out}[{printer.offset(s.name, s.index)}]", value))
        if nest.loops[0].parallel:
            loops[0]["pragma"] = f"#pragma omp parallel for {threads}"
        loops[-1]["pragma"] = "#pragma omp simd"
    else:
        init = _init_value(s.reduce, dtype)
        prologue.append(f"for (int64_t k = 0; k < {_product(printer.shapes[s.name], printer)}; ++k) {out}[k] = {init};")
        if nest.kind == "scatter":
            target = f"{out}[{printer.offset(s.name, s.scatter_index)}]"
            guard = range_condition(s.scatter_index, s.shape, extents)
            update = _accumulate("sum", target, value)
            # an index outside the output has no element to receive its share
            statements.append(f"if ({printer.value(guard)} != 0) {update}" if guard is not None else update)
        else:
            statements.append(_accumulate(s.reduce, f"{out}[{printer.offset(s.name, s.index)}]", value))
            if nest.loops and nest.loops[-1].simd:
                loops[-1]["pragma"] = "#pragma omp simd"
    body = printer.lines
    if nest.kind in ("inner", "row") and loops:
        hoisted, body = printer.hoist(nest.loops[-1].var)
        (loops[-2]["enter"] if len(loops) > 1 else prologue).extend(hoisted)
    comment = c_comment("; ".join(ir.format_stage(st) for st in (nest.terms, s) if st))
    return _render_streamed("nest.c.j2", nest.loops, loops, body + statements, stores, printer, outputs,
                            comment=comment, prologue=prologue, epilogue=epilogue)


def render_siblings(nest: Nest, shapes: dict, dtype: str, outputs: frozenset) -> str:
    """Pointwise siblings over the same loops: one ``parallel for`` nest."""
    extents = {a.name: a.extent for _, st in nest.members for a in st.all_axes}
    printer = Printer(shapes, extents, dtype)
    stores = [Store(st.name, st.index, printer.value(st.body)) for _, st in nest.members]
    threads = _threads(nest.loops, printer)
    loops = []
    for k, l in enumerate(nest.loops):
        words = (["parallel for"] if k == 0 else []) + (["simd"] if l.simd else [])
        pragma = f"#pragma omp {' '.join(words)}{' ' + threads if k == 0 else ''}" if words else ""
        loops.append(_nest_loop(l, printer, pragma))
    comment = c_comment("; ".join(ir.format_stage(st) for _, st in nest.members))
    return _render_streamed("nest.c.j2", nest.loops, loops, printer.lines, stores, printer, outputs,
                            comment=comment, prologue=[], epilogue=[])


def render_function(sig: Signature, dtype: str) -> tuple[str, str]:
    """C definition and cffi prototype of one program at one dtype."""
    ctype = DTYPES[dtype][0]
    params, proto = [], []
    # an output and the saved input it may be written over may be one buffer:
    # neither is restrict (their nest's `omp simd` still vectorizes it)
    shared = {name for a in sig.args if a.over for name in (a.name, a.over)}
    for a in sig.args:
        if a.kind == "size":
            params.append(f"int64_t {size_c(a.name)}")
            proto.append(f"int64_t {size_c(a.name)}")
            continue
        base = "int64_t" if a.integer else ctype
        const = "const " if a.kind == "in" else ""
        qualifier = "" if a.name in shared else "restrict "
        params.append(f"{const}{base} *{qualifier}{tensor_c(a.name)}")
        proto.append(f"{const}{base} *{tensor_c(a.name)}")
    shapes = sig.program.shapes()
    outputs = frozenset(a.name for a in sig.of_kind("out"))
    nests = [render_nest(n, shapes, dtype, outputs) for n in plan_program(sig.program)]
    name = f"{sig.function}_{dtype}"
    text = _env.get_template("function.c.j2").render(
        title=c_comment(f"{sig.program.name} ({ctype})"), name=name, params=params or ["void"], nests=nests)
    return text, f"int {name}({', '.join(proto) or 'void'})"


def render_module(prefix: str, spec: str, programs: dict) -> tuple[str, str, dict, dict]:
    """Render every program (``{role: Program}``) at float32 and float64.

    Returns the C source, the cffi cdef of all its functions, ``{role:
    Signature}``, and ``{dtype: LibraryPlan}``: each dtype is a library of its
    own, built when first used, from one part per program (compiled side by side)."""
    signatures = {role: signature(program, f"{prefix}_{role}") for role, program in programs.items()}
    parts, prototypes, libraries = [], [], {}
    for dtype in DTYPES:
        rendered = [render_function(sig, dtype) for sig in signatures.values()]
        numbers = tuple(range(len(parts) + 1, len(parts) + 1 + len(rendered)))
        parts += [dict(number=n, functions=[text]) for n, (text, _) in zip(numbers, rendered)]
        own = [proto for _, proto in rendered]
        libraries[dtype] = LibraryPlan(_env.get_template("cdef.h.j2").render(prefix=prefix, prototypes=own), numbers)
        prototypes += own
    source = _env.get_template("module.c.j2").render(spec=re.sub(r"[^A-Za-z0-9_ ]", "_", spec),
                                                      kernels=list(KERNELS.values()),
                                                      gemms=list(GEMMS.values()), streams=list(STREAMS.values()),
                                                      tile=STREAM_TILE, prefix=prefix, parts=parts)
    cdef = _env.get_template("cdef.h.j2").render(prefix=prefix, prototypes=prototypes)
    return source, cdef, signatures, libraries
