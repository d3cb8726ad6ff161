"""Losses (layerc.losses): float64 gradient checks, the tape, and torch as an oracle."""
import numpy as np
import pytest

from layerc import check_grad
from layerc import nn
from layerc.losses import (CrossEntropyLoss, CrossEntropySpec, MSELoss, cross_entropy, mse_loss,
                            mse_spec)
from layerc.runtime.tensor import Tensor


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradcheck(reduction):
    check_grad(CrossEntropySpec, N=3, C=7, reduction=reduction, inputs={"target": [0, 6, 3]}).assert_ok()


@pytest.mark.parametrize("rank,sizes", [(2, dict(N=3, D1=7)), (4, dict(N=3, D1=2, D2=5, D3=7))])
def test_mse_gradcheck(rank, sizes):
    check_grad(mse_spec(rank), **sizes).assert_ok()


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    loss = cross_entropy(logits, [2, 1], reduction="sum")
    np.testing.assert_allclose(loss.numpy(), 2000.0 + np.log(3.0), rtol=1e-12)
    assert np.isfinite(loss.numpy())


def test_losses_are_scalars_on_the_tape():
    rng = np.random.default_rng(0)
    layer = nn.Linear(5, 4)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    loss = cross_entropy(layer(Tensor(x)), np.array([1, 3, 0]))
    assert loss.shape == ()
    loss.backward()
    assert layer.weight.grad.shape == (4, 5) and np.abs(layer.weight.grad).sum() > 0
    layer.zero_grad()
    pred = layer(Tensor(x))
    target = rng.standard_normal((3, 4)).astype(np.float32)
    mse_loss(pred, target).backward()
    expected = 2 * (pred.numpy() - target) / pred.numpy().size
    np.testing.assert_allclose(layer.bias.grad, expected.sum(0), rtol=1e-5, atol=1e-7)


def test_loss_modules_backward_and_errors():
    logits = np.random.default_rng(1).standard_normal((4, 3))
    fn = CrossEntropyLoss()
    fn(logits, [0, 1, 2, 0])
    g = fn.backward().numpy()
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)     # softmax - onehot, rows sum to zero
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        fn(logits, [0, 1, 3, 0])
    with pytest.raises(TypeError, match="integer"):
        fn(logits, np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for reduction in ("mean", "sum"):
        logits = (rng.standard_normal((5, 11)) * 10).astype(np.float32)
        target = rng.integers(0, 11, 5)
        x = Tensor(logits, requires_grad=True)
        loss = cross_entropy(x, target, reduction=reduction)
        loss.backward()
        xt = torch.from_numpy(logits).requires_grad_()
        ref = torch.nn.functional.cross_entropy(xt, torch.from_numpy(target), reduction=reduction)
        ref.backward()
        np.testing.assert_allclose(loss.numpy(), ref.item(), rtol=1e-5)
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)

        pred = rng.standard_normal((3, 4, 5)).astype(np.float32)
        target_f = rng.standard_normal((3, 4, 5)).astype(np.float32)
        p = Tensor(pred, requires_grad=True)
        loss = mse_loss(p, target_f, reduction=reduction)
        loss.backward()
        pt = torch.from_numpy(pred).requires_grad_()
        ref = torch.nn.functional.mse_loss(pt, torch.from_numpy(target_f), reduction=reduction)
        ref.backward()
        np.testing.assert_allclose(loss.numpy(), ref.item(), rtol=1e-5)
        np.testing.assert_allclose(p.grad, pt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("targets,position,value", [
    (np.array([0, -1, 2]), 1, -1),
    (np.array([0, 3, 2]), 1, 3),
    (np.array([-9, 7, 2], np.int32), 0, -9),
    (np.array([0, 3, 1], np.uint8), 1, 3),
    (np.array([0, 2, -2], ">i8"), 2, -2),
    (np.array([np.iinfo(np.int64).min, 0, 1]), 0, np.iinfo(np.int64).min),
    ([0, 1, 5], 2, 5),
])
def test_cross_entropy_refuses_class_indices_out_of_range(targets, position, value):
    logits = np.zeros((3, 3), np.float32)
    with pytest.raises(IndexError, match=rf"CrossEntropySpec: target\[{position}\] = {value} is out of range: "
                                         r"target indexes 3 entries, so its values must lie in \[0, 3\)"):
        cross_entropy(logits, targets)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, ">i8", np.uint64])
def test_cross_entropy_takes_every_integer_dtype_in_range(dtype):
    logits = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    targets = np.array([0, 2, 1, 2])
    expected = float(cross_entropy(logits, targets).numpy())
    assert float(cross_entropy(logits, targets.astype(dtype)).numpy()) == expected


def test_loss_backward_default_gradient_is_one_each_time():
    loss_fn = CrossEntropyLoss()
    logits = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    grads = []
    for _ in range(3):
        loss_fn(logits, np.array([0, 2, 1, 2]))
        grads.append(loss_fn.backward().numpy().copy())
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[np.arange(4), [0, 2, 1, 2]] -= 1
    for g in grads:
        np.testing.assert_allclose(g, p / 4, rtol=1e-5, atol=1e-7)
