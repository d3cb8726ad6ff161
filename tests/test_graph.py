"""compiler/graph.py and `layerc show --graph`: the stages of a lowered layer as DOT."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from layerc.compiler.graph import layer_graph
from layerc.compiler.pipeline import lower_layer
from layerc.compiler.schedule import plan_program
from layers import PReLU

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples" / "custom_layers"


def prelu_dot() -> str:
    low = lower_layer(PReLU, C=4)
    return layer_graph(low.forward, low.backward,
                       {"forward": plan_program(low.forward), "backward": plan_program(low.backward)})


def test_every_stage_is_a_node_inside_one_kernel_box():
    low = lower_layer(PReLU, C=4)
    dot = prelu_dot()
    for phase, program in (("forward", low.forward), ("backward", low.backward)):
        for stage in program.stages:
            assert dot.count(f'"{phase}:{stage.name}" [label=') == 1
        assert len(re.findall(f'subgraph "cluster_{phase}_', dot)) == len(plan_program(program))


def test_reads_are_edges_and_the_backward_reads_the_forward_inputs():
    dot = prelu_dot()
    assert '"forward:x" -> "forward:' in dot
    assert '"forward:x" -> "backward:' in dot          # the backward's x is the forward's x
    assert '"backward:x"' not in dot
    assert '"backward:grad_' in dot


def test_saved_tensors_are_marked():
    low = lower_layer(PReLU, C=4)
    saved = [t.name for t in low.backward.tensors if t.role == "saved"]
    dot = prelu_dot()
    for name in saved:
        line = next(line for line in dot.splitlines() if f'"forward:{name}" [label=' in line)
        assert "penwidth=2" in line


def _show_graph(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerc.cli", "show", str(EXAMPLES / "attention_layer.py"),
                           "--graph", str(path)], capture_output=True, text=True, timeout=600)


def test_show_graph_writes_dot_text(tmp_path):
    run = _show_graph(tmp_path / "attention.dot")
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "attention.dot").read_text()
    assert text.startswith('digraph "MultiHeadAttentionSpec"') and "cluster_backward_" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_show_graph_draws_svg_with_graphviz(tmp_path):
    run = _show_graph(tmp_path / "attention.svg")
    assert run.returncode == 0, run.stderr
    assert "<svg" in (tmp_path / "attention.svg").read_text()
