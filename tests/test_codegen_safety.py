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

from layerc.compiler.build import DEFAULT_FLAGS, BuildOptions

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sanitize_driver as specs  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
STRICT = BuildOptions(warnings_as_errors=True)
BINDINGS = {"PReLU": dict(C=7), "Dense": dict(I=5, O=3), "Conv2dStride2Pad1": dict(CI=3, CO=2, K=3),
            "GroupedPatchConv": {}, "PatchConv1D": {},
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
    flags = [f for f in DEFAULT_FLAGS]
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
