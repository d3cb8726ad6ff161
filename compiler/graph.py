"""A lowered layer as a picture: its forward and backward stages as one graph.

``layer_graph(forward, backward, plans)`` takes the programs that run (after
fusion) and their loop plans, and returns Graphviz DOT text: one node per
stage (its index notation as the label), one per tensor the layer reads,
edges from what a stage reads to the stage, each kernel (a loop nest that
may compute several stages in one pass) boxed, and the tensors the forward
saves for the backward marked. ``layerc show --graph FILE`` writes it (as
SVG or PNG where Graphviz is installed).

Example::

    lowered = lower_layer(PReLU, C=8)
    dot = layer_graph(lowered.forward, lowered.backward,
                      {"forward": plan_program(lowered.forward), "backward": plan_program(lowered.backward)})
"""
from __future__ import annotations

from . import ir
from .ir import Program

# node style per role of a tensor the layer reads
ROLE_STYLES = {
    "input": 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
    "data": 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
    "index": 'shape=ellipse, style=filled, fillcolor="#e0e7ff"',
    "param": 'shape=ellipse, style=filled, fillcolor="#fde68a"',
    "buffer": 'shape=ellipse, style=filled, fillcolor="#fef3c7"',
    "grad": 'shape=ellipse, style=filled, fillcolor="#fecaca"',
    "saved": 'shape=ellipse, style="filled,bold", fillcolor="#bbf7d0", penwidth=2',
}
STAGE_STYLE = 'shape=box, style="rounded,filled", fillcolor="#f8fafc", fontname="monospace", fontsize=10'
SAVED_STAGE_STYLE = 'shape=box, style="rounded,filled,bold", fillcolor="#bbf7d0", penwidth=2, ' \
                    'fontname="monospace", fontsize=10'
PHASE_COLORS = {"forward": "#2563eb", "backward": "#dc2626"}
LABEL_WIDTH = 56


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(stage: ir.Stage) -> str:
    text = ir.format_stage(stage)
    return text if len(text) <= LABEL_WIDTH else text[:LABEL_WIDTH - 1] + "…"


def _node_id(phase: str, name: str) -> str:
    return _quote(f"{phase}:{name}")


def _tensor_nodes(program: Program, phase: str, saved: set) -> list:
    lines = []
    for t in program.tensors:
        role = "saved" if t.name in saved else t.role
        lines.append(f"  {_node_id(phase, t.name)} [label={_quote(t.name)}, {ROLE_STYLES.get(role, '')}];")
    return lines


def _kernels(program: Program, phase: str, nests: list, saved: set) -> list:
    lines = []
    for k, nest in enumerate(nests):
        lines.append(f"  subgraph {_quote(f'cluster_{phase}_{k}')} {{")
        lines.append(f"    label={_quote(f'{phase} kernel {k} ({nest.kind})')}; "
                     f"color={_quote(PHASE_COLORS[phase])}; fontsize=10;")
        kept_terms = (nest.terms,) if nest.terms is not None else ()
        for stage in (*(stage for _, stage in nest.members), *kept_terms):
            style = SAVED_STAGE_STYLE if stage.name in saved else STAGE_STYLE
            lines.append(f"    {_node_id(phase, stage.name)} [label={_quote(_label(stage))}, {style}];")
        lines.append("  }")
    return lines


def _edges(program: Program, phase: str, source_of) -> list:
    lines = []
    for stage in program.stages:
        reads = ir.tensors_read(stage.body).union(*(ir.index_tensors(i) for i in stage.scatter_index or ()))
        for name in sorted(reads):
            lines.append(f"  {source_of(name)} -> {_node_id(phase, stage.name)};")
    return lines


def layer_graph(forward: Program, backward: Program, plans: dict) -> str:
    """DOT text of ``forward`` and ``backward`` (see the module docstring);
    ``plans`` is ``{"forward": nests, "backward": nests}``."""
    saved = {t.name for t in backward.tensors if t.role == "saved"}
    forward_names = {s.name for s in forward.stages} | {t.name for t in forward.tensors}

    def backward_source(name: str) -> str:
        # the backward reads the forward's own inputs and saved stages: draw the edge from them
        declared = backward.decl(name) if name in {t.name for t in backward.tensors} else None
        if declared is not None and name in forward_names:
            return _node_id("forward", name)
        return _node_id("backward", name)

    backward_inputs = ir.replace(backward, tensors=tuple(t for t in backward.tensors
                                                         if t.name not in forward_names))
    title = (f"{forward.name}: forward kernels boxed in blue, backward in red; "
             "green: saved for the backward")
    lines = [f"digraph {_quote(forward.name)} {{", "  rankdir=TB; compound=true; fontname=sans;",
             f"  label={_quote(title)}; labelloc=t;"]
    lines += _tensor_nodes(forward, "forward", saved)
    lines += _tensor_nodes(backward_inputs, "backward", saved)
    lines += _kernels(forward, "forward", plans["forward"], saved)
    lines += _kernels(backward, "backward", plans["backward"], saved)
    lines += _edges(forward, "forward", lambda name: _node_id("forward", name))
    lines += _edges(backward, "backward", backward_source)
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["layer_graph"]
