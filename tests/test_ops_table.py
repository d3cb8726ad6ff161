"""Every op of the table (compiler/ops_table.py): forward against numpy in
float32 and float64, and derived gradients against finite differences.

The tests are generated from the table, so a new op is tested as soon as it
is added; an op without a derivative rule must be listed as non-differentiable."""
import re
import subprocess

import numpy as np
import pytest

from layerc import Input, check_grad, layer, ops
from layerc.compiler.cc import BuildOptions
from layerc.compiler.ops_table import COMPARISONS, OPS
from layerc.runtime import isa

NOT_DIFFERENTIABLE = set(COMPARISONS) | {"stop_gradient"}


def op_spec(op: str, broadcast: bool):
    """A layer applying ``op`` to inputs x0.. of shape (N, C) (the last one (C,) when broadcasting)."""
    arity = OPS[op].arity
    names = [f"x{k}" for k in range(arity)]
    members = {n: Input("N", "C") for n in names}
    if broadcast and arity > 1:
        members[names[-1]] = Input("C")
    args = ", ".join(names)
    members["forward"] = eval(f"lambda {args}: ops.elementwise({op!r}, {args})", {"ops": ops})
    return layer(type(f"Op_{op}", (), members))


def sample(op, shape_for, rng):
    domain = OPS[op].test_domain
    arrays = {}
    for k in range(OPS[op].arity):
        lo, hi = domain[k] if k < len(domain) else domain[0]
        arrays[f"x{k}"] = rng.uniform(lo, hi, shape_for(k))
    return arrays


def test_every_op_has_a_rule_or_is_declared_non_differentiable():
    for name, op in OPS.items():
        assert (op.grad is None) == (name in NOT_DIFFERENTIABLE), name
        assert len(op.test_domain) in (1, op.arity), f"{name}: one domain, or one per argument"


@pytest.mark.parametrize("broadcast", [False, True])
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(op, dtype, broadcast):
    rng = np.random.default_rng(1)
    spec = op_spec(op, broadcast)
    m = spec.build(C=13, dtype=dtype)
    arity = OPS[op].arity
    arrays = sample(op, lambda k: (5, 13) if not (broadcast and arity > 1 and k == arity - 1) else (13,), rng)
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    got = m.forward(**arrays).numpy()
    want = OPS[op].numpy(*(a.astype(np.float64) for a in arrays.values()))
    assert got.dtype == dtype and got.shape == (5, 13)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("broadcast", [False, True])
@pytest.mark.parametrize("op", sorted(set(OPS) - NOT_DIFFERENTIABLE))
def test_gradient_matches_finite_differences(op, broadcast):
    rng = np.random.default_rng(2)
    arity = OPS[op].arity
    arrays = sample(op, lambda k: (3, 5) if not (broadcast and arity > 1 and k == arity - 1) else (5,), rng)
    report = check_grad(op_spec(op, broadcast), inputs=arrays, N=3, C=5)
    assert report.errors, "no tensor was checked"
    assert report.ok, str(report)


def test_stop_gradient_blocks_the_gradient():
    spec = op_spec("stop_gradient", False)
    m = spec.build(C=4, dtype=np.float64)
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    np.testing.assert_array_equal(m.forward(x).numpy(), x)
    assert not m.backward(np.ones_like(x)).numpy().any()


# ---------------------------------------------------------------- vectorization

# libm functions gcc expands inline in vector code; the others need a vector
# version in glibc's libmvec, which templates/module.c.j2 declares
INLINED = frozenset({"fabs", "floor", "ceil", "trunc", "rint", "sqrt"})
NO_VECTOR_FORM = {"fmod": "glibc's libmvec has no fmod: a remainder's loop stays scalar"}
LIBM = frozenset(name for o in OPS.values() for name in re.findall(r"(\w+)\{f\}\(", o.c))


def float_kernels(source: str) -> tuple[list, str]:
    """``(first line, last line)`` of each ``omp simd`` loop of the float
    functions that computes (a loop storing a constant becomes a memset), and
    the text of those functions."""
    lines = source.splitlines()
    loops, function, text = [], "", []
    for k, line in enumerate(lines, start=1):
        if line.startswith("int ") or line.startswith("#endif"):
            function = line if line.startswith("int ") else ""
        if "_f32(" in function:
            text.append(line)
        if "_f32(" in function and re.match(r"#pragma omp (parallel for )?simd", line.strip()):
            end = next(j for j in range(k + 1, len(lines) + 1)
                       if re.match(r"(\s*#pragma omp|\s*/\*|}|int )", lines[j - 1]))
            if any(line.strip().startswith("const float") for line in lines[k:end]):
                loops.append((k + 1, end))
    return loops, "\n".join(text)


@pytest.mark.parametrize("op", sorted(OPS))
def test_float_loops_vectorize(op, tmp_path):
    """The forward and backward loops of each op vectorize (AVX2 when this CPU
    has it). Skipped, with the reason, where a libm function the loop calls has
    no vector version declared to gcc."""
    source = op_spec(op, False).build(C=13).source
    loops, float_part = float_kernels(source)
    called = {name for name in LIBM if re.search(rf"\b{name}f\(", float_part)} - INLINED
    declared = set(re.findall(r"#pragma omp declare simd notinbranch\s*\nfloat (\w+)f\(", source))
    if called & set(NO_VECTOR_FORM):
        pytest.skip(NO_VECTOR_FORM[min(called & set(NO_VECTOR_FORM))])
    if called - declared:
        pytest.skip(f"templates/module.c.j2 declares no vector version of {sorted(called - declared)}")
    level = "avx2" if "avx2" in isa.supported() else "baseline"
    path = tmp_path / "k.c"
    path.write_text(source)
    flags = [f for f in BuildOptions(isa=level).final_flags() if f not in ("-shared", "-lm")]
    report = subprocess.run(["cc", *flags, "-c", str(path), "-o", str(tmp_path / "k.o"), "-fopt-info-vec-optimized"],
                            capture_output=True, text=True, check=True).stderr
    vectorized = {int(n) for n in re.findall(r"k\.c:(\d+):\d+: optimized: loop vectorized", report)}
    missed = [source.splitlines()[first] for first, end in loops if not vectorized & set(range(first, end))]
    assert loops and not missed, missed
