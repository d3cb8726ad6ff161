"""compiler/pipeline.py end to end through runtime/module.py: the PReLU of the
issue, free batch sizes, both dtypes."""
import numpy as np
import pytest

from layers import PReLU


def test_shared_alpha_prelu_values_and_alpha_gradient():
    m = PReLU.build(C=1, dtype=np.float64)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]).reshape(5, 1)
    np.testing.assert_array_equal(m.forward(x).numpy().ravel(), [-0.5, -0.25, 0, 1, 2])
    m.backward(np.ones_like(x))
    assert m.alpha.grad.tolist() == [-3.0]
    m.forward(x)
    m.backward(np.ones_like(x))
    assert m.alpha.grad.tolist() == [-6.0]          # accumulates until zero_grad
    m.zero_grad()
    assert m.alpha.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [0, 1, 3, 1000])
def test_batch_size_is_free_at_run_time(dtype, batch):
    m = PReLU.build(C=37, dtype=dtype)
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 37)).astype(dtype)
    alpha = m.alpha.numpy()
    y = m.forward(x).numpy()
    np.testing.assert_allclose(y, np.maximum(x, 0) + alpha * np.minimum(x, 0), rtol=1e-6)
    gy = rng.standard_normal((batch, 37)).astype(dtype)
    gx = m.backward(gy).numpy()
    assert gx.shape == (batch, 37) and gx.dtype == dtype
    np.testing.assert_allclose(gx, np.where(x > 0, gy, alpha * gy), rtol=1e-6)
    np.testing.assert_allclose(m.alpha.grad, (gy * np.minimum(x, 0)).sum(axis=0), rtol=1e-4, atol=1e-4)


def test_parameters_are_writable_views():
    m = PReLU.build(C=3, dtype=np.float64)
    m.alpha.numpy()[:] = [0.0, 1.0, 2.0]
    y = m.forward(-np.ones((2, 3))).numpy()
    np.testing.assert_array_equal(y, [[0, -1, -2], [0, -1, -2]])


def test_backward_saves_nothing_for_elementwise_layers():
    m = PReLU.build(C=8)
    assert m.compiled.saved == ()
    assert "saved for backward: nothing" in m.compiled.explain()
    assert len(m.compiled.forward.stages) == 1
