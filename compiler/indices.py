"""Integer tensors read as indices, and the range their values must lie in.

A coordinate that is an element of an integer tensor, such as the target in
``logp[n, targets[n]]`` or the id in ``table[ids[n], d]``, must fall inside
the dimension it indexes: a read outside a tensor reads zero (the padding
rule), so an out-of-range class or id would give a plausible, wrong result.
``index_ranges`` finds every such coordinate, of the forms ``t[...]`` and
``t[...] + c``, in reads and in scatter targets alike, so the runtime can
check the values before a kernel runs.

Example::

    >>> ranges = index_ranges(FocalLossSpec.trace())     # doctest: +SKIP
    >>> ranges["targets"]                                # doctest: +SKIP
    ((0, ISym('C')),)
"""
from __future__ import annotations

from . import ir
from .ir import IBin, IConst, ILoad, Load, Program


def _offset_read(coordinate) -> tuple | None:
    """``(tensor, c)`` when ``coordinate`` is ``t[...]`` or ``t[...] + c``."""
    if isinstance(coordinate, ILoad):
        return coordinate.tensor, 0
    if isinstance(coordinate, IBin) and coordinate.op == "+":
        for a, b in ((coordinate.a, coordinate.b), (coordinate.b, coordinate.a)):
            if isinstance(a, ILoad) and isinstance(b, IConst):
                return a.tensor, b.value
    return None


def _indexed(index: tuple, shape: tuple):
    for coordinate, extent in zip(index, shape):
        read = _offset_read(coordinate)
        if read is not None:
            yield read[0], (read[1], extent)


def index_ranges(program: Program) -> dict:
    """``{integer tensor: ((offset, extent), ...)}``: each value ``v`` of the
    tensor must satisfy ``0 <= v + offset < extent`` for every pair."""
    shapes = program.shapes()
    integer = {t.name for t in program.tensors if t.role == "index"}
    found: dict = {}
    for stage in program.stages:
        reads = [(load.index, shapes[load.tensor]) for load in ir.loads(stage.body) if isinstance(load, Load)]
        if stage.scatter_index is not None:
            reads.append((stage.scatter_index, stage.shape))
        for index, shape in reads:
            for tensor, bound in _indexed(index, shape):
                if tensor in integer and bound not in found.setdefault(tensor, []):
                    found[tensor].append(bound)
    return {tensor: tuple(bounds) for tensor, bounds in found.items()}


__all__ = ["index_ranges"]
