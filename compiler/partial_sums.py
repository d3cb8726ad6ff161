"""Sums over a batch axis split in two, the first half run in a later pass.

A group norm's parameter gradients sum over the batch and each channel's
positions, ``grad_w[c] = sum_{n, p} g[n, c, p] * xhat[n, c, p]``. Run as they
are, they are a pass of their own over ``g`` and ``x``, which the input's
gradient then reads again, row by row. Split in two, the per-sample partial
sums ``part[n, c] = sum_p g[n, c, p] * xhat[n, c, p]`` read the rows of that
later pass, while they are in the cache (``schedule._row_group``), and what is
left, ``grad_w[c] = sum_n part[n, c]``, reads ``N * C`` numbers.

In: a fused program (``schedule.fuse_pair``). Out: the same program, each
sum over two or more axes whose first reduced axis leads a read of a tensor
that a later stage also reads row by row along that axis split into its
partial sums, placed just before that stage, and their total, just after it;
where the schedule then runs every partial sum in a row's pass. Else the
program as it was.

Example::

    backward = split_batch_sums(backward)
"""
from __future__ import annotations

from . import ir
from .ir import IVar, Load, Program, Stage
from .schedule import plan_program


def split_batch_sums(p: Program) -> Program:
    """``p`` with its sums over a batch split as the module docstring says."""
    passes = {s.name: j for k, s in enumerate(p.stages) if (j := _row_pass(p.stages, k)) is not None}
    if passes:
        passes = _alone(p, passes)
    if not passes:
        return p
    stages = list(p.stages)
    taken = {st.name for st in stages} | {t.name for t in p.tensors}
    parts = set()
    for s in p.stages:
        if s.name not in passes:
            continue
        part, total = _halves(s, ir.fresh_name(f"{s.name}_part", taken))
        taken.add(part.name)
        parts.add(part.name)
        later = stages.index(p.stages[passes[s.name]])
        stages[later + 1:later + 1] = [total]
        stages[later:later] = [part]
        stages.remove(s)
    split = ir.replace(p, stages=tuple(stages))
    in_rows = {st.name for nest in plan_program(split).nests if nest.group for _, st in nest.members}
    return split if parts <= in_rows else p


def _alone(p: Program, passes: dict) -> dict:
    """The entries of ``passes`` whose sums the plan of ``p`` runs in passes
    of their own, with no other stage (a sum beside a norm's statistics,
    which reads what they read anyway, stays there)."""
    alone = {}
    for nest in plan_program(p).nests:
        for inner in nest.group or (nest,):
            names = [st.name for _, st in inner.members]
            if all(name in passes for name in names):
                alone.update((name, passes[name]) for name in names)
    return alone


def _batch_axis(s: Stage) -> ir.Axis | None:
    """The first reduced axis of a plain sum over two or more axes of more than
    one iteration, when it leads the index of some tensor the sum reads."""
    spanning = [a for a in s.reduce_axes if a.extent != ir.IConst(1)]
    if s.reduce != "sum" or s.scatter_index is not None or len(spanning) < 2:
        return None
    return spanning[0] if _leading_reads(s, spanning[0].name) else None


def _leading_reads(s: Stage, var: str) -> set:
    """The tensors ``s`` reads with index variable ``var`` as the first coordinate."""
    return {load.tensor for load in ir.loads(s.body) if load.index and load.index[0] == IVar(var)}


def _row_pass(stages: list, k: int) -> int | None:
    """Where the last stage after ``stages[k]`` is that reads, along its first
    axis, a tensor the sum ``stages[k]`` reads along its batch axis (the same
    extent), with no stage between them reading the sum; None if none or
    ``stages[k]`` is no sum over a batch."""
    s = stages[k]
    batch = _batch_axis(s)
    if batch is None:
        return None
    read = _leading_reads(s, batch.name)
    found = None
    for j in range(k + 1, len(stages)):
        st = stages[j]
        if st.axes and st.axes[0].extent == batch.extent and _leading_reads(st, st.axes[0].name) & read:
            found = j
        if s.name in ir.tensors_read(st.body):
            break
    return found


def _halves(s: Stage, name: str) -> tuple:
    """``(part, total)``: the sum ``s`` over its batch axis's every value (a
    new leading output axis) and the sum of those over the batch axis."""
    batch = _batch_axis(s)
    rest = tuple(a for a in s.reduce_axes if a is not batch)
    part = ir.replace(s, name=name, shape=(batch.extent,) + s.shape, axes=(batch,) + s.axes, reduce_axes=rest)
    total = ir.replace(s, body=Load(name, part.index), reduce_axes=(batch,))
    return part, total
