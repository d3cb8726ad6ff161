"""The whole pipeline for one layer: spec → IR → autodiff → simplify → fuse →
C → cffi build. ``compile_layer`` is what ``LayerSpec.build`` runs.

``compile_layer`` traces the spec, then looks its traced program up in the
lowered-layer cache (``compiler/layer_cache.py``): a layer lowered before, in
any process, loads without being differentiated, fused or rendered. The passes
and the code generator (and Jinja2) are imported only when a layer is lowered.

Example::

    compiled = compile_layer(PReLU, C=256)
    print(compiled.explain())        # forward, derived backward, saved tensors
    print(compiled.source)           # the generated C
    compiled.function("forward", "f32")   # builds (or loads) the float32 library
"""
from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass

from . import ir, layer_cache
from .build import CompiledLibrary, CompiledObject, compile_c, compile_object
from .cc import BuildOptions
from .errors import SpecError
from .signature import Signature
from .indices import index_ranges
from .status import STATUSES
from .spec import LayerSpec


@dataclass
class Lowered:
    """A layer lowered to C at one binding of its sizes and attributes (not built)."""

    spec: LayerSpec
    sizes: dict
    attrs: dict
    traced: ir.Program             # the forward as traced
    derived: ir.Program            # the backward as derived (before fusion)
    forward: ir.Program            # what runs: fused forward (outputs + saved tensors)
    backward: ir.Program           # what runs: fused backward (the user's, when written)
    signatures: dict               # {"forward": Signature, "backward": Signature}
    source: str                    # the generated C
    cdef: str                      # what Python may call of it (every dtype)
    libraries: dict                # {dtype: LibraryPlan}: each dtype's library, built when first used
    prefix: str                    # the C name prefix of this layer's functions
    user_backward: ir.Program | None = None
    calls_blas: bool = False       # some matrix product is a BLAS call

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def saved(self) -> tuple:
        return tuple(t.name for t in self.backward.tensors if t.role == "saved")

    def explain(self) -> str:
        """The forward, the derived backward in math notation, and what backward saves."""
        saved = ", ".join(self.saved) or "nothing (everything is recomputed from the inputs)"
        parts = ["forward:", ir.format_program(self.traced), "",
                 "backward (derived):", ir.format_program(self.derived), ""]
        if self.user_backward is not None:
            parts += ["backward (user-written, compiled instead of the derived one):",
                      ir.format_program(self.user_backward), ""]
        parts += ["after fusion, forward runs:", ir.format_program(self.forward), "",
                  "after fusion, backward runs:", ir.format_program(self.backward), "",
                  f"saved for backward: {saved}"]
        return "\n".join(parts)

    def record_fields(self) -> dict:
        """What the runtime needs of this layer: the arguments of
        ``layerc.runtime.record.LayerRecord.of`` (plain data, sizes as ints,
        names and ``(op, a, b)`` tuples; the C source)."""
        decls = dict(self.spec.tensors)
        traced = self.traced

        def tensor(t):
            decl = decls.get(t.name)
            return {"name": t.name, "role": t.role, "shape": _plain_shape(t.shape),
                    "ellipsis": self.spec.ellipsis_axis(t.name, t.shape),
                    **{k: getattr(decl, k, None) for k in ("init", "fan_in", "fan_out")}}

        def output(name):
            shape = traced.shape_of(name)
            return {"name": name, "shape": _plain_shape(shape), "ellipsis": self.spec.ellipsis_axis(name, shape)}

        def function(sig):
            return {"function": sig.function, "args": [
                {"kind": a.kind, "name": a.name, "shape": _plain_shape(a.shape), "integer": a.integer,
                 "over": a.over} for a in sig.args]}

        data = {"name": self.name, "prefix": self.prefix, "bindings": [*self.sizes.items(), *self.attrs.items()],
                "tensors": [tensor(t) for t in traced.tensors],
                "outputs": [output(n) for n in traced.outputs], "views": _views(traced),
                "saved": self.saved, "updates": self.forward.updates, "calls_blas": self.calls_blas,
                "statuses": STATUSES, "index_ranges": self.index_ranges(),
                "functions": [(role, function(sig)) for role, sig in self.signatures.items()]}
        return {"data": data, "source": self.source}

    def index_ranges(self) -> list:
        """``(integer input, offset, extent)`` for every coordinate an integer
        input gives, in the forward or the backward (``compiler/indices.py``)."""
        found = []
        for program in (self.traced, self.backward):
            for name, bounds in index_ranges(program).items():
                found += [(name, offset, _plain_shape((extent,))[0]) for offset, extent in bounds
                          if (name, offset, _plain_shape((extent,))[0]) not in found]
        return found


@dataclass
class CompiledLayer(Lowered):
    """A lowered layer and its libraries, one per dtype, each built (or loaded
    from the cache) when first used: a float32 model compiles no double code."""

    options: BuildOptions | None = None
    built: dict = dataclasses.field(default_factory=dict)    # {(dtype, isa): CompiledLibrary}

    def library(self, dtype: str, isa: str = "baseline") -> CompiledLibrary:
        """The library of the ``dtype`` ("f32", "f64") functions for the
        instruction-set level ``isa`` (``cc.ISA_FLAGS``), built or loaded on
        first use (cached on disk like any build: see ``compile_c``)."""
        library = self.built.get((dtype, isa))
        if library is None:
            plan = self.libraries[dtype]
            options = dataclasses.replace(self.options or BuildOptions(), isa=isa)
            library = compile_c(self.source, plan.cdef, name=self.spec.name, options=options, units=plan.units,
                                linked=(lambda: (gemm_object(dtype, options),)) if plan.links_gemm else None)
            # two threads may get here at once: compile_c hands both the same library
            library = self.built.setdefault((dtype, isa), library)
        return library

    def function(self, role: str, dtype: str, isa: str = "baseline"):
        return getattr(self.library(dtype, isa).lib, f"{self.signatures[role].function}_{dtype}")

    def record_fields(self) -> dict:
        """``Lowered.record_fields`` and the libraries (``load_library``)."""
        return {**super().record_fields(), "load_library": self.library}


def gemm_object(dtype: str, options: BuildOptions) -> CompiledObject:
    """The ``dtype``'s gemm as an object file, compiled once for every library
    that multiplies matrices (``codegen.render_gemm_source``), in the cache."""
    from .codegen import render_gemm_source   # a warm load imports no code generator
    source, parts = render_gemm_source()
    return compile_object(source, name=f"gemm_{dtype}", options=options, parts=(parts[dtype],))


def _views(program: ir.Program) -> list:
    """``(output, input)`` for each output that is an input as it is (an
    identity layer, a flatten): the runtime hands out the input itself."""
    inputs = {t.name: t for t in program.tensors if t.role in ("input", "data")}
    found = []
    for stage in program.stages:
        body = stage.body
        if (stage.name in program.outputs and stage.reduce is None and isinstance(body, ir.Load)
                and body.tensor in inputs and stage.shape == inputs[body.tensor].shape
                and body.index == tuple(ir.IVar(a.name) for a in stage.axes)):
            found.append((stage.name, body.tensor))
    return found


def _plain_shape(shape: tuple) -> tuple:
    """A shape as the runtime reads it: each size an int, a name, or ``(op, a, b)``."""
    def plain(e):
        if isinstance(e, ir.IConst):
            return e.value
        if isinstance(e, ir.ISym):
            return e.name
        if isinstance(e, ir.IBin):
            return (e.op, plain(e.a), plain(e.b))
        raise ValueError(f"a shape cannot depend on data: {ir.format_iexpr(e)}")
    return tuple(plain(e) for e in shape)


_memo: dict = {}
_memo_lock = threading.Lock()
_lowerings = 0


def lowerings() -> int:
    """How many times this process has lowered a layer (traced, differentiated,
    rendered): 0 in a process that loaded every layer from the cache.

    >>> before = lowerings()
    >>> _ = lower_layer(LayerSpec(type("Twice", (), {"forward": lambda x: x * 2, "x": __import__("layerc").Input("N")})))
    >>> lowerings() - before
    1
    """
    return _lowerings


def _prefix(name: str) -> str:
    return "lc_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]


def lower_layer(spec: LayerSpec, **bindings) -> Lowered:
    """Trace, differentiate, fuse and render ``spec`` at ``bindings`` (no C compiler runs)."""
    return _lower(spec, bindings, spec.trace(**bindings))


def _lower(spec: LayerSpec, bindings: dict, traced: ir.Program) -> Lowered:
    """``lower_layer`` of a spec already traced to ``traced``."""
    global _lowerings
    from .autodiff import gradient_program, parameter_gradients
    from .codegen import render_module
    from .linear_sums import split_late_sums
    from .partial_sums import split_batch_sums
    from .plan import plan_program
    from .schedule import fuse_pair, plan_contraction
    from .simplify import simplify_program
    with _memo_lock:
        _lowerings += 1
    sizes, attrs = spec.split_bindings(bindings)
    traced = simplify_program(traced)
    for t in traced.tensors:
        if t.role in ("param", "buffer"):
            unbound = set().union(*(ir.isyms(d) for d in t.shape)) if t.shape else set()
            if unbound:
                raise SpecError(spec.name, f"{t.role} {t.name} has shape "
                                f"({', '.join(ir.format_iexpr(d) for d in t.shape)}); bind "
                                f"{', '.join(sorted(unbound))} when building", spec.location)
    derived = gradient_program(traced)
    user_backward = None
    if spec.backward is not None:
        from .custom_backward import trace_backward
        user_backward = trace_backward(spec, traced, spec.forward_attrs(attrs), sizes)
    # sums over a batch stay whole where no row pass follows: a unit variant (its
    # rows are single elements) and the backward of parameters only
    whole = dict(zip(("forward", "backward"), map(split_late_sums, fuse_pair(traced, user_backward or derived))))
    programs = {role: split_batch_sums(p) for role, p in whole.items()}
    forward, backward = programs["forward"], programs["backward"]
    prefix = _prefix(spec.name)
    # the backward a call runs when none of its inputs needs a gradient (a model's
    # first layer): compiled where that leaves out a matrix product, the work worth
    # a third function's compile
    params_only = parameter_gradients(whole["backward"], tuple(t.name for t in traced.tensors if t.role == "input"))
    kept = {st.name for st in params_only.stages} if params_only is not None else set()
    if params_only is not None and any(plan_contraction(st) is not None
                                       for st in whole["backward"].stages if st.name not in kept):
        programs["backward_params"] = whole["backward_params"] = params_only
    plans = {role: plan_program(p) for role, p in programs.items()}
    source, cdef, signatures, libraries = render_module(prefix, spec.name, plans,
                                                        _unit_variants(spec.unit_sizes(sizes), whole))
    return Lowered(spec, sizes, attrs, traced, derived, forward, backward, signatures, source, cdef, libraries,
                   prefix, user_backward, any(plan.calls_blas for plan in plans.values()))


def _unit_variants(unit_sizes: tuple, programs: dict) -> dict:
    """``{role: (size, plan)}``: each program planned with a size of
    ``unit_sizes`` bound to 1, for ``render_module``; only where a loop is left.
    A program that loops over that size alone is straight-line code then, which
    its general function runs as fast (one iteration): a variant would only cost
    compile time (ReLU's on any shape: a quarter of gcc's work)."""
    from .plan import plan_program
    from .simplify import simplify_stages
    variants = {}
    for size in unit_sizes:
        bound = {role: simplify_stages(ir.bind_sizes(p, {size: 1})) for role, p in programs.items()}
        variants.update({role: (size, plan_program(p)) for role, p in bound.items() if _loops(p)})
    return variants


def _loops(program: ir.Program) -> bool:
    """Whether a stage of ``program`` has an axis longer than one."""
    return any(axis.extent != ir.IConst(1) for st in program.stages for axis in st.all_axes)


def compile_layer(spec: LayerSpec, options: BuildOptions | None = None, **bindings) -> CompiledLayer:
    """Lower ``spec`` at ``bindings`` (memoized per process for this spec
    object, and on disk by its traced program: ``compiler/layer_cache.py``).
    Its libraries are built when first used: ``compiled.library("f32")``, or a
    ``LayerModule``."""
    options = options or BuildOptions()
    sizes, attrs = spec.split_bindings(bindings)
    key = (id(spec), tuple(sorted(sizes.items())), repr(sorted(attrs.items())), options)
    with _memo_lock:
        known = _memo.get(key)
    if known is not None:
        return known[1]
    raw = spec.trace(**bindings)
    record_key = layer_cache.layer_key(spec, sizes, attrs, raw)
    fields = layer_cache.load(record_key) if record_key else None
    if fields is None:
        lowered = _lower(spec, bindings, raw)
        if record_key:
            layer_cache.store_lowered(record_key, lowered)
        fields = {f.name: getattr(lowered, f.name) for f in dataclasses.fields(Lowered)}
    compiled = CompiledLayer(**{"spec": spec, "sizes": sizes, "attrs": attrs, "user_backward": None, **fields},
                             options=options)
    with _memo_lock:
        # the spec is kept with its layer, so its id is not reused while the entry lives
        return _memo.setdefault(key, (spec, compiled))[1]


__all__ = ["Lowered", "CompiledLayer", "lower_layer", "compile_layer", "Signature"]
