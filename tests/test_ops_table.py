"""Every op of the table (compiler/ops_table.py): forward against numpy in
float32 and float64, and derived gradients against finite differences.

The tests are generated from the table, so a new op is tested as soon as it
is added; an op without a derivative rule must be listed as non-differentiable."""
import itertools
import re
import subprocess

import numpy as np
import pytest

from layerc import Input, SpecError, check_grad, layer, ops
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
INLINED = frozenset({"fabs", "floor", "ceil", "trunc", "rint", "sqrt",
                     "lc_philox_uniform"})    # static inline in the module (templates/philox.c.j2)
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


# ---------------------------------------------------------------- ops built from rows

def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def min_over(x):
    k = ops.reduce_axis(4, "k")
    return ops.compute((3,), lambda n: ops.min(x[n, k], over=k))


COMPOSITES = [  # (name, layerc expression, numpy expression) on x, y of shape (3, 4)
    ("leaky_relu", lambda x, y: ops.leaky_relu(x), lambda x, y: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu tensor slope", lambda x, y: ops.leaky_relu(x, y * y), lambda x, y: np.where(x > 0, x, y * y * x)),
    ("elu", lambda x, y: ops.elu(x, 0.5), lambda x, y: np.where(x > 0, x, 0.5 * np.expm1(x))),
    ("celu", lambda x, y: ops.celu(x, 2.0), lambda x, y: np.where(x > 0, x, 2 * np.expm1(x / 2))),
    ("softplus beta", lambda x, y: ops.softplus(x, beta=2.0), lambda x, y: np.log1p(np.exp(2 * x)) / 2),
    ("gelu", lambda x, y: ops.gelu(x), lambda x, y: OPS["gelu"].numpy(x)),
    ("gelu tanh", lambda x, y: ops.gelu(x, approximate="tanh"), lambda x, y: np_gelu_tanh(x)),
    ("clip", lambda x, y: ops.clip(x, -0.5, 0.5), lambda x, y: np.clip(x, -0.5, 0.5)),
    ("clip min", lambda x, y: ops.clip(x, min=y), lambda x, y: np.maximum(x, y)),
    ("clip max", lambda x, y: ops.clip(x, max=0.25), lambda x, y: np.minimum(x, 0.25)),
    ("x % 0.7", lambda x, y: x % 0.7, lambda x, y: np.mod(x, 0.7)),
    ("3 % (y*y + 1)", lambda x, y: 3 % (y * y + 1), lambda x, y: np.mod(3, y * y + 1)),
    ("index notation %", lambda x, y: ops.compute(x.shape, lambda n, c: x[n, c] % -0.6),
     lambda x, y: np.mod(x, -0.6)),
    ("round()", lambda x, y: round(x * 3), lambda x, y: np.round(x * 3)),
    ("np.sin", lambda x, y: np.sin(x) + np.floor(y), lambda x, y: np.sin(x) + np.floor(y)),
    ("lerp", lambda x, y: ops.lerp(x, y, 0.3), lambda x, y: x + 0.3 * (y - x)),
    ("logaddexp", lambda x, y: ops.logaddexp(x, y), lambda x, y: np.logaddexp(x, y)),
    ("min", lambda x, y: ops.min(x, axis=1), lambda x, y: x.min(axis=1)),
    ("min keepdims", lambda x, y: ops.min(x, axis=0, keepdims=True), lambda x, y: x.min(0, keepdims=True)),
    ("min over", lambda x, y: min_over(x * 2), lambda x, y: (x * 2).min(axis=1)),
    ("prod", lambda x, y: ops.prod(x, axis=1), lambda x, y: x.prod(axis=1)),
    ("prod all", lambda x, y: ops.prod(y), lambda x, y: y.prod()),
    ("prod keepdims", lambda x, y: ops.prod(x, axis=0, keepdims=True), lambda x, y: x.prod(0, keepdims=True)),
    ("split", lambda x, y: ops.split(x, [1, 3], axis=1)[1] * 2, lambda x, y: x[:, 1:] * 2),
    ("glu", lambda x, y: ops.glu(x), lambda x, y: x[:, :2] / (1 + np.exp(-x[:, 2:]))),
]


def composites(cases):
    @layer
    class Composites:
        x = Input(3, 4)
        y = Input(3, 4)

        def forward(x, y):
            return tuple(expr(x, y) for _, expr, _ in cases)
    return Composites


def test_ops_built_from_rows_match_numpy_and_finite_differences():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-2, 2, (2, 3, 4))
    module = composites(COMPOSITES).build(dtype="float64")
    for (name, _, reference), out in zip(COMPOSITES, module.forward(x, y)):
        np.testing.assert_allclose(out.numpy(), reference(x, y), rtol=1e-12, atol=1e-12, err_msg=name)
    report = check_grad(composites(COMPOSITES), inputs={"x": x, "y": y})
    assert report.ok, str(report)


@layer
class RowProduct:
    x = Input("N", 7)

    def forward(x):
        return ops.prod(x, axis=1)


def test_prod_gradient_is_the_product_of_the_others_where_some_are_zero():
    x = np.random.default_rng(4).uniform(-2, 2, (4, 7))
    x[0, 3] = 0                     # one zero: only its own gradient is not zero
    x[1, [1, 5]] = 0                # two zeros: no gradient at all
    x[3, :] = 0
    m = RowProduct.build(dtype="float64")
    np.testing.assert_allclose(m.forward(x).numpy(), x.prod(axis=1), rtol=1e-13)
    others = np.array([[np.prod(np.delete(row, j)) for j in range(7)] for row in x])
    np.testing.assert_allclose(m.backward(np.ones(4)).numpy(), others, rtol=1e-13)


@pytest.mark.parametrize("forward, message", [
    (lambda x: ops.glu(x), r"split: cannot cut x\(N, 5\) along axis 1 into 2 equal parts: 5 elements against 4"),
    (lambda x: ops.split(x, [2, 2]), r"split: cannot cut x\(N, 5\) along axis 1 into parts of sizes 2, 2"),
    (lambda x: x.reshape(-1, 2), r"reshape: cannot reshape x\(N, 5\) into \(5 \* N // 2, 2\)"),
    (lambda x: ops.prod(x, axis=0), r"prod: x\(N, 5\) along axis 0 has the size N, free at build time"),
    (lambda x: ops.gelu(x, approximate="erf"), r"gelu: approximate='erf'; it is 'none' or 'tanh'"),
    (lambda x: ops.clip(x), r"clip: give min, max or both"),
], ids=["glu", "split", "reshape", "prod", "gelu", "clip"])
def test_ops_refuse_what_would_drop_elements_or_mean_nothing(forward, message):
    spec = layer(type("Cut", (), {"x": Input("N", 5), "forward": staticmethod(forward)}))
    with pytest.raises(SpecError, match=r"Cut \(.*\): " + message):
        spec.trace()


def far_grid(arity: int, width: int = 13) -> list:
    """Every argument at +-100, +-30 and 1.5 (a full grid), as (N, width) arrays."""
    rows = np.array(list(itertools.product((-100.0, -30.0, 30.0, 100.0, 1.5), repeat=arity)))
    rows = np.concatenate([rows, np.full((-len(rows) % width, arity), 0.5)])
    return [column.reshape(-1, width) for column in rows.T]


@pytest.mark.parametrize("op", sorted(OPS))
def test_float_agrees_with_double_far_from_zero(op):
    """No overflow inside a float kernel (softplus, logsigmoid, mish at +-100):
    where the double result fits in a float, the float one is close to it
    (within float's resolution of terms near 1: sigmoid's out * (1 - out), as
    torch's, is 0 at x = 30 in float)."""
    args = far_grid(OPS[op].arity)
    results = {}
    for dtype in (np.float32, np.float64):
        m = op_spec(op, False).build(C=13, dtype=dtype)
        value = m.forward(*(a.astype(dtype) for a in args)).numpy()
        grads = m.backward(np.ones_like(value))
        results[dtype] = [value] + [g.numpy() for g in (grads if isinstance(grads, tuple) else (grads,))]
    for name, single, double in zip(["value", "grad 0", "grad 1", "grad 2"], results[np.float32], results[np.float64]):
        with np.errstate(over="ignore"):
            expected = double.astype(np.float32)
        np.testing.assert_allclose(single, expected, rtol=2e-5, atol=2e-7, err_msg=f"{op} {name}")


@layer
class GaussianBump:
    """exp of exponents known at most zero (a negated square, a negative
    constant times a square), and of one that is not."""
    x = Input("N", "C")

    def forward(x):
        return ops.exp(-(x * x)) + ops.exp(-0.5 * (x * x)) * ops.exp(x)


@pytest.mark.parametrize("level", ["avx2", None])
def test_exp_of_a_non_positive_exponent_is_inlined_and_matches_numpy(level, monkeypatch):
    """Exponents known at most zero take the inlined exp (no libmvec call);
    float results, edges included (e^v below float's normals gives 0, as -inf),
    match numpy's at both vector widths."""
    if level:
        monkeypatch.setenv("LAYERC_ISA", level)
    m = GaussianBump.build(C=7, dtype=np.float32)
    forward = m.source[m.source.index("int lc_gaussianbump_forward_f32"):]
    forward = forward[:forward.index("\n}\n")]
    assert forward.count("lc_exp_inlinef(") == 2 and forward.count("expf(") == 1
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-14, 14, 46), [0, -0.0, 9.34, 9.35, 13.2, 13.3, -1e20, np.inf, -np.inf, np.nan]])
    x = x.reshape(-1, 7).astype(np.float32)
    got = m.forward(x).numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        square = (x * x).astype(np.float64)          # the exponents as the kernel rounds them
        want = np.exp(-square) + np.exp((np.float32(-0.5) * (x * x)).astype(np.float64) + x)
    # subnormal results keep their absolute resolution (2^-149), as expf's
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=2e-45)


def test_exp_of_a_non_positive_exponent_gradient():
    check_grad(GaussianBump, inputs={"x": np.random.default_rng(4).uniform(-3, 3, (3, 5))}, N=3, C=5).assert_ok()
