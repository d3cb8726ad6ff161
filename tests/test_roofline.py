"""The roofline's cost model (flops and compulsory bytes counted from the
programs that run) and the machine limits kept in the cache as checked data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from layerc import roofline
from layerc.compiler import store
from layerc.compiler.pipeline import lower_layer
from layerc.compiler.records import write_record
from layerc.nn.linear import LinearSpec

N, I, O = 64, 784, 512


def test_a_linear_layer_counts_two_flops_per_multiply_add_and_each_array_once():
    low = lower_layer(LinearSpec, I=I, O=O)
    sizes = {"E": N, "I": I, "O": O}     # Linear is [..., I]: its leading axes run as one, E
    forward = roofline.program_cost(low.forward, sizes, 4)
    assert forward.flops == 2 * N * I * O            # the bias starts the sum: no flops of its own
    assert forward.bytes == 4 * (N * I + O * I + O + N * O)
    backward = roofline.program_cost(low.backward, sizes, 4)
    # grad_x and grad_weight (2 per multiply-add each), grad_bias (a sum over N)
    assert backward.flops == 4 * N * I * O + N * O
    # reads x, weight, grad_y; writes grad_x, grad_weight, grad_bias
    assert backward.bytes == 4 * (N * I + O * I + N * O + N * I + O * I + O)
    assert roofline.program_cost(low.forward, sizes, 8).bytes == 2 * forward.bytes


def test_roofline_row_shares_and_flag():
    limits = {"triad_GBps": 10.0, "sgemm_GFLOPps": 100.0, "threads": 1}
    memory = roofline.roofline_row("k", roofline.Cost(flops=1e6, bytes=1e9), 0.2, limits)
    assert memory["bound"] == "memory" and memory["of_roof"] == pytest.approx(0.5) and not memory["flag"]
    compute = roofline.roofline_row("k", roofline.Cost(flops=1e11, bytes=1e6), 4.0, limits)
    assert compute["bound"] == "compute" and compute["of_roof"] == pytest.approx(0.25) and compute["flag"]
    assert "<-- under 50%" in roofline.format_report({"layer": "k", "bindings": {}, "limits": limits,
                                                      "kernels": [memory, compute]}).splitlines()[-1]


def test_machine_limits_are_probed_once_and_a_bad_record_is_probed_again(monkeypatch):
    probes = []
    monkeypatch.setattr(roofline, "probe_bandwidth", lambda s: probes.append("bw") or 12.5)
    monkeypatch.setattr(roofline, "probe_sgemm", lambda s: probes.append("gemm") or 99.0)
    threads = 7                                      # a key no other test probes
    key = roofline.machine_key(threads)
    folder = store.root() / roofline.LIMITS_DIR
    for bad in (b"not json", json.dumps({"triad_GBps": -1.0, "sgemm_GFLOPps": 1.0, "threads": 7}).encode(),
                json.dumps({"triad_GBps": 1.0}).encode()):
        write_record(folder, key, bad)
        probes.clear()
        assert roofline.machine_limits(threads) == {"triad_GBps": 12.5, "sgemm_GFLOPps": 99.0, "threads": 7}
        assert probes == ["bw", "gemm"]
    probes.clear()
    assert roofline.machine_limits(threads)["triad_GBps"] == 12.5 and probes == []    # cached
    roofline.machine_limits(threads, reprobe=True)
    assert probes == ["bw", "gemm"]


def test_measure_times_forward_and_backward_of_a_layer():
    limits = {"triad_GBps": 10.0, "sgemm_GFLOPps": 100.0, "threads": 1}
    report = roofline.measure(LinearSpec, {"E": 8, "I": 16, "O": 4}, seconds=0.01, limits=limits)
    kernels = {k["kernel"]: k for k in report["kernels"]}
    assert set(kernels) == {"LinearSpec.forward", "LinearSpec.backward"}
    # the products, and the bias added once per output (apart, or starting the sum)
    assert 2 * 8 * 16 * 4 <= kernels["LinearSpec.forward"]["flops"] <= 2 * 8 * 16 * 4 + 8 * 4
    assert all(k["seconds"] > 0 and np.isfinite(k["of_roof"]) for k in kernels.values())


def test_the_bench_table_shows_each_step_against_its_roof():
    from benchmarks.report import format_markdown, format_table, roof_share
    limits = {"triad_GBps": 10.0, "sgemm_GFLOPps": 100.0, "threads": 2}
    timing = {"median": 0.01, "min": 0.01}
    # 1e8 bytes need 10 ms at 10 GB/s, 1e8 flops 1 ms at 100 GFLOP/s: the roof is 10 ms
    at_roof = {"workload": "a", "layerc": timing, "bytes": 1e8, "flops": 1e8, "spread": 1.0}
    slow = {"workload": "b", "layerc": {"median": 0.05, "min": 0.05}, "flops": 1e9, "spread": 1.0}
    assert roof_share(at_roof, limits) == pytest.approx(1.0)
    assert roof_share(slow, limits) == pytest.approx(0.2)
    assert roof_share({"workload": "c", "layerc": timing}, limits) is None
    table = format_table([at_roof, slow], limits).splitlines()
    assert "roof" in table[1] and " 100%  " in table[3] and "  20%!" in table[4]
    markdown = format_markdown([at_roof, slow], limits)
    assert "| 100% |" in markdown and "| 20%! |" in markdown


def test_padding_guards_are_addressing_not_flops():
    from layerc.nn.conv import Conv2DSpec
    low = lower_layer(Conv2DSpec, C=8, O=4, CG=8, KH=3, KW=3, padding=(1, 1))
    sizes = {"N": 2, "C": 8, "H": 5, "W": 5, "O": 4, "CG": 8, "KH": 3, "KW": 3}
    macs = 2 * 4 * 5 * 5 * 8 * 3 * 3
    assert 2 * macs <= roofline.program_cost(low.forward, sizes, 4).flops <= 2 * macs + 2 * 4 * 5 * 5
    # grad_x and grad_weight: 2 per multiply-add each (the guards of the padded reads are not counted),
    # grad_bias: a sum over n, h, w
    assert roofline.program_cost(low.backward, sizes, 4).flops == 4 * macs + 2 * 4 * 5 * 5
