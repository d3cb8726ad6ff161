"""The whole pipeline for one layer: spec → IR → autodiff → simplify → fuse →
C → cffi build. ``compile_layer`` is what ``LayerSpec.build`` runs.

Example::

    compiled = compile_layer(PReLU, C=256)
    print(compiled.explain())        # forward, derived backward, saved tensors
    print(compiled.source)           # the generated C
"""
from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass

from . import blas, ir
from .autodiff import gradient_program
from .build import BuildOptions, CompiledLibrary, compile_c
from .codegen import DTYPES, Signature, render_module
from .errors import SpecError
from .schedule import fuse_pair, plan_program
from .simplify import simplify_program
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
    cdef: str                      # what Python may call of it
    prefix: str                    # the C name prefix of this layer's functions
    user_backward: ir.Program | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def calls_blas(self) -> bool:
        """Whether some matrix product of this layer is a BLAS call."""
        return any(nest.kind == "contract" and nest.contraction.gemm is not None
                   for program in (self.forward, self.backward) for nest in plan_program(program))

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
    """A lowered layer with its built library."""

    library: CompiledLibrary | None = None
    options: BuildOptions | None = None

    def function(self, role: str, dtype: str):
        return getattr(self.library.lib, f"{self.signatures[role].function}_{dtype}")


_memo: dict = {}
_memo_lock = threading.Lock()


def _prefix(name: str) -> str:
    return "lc_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]


def lower_layer(spec: LayerSpec, **bindings) -> Lowered:
    """Trace, differentiate, fuse and render ``spec`` at ``bindings`` (no C compiler runs)."""
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
    source, cdef, signatures = render_module(prefix, spec.name, {"forward": forward, "backward": backward})
    return Lowered(spec, sizes, attrs, traced, derived, forward, backward, signatures, source, cdef, prefix,
                   user_backward)


def compile_layer(spec: LayerSpec, options: BuildOptions | None = None, **bindings) -> CompiledLayer:
    """Lower ``spec`` at ``bindings`` and build it (cached on disk and per process)."""
    options = options or BuildOptions()
    sizes, attrs = spec.split_bindings(bindings)
    key = (id(spec), tuple(sorted(sizes.items())), repr(sorted(attrs.items())), options)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    lowered = lower_layer(spec, **bindings)
    library = compile_c(lowered.source, lowered.cdef, name=spec.name, options=options, parts=len(DTYPES))
    blas.install(library.lib, lowered.prefix)
    compiled = CompiledLayer(**{f.name: getattr(lowered, f.name) for f in dataclasses.fields(Lowered)},
                             library=library, options=options)
    with _memo_lock:
        return _memo.setdefault(key, compiled)


__all__ = ["Lowered", "CompiledLayer", "lower_layer", "compile_layer", "Signature"]
