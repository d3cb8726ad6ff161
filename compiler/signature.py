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
from .ir import IndexValue, Load, Program

@dataclass(frozen=True)
class Arg:
    """One argument of a generated function. ``kind``: size, in, out, work."""

    kind: str
    name: str
    shape: tuple = ()
    role: str = ""
    integer: bool = False


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
    for name in outputs:
        args.append(Arg("out", name, p.stage(name).shape, "output"))
    for s in p.stages:
        if s.name not in outputs:
            args.append(Arg("work", s.name, s.shape, "workspace"))
    sizes = [Arg("size", n) for n in sorted(syms)]
    return Signature(function, p, tuple(sizes + args))
