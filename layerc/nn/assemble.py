"""Specs put together from parts chosen when a layer is constructed: a bias or
not, running statistics or not, an optional mask input. ``assemble`` declares
exactly the tensors asked for (so parameter names and ``state_dict`` keys are
torch's, with nothing extra) and gives ``forward`` the matching signature.

Example::

    spec = assemble("Scale", {"x": Input("N"), "w": Param(init="ones")}, lambda t: t["x"] * t["w"])
    spec.build().forward(np.ones(3, np.float32))
"""
from __future__ import annotations

import inspect

from ..layers import layer


def with_signature(fn, names):
    """``fn`` (taking ``*args`` or ``**kwargs``) presented as taking exactly ``names``:
    the tracer and ``ops.compute`` read a function's parameter names."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in names])
    return fn


def assemble(name: str, declarations: dict, body):
    """A spec named ``name`` declaring ``declarations`` (``{name: Input | Param |
    Buffer | Attr}``, in order) whose forward is ``body(t)``: ``t`` maps each
    declared name to its traced tensor or attribute value, and reads ``None``
    for a name not declared (``t.get("bias")``)."""
    def forward(**t):
        return body(t)
    cls = type(name, (), {**declarations, "forward": with_signature(forward, list(declarations))})
    cls.__qualname__ = name
    return layer(cls)
