"""The autograd tape across compiled modules: a tensor used twice, a residual
block, a loss from two modules, the guide's training loop; Tensor basics."""
import numpy as np
import pytest

from layerc import Residual, Sequential, SGD, Tensor, manual_seed, no_grad
from layerc.nn import Linear
from layers import PReLU
from layerc.gradcheck import numeric_gradient


def prelu64(c):
    return PReLU.build(C=c, dtype="float64")


def mse(pred, target):
    diff = pred - target
    return (diff * diff).mean()


def away_from_kinks(shape, rng):
    """Inputs not near 0, where PReLU's derivative jumps (finite differences straddle it)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


# ---------------------------------------------------------------- the tape


def test_tensor_used_twice_accumulates():
    rng = np.random.default_rng(0)
    m1, m2 = prelu64(4), prelu64(4)
    m1.alpha.data[:] = [0.1, 0.2, 0.3, 0.4]
    m2.alpha.data[:] = [0.5, -0.3, 0.7, 0.2]
    x_data = away_from_kinks((3, 4), rng)
    x = Tensor(x_data, requires_grad=True)

    def loss_value():
        with no_grad():
            h = m1(x_data)
            return float((m2(h) * h).sum())

    h = m1(x)
    loss = (m2(h) * h).sum()           # h feeds two consumers: the gradients must add
    loss.backward()
    np.testing.assert_allclose(x.grad, numeric_gradient(loss_value, x_data), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(m1.alpha.grad, numeric_gradient(loss_value, m1.alpha.data), rtol=1e-6, atol=1e-8)


def test_same_module_called_twice_accumulates_parameter_grad():
    rng = np.random.default_rng(1)
    m = prelu64(3)
    x_data = away_from_kinks((5, 3), rng)

    def loss_value():
        with no_grad():
            return float(m(m(x_data)).sum())

    m(m(x_data)).sum().backward()
    np.testing.assert_allclose(m.alpha.grad, numeric_gradient(loss_value, m.alpha.data), rtol=1e-6, atol=1e-8)


def test_residual_block_matches_finite_differences_and_explicit_backward():
    manual_seed(2)
    rng = np.random.default_rng(2)
    block = Residual(Sequential(Linear(4, 4, dtype=np.float64), prelu64(4)))
    x_data = rng.standard_normal((6, 4))
    x = Tensor(x_data, requires_grad=True)
    w = block.block[0].weight

    def loss_value():
        with no_grad():
            return float((block(x_data) * block(x_data)).sum())

    y = block(x)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad, numeric_gradient(loss_value, x_data), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.grad, numeric_gradient(loss_value, w.data), rtol=1e-5, atol=1e-7)

    tape_x, tape_w = x.grad.copy(), w.grad.copy()
    block.zero_grad()
    y = block(x_data)
    gx = block.backward(2 * y.numpy())       # explicit reverse chain, as the guide's modules
    np.testing.assert_allclose(gx.numpy(), tape_x, rtol=1e-12)
    np.testing.assert_allclose(w.grad, tape_w, rtol=1e-12)


def test_loss_built_from_two_modules():
    manual_seed(3)
    rng = np.random.default_rng(3)
    lin, act = Linear(5, 3, dtype=np.float64), prelu64(3)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))

    def total():
        return mse(lin(x), y) + (act(x[:, :3]) * 0.5).sum()

    total().backward()

    def loss_value():
        with no_grad():
            return float(total())

    np.testing.assert_allclose(lin.weight.grad, numeric_gradient(loss_value, lin.weight.data), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lin.bias.grad, numeric_gradient(loss_value, lin.bias.data), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(act.alpha.grad, numeric_gradient(loss_value, act.alpha.data), rtol=1e-6, atol=1e-8)


def test_sequential_explicit_backward_equals_tape():
    manual_seed(4)
    model = Sequential(Linear(6, 5), PReLU.build(C=5), Linear(5, 2))
    x = np.random.default_rng(4).standard_normal((7, 6)).astype(np.float32)
    (model(x) * 1.0).sum().backward()
    tape = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    out = model.forward(x)
    model.backward(np.ones_like(out.numpy()))
    for p, g in zip(model.parameters(), tape):
        np.testing.assert_allclose(p.grad, g, rtol=1e-5, atol=1e-6)


def test_backward_twice_through_the_same_call_is_refused():
    m = PReLU.build(C=2)
    y = m(np.ones((1, 2), np.float32)).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward already ran"):
        y.backward()


def test_no_grad_records_nothing():
    m = PReLU.build(C=2)
    with no_grad():
        y = m(Tensor.ones(3, 2, requires_grad=True)).sum()
    assert y.node is None
    with pytest.raises(RuntimeError, match="not on the tape"):
        y.backward()


def test_no_grad_is_per_thread():
    """Each thread starts recording, whatever another thread's no_grad says."""
    import threading
    m = PReLU.build(C=2)
    seen = {}

    def call(key):
        seen[key] = m(Tensor.ones(3, 2, requires_grad=True)).sum().node is not None

    with no_grad():
        worker = threading.Thread(target=call, args=("thread, main under no_grad",))
        worker.start()
        worker.join()
        call("main under no_grad")
    call("main after no_grad")
    assert seen == {"thread, main under no_grad": True, "main under no_grad": False, "main after no_grad": True}


# ---------------------------------------------------------------- the guide's training test


def test_guide_training_loop():
    losses = pytest.importorskip("layerc.losses")
    mse_loss = losses.mse_loss
    layer_ = PReLU.build(C=10)
    optimizer = SGD(lr=0.01)
    X, y = Tensor.randn(100, 10), Tensor.randn(100, 10)
    initial_alpha = layer_.alpha[0]
    for _ in range(10):
        output = layer_.forward(X)
        loss = mse_loss(output, y)
        loss.backward()
        optimizer.step(layer_.parameters())
    assert layer_.alpha[0] != initial_alpha


def test_guide_training_loop_matches_numpy():
    """The guide's loop (no zero_grad: gradients accumulate, as in PyTorch),
    with the MSE written in tape ops, against the same loop in numpy."""
    manual_seed(5)
    layer_ = PReLU.build(C=10, dtype="float64")
    optimizer = SGD(lr=0.01)
    X, y = Tensor.randn(100, 10, dtype=np.float64), Tensor.randn(100, 10, dtype=np.float64)
    alpha, acc = np.full(10, 0.25), np.zeros(10)
    neg = np.minimum(X.numpy(), 0)
    for _ in range(10):
        output = layer_.forward(X)
        mse(output, y).backward()
        optimizer.step(layer_.parameters())
        pred = np.maximum(X.numpy(), 0) + alpha * neg
        acc += (2 * (pred - y.numpy()) * neg).sum(axis=0) / pred.size
        alpha -= 0.01 * acc
    np.testing.assert_allclose(layer_.alpha.numpy(), alpha, rtol=1e-10)
    assert layer_.alpha[0] != 0.25


# ---------------------------------------------------------------- Tensor basics


def test_constructors_and_flags():
    x = Tensor.randn(2, 3)
    assert x.shape == (2, 3) and x.dtype == np.float32 and not x.requires_grad
    assert (Tensor.zeros_like(x).numpy() == 0).all() and Tensor.zeros_like(x).shape == (2, 3)
    assert (Tensor.ones_like(x.numpy()).numpy() == 1).all()
    assert Tensor.zeros(4, requires_grad=True).requires_grad
    with pytest.raises(TypeError):
        Tensor(np.arange(3), requires_grad=True)
    manual_seed(7)
    a = Tensor.randn(3).numpy()
    manual_seed(7)
    np.testing.assert_array_equal(a, Tensor.randn(3).numpy())


def test_indexing_reads_a_copy_and_differentiates():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    first = x[0]
    x.numpy()[0, 0] = 10.0
    assert first.numpy().tolist() == [1.0, 2.0]
    (x[1] * x[:, 1]).sum().backward()     # x[1,1] read by both
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0], [2.0, 8.0]])


def test_elementwise_ops_on_the_tape():
    data = np.array([0.5, 2.0, -1.5])
    x = Tensor(data, requires_grad=True)
    ((1 - x) / 2.0 + 3.0 / x + x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad, -0.5 - 3.0 / data ** 2 + 3 * data ** 2)
