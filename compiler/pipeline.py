"""The whole pipeline for one layer: spec → IR → autodiff → simplify → fuse →
C → cffi build. ``compile_layer`` is what ``LayerSpec.build`` runs.

Example::

    compiled = compile_layer(PReLU, C=256)
    print(compiled.explain())        # forward, derived backward, saved tensors
    print(compiled.source)           # the generated C
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from . import ir
from .autodiff import gradient_program
from .build import BuildOptions, CompiledLibrary, compile_c
from .codegen import Signature, render_module
from .errors import SpecError
from .schedule import fuse_pair
from .simplify import simplify_program
from .spec import LayerSpec


@dataclass
class CompiledLayer:
    """A layer compiled at one binding of its sizes and attributes."""

    spec: LayerSpec
    sizes: dict
    attrs: dict
    traced: ir.Program             # the forward as traced
    derived: ir.Program            # the backward as derived (before fusion)
    forward: ir.Program            # what runs: fused forward (outputs + saved tensors)
    backward: ir.Program           # fused backward
    signatures: dict               # {"forward": Signature, "backward": Signature}
    library: CompiledLibrary
    options: BuildOptions
    user_backward: ir.Program | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def source(self) -> str:
        return self.library.source

    @property
    def saved(self) -> tuple:
        return tuple(t.name for t in self.backward.tensors if t.role == "saved")

    def function(self, role: str, dtype: str):
        return getattr(self.library.lib, f"{self.signatures[role].function}_{dtype}")

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


_memo: dict = {}
_memo_lock = threading.Lock()


def _prefix(name: str) -> str:
    return "lc_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]


def compile_layer(spec: LayerSpec, options: BuildOptions | None = None, **bindings) -> CompiledLayer:
    """Trace, differentiate, fuse, render and build ``spec`` at ``bindings`` (cached)."""
    options = options or BuildOptions()
    sizes, attrs = spec.split_bindings(bindings)
    key = (id(spec), tuple(sorted(sizes.items())), repr(sorted(attrs.items())), options)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    traced = simplify_program(spec.trace(**bindings))
    for t in traced.tensors:
        if t.role in ("param", "buffer"):
            unbound = set().union(*(ir.isyms(d) for d in t.shape)) if t.shape else set()
            if unbound:
                raise SpecError(spec.name, f"{t.role} {t.name} has shape "
                                f"({', '.join(ir.format_iexpr(d) for d in t.shape)}); bind "
                                f"{', '.join(sorted(unbound))} in build(...)", spec.location)
    derived = gradient_program(traced)
    user_backward = None
    if spec.backward is not None:
        from .custom_backward import trace_backward
        user_backward = trace_backward(spec, traced, attrs, sizes)
    forward, backward = fuse_pair(traced, user_backward or derived)
    source, cdef, signatures = render_module(_prefix(spec.name), spec.name,
                                             {"forward": forward, "backward": backward})
    library = compile_c(source, cdef, name=spec.name, options=options)
    compiled = CompiledLayer(spec, sizes, attrs, traced, derived, forward, backward, signatures,
                             library, options, user_backward)
    with _memo_lock:
        return _memo.setdefault(key, compiled)


__all__ = ["CompiledLayer", "compile_layer", "Signature"]
