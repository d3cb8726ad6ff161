"""The whole pipeline for one layer: spec → IR → autodiff → simplify → fuse →
C → cffi build. ``compile_layer`` is what ``LayerSpec.build`` runs.

``compile_layer`` looks the layer up in the spec-level cache first
(``compiler/layer_cache.py``): a layer built before, in any process, loads
without being traced, differentiated or rendered. The passes and the code
generator (and Jinja2) are imported only when a layer is lowered.

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

from . import blas, ir, layer_cache
from .build import BuildOptions, CompiledLibrary, compile_c
from .errors import SpecError
from .signature import Signature
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


@dataclass
class CompiledLayer(Lowered):
    """A lowered layer and its libraries, one per dtype, each built (or loaded
    from the cache) when first used: a float32 model compiles no double code."""

    options: BuildOptions | None = None
    built: dict = dataclasses.field(default_factory=dict)    # {dtype: CompiledLibrary}

    def library(self, dtype: str) -> CompiledLibrary:
        """The library of the ``dtype`` ("f32", "f64") functions, built or loaded
        on first use (cached on disk like any build: see ``compile_c``)."""
        library = self.built.get(dtype)
        if library is None:
            plan = self.libraries[dtype]
            library = compile_c(self.source, plan.cdef, name=self.spec.name, options=self.options, parts=plan.parts)
            blas.install(library.lib, self.prefix)
            # two threads may get here at once: compile_c hands both the same library
            library = self.built.setdefault(dtype, library)
        return library

    def function(self, role: str, dtype: str):
        return getattr(self.library(dtype).lib, f"{self.signatures[role].function}_{dtype}")


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
    global _lowerings
    from .autodiff import gradient_program
    from .codegen import render_module
    from .plan import plan_program
    from .schedule import fuse_pair
    from .simplify import simplify_program
    with _memo_lock:
        _lowerings += 1
    sizes, attrs = spec.split_bindings(bindings)
    traced = simplify_program(spec.trace(**bindings))
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
        user_backward = trace_backward(spec, traced, attrs, sizes)
    forward, backward = fuse_pair(traced, user_backward or derived)
    prefix = _prefix(spec.name)
    source, cdef, signatures, libraries = render_module(prefix, spec.name, {"forward": forward, "backward": backward})
    calls_blas = any(nest.kind == "contract" and nest.contraction.gemm is not None
                     for program in (forward, backward) for nest in plan_program(program))
    return Lowered(spec, sizes, attrs, traced, derived, forward, backward, signatures, source, cdef, libraries,
                   prefix, user_backward, calls_blas)


def compile_layer(spec: LayerSpec, options: BuildOptions | None = None, **bindings) -> CompiledLayer:
    """Lower ``spec`` at ``bindings`` (cached per process, and on disk: the
    spec-level cache of ``compiler/layer_cache.py``). Its libraries are built
    when first used: ``compiled.library("f32")``, or a ``LayerModule``."""
    options = options or BuildOptions()
    sizes, attrs = spec.split_bindings(bindings)
    key = (id(spec), tuple(sorted(sizes.items())), repr(sorted(attrs.items())), options)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    record_key = layer_cache.layer_key(spec, sizes, attrs, options)
    compiled = layer_cache.load(record_key, spec, sizes, attrs, options) if record_key else None
    if compiled is None:
        lowered = lower_layer(spec, **bindings)
        compiled = CompiledLayer(**{f.name: getattr(lowered, f.name) for f in dataclasses.fields(Lowered)},
                                 options=options)
        if record_key:
            layer_cache.store(record_key, compiled)
    with _memo_lock:
        return _memo.setdefault(key, compiled)


__all__ = ["Lowered", "CompiledLayer", "lower_layer", "compile_layer", "Signature"]
