"""Loops collapsed: a nest's loops of one iteration dropped (their variable is
0), and adjacent loops that walk memory as one merged into one loop over their
product. In: a ``schedule.Nest`` and the program's shapes. Out: the same nest
with fewer loops and ``Nest.collapsed`` saying how (``compiler/cprint.py``'s
``Printer`` prints the offsets of merged coordinates as one variable).

An activation on ``[8, 64, 56, 56]`` then runs one vector loop of 1.6M
elements, not 4096 loops of 56 with a tail each; a batch norm's statistics per
channel sum ``H*W`` contiguous elements per image, not ``W``.

Example::

    nest = collapse_nest(nest, shapes)
    nest.collapsed.merged     # {"i0": ("i1", "i2", "i3")}: i0 runs over all four
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import ir
from .ir import IConst, IVar

# the nests whose loops are plain loops over the stages' axes
COLLAPSIBLE = frozenset({"inner", "siblings", "pass", "sums"})


@dataclass(frozen=True)
class Collapsed:
    """``zero``: variables of dropped loops of one iteration; ``merged``: each
    merged loop's variable -> the variables of the loops merged into it,
    outermost first (their coordinates follow its own in every index)."""

    zero: frozenset = frozenset()
    merged: dict = field(default_factory=dict)
    # a stage's variable -> (outer, inner, q, offset): a loop over it split into
    # two, the variable q * outer + inner + offset (``schedule._split_to_rows``,
    # ``pieces.cut_into_pieces``)
    split: dict = field(default_factory=dict)

    def __hash__(self):
        return hash((self.zero, tuple(sorted(self.merged.items())), tuple(sorted(self.split.items()))))


def _indexed(stage: ir.Stage, shapes: dict) -> list:
    """``(index, shape)`` of every read of ``stage`` and of its own element."""
    reads = [(load.index, shapes[load.tensor]) for load in ir.loads(stage.body)]
    return reads + ([(stage.index, stage.shape)] if stage.scatter_index is None else [])


def _free_mentions(stage: ir.Stage) -> set:
    """Index variables mentioned outside plain read coordinates (compared,
    converted to values, or inside a computed or data-dependent index)."""
    names = set()
    for sub in ir.postorder(stage.body):
        if isinstance(sub, ir.IndexValue):
            names |= ir.ivars(sub.expr)
        elif isinstance(sub, ir.Load):
            for i in sub.index:
                if not isinstance(i, (IVar, IConst)):
                    names |= ir.ivars(i)
    return names


def _pair_at(index: tuple, shape: tuple, outer: str, inner: str, extent) -> int | None:
    """Where ``outer, inner`` are consecutive coordinates over a dimension of
    ``extent`` (then ``outer * extent + inner`` walks both): their position;
    -1 when ``index`` mentions neither; None when it mentions them otherwise."""
    at = [d for d, c in enumerate(index) if ir.ivars(c) & {outer, inner}]
    if not at:
        return -1
    d = at[0]
    if at != [d, d + 1] or index[d] != IVar(outer) or index[d + 1] != IVar(inner) or shape[d + 1] != extent:
        return None
    return d


def _merge_runs(indexed: list, loops: list, free: set, outermost: int) -> tuple[list, dict]:
    """Adjacent loops walking memory together merged, innermost pairs first,
    the loops before ``outermost`` left apart; ``indexed`` holds every
    ``(index, shape)`` the nest reads or writes, ``free`` the variables used
    otherwise (never merged)."""
    merged = {}
    k = len(loops) - 2
    while k >= outermost:
        a, b = loops[k], loops[k + 1]
        at = [_pair_at(index, shape, a.var, b.var, b.extent) for index, shape in indexed]
        if a.reduction == b.reduction and not b.parallel and not {a.var, b.var} & free and None not in at:
            merged[a.var] = (b.var,) + merged.pop(b.var, ())
            loops[k] = dataclasses.replace(a, extent=ir.imul(a.extent, b.extent), simd=a.simd or b.simd)
            del loops[k + 1]
            # the pair is one coordinate of the merged variable over both dimensions
            indexed = [(i, s) if d < 0 else (i[:d + 1] + i[d + 2:], s[:d] + (ir.imul(s[d], s[d + 1]),) + s[d + 2:])
                       for (i, s), d in zip(indexed, at)]
        k -= 1
    return loops, merged


def collapse_nest(nest, shapes: dict, in_row: bool = False):
    """``nest`` with its loops of one iteration dropped and loops walking memory
    together merged (see the module docstring); other nests as they are. The
    outermost loop stays apart (its iterations end streamed stores with a
    fence), but in a nest run inside a row (``in_row``, a ``"rows"`` nest's
    member), where the row loop is that loop."""
    if nest.group:
        return dataclasses.replace(nest, group=tuple(collapse_nest(n, shapes, True) for n in nest.group))
    if nest.form not in COLLAPSIBLE or nest.window is not None or nest.terms is not None or len(nest.loops) < 2:
        return nest
    stages = [st for _, st in nest.members]
    loops = list(nest.loops)
    zero = frozenset(l.var for l in loops if l.extent == IConst(1))
    kept = [l for l in loops if l.var not in zero] or loops[:1]
    zero = frozenset(l.var for l in loops if l not in kept)
    if loops[0].parallel:
        kept[0] = dataclasses.replace(kept[0], parallel=True)
    mapping = {v: IConst(0) for v in zero}
    stages = [ir.replace(st, body=ir.subst_indices(st.body, mapping)) for st in stages]
    merged = {}
    split = nest.collapsed.split if nest.collapsed is not None else {}
    if not nest.across:
        free = set().union(*map(_free_mentions, stages), *({v, a, b} for v, (a, b, *_) in split.items()))
        kept, merged = _merge_runs([p for st in stages for p in _indexed(st, shapes)], kept, free,
                                   0 if in_row else 1)
    if not zero and not merged and not split:
        return nest
    # the stages as merging saw them: a coordinate 16 * h + i with h dropped is i
    siblings = tuple((kind, st) for (kind, _), st in zip(nest.siblings, stages[1:]))
    return dataclasses.replace(nest, stage=stages[0], siblings=siblings, loops=tuple(kept),
                               collapsed=Collapsed(zero, merged, split))
