"""C code generation: the plans of a layer's programs (``compiler/schedule.py``)
rendered into one C module through the Jinja2 templates of ``templates/``.

Codegen plans nothing: each nest of a plan is rendered as it is, by the
renderer its form names in ``RENDERERS`` (``compiler/nests_c.py``,
``compiler/contract_c.py``); expressions and names are printed by
``compiler/cprint.py``. A generated function takes its sizes and arrays as
described by its ``Signature`` and returns 0, or the status
(``compiler/status.py``) of a nest that could not run.

Example::

    plans = {"forward": plan_program(fwd), "backward": plan_program(bwd)}
    source, cdef, signatures, libraries = render_module("lc_prelu", "PReLU", plans)
"""
from __future__ import annotations

import re

from . import ir

from .contract_c import GEMMS, KERNELS, calls_gemm, render_contraction
from .cprint import DTYPES, Context, c_comment, size_c, tensor_c, var_c
from .cstatements import Parameter
from .nests_c import (STREAM_TILE, STREAMS, render_inner, render_online, render_pass, render_row,
                      render_rows, render_scatter, render_siblings, render_taps)
from .schedule import RUN_TIME_SHORT_ROW, Plan
from .signature import LibraryPlan, Signature, signature
from .patch_gemm_c import render_patch_gemm
from .status import CODES
from .template_env import environment
from .window_c import render_window

# below this many loop iterations a nest runs on one thread: starting an
# OpenMP team costs more than the work
PARALLEL_MIN_WORK = 1 << 17

# a function of at least this much C is compiled by a compiler process of its
# own, side by side with the rest of its library; smaller ones share one. Each
# process costs gcc ~50 ms CPU (start-up, headers, the module's preamble), as
# much as compiling ~2 KB of a function: ReLU's library took 0.26 s CPU in 3
# processes (the state, forward, backward), about 0.1 s in one
SEPARATE_UNIT_BYTES = 4096

# the renderer of each form of nest (``Nest.form``)
RENDERERS = {
    "inner": render_inner,
    "sums": render_inner,
    "rows": render_rows,
    "row": render_row,
    "taps": render_taps,
    "scatter": render_scatter,
    "accumulate": render_pass,      # one stage accumulating: a pass of its own
    "pass": render_pass,
    "siblings": render_siblings,
    "online": render_online,
    "contract": render_contraction,
    "window": render_window,
    "patch_gemm": render_patch_gemm,
}


def _parameters(sig: Signature, dtype: str) -> list:
    # an output and the saved input it may be written over may be one buffer:
    # neither is restrict (their nest's `omp simd` still vectorizes it)
    shared = {name for a in sig.args if a.over for name in (a.name, a.over)}
    params = []
    for a in sig.args:
        if a.kind == "size":
            params.append(Parameter("int64_t", size_c(a.name)))
        else:
            params.append(Parameter("int64_t" if a.integer else DTYPES[dtype][0], tensor_c(a.name), pointer=True,
                                    const=a.kind == "in", restrict=a.name not in shared))
    return params


def _divisors(e: ir.IExpr, found: dict) -> None:
    """Adds to ``found`` the divisors in ``e`` that are not constants (sizes known when a call runs)."""
    if isinstance(e, ir.IBin):
        if e.op in ("//", "%") and not isinstance(e.b, ir.IConst):
            found[e.b] = None
        _divisors(e.a, found)
        _divisors(e.b, found)
    elif isinstance(e, ir.ILoad):
        for i in e.index:
            _divisors(i, found)


def _index_expressions(st: ir.Stage):
    yield from st.shape
    yield from (a.extent for a in st.all_axes)
    yield from st.scatter_index or ()
    for e in ir.postorder(st.body):
        if isinstance(e, ir.Load):
            yield from e.index
        elif isinstance(e, ir.IndexValue):
            yield e.expr


def render_checked(nest, context: Context) -> str:
    """A nest's C, after a check that no size it divides an index by is 0
    where it runs (the function then returns ``LC_ZERO_DIVISOR``)."""
    stages = [st for _, st in nest.members] + ([nest.terms] if nest.terms else [])
    found = {}
    for st in stages:
        for e in _index_expressions(st):
            _divisors(e, found)
    text = context.render(nest)
    if not found:
        return text
    printer = context.printer(stages)
    check = environment.get_template("divisors.c.j2").render(divisors=[printer.index(d) for d in found],
                                                             work=printer.size(nest.stage.all_axes))
    return check + text


def render_function(sig: Signature, plan: Plan, dtype: str, unit: tuple | None = None,
                    exported: bool = True) -> tuple[str, dict]:
    """C definition of one planned program at one dtype, and its name and
    parameters (for the cdef). ``unit``: ``(size, program's plan with that size
    bound to 1)``, rendered as a function of its own that this one calls
    when the size is 1 at run time (a loop over it would otherwise be a
    one-element innermost loop)."""
    outputs = frozenset(a.name for a in sig.of_kind("out"))
    context = Context(sig.program.shapes(), dtype, outputs, PARALLEL_MIN_WORK, RENDERERS)
    function = dict(name=f"{sig.function}_{dtype}", params=_parameters(sig, dtype))
    special, text = None, ""
    if unit is not None:
        size, unit_plan = unit
        unit_sig = signature(unit_plan.program, f"{sig.function}_{size}1")
        text, called = render_function(unit_sig, unit_plan, dtype, exported=False)
        special = dict(size=size_c(size), name=called["name"],
                       args=[size_c(a.name) if a.kind == "size" else tensor_c(a.name) for a in unit_sig.args])
    text += environment.get_template("function.c.j2").render(
        title=c_comment(f"{sig.program.name} ({DTYPES[dtype][0]})"), unit=special, exported=exported,
        nests=[render_checked(n, context) for n in plan], short=_short_rows(plan, context), **function)
    return text, function


def _short_rows(plan: Plan, context: Context) -> dict | None:
    """The run-time test for ``plan.short`` and the C of its nests, or None."""
    if plan.short is None:
        return None
    printer = context.printer([])
    tests = [f"{printer.index(length)} < {RUN_TIME_SHORT_ROW}" for length in plan.short.lengths]
    return dict(test=" && ".join(tests), nests=[render_checked(n, context) for n in plan.short.nests])


def _units(numbered: list) -> tuple:
    """The translation units of a library from its parts ``(number, C text)``:
    one for the functions shorter than ``SEPARATE_UNIT_BYTES``, then one per
    longer function.

    >>> _units([(1, "f" * 100), (2, "b" * 9000), (3, "g" * 200)])
    ((1, 3), (2,))
    """
    small = tuple(n for n, text in numbered if len(text) < SEPARATE_UNIT_BYTES)
    large = tuple((n,) for n, text in numbered if len(text) >= SEPARATE_UNIT_BYTES)
    return ((small,) if small else ()) + large


def render_module(prefix: str, spec: str, plans: dict,
                  unit_variants: dict | None = None) -> tuple[str, str, dict, dict]:
    """Render every planned program (``{role: Plan}``) at float32 and float64;
    ``unit_variants`` (``{role: (size, Plan)}``) adds each role's plan at that
    size 1 (``render_function``).

    Returns the C source, the cffi cdef of all its functions, ``{role:
    Signature}``, and ``{dtype: LibraryPlan}``: each dtype is a library of its
    own, built when first used, from one part per program (the long ones compiled
    side by side: ``_units``)."""
    signatures = {role: signature(plan.program, f"{prefix}_{role}") for role, plan in plans.items()}
    rendered = {dtype: [render_function(sig, plans[role], dtype, (unit_variants or {}).get(role))
                        for role, sig in signatures.items()] for dtype in DTYPES}
    # parts 1, 2, ...: the functions, dtype by dtype
    numbered = {dtype: list(enumerate((text for text, _ in rendered[dtype]), start=1 + k * len(signatures)))
                for k, dtype in enumerate(DTYPES)}
    cdef = environment.get_template("cdef.h.j2")
    libraries = {dtype: LibraryPlan(cdef.render(prefix=prefix, functions=[f for _, f in rendered[dtype]]),
                                    _units(numbered[dtype]),
                                    links_gemm=any(calls_gemm(text, dtype) for _, text in numbered[dtype]))
                 for dtype in DTYPES}
    parts = [dict(number=n, functions=[text]) for dtype in DTYPES for n, text in numbered[dtype]]
    functions = [f for dtype in DTYPES for _, f in rendered[dtype]]
    source = _render_source(spec, prefix, parts, first_gemm_part=1 + len(DTYPES) * len(signatures))
    return source, cdef.render(prefix=prefix, functions=functions), signatures, libraries


def render_gemm_source() -> tuple[str, dict]:
    """The C of the gemm alone (``templates/module.c.j2`` without functions)
    and ``{dtype: the part of its gemm}``: compiled once into an object file
    that every library multiplying matrices of that dtype links, where
    compiling it in each took gcc 0.5 s (the thin-product kernels).

    >>> source, parts = render_gemm_source()
    >>> parts
    {'f32': 1, 'f64': 2}
    """
    return _render_source("layerc gemm", "lc_gemm", [], first_gemm_part=1), {
        dtype: 1 + k for k, dtype in enumerate(DTYPES)}


def _render_source(spec: str, prefix: str, parts: list, first_gemm_part: int) -> str:
    """The module's C: its ``parts``, after the state, the kernels and each
    dtype's gemm (in part ``first_gemm_part + k`` for the k-th dtype, its
    definition selected by that bit of ``LC_PARTS``; declared otherwise)."""
    gemms = [dict(gemm, here=f"LC_GEMM_{dtype.upper()}_HERE", part=first_gemm_part + k)
             for k, (dtype, gemm) in enumerate(GEMMS.items())]
    return environment.get_template("module.c.j2").render(
        spec=re.sub(r"[^A-Za-z0-9_ ]", "_", spec), kernels=list(KERNELS.values()), gemms=gemms,
        streams=list(STREAMS.values()), tile=STREAM_TILE, prefix=prefix, parts=parts, statuses=CODES)


__all__ = ["RENDERERS", "PARALLEL_MIN_WORK", "render_gemm_source", "render_module", "render_function", "tensor_c", "size_c", "var_c",
           "c_comment"]
