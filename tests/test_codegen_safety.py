"""Generated C: builds clean under -Wall -Wextra -Werror, the elementwise
kernels' innermost loops vectorize, and kernels run clean under
AddressSanitizer/UBSan on odd shapes."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from layerc.compiler.cc import BuildOptions
from layerc.runtime import isa

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sanitize_driver as specs  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
STRICT = BuildOptions(warnings_as_errors=True)
BINDINGS = {"PReLU": dict(C=7), "Dense": dict(I=5, O=3), "Conv2dStride2Pad1": dict(CI=3, CO=2, K=3),
            "GroupedPatchConv": {}, "ShiftedConv2D": {}, "PatchConv1D": {},
            "SoftmaxCrossEntropy": dict(K=5), "Norm": dict(C=7)}


@pytest.mark.parametrize("spec", specs.OWN, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generated_c_builds_with_werror(spec, dtype):
    m = spec.build(options=STRICT, dtype=dtype, **BINDINGS[spec.name])
    assert "-Werror" in m.compiled.options.final_flags()


def vector_report(source: str, tmp_path) -> tuple[set, str]:
    """Lines gcc reports a vectorized loop on, and the whole report."""
    path = tmp_path / "source.c"
    path.write_text(source)
    flags = [f for f in BuildOptions(isa=isa.chosen()).final_flags() if f not in ("-shared", "-lm")]
    result = subprocess.run(["gcc", *flags, "-c", str(path), "-o", str(tmp_path / "source.o"),
                             "-fopt-info-vec-optimized", "-fopt-info-vec-missed"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = {int(m.group(1)) for m in re.finditer(r"source\.c:(\d+):\d+: optimized: loop vectorized", result.stderr)}
    return lines, result.stderr


def innermost_simd_loops(source: str, function: str) -> list[int]:
    """Line numbers (1-based) of loops marked simd in ``function`` that hold no other loop."""
    lines = source.splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(rf"int {function}\(", l) and not l.endswith(";"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == "}")
    found = []
    for i in range(start, end):
        if "#pragma omp" in lines[i] and "simd" in lines[i] and lines[i + 1].lstrip().startswith("for ("):
            depth, j, inner = 0, i + 1, False
            while True:
                depth += lines[j].count("{") - lines[j].count("}")
                if j > i + 1 and lines[j].lstrip().startswith("for ("):
                    inner = True
                if depth <= 0 and j > i + 1 or (depth == 0 and lines[j].rstrip().endswith(";")):
                    break
                j += 1
            if not inner:
                found.append(i + 2)
    return found


def _vectorized(loop_line: int, reported: set) -> bool:
    # gcc names a vectorized loop by its header or by the first statement of its body
    return loop_line in reported or loop_line + 1 in reported


@pytest.fixture(scope="module")
def prelu():
    return specs.PReLU.build(C=256)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_prelu_forward_innermost_loop_vectorizes(prelu, dtype, tmp_path):
    reported, report = vector_report(prelu.source, tmp_path)
    loops = innermost_simd_loops(prelu.source, f"{prelu.compiled.signatures['forward'].function}_{dtype}")
    assert loops, "no simd loop in the forward"
    missed = [l for l in loops if not _vectorized(l, reported)]
    assert not missed, f"loops at lines {missed} not vectorized:\n{report}"


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_prelu_backward_innermost_loop_vectorizes(prelu, dtype, tmp_path):
    reported, report = vector_report(prelu.source, tmp_path)
    loops = innermost_simd_loops(prelu.source, f"{prelu.compiled.signatures['backward'].function}_{dtype}")
    assert loops, "no simd loop in the backward"
    missed = [l for l in loops if not _vectorized(l, reported)]
    assert not missed, f"loops at lines {missed} not vectorized:\n{report}"


def _asan_env():
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("the compiler has no AddressSanitizer runtime")
    return {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1", "PYTHONPATH": str(REPO)}


def _run_driver(*args, timeout):
    result = subprocess.run([sys.executable, str(REPO / "tests" / "sanitize_driver.py"), *args],
                            env=_asan_env(), capture_output=True, text=True, cwd=REPO, timeout=timeout)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.sanitizer
def test_own_layers_run_clean_under_asan_and_ubsan():
    report = _run_driver("--own", timeout=900)
    assert report["skipped"] == {}
    assert len(report["ran"]) == 2 * len(specs.OWN)


@pytest.mark.sanitizer
@pytest.mark.slow
def test_every_discovered_layer_runs_clean_under_asan_and_ubsan():
    report = _run_driver(timeout=3000)
    assert len(report["ran"]) >= 2 * len(specs.OWN)
    print(f"sanitizer runs: {len(report['ran'])} clean; skipped (sizes not accepted): {sorted(report['skipped'])}")


# ---------------------------------------------------------------- no trap from any input

import textwrap  # noqa: E402

import numpy as np  # noqa: E402

from layerc import Input, layer, nn, ops  # noqa: E402


@layer
class ExpProduct:
    """A product whose right operand is computed (``exp``): the packed kernel, not the BLAS."""
    a = Input("M", "K")
    b = Input("K", "N")

    def forward(a, b):
        M, K = a.shape
        _, N = b.shape
        k = ops.reduce_axis(K, "k")
        return ops.compute((M, N), lambda m, n: ops.sum(a[m, k] * ops.exp(b[k, n]), over=k))


def test_a_thin_operand_packs_into_a_buffer_of_its_own_size():
    """K = 1 and N = 2**24 (64 MiB): the packing buffer is K x N, not a whole block of K x N."""
    m = ExpProduct.build()
    a = np.full((1, 1), 2.0, np.float32)
    b = np.zeros((1, 1 << 24), np.float32)
    b[0, ::4096] = 1.0
    y = m.forward(a, b).numpy()
    np.testing.assert_allclose(y, 2.0 * np.exp(b), rtol=1e-6)


MEMORY_LIMITED = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_codegen_safety import ExpProduct
    m = ExpProduct.build()
    m.set_threads(1)                        # no thread stacks to map under the limit
    a, b = np.ones((1, 1), np.float32), np.zeros((1, 1 << 22), np.float32)
    out = np.empty((1, 1 << 22), np.float32)
    m.forward(a[:, :1], b[:, :64])          # built, loaded and run once at a small size
    mapped = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
    # 64 KiB more than is mapped: the call's packed workspace cannot be allocated
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (64 << 10), resource.RLIM_INFINITY))
    try:
        m.forward(a, b, out=out)
    except MemoryError as e:
        print("MemoryError:", e)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or "LD_PRELOAD" in os.environ,
                    reason="needs RLIMIT_AS and /proc, without a sanitizer runtime")
def test_a_packing_buffer_that_cannot_be_allocated_is_a_memory_error(tmp_path):
    script = tmp_path / "limited.py"
    script.write_text(MEMORY_LIMITED.format(tests=str(REPO / "tests")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MemoryError: ExpProduct: a kernel could not allocate its workspace" in result.stdout, result.stdout


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Conv2D(3, 4, 3, stride=0), r"Conv2D: stride must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 4, 3, dilation=0), r"Conv2D: dilation must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 4, 3, padding=-1), r"Conv2D: padding must be an integer >= 0"),
    (lambda: nn.Conv2D(3, 4, (3, 0)), r"Conv2D: kernel_size must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 4, 3, stride=(1, 2, 3)), r"Conv2D: stride must be an integer >= 1 or 2 of them"),
    (lambda: nn.Conv2D(3, 4, 3, groups=0), r"Conv2D: groups must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 4, 3, groups=2), r"Conv2D: .*must be divisible by groups"),
    (lambda: nn.Conv2D(0, 4, 3), r"Conv2D: in_channels must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 4.5, 3), r"Conv2D: out_channels must be an integer >= 1"),
    (lambda: nn.MaxPool2D(2, stride=0), r"MaxPool2D: stride must be an integer >= 1"),
    (lambda: nn.MaxPool2D(0), r"MaxPool2D: kernel_size must be an integer >= 1"),
    (lambda: nn.AvgPool2D((2, -1)), r"AvgPool2D: kernel_size must be an integer >= 1"),
    (lambda: nn.Linear(-1, 3), r"Linear: in_features must be an integer >= 0"),
    (lambda: nn.BatchNorm2D(0), r"BatchNorm2D: num_features must be an integer >= 1"),
    (lambda: nn.LayerNorm((4, -1)), r"LayerNorm: normalized_shape must be an integer >= 0"),
])
def test_built_in_layers_refuse_arguments_they_cannot_run_with(make, match):
    with pytest.raises(ValueError, match=match):
        make()
