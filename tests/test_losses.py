"""Losses (layerc.losses): float64 gradient checks of every loss's specs, torch as the
oracle (forward and input gradient, every reduction, several shapes, edge values), the
tape, the plain cross-entropy path, and the errors."""
import numpy as np
import pytest

import layerc.losses
from layerc import check_grad
from layerc import nn
from layerc.compiler.schedule import SHORT_REDUCTION
from layerc.loss_specs import CLASS_INDEX, POINTWISE, PROBABILITIES
from layerc.losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, CrossEntropySpec, HuberLoss,
                           KLDivLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss, binary_cross_entropy,
                           binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div, l1_loss,
                           mse_loss, mse_spec, nll_loss, smooth_l1_loss)
from layerc.runtime import isa
from layerc.runtime.tensor import Tensor

RNG = np.random.default_rng(7)


def _uniform(low, high, *shape):
    return RNG.uniform(low, high, shape)


# ---------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradcheck(reduction):
    check_grad(CrossEntropySpec, N=3, C=7, reduction=reduction, inputs={"target": [0, 6, 3]}).assert_ok()


@pytest.mark.parametrize("level", isa.supported())
@pytest.mark.parametrize("classes", [3, 10, 32])
def test_cross_entropy_gradcheck_with_classes_free_at_build_time(classes, level, monkeypatch):
    """Few classes run the rows in lanes (a branch at run time), many along the row."""
    monkeypatch.setenv(isa.ENV, level)
    module = CrossEntropySpec.build(dtype=np.float64)
    targets = RNG.integers(0, classes, 9)
    check_grad(CrossEntropySpec, module=module, N=9, C=classes, inputs={"target": targets}).assert_ok()


# one spec, [...]: E binds the product of the ... axes (the runtime collapses them into one)
@pytest.mark.parametrize("rank,sizes", [(2, dict(E=3 * 7)), (4, dict(E=3 * 2 * 5 * 7))])
def test_mse_gradcheck(rank, sizes):
    check_grad(mse_spec(rank), **sizes).assert_ok()


ROWS = dict(N=3, C=4, E=2)                  # [N, C, D1] inputs: targets and masks are [N, 1, D1]
GRAD_CASES = {
    "l1": (POINTWISE["L1Loss"](2), dict(E=3 * 4), {}),
    "huber": (POINTWISE["HuberLoss"](2), dict(E=3 * 4, settings=(("delta", 0.5),)), {}),
    "smooth_l1": (POINTWISE["SmoothL1Loss"](3), dict(E=2 * 3 * 2, reduction="sum",
                                                     settings=(("beta", 0.7),)), {}),
    "kl_div": (POINTWISE["KLDivLoss"](2), dict(N=3, E=4, reduction="batchmean"),
               {"target": _uniform(0.1, 1, 3, 4)}),
    "kl_div log_target": (POINTWISE["KLDivLoss"](2), dict(N=3, E=4, reduction="none",
                                                          settings=(("log_target", True),)), {}),
    # BCE's gradient is torch's formula (a spec-written backward): checked against finite differences
    "bce weighted": (POINTWISE["BCELoss"](2, ("weight",)), dict(E=3 * 4),
                     {"input": _uniform(0.05, 0.95, 3, 4), "target": _uniform(0, 1, 3, 4),
                      "weight": _uniform(0.5, 2, 3, 4)}),
    "bce none": (POINTWISE["BCELoss"](1), dict(E=5, reduction="none"),
                 {"input": _uniform(0.05, 0.95, 5), "target": _uniform(0, 1, 5)}),
    "bce with logits": (POINTWISE["BCEWithLogitsLoss"](3, ("weight", "pos_weight")), dict(E=2 * 3 * 2),
                        {"target": _uniform(0, 1, 12), "pos_weight": _uniform(0.5, 3, 12)}),
    "cross entropy weighted, smoothed, a row ignored": (
        CLASS_INDEX[False](3), dict(ROWS, settings=(("label_smoothing", 0.2),)),
        {"target": [[[0, 3]], [[2, 2]], [[1, 0]]], "weight": [0.5, 1, 2, 1.5],
         "valid": [[[1, 1]], [[0, 1]], [[1, 1]]]}),
    "cross entropy unbatched": (CLASS_INDEX[False](1), dict(C=4, reduction="none"),
                                {"target": [2], "weight": [1, 2, 3, 4], "valid": [1]}),
    "nll": (CLASS_INDEX[True](2), dict(N=3, C=4, reduction="sum"),
            {"input": RNG.standard_normal((3, 4)), "target": [[3], [0], [1]], "weight": [1, 2, 3, 4], "valid": [[1], [1], [0]]}),
    "cross entropy with probabilities": (PROBABILITIES(3), dict(ROWS, settings=(("label_smoothing", 0.1),)),
                                         {"target": _uniform(0, 1, 3, 4, 2), "weight": [1, 2, 0.5, 1]}),
}


@pytest.mark.parametrize("case", GRAD_CASES)
def test_loss_gradcheck(case):
    spec, bindings, inputs = GRAD_CASES[case]
    check_grad(spec, inputs=inputs, **bindings).assert_ok()


# ---------------------------------------------------------------- torch as the oracle


def _agree(ours, theirs, x, *args, rtol=1e-6, atol=1e-12, **kwargs):
    """Forward and input gradient of ``ours`` and ``theirs`` (torch.nn.functional) at ``x``,
    with an upstream gradient of the loss's shape; array arguments go to torch as tensors."""
    torch = pytest.importorskip("torch")
    as_torch = lambda v: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v  # noqa: E731
    xt = torch.tensor(x, requires_grad=True)
    reference = theirs(xt, *map(as_torch, args), **{k: as_torch(v) for k, v in kwargs.items()})
    upstream = RNG.standard_normal(reference.shape).astype(x.dtype)
    reference.backward(torch.from_numpy(upstream))
    xl = Tensor(x, requires_grad=True)
    loss = ours(xl, *args, **kwargs)
    loss.backward(upstream)
    np.testing.assert_allclose(loss.numpy(), reference.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(xl.grad, xt.grad.numpy(), rtol=rtol, atol=atol)
    return loss


REDUCTIONS = ["mean", "sum", "none"]
# every reduction at one rank, one reduction at each other rank (each rank and reduction compiles)
SHAPES = [((3, 4), "mean"), ((3, 4), "sum"), ((3, 4), "none"), ((7,), "mean"), ((2, 3, 5), "none")]


@pytest.mark.torch
@pytest.mark.parametrize("shape,reduction", SHAPES, ids=str)
def test_regression_losses_match_torch(shape, reduction):
    F = pytest.importorskip("torch").nn.functional
    x = RNG.standard_normal(shape)
    target = RNG.standard_normal(shape)
    flat = target.reshape(-1)
    flat[:3] = x.reshape(-1)[:3] + [0.0, 0.5, -0.5]   # at a kink: d = 0 and d = +-delta = +-beta
    for ours, theirs, options in [(mse_loss, F.mse_loss, {}), (l1_loss, F.l1_loss, {}),
                                  (huber_loss, F.huber_loss, {"delta": 0.5}),
                                  (smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5}),
                                  (smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0})]:
        _agree(ours, theirs, x, target, reduction=reduction, **options)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch_at_0_and_1(reduction):
    F = pytest.importorskip("torch").nn.functional
    p = _uniform(0.01, 0.99, 3, 4)
    target = _uniform(0, 1, 3, 4)
    p[0], target[0] = [0, 1, 0, 1], [1, 0, 0, 1]         # log(0) clamps at -100: a loss of 100
    p[1, :2], target[1, :2] = [0, 1], [0.3, 0.6]
    # torch's gradient (x - t) / max(x (1 - x), 1e-12) is about 1e12 at 0 and 1
    _agree(binary_cross_entropy, F.binary_cross_entropy, p, target, reduction=reduction, rtol=1e-7)
    weight = _uniform(0.5, 2, 4)                          # broadcasts over the rows
    _agree(binary_cross_entropy, F.binary_cross_entropy, p[2:], target[2:], weight, reduction=reduction)
    _agree(binary_cross_entropy, F.binary_cross_entropy, _uniform(0.01, 0.99, 6), _uniform(0, 1, 6),
           reduction=reduction)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_with_logits_matches_torch(reduction, dtype):
    F = pytest.importorskip("torch").nn.functional
    tolerances = dict(rtol=1e-6, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    x = (RNG.standard_normal((3, 5)) * 4).astype(dtype)
    x[0] = [100, -100, 0, 30, -30]
    target = _uniform(0, 1, 3, 5).astype(dtype)
    target[0, :3] = [0, 1, 1]
    pos_weight, weight = _uniform(0.5, 3, 5).astype(dtype), _uniform(0.5, 2, 3, 1).astype(dtype)
    loss = binary_cross_entropy_with_logits
    _agree(loss, F.binary_cross_entropy_with_logits, x, target, reduction=reduction, **tolerances)
    _agree(loss, F.binary_cross_entropy_with_logits, x, target, weight, reduction=reduction,
           pos_weight=pos_weight, **tolerances)
    _agree(loss, F.binary_cross_entropy_with_logits, x[0], target[0], reduction=reduction, **tolerances)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")   # torch's note on its own 'mean'
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
def test_kl_div_matches_torch(reduction):
    F = pytest.importorskip("torch").nn.functional
    log_p = np.log(RNG.dirichlet(np.ones(5), 4))
    q = RNG.dirichlet(np.ones(5), 4)
    q[0, :2] = 0                                          # 0 * log 0 is 0 (torch's xlogy)
    _agree(kl_div, F.kl_div, log_p, q, reduction=reduction)
    _agree(kl_div, F.kl_div, log_p, np.log(q + 0.1), reduction=reduction, log_target=True)
    _agree(kl_div, F.kl_div, log_p[:, :, None] * np.ones(2), q[:, :, None] * np.ones(2), reduction=reduction)


def _class_targets(shape, classes, ignored=()):
    target = RNG.integers(0, classes, shape[:1] + shape[2:] if len(shape) > 1 else ())
    target.reshape(-1)[list(ignored)] = -100
    return target


CLASS_SHAPES = [((4, 5), "mean"), ((4, 5), "sum"), ((4, 5), "none"), ((5,), "mean"), ((3, 5, 2), "sum"),
                ((2, 5, 2, 3), "none")]


@pytest.mark.torch
@pytest.mark.parametrize("shape,reduction", CLASS_SHAPES, ids=str)
def test_cross_entropy_and_nll_match_torch(shape, reduction):
    F = pytest.importorskip("torch").nn.functional
    x = RNG.standard_normal(shape) * 3
    weight = _uniform(0.5, 2, 5)
    target = _class_targets(shape, 5)
    ignored = _class_targets(shape, 5, ignored=[0] if len(shape) == 1 else [0, 3])
    _agree(cross_entropy, F.cross_entropy, x, target, reduction=reduction)
    _agree(cross_entropy, F.cross_entropy, x, ignored, weight, reduction=reduction, label_smoothing=0.2)
    _agree(nll_loss, F.nll_loss, x, ignored, weight, reduction=reduction)
    _agree(nll_loss, F.nll_loss, x, target, reduction=reduction)
    probabilities = RNG.dirichlet(np.ones(5), target.size).reshape(target.shape + (5,))
    probabilities = np.moveaxis(probabilities, -1, min(1, len(shape) - 1)).copy()
    _agree(cross_entropy, F.cross_entropy, x, probabilities, weight, reduction=reduction, label_smoothing=0.1)


@pytest.mark.torch
@pytest.mark.parametrize("classes", [1, 2, 15, 16, 33])
@pytest.mark.parametrize("shape", [(6,), (6, 3)], ids=["[N, C]", "[N, C, d]"])
def test_few_classes_build_for_their_count_and_match_torch(classes, shape):
    """A class axis shorter than a short row is bound at build time (its rows run
    in SIMD lanes), a longer one left free; the loss and its gradient are torch's
    either way, weighted and not."""
    F = pytest.importorskip("torch").nn.functional
    full = (shape[0], classes) + shape[1:]
    x = RNG.standard_normal(full) * 3
    target = RNG.integers(0, classes, (shape[0],) + shape[1:])
    weight = _uniform(0.5, 2, classes)
    for loss, functional, args in ((CrossEntropyLoss(), F.cross_entropy, ()),
                                   (NLLLoss(weight), F.nll_loss, (weight,))):
        _agree(lambda xl, t, *w: loss(xl, t), functional, x, target, *args)
        assert loss._active.compiled.sizes.get("C") == (classes if classes < SHORT_REDUCTION else None)
    assert layerc.losses.SHORT_CLASSES == SHORT_REDUCTION


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_edge_values_match_torch(reduction):
    F = pytest.importorskip("torch").nn.functional
    logits = np.array([[100.0, -100, 0, 3], [-100, 100, 100, 0], [0, 0, 0, 0]])
    _agree(cross_entropy, F.cross_entropy, logits, np.array([1, 0, 2]), reduction=reduction)
    _agree(cross_entropy, F.cross_entropy, logits, np.array([1, 0, -100]), reduction=reduction,
           label_smoothing=0.3)
    _agree(cross_entropy, F.cross_entropy, logits.astype(np.float32), np.array([1, -100, 2]),
           reduction=reduction, rtol=1e-5, atol=1e-6)
    # an ignore_index that is a class: rows of class 0 are left out
    _agree(cross_entropy, F.cross_entropy, logits, np.array([0, 1, 0]), reduction=reduction, ignore_index=0)
    _agree(nll_loss, F.nll_loss, logits, np.array([2, 2, 3]), reduction=reduction, ignore_index=2)


@pytest.mark.torch
@pytest.mark.parametrize("ours,theirs,options", [(cross_entropy, "cross_entropy", {}),
                                                 (cross_entropy, "cross_entropy", {"label_smoothing": 0.2}),
                                                 (nll_loss, "nll_loss", {})])
def test_every_row_ignored_gives_nan_mean_and_zero_gradient_as_torch(ours, theirs, options):
    F = pytest.importorskip("torch").nn.functional
    x = RNG.standard_normal((3, 4))
    loss = _agree(ours, getattr(F, theirs), x, np.full(3, -100), **options)
    assert np.isnan(loss.numpy())
    _agree(ours, getattr(F, theirs), x, np.full(3, -100), reduction="sum", **options)


# ---------------------------------------------------------------- modules, the tape, the plain path


def test_module_forms_equal_the_functional_forms():
    x = RNG.standard_normal((4, 3))
    target = np.array([2, 0, -100, 1])
    weight = np.array([1.0, 2.0, 0.5])
    module = CrossEntropyLoss(weight, label_smoothing=0.1, reduction="sum")
    assert float(module(x, target).numpy()) == float(cross_entropy(x, target, weight, label_smoothing=0.1,
                                                                   reduction="sum").numpy())
    grad = module.backward().numpy()
    assert grad.shape == (4, 3) and not grad[2].any()          # the ignored row gets no gradient
    # the functional forms share one module per setting; a weight given once is not kept
    assert cross_entropy(x, target).numpy() != cross_entropy(x, target, weight).numpy()
    assert float(cross_entropy(x, target).numpy()) == float(CrossEntropyLoss()(x, target).numpy())
    probabilities, logits = _uniform(0.05, 0.95, 4, 3), RNG.standard_normal((4, 3))
    pairs = [(BCELoss(weight), binary_cross_entropy(probabilities, probabilities ** 2, weight), probabilities),
             (BCEWithLogitsLoss(pos_weight=weight),
              binary_cross_entropy_with_logits(logits, probabilities, pos_weight=weight), logits),
             (NLLLoss(ignore_index=1), nll_loss(logits, target.clip(0), ignore_index=1), logits),
             (HuberLoss(delta=0.3), huber_loss(logits, probabilities, delta=0.3), logits),
             (SmoothL1Loss(beta=0.3), smooth_l1_loss(logits, probabilities, beta=0.3), logits),
             (KLDivLoss("batchmean"), kl_div(logits, probabilities, "batchmean"), logits),
             (L1Loss(), l1_loss(logits, probabilities), logits)]
    targets = [probabilities ** 2, probabilities, target.clip(0), probabilities, probabilities, probabilities,
               probabilities]
    for (module, expected, x_), t in zip(pairs, targets):
        assert float(module(x_, t).numpy()) == float(expected.numpy()), module


@pytest.mark.parametrize("loss, plain_spec", [(CrossEntropyLoss, "CrossEntropySpec"), (NLLLoss, "NLLSpec")])
def test_plain_class_losses_run_their_own_spec_and_give_way_for_options(loss, plain_spec):
    """The plain case (no weight, no smoothing, no ignored row) keeps a spec of its own
    (cross entropy's stores its sum of exponentials as it sums; NLL's picks one element
    a row); every option takes the general one."""
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    loss_fn = loss()
    loss_fn(x, np.array([0, 1, 2, 0]))
    assert loss_fn._active.name == plain_spec
    plain = loss_fn.backward().numpy().copy()
    loss_fn(x, np.array([0, 1, 2, -100]))
    assert loss_fn._active.name == loss.__name__
    np.testing.assert_allclose(loss_fn.backward().numpy()[:3], plain[:3] * 4 / 3, rtol=1e-6)
    options = [loss(np.ones(3)), loss(ignore_index=2)] + ([loss(label_smoothing=0.1)] if loss is CrossEntropyLoss else [])
    for module in options:
        module(x, np.array([0, 1, 2, 0]))
        assert module._active.name == loss.__name__


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_plain_nll_gradcheck(reduction):
    from layerc.loss_specs import NLLSpec
    check_grad(NLLSpec, N=4, C=5, reduction=reduction, inputs={"target": [0, 4, 2, 2]}).assert_ok()


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
    layer.zero_grad()
    per_element = binary_cross_entropy_with_logits(layer(Tensor(x)), (target > 0).astype(np.float32),
                                                   reduction="none")
    assert per_element.shape == (3, 4)
    per_element.backward(np.ones((3, 4), np.float32))
    assert np.abs(layer.bias.grad).sum() > 0


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
    none = L1Loss(reduction="none")
    none(logits, logits * 2)
    with pytest.raises(ValueError, match=r"L1Loss: backward\(\) of reduction='none' needs grad_output"):
        none.backward()


X23 = np.zeros((2, 3))
ERRORS = [
    (lambda: cross_entropy(X23, np.array([0, 1, 2])), ValueError,
     r"CrossEntropyLoss: target of shape \(3,\) for an input of shape \(2, 3\); expected class indices "
     r"of shape \(2,\)"),
    (lambda: cross_entropy(X23, np.zeros((3, 3))), ValueError,
     r"CrossEntropyLoss: target of shape \(3, 3\) and dtype float64 for an input of shape \(2, 3\); expected "
     r"integer class indices of shape \(2,\) or float class probabilities of shape \(2, 3\)"),
    (lambda: nll_loss(X23, np.zeros(2)), TypeError,
     r"NLLLoss: target must hold integer class indices of shape \(2,\), got dtype float64"),
    (lambda: cross_entropy(X23, np.array([0, 1]), np.ones(4)), ValueError,
     r"CrossEntropyLoss: weight must hold one real weight per class, shape \(3,\); got shape \(4,\)"),
    (lambda: cross_entropy(np.zeros(()), np.array(0)), ValueError, r"CrossEntropyLoss: input must be \[C\]"),
    (lambda: cross_entropy(X23, np.full((2, 3), 0.5), ignore_index=1), ValueError,
     r"CrossEntropyLoss: ignore_index must be negative with probability targets"),
    (lambda: cross_entropy(X23, np.array([-100, 7])), IndexError,
     r"CrossEntropyLoss: target\[1, 0\] = 7 is out of range"),
    (lambda: CrossEntropyLoss("sum"), TypeError, r"CrossEntropyLoss: weight must be an array, got 'sum'"),
    (lambda: CrossEntropyLoss(label_smoothing=1.5), ValueError,
     r"CrossEntropyLoss: label_smoothing must be in \[0, 1\], got 1.5"),
    (lambda: NLLLoss(ignore_index=0.5), ValueError, r"NLLLoss: ignore_index must be an integer, got 0.5"),
    (lambda: binary_cross_entropy(X23, np.zeros((3, 2))), ValueError,
     r"BCELoss: target of shape \(3, 2\) for an input of shape \(2, 3\); expected shape \(2, 3\)"),
    (lambda: binary_cross_entropy_with_logits(X23, X23, pos_weight=np.ones(4)), ValueError,
     r"BCEWithLogitsLoss: pos_weight of shape \(4,\) does not broadcast to the input's shape \(2, 3\)"),
    (lambda: mse_loss(X23, np.array([["a"] * 3] * 2)), TypeError, r"MSELoss: target must hold real numbers"),
    (lambda: l1_loss(X23, X23, reduction="avg"), ValueError,
     r"L1Loss: reduction must be 'mean' or 'sum' or 'none', got 'avg'"),
    (lambda: MSELoss("batchmean"), ValueError, r"MSELoss: reduction must be"),
    (lambda: HuberLoss(delta=0), ValueError, r"HuberLoss: delta must be > 0, got 0"),
    (lambda: SmoothL1Loss(beta=-1), ValueError, r"SmoothL1Loss: beta must be >= 0, got -1"),
]


@pytest.mark.parametrize("call,error,match", ERRORS)
def test_losses_name_the_loss_the_argument_and_what_was_expected(call, error, match):
    with pytest.raises(error, match=match):
        call()


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
    assert float(cross_entropy(logits, targets.astype(dtype), np.ones(3)).numpy()) == pytest.approx(expected)


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
