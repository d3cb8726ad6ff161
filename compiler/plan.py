"""The plan of a program's nests: ``schedule.plan_program``'s, with every sum
of products that is not a matrix product of tensors in memory planned as GEMM
calls over packed operands (``compiler/patches.py``) or, for a strided
convolution's input gradient, as GEMM calls whose columns are added into the
output (``compiler/col2im.py``). A contraction neither takes keeps its
packed, register-tiled nest. A convolution's input (a plane per phase when
strided), or a stride-1 convolution's input gradient, is read by its calls as
shifted views of one padded copy (``compiler/shifted.py``) rather than packed
once per tap.

Example::

    for nest in plan_program(backward):
        print(nest.stage.name, nest.kind)      # grad_x patch_gemm, grad_weight patch_gemm, ...
"""
from __future__ import annotations

from . import ir, schedule
from .col2im import plan_col2im
from .patches import PatchGemm, plan_patch_gemm, split_digits
from .pieces import cut_into_pieces
from .shifted import plan_shifted


def plan_program(p: ir.Program) -> schedule.Plan:
    """The plan of ``p``: the nests that run it, in order."""
    shapes = p.shapes()
    plan = schedule.plan_program(p).map_nests(lambda nest: _packed(nest, shapes))
    return plan.flat_map_nests(lambda nest: cut_into_pieces(nest, shapes))


def _packed(nest: schedule.Nest, shapes: dict) -> schedule.Nest:
    s = nest.stage
    # a window nest (a pool, a depthwise convolution) keeps its own vectorized rows
    if nest.siblings or nest.group or nest.kind == "window" or s.reduce != "sum" or s.scatter_index is not None:
        return nest
    if nest.kind == "contract" and nest.contraction.gemm is not None:
        # batched products whose B lies in rows run on the module's tiles, where
        # numpy's BLAS may run narrower vectors (its AVX2 kernel on AVX-512 machines)
        plan = (plan_patch_gemm(s, nest.contraction, shapes, in_place=True)
                or plan_patch_gemm(s, nest.contraction, shapes))
        plan = plan if plan is not None and plan.loops else None
    else:
        plan = plan_patches(s, shapes)
    if plan is None:
        return nest
    if plan.start is not None and not folds_start(plan):
        view = plan.view or s
        start = ir.replace(view, body=plan.start, reduce=None, reduce_axes=())
        plan = ir.replace(plan, prologue=schedule.plan_loops(start, {**shapes, view.name: view.shape}))
    return schedule.Nest(s, "patch_gemm", (), patch=plan)


def folds_start(plan: PatchGemm) -> bool:
    """Whether the value ``plan``'s sum starts from (a bias) is added as its
    calls' workspace is copied into the output, rather than written into the
    output first by a nest of its own: each element is then written once,
    not written and read back. Only where each element is one element of one
    task's workspace, and the sum has terms (an empty one still writes it)."""
    return plan.start is not None and plan.scatter is not None and plan.scatter.assign and \
        isinstance(plan.terms, ir.IConst) and plan.terms.value > 0


def plan_patches(s: ir.Stage, shapes: dict) -> PatchGemm | None:
    """``s`` as GEMM calls over packed operands (its output axes split into
    digits where that makes it a product per group), or None."""
    view = split_digits(s)
    shapes = {**shapes, view.name: view.shape}
    c = schedule.plan_contraction(view)
    # a gather of few channels is no matrix product of its own; its columns are one
    plan = plan_col2im(view, shapes, unstrided=c is None) or (c and (plan_shifted(view, c, shapes)
                                                                      or plan_patch_gemm(view, c, shapes)))
    return plan and ir.replace(plan, view=view if view != s else None)
