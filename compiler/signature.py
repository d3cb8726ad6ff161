"""The arguments of a generated C function: which tensors a program reads,
writes and uses as workspace, and which sizes it takes at run time. Shared by
the code generator and the spec-level cache (which must not import the code
generator on a warm load).

Example::

    sig = signature(program, "lc_prelu_forward")
    [a.name for a in sig.of_kind("in")]      # ['x', 'alpha']
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .ir import IndexValue, Load, Program, grad_name

@dataclass(frozen=True)
class Arg:
    """One argument of a generated function. ``kind``: size, in, out, work.

    ``over``: for an output, a saved input it may be written over (the caller
    may pass one buffer for both): the output's stage is the only one to read
    that input, and reads it only at the element it writes."""

    kind: str
    name: str
    shape: tuple = ()
    role: str = ""
    integer: bool = False
    over: str = ""


@dataclass(frozen=True)
class LibraryPlan:
    """One library built from a source in parts: what Python may call of it
    (``cdef``), the translation units it compiles (``compile_c(units=...)``):
    each a tuple of the numbers of the parts it holds, and whether it links
    its dtype's gemm (compiled once for every library: ``render_gemm_source``)."""

    cdef: str
    units: tuple
    links_gemm: bool = False


@dataclass(frozen=True)
class Signature:
    function: str          # C name without the dtype suffix
    program: Program
    args: tuple

    def of_kind(self, kind):
        return [a for a in self.args if a.kind == kind]


def signature(p: Program, function: str) -> Signature:
    stage_names = {s.name for s in p.stages}
    read = set()
    syms = set()
    for s in p.stages:
        read |= ir.tensors_read(s.body)
        if s.scatter_index:
            read |= set().union(*(ir.index_tensors(i) for i in s.scatter_index))
        for d in s.shape + tuple(a.extent for a in s.all_axes):
            syms |= ir.isyms(d)
        for e in ir.postorder(s.body):
            if isinstance(e, Load):
                for i in e.index:
                    syms |= ir.isyms(i)
            elif isinstance(e, IndexValue):
                syms |= ir.isyms(e.expr)
    args = []
    for t in p.tensors:
        if t.name in read and t.name not in stage_names:
            for d in t.shape:
                syms |= ir.isyms(d)
            args.append(Arg("in", t.name, t.shape, t.role, t.role == "index"))
    outputs = list(p.outputs) + [s for _, s in p.updates if s not in p.outputs]
    overwritable = _overwritable(p)
    for name in outputs:
        args.append(Arg("out", name, p.stage(name).shape, "output", over=overwritable.get(name, "")))
    for s in p.stages:
        if s.name not in outputs:
            args.append(Arg("work", s.name, s.shape, "workspace"))
    sizes = [Arg("size", n) for n in sorted(syms)]
    return Signature(function, p, tuple(sizes + args))


def _element(index: tuple, shape: tuple) -> tuple:
    """The coordinates of ``index`` on the dimensions of ``shape`` that are not
    1 (a read in range takes element 0 of the others)."""
    return tuple(i for i, d in zip(index, shape) if d != ir.IConst(1))


def _overwritable(p: Program) -> dict:
    """``{output: saved input}`` where a pointwise output stage is the only
    reader of a saved tensor of its size, and reads it only at the element it
    writes: the output may then be written over it (softmax losses' gradient
    over the kept exponentials). Not a saved tensor that is the forward's
    output (the backward takes its gradient): the caller holds that array too
    (tanh's gradient reads its output)."""
    grads = {t.name for t in p.tensors if t.role == "grad"}
    saved = {t.name: t.shape for t in p.tensors if t.role == "saved" and grad_name(t.name) not in grads}
    readers = p.readers()
    pairs = {}
    for name in p.outputs:
        s = p.stage(name)
        if s.reduce is not None or s.scatter_index is not None:
            continue
        own = _element(s.index, s.shape)
        for t, shape in saved.items():
            if readers.get(t) != [name] or t in pairs.values() or _element(shape, shape) != _element(s.shape, s.shape):
                continue
            if all(_element(load.index, shape) == own for load in ir.loads(s.body) if load.tensor == t):
                pairs[name] = t
                break
    return pairs
