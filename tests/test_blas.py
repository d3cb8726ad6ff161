"""runtime/blas.py and the BLAS path of contractions: which products go to
numpy's BLAS, and that they agree with numpy and with the packed kernels that
run when there is no BLAS."""
import re

import numpy as np
import pytest

from layerc import Input, Param, check_grad, layer, ops
from layerc.compiler import ir
from layerc.runtime import blas
from layerc.compiler.ir import Axis, IConst, IVar
from layerc.compiler.pipeline import lower_layer
from layerc.compiler.plan import plan_program as run_plan
from layerc.compiler.schedule import Matrix, _matrix, plan_program


@layer
class ScaledLinear:
    """A product with a constant factor (BLAS alpha) and a transposed weight."""
    x = Input("N", "I")
    weight = Param("O", "I", init="normal")

    def forward(x, weight):
        return (x @ weight.T) * 0.5


@layer
class Scores:
    """Batched q k^T, as attention computes it: the batch axis loops around the calls."""
    q = Input("B", "T", "D")
    k = Input("B", "T", "D")

    def forward(q, k):
        return q @ ops.transpose(k, (0, 2, 1))


@layer
class Pointwise:
    """A 1x1 convolution over NCHW: y[n] = W x[n]; its weight gradient sums over
    n, h, w, which are not adjacent in the gradient (n becomes an accumulating loop)."""
    x = Input("N", "C", "H", "W")
    weight = Param("O", "C", init="normal")

    def forward(x, weight):
        N, C, H, W = x.shape
        c = ops.reduce_axis(C, "c")
        return ops.compute((N, weight.shape[0], H, W),
                           lambda n, o, h, w: ops.sum(weight[o, c] * x[n, c, h, w], over=c))


@layer
class TransposedOut:
    """The result stored transposed: y[o, n] = sum_i x[n, i] w[o, i]."""
    x = Input("N", "I")
    weight = Param("O", "I", init="normal")

    def forward(x, weight):
        N, I = x.shape
        i = ops.reduce_axis(I, "i")
        return ops.compute((weight.shape[0], N), lambda o, n: ops.sum(x[n, i] * weight[o, i], over=i))


def _references(name, inputs, params, gy):
    """float64 numpy forward and gradients of each spec above."""
    if name == "ScaledLinear":
        x, w = inputs["x"], params["weight"]
        return x @ w.T * 0.5, {"x": gy @ w * 0.5, "weight": gy.T @ x * 0.5}
    if name == "Scores":
        q, k = inputs["q"], inputs["k"]
        return q @ k.transpose(0, 2, 1), {"q": gy @ k, "k": gy.transpose(0, 2, 1) @ q}
    if name == "Pointwise":
        x, w = inputs["x"], params["weight"]
        y = np.einsum("oc,nchw->nohw", w, x)
        return y, {"x": np.einsum("nohw,oc->nchw", gy, w), "weight": np.einsum("nohw,nchw->oc", gy, x)}
    x, w = inputs["x"], params["weight"]
    return w @ x.T, {"x": gy.T @ w, "weight": gy @ x}


CASES = [
    (ScaledLinear, dict(I=19, O=23), {"x": (17, 19)}),
    (Scores, {}, {"q": (3, 11, 9), "k": (3, 11, 9)}),
    (Pointwise, dict(O=10, C=12), {"x": (2, 12, 5, 7)}),
    (TransposedOut, dict(I=13, O=9), {"x": (15, 13)}),
]


def _run(module, inputs, gy):
    module.zero_grad()
    y = module.forward(**inputs).numpy().copy()
    grads = module.backward(gy)
    grads = grads if isinstance(grads, tuple) else (grads,)
    names = [t.name for t in module._inputs]
    result = {n: g.numpy().copy() for n, g in zip(names, grads)}
    result.update({n: p.grad.copy() for n, p in module._parameters.items()})
    return y, result


def _set_blas(module, on: bool):
    lib, prefix = module._library.lib, module.compiled.prefix
    if on:
        assert blas.install(lib, prefix)
    else:
        getattr(lib, f"{prefix}_set_blas")(0, 0, 0)


def test_numpy_blas_is_found():
    found = blas.gemm_functions()
    assert found is not None, "numpy's BLAS was not found in this process"
    assert found.sgemm and found.dgemm and found.sgemm != found.dgemm
    assert isinstance(found.ilp64, bool)


def test_blas_runs_on_one_thread_while_layers_run_and_gets_its_setting_back():
    found = blas.gemm_functions()
    if found.set_threads is None:
        pytest.skip("this BLAS has no thread setting")
    before = found.get_threads()
    found.set_threads(2)
    try:
        with blas.single_threaded():
            assert found.get_threads() == 1
            with blas.single_threaded():
                assert found.get_threads() == 1
            assert found.get_threads() == 1
        assert found.get_threads() == 2
        assert blas.call_single_threaded(found.get_threads, ()) == 1
        assert found.get_threads() == 2

        def fails():
            raise ValueError("inside")
        with pytest.raises(ValueError, match="inside"):
            blas.call_single_threaded(fails, ())
        assert found.get_threads() == 2
        module = ScaledLinear.build(I=8, O=8)
        module.forward(np.ones((4, 8), np.float32))
        assert found.get_threads() == 2
    finally:
        found.set_threads(before)


def test_split_products_are_deterministic_and_match_one_thread():
    module = ScaledLinear.build(I=300, O=200)
    x = np.random.default_rng(0).standard_normal((500, 300)).astype(np.float32)
    try:
        results = []
        for threads in (2, 2, 1):
            module.set_threads(threads)
            results.append(module.forward(x).numpy().copy())
    finally:
        module.set_threads(0)
    assert np.array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
def test_products_with_few_rows_split_their_columns_and_match_numpy(threads):
    """A small batch (3 rows) times a wide weight: the threads take blocks of
    the columns (an odd count, so the last block is short), in the forward
    (the weight read transposed) and in the input gradient (read as is)."""
    module = ScaledLinear.build(I=301, O=1037, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, gy = rng.standard_normal((3, 301)), rng.standard_normal((3, 1037))
    try:
        module.set_threads(threads)
        y = module.forward(x).numpy()
        gx = module.backward(gy).numpy()
    finally:
        module.set_threads(0)
    w = module.weight.numpy()
    np.testing.assert_allclose(y, 0.5 * (x @ w.T), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, 0.5 * (gy @ w), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.weight.grad, 0.5 * (gy.T @ x), rtol=1e-12, atol=1e-12)


def test_layerc_blas_0_turns_it_off(monkeypatch):
    monkeypatch.setenv("LAYERC_BLAS", "0")
    blas.gemm_functions.cache_clear()
    try:
        assert blas.gemm_functions() is None
    finally:
        monkeypatch.delenv("LAYERC_BLAS")
        blas.gemm_functions.cache_clear()
    assert blas.gemm_functions() is not None


@pytest.mark.parametrize("spec, sizes, shapes", CASES, ids=[c[0].name for c in CASES])
def test_every_product_goes_to_blas_or_the_tiles(spec, sizes, shapes):
    """Products of matrices in memory call the BLAS; batched ones (a loop
    around the calls) run on the module's tiles (compiler/plan.py)."""
    lowered = lower_layer(spec, **sizes)
    blas_calls = 0
    for program in (lowered.forward, lowered.backward):
        contractions = [n for n in plan_program(program) if n.kind == "contract"]
        assert contractions, program.name
        for nest, planned in zip(contractions, [n for n in run_plan(program) if n.stage in
                                                  {c.stage for c in contractions}]):
            assert nest.contraction.gemm is not None, f"{program.name}: {nest.stage.name} is not a BLAS call"
            if planned.kind == "patch_gemm":
                assert planned.patch.loops, f"{program.name}: {nest.stage.name} is not batched"
            else:
                blas_calls += 1
    # a call site (every module defines lc_gemm_f64; only products call it)
    assert bool(re.search(r"lc_gemm_f64\([01], [01], ", lowered.source)) == (blas_calls > 0)
    assert blas_calls or spec in (Scores, Pointwise)


# several blocks of rows (96), of depth (384) and a partial register tile
BLOCKED = (ScaledLinear, dict(I=400, O=101), {"x": (197, 400)})
# thin products whose larger side (>= 1 MiB in each thread's block) the module
# streams itself: a few rows times a weight read along its rows (1 and 8 rows,
# and 3 and 6, run padded with rows of zeros; a depth that is not a whole
# number of vectors, and over one block of LC_DOT_KC), a few rows times a weight read as is (the input gradient), and
# a few terms (the weight gradient of a batch of 3 or 8)
THIN = [
    (ScaledLinear, dict(I=2051, O=300), {"x": (3, 2051)}),
    (ScaledLinear, dict(I=1100, O=600), {"x": (1, 1100)}),
    (ScaledLinear, dict(I=1029, O=700), {"x": (8, 1029)}),
    (ScaledLinear, dict(I=1301, O=450), {"x": (6, 1301)}),
]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("spec, sizes, shapes", CASES + [BLOCKED] + THIN,
                         ids=[c[0].name for c in CASES] + ["ScaledLinear-blocked"]
                         + [f"{c[0].name}-thin-{'x'.join(map(str, c[2]['x']))}" for c in THIN])
def test_blas_and_packed_kernels_agree_with_numpy(spec, sizes, shapes, dtype, tol):
    module = spec.build(dtype=dtype, **sizes)
    rng = np.random.default_rng(3)
    inputs = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    params = {n: p.data.astype(np.float64) for n, p in module._parameters.items()}
    y_shape = module.forward(**inputs).shape
    gy = rng.standard_normal(y_shape).astype(dtype)
    ref_y, ref_grads = _references(spec.name, {k: v.astype(np.float64) for k, v in inputs.items()},
                                   params, gy.astype(np.float64))
    try:
        for on in (True, False):
            _set_blas(module, on)
            y, grads = _run(module, inputs, gy)
            scale = max(1.0, np.abs(ref_y).max())
            assert np.abs(y - ref_y).max() <= tol * scale, ("blas" if on else "packed", "forward")
            for name, ref in ref_grads.items():
                err = np.abs(grads[name] - ref).max() / max(1.0, np.abs(ref).max())
                assert err <= tol, ("blas" if on else "packed", name, err)
    finally:
        _set_blas(module, True)


@pytest.mark.parametrize("spec, sizes, shapes", CASES, ids=[c[0].name for c in CASES])
def test_blas_gradients_match_finite_differences(spec, sizes, shapes):
    rng = np.random.default_rng(5)
    inputs = {k: rng.standard_normal(s) for k, s in shapes.items()}
    report = check_grad(spec, inputs=inputs, **sizes)
    assert report.ok, report


def test_matrix_layouts():
    n, k = Axis("n", IConst(4)), Axis("k", IConst(5))
    row_major = _matrix("x", (IVar("n"), IVar("k")), (IConst(4), IConst(5)), (n,), (k,))
    assert row_major == Matrix("x", (IConst(0), IConst(0)), False, IConst(5))
    stored_transposed = _matrix("x", (IVar("k"), IVar("n")), (IConst(5), IConst(4)), (n,), (k,))
    assert stored_transposed.transposed and stored_transposed.ld == IConst(4)
    # neither run at the last dimension: no unit stride for BLAS
    assert _matrix("x", (IVar("n"), IVar("k"), IConst(0)), (IConst(4), IConst(5), IConst(2)), (n,), (k,)) is None
    # an offset coordinate (a head's slice of the columns) moves the start
    shifted = _matrix("x", (IVar("n"), ir.iadd(IVar("k"), IConst(1))), (IConst(4), IConst(6)), (n,), (k,))
    assert shifted == Matrix("x", (IConst(0), IConst(1)), False, IConst(6))
    # a strided coordinate (stride-2 convolution) or one mixing both runs is not a matrix
    assert _matrix("x", (IVar("n"), ir.imul(2, IVar("k"))), (IConst(4), IConst(10)), (n,), (k,)) is None
    assert _matrix("x", (ir.iadd(IVar("n"), IVar("k")),), (IConst(9),), (n,), (k,)) is None
    # a dimension of size 1 inside a run (a kernel's unit height) takes no room; one of another size breaks it
    c = Axis("c", IConst(3))
    unit = _matrix("x", (IVar("n"), IVar("c"), IConst(0), IVar("k")), (IConst(4), IConst(3), IConst(1), IConst(5)),
                   (n,), (c, k))
    assert unit == Matrix("x", (IConst(0), IConst(0), IConst(0), IConst(0)), False, IConst(15))
    assert _matrix("x", (IVar("n"), IVar("c"), IConst(0), IVar("k")), (IConst(4), IConst(3), IConst(2), IConst(5)),
                   (n,), (c, k)) is None


def test_threads_running_blas_layers_at_once_agree_and_leave_the_blas_setting():
    import threading

    from layerc.runtime.tensor import no_grad
    found = blas.gemm_functions()
    module = ScaledLinear.build(I=96, O=80)
    x = np.random.default_rng(1).standard_normal((64, 96)).astype(np.float32)
    expected = module.forward(x).numpy().copy()
    before = found.get_threads() if found.set_threads else None
    results, errors = [], []

    def work():
        try:
            with no_grad():
                for _ in range(20):
                    results.append(module.forward(x).numpy().copy())
        except Exception as exc:        # reported below: a failing thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 60
    assert all(np.array_equal(r, expected) for r in results)
    if before is not None:
        assert found.get_threads() == before
