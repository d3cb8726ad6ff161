"""Optimizers against their update equations in numpy, and against torch.optim
when torch is installed; both calling conventions; learning-rate schedules."""
import math

import numpy as np
import pytest

from layerc import SGD, Adam, AdamW, CosineAnnealingLR, StepLR, Tensor
from layerc.optim_kernels import SGDMomentumUpdate
from layerc.optim_kernels import kernel as _kernel

STEPS = 4


def gradients(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]


def run(optimizer_cls, start, grads, **kw):
    p = Tensor(start.copy(), requires_grad=True)
    view = p.numpy()
    opt = optimizer_cls([p], **kw)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    assert p.numpy() is view           # updated in place
    return view


def sgd_reference(p, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    p, buf = p.copy(), np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_reference(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.8, weight_decay=0.01),
             dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)]
ADAM_CASES = [(Adam, dict(lr=0.01), False), (Adam, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1), False),
              (AdamW, dict(lr=0.01, weight_decay=0.1), True)]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_update_equations(kw):
    start = np.random.default_rng(1).standard_normal((3, 5))
    grads = gradients((3, 5))
    np.testing.assert_allclose(run(SGD, start, grads, **kw), sgd_reference(start, grads, **kw), rtol=1e-12)


@pytest.mark.parametrize("cls,kw,decoupled", ADAM_CASES)
def test_adam_matches_update_equations(cls, kw, decoupled):
    start = np.random.default_rng(2).standard_normal(7)
    grads = gradients(7, seed=3)
    expected = adam_reference(start, grads, decoupled=decoupled, **kw)
    np.testing.assert_allclose(run(cls, start, grads, **kw), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("name,kw", [("SGD", c) for c in SGD_CASES] +
                         [(cls.__name__, kw) for cls, kw, _ in ADAM_CASES])
def test_matches_torch_optim(name, kw):
    torch = pytest.importorskip("torch")
    ours = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[name]
    start = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    grads = gradients((4, 3), seed=5, dtype=np.float32)
    tp = torch.tensor(start.copy(), requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(run(ours, start, grads, **kw), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_guide_form_equals_usual_form_and_skips_params_without_grad():
    start = np.arange(6.0).reshape(2, 3)
    grads = gradients((2, 3))
    a, b, frozen = (Tensor(start.copy(), requires_grad=True) for _ in range(3))
    guide, usual = SGD(lr=0.1, momentum=0.9), SGD([b, frozen], lr=0.1, momentum=0.9)
    for g in grads:
        a.grad, b.grad = g.copy(), g.copy()
        guide.step([a, frozen])
        usual.step()
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(frozen.numpy(), start)
    usual.zero_grad()
    assert b.grad is None


def test_changing_lr_reuses_the_compiled_kernel():
    p = Tensor(np.ones(4), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.5)
    p.grad = np.ones(4)
    opt.step()
    kernel = _kernel(SGDMomentumUpdate, np.float64, nesterov=False)
    opt.lr = 0.01
    opt.step()
    assert _kernel(SGDMomentumUpdate, np.float64, nesterov=False) is kernel
    # velocity after two steps: 1, then 0.5*1 + 1 = 1.5; p = 1 - 0.1*1 - 0.01*1.5
    np.testing.assert_allclose(p.numpy(), 1 - 0.1 - 0.015)


def test_errors():
    with pytest.raises(ValueError, match="learning rate"):
        SGD()
    with pytest.raises(ValueError, match="pass the parameters"):
        SGD(lr=0.1).step()
    with pytest.raises(TypeError, match="Tensors"):
        SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(lr=0.1, nesterov=True)


def test_schedules():
    opt = SGD(lr=1.0)
    step = StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = SGD(lr=1.0)
    cosine = CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [cosine.step() for _ in range(5)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in (1, 2, 3, 4, 4)]
    np.testing.assert_allclose(lrs, expected)
    assert opt.lr == pytest.approx(0.1)


def test_the_compiled_rules_are_the_numpy_rules_traced():
    from layerc import optim_kernels
    from layerc.runtime import optim
    assert optim.UPDATE_RULES["adam"] is optim_kernels.COMPILED_RULES["adam"]
    rng = np.random.default_rng(0)
    param, grad, m, v = (rng.standard_normal(37) for _ in range(4))
    v = np.abs(v)
    scalars = {k: np.array([x]) for k, x in dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
                                                  step_size=0.05, bc2_sqrt=0.3).items()}
    for decoupled in (False, True):
        compiled = optim.UPDATE_RULES["adam"](param, grad, m, v, **scalars, decoupled=decoupled)
        reference = optim.adam_rule(param, grad, m, v, **scalars, decoupled=decoupled)
        for a, b in zip(compiled, reference):
            np.testing.assert_allclose(a, b, rtol=1e-12)
