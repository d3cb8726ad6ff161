"""FocalLoss and MultiHeadAttention (examples/custom_layers): float64 gradient
checks on odd sizes, numpy references, and agreement with PyTorch (a focal loss
written in torch; torch.nn.MultiheadAttention) when torch is installed."""
import importlib.util
import math
import pathlib

import numpy as np
import pytest

from layerc import check_grad

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load(name):
    path = ROOT / "examples" / "custom_layers" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"layerc_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


focal = load("focal_loss")
attention = load("attention_layer")


# ---------------------------------------------------------------- focal loss


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (0.0, 1.0), (1.5, 0.5), (3.0, 0.25)])
def test_focal_loss_gradcheck_odd_sizes(gamma, alpha):
    targets = np.array([4, 0, 2, 2, 1, 3, 0])
    report = check_grad(focal.FocalLossSpec, N=7, C=5, gamma=gamma, alpha=alpha, inputs={"targets": targets})
    assert report.ok, str(report)
    assert list(report.errors) == ["logits"]        # integer targets are not differentiated


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_focal_loss_matches_numpy(dtype, rtol):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((9, 3)) * 3
    targets = rng.integers(0, 3, 9)
    loss = focal.FocalLoss(alpha=0.25, gamma=2.0, dtype=dtype)
    got = float(loss(logits.astype(dtype), targets).numpy())
    assert got == pytest.approx(focal.focal_loss_numpy(logits, targets), rel=rtol)


def test_focal_loss_is_stable_for_extreme_logits():
    loss = focal.FocalLoss(dtype=np.float32)
    logits = np.array([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]], np.float32)
    targets = np.array([1, 1])
    value = float(loss(logits, targets).numpy())
    # sample 0: log p_t = -200, p_t underflows; sample 1: p_t = 1, loss 0
    assert np.isfinite(value) and value == pytest.approx(0.25 * 200 / 2, rel=1e-6)
    grad = loss.backward(np.ones((), np.float32)).numpy()
    assert np.all(np.isfinite(grad))


def test_focal_loss_gamma_zero_is_weighted_cross_entropy():
    rng = np.random.default_rng(4)
    logits, targets = rng.standard_normal((5, 4)), np.array([0, 1, 2, 3, 0])
    loss = focal.FocalLoss(alpha=1.0, gamma=0.0, dtype=np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    ce = -np.mean(z[np.arange(5), targets] - np.log(np.exp(z).sum(axis=1)))
    assert float(loss(logits, targets).numpy()) == pytest.approx(ce, rel=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_loss_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((11, 7)) * 2).astype(dtype)
    targets = rng.integers(0, 7, 11)
    alpha, gamma = 0.25, 2.0

    z = torch.tensor(logits, requires_grad=True)
    logp_t = F.log_softmax(z, dim=1).gather(1, torch.tensor(targets)[:, None]).squeeze(1)
    expected = (-alpha * (1 - logp_t.exp()) ** gamma * logp_t).mean()
    expected.backward()

    loss = focal.FocalLoss(alpha=alpha, gamma=gamma, dtype=dtype)
    got = loss(logits, targets)
    grad = loss.backward(np.ones((), dtype))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), expected.detach().numpy(), **tol)
    np.testing.assert_allclose(grad.numpy(), z.grad.numpy(), **tol)


# ---------------------------------------------------------------- attention

E, H = 6, 3         # one embedding size (odd head count) for every test: fewer compiles


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradcheck_odd_sizes(causal):
    report = check_grad(attention.MultiHeadAttentionSpec, B=3, S=5, E=E, num_heads=H, causal=causal)
    assert report.ok, str(report)
    assert set(report.errors) == {"x"} | {f"{p}_{w}" for p in attention.PROJECTIONS for w in ("weight", "bias")}


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_numpy(causal):
    rng = np.random.default_rng(6)
    mha = attention.MultiHeadAttention(embed_dim=E, num_heads=H, causal=causal, dtype=np.float64)
    for _, p in mha.named_parameters():
        p.numpy()[...] = rng.standard_normal(p.shape) * 0.4
    x = rng.standard_normal((3, 7, E))
    params = {n: p.numpy() for n, p in mha.named_parameters()}
    np.testing.assert_allclose(mha(x).numpy(), attention.attention_numpy(x, params, H, causal), rtol=1e-10,
                               atol=1e-12)


def test_causal_attention_does_not_look_ahead():
    rng = np.random.default_rng(7)
    mha = attention.MultiHeadAttention(embed_dim=E, num_heads=H, causal=True, dtype=np.float64)
    x = rng.standard_normal((1, 6, E))
    y = mha(x).numpy()
    x2 = x.copy()
    x2[0, 4:] += 10.0                       # change the future
    y2 = mha(x2).numpy()
    np.testing.assert_allclose(y2[0, :4], y[0, :4], rtol=1e-12)
    assert not np.allclose(y2[0, 4:], y[0, 4:])


def test_attention_softmax_is_stable_for_large_scores():
    mha = attention.MultiHeadAttention(embed_dim=E, num_heads=H, dtype=np.float32)
    for _, p in mha.named_parameters():
        p.numpy()[...] = 0.0
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        getattr(mha, name).weight.numpy()[...] = np.eye(E) * (30.0 if name in ("q_proj", "k_proj") else 1.0)
    x = np.random.default_rng(8).standard_normal((2, 5, E)).astype(np.float32) * 3
    y = mha(x).numpy()                      # scores ~ 1e4: exp would overflow without the max
    assert np.all(np.isfinite(y))


def _torch_mha(torch, mha, causal, dtype):
    E, H = mha.embed_dim, mha.num_heads
    ref = torch.nn.MultiheadAttention(E, H, bias=True, batch_first=True, dtype=dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate(
            [getattr(mha, p).weight.numpy() for p in ("q_proj", "k_proj", "v_proj")])))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate(
            [getattr(mha, p).bias.numpy() for p in ("q_proj", "k_proj", "v_proj")])))
        ref.out_proj.weight.copy_(torch.tensor(mha.out_proj.weight.numpy()))
        ref.out_proj.bias.copy_(torch.tensor(mha.out_proj.bias.numpy()))
    return ref


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_matches_torch(causal, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    B, S = 3, 7
    mha = attention.MultiHeadAttention(embed_dim=E, num_heads=H, causal=causal, dtype=dtype)
    for _, p in mha.named_parameters():
        p.numpy()[...] = rng.standard_normal(p.shape) * 0.3
    x = rng.standard_normal((B, S, E)).astype(dtype)
    gy = rng.standard_normal((B, S, E)).astype(dtype)

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    ref = _torch_mha(torch, mha, causal, tdtype)
    xt = torch.tensor(x, requires_grad=True)
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1) if causal else None
    yt, _ = ref(xt, xt, xt, attn_mask=mask, need_weights=False)
    yt.backward(torch.tensor(gy))

    y = mha(x)
    gx = mha.backward(gy)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), **tol)
    w_grad = ref.in_proj_weight.grad.numpy()
    b_grad = ref.in_proj_bias.grad.numpy()
    for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
        np.testing.assert_allclose(getattr(mha, name).weight.grad, w_grad[k * E:(k + 1) * E], **tol,
                                   err_msg=f"{name}.weight.grad")
        np.testing.assert_allclose(getattr(mha, name).bias.grad, b_grad[k * E:(k + 1) * E], **tol,
                                   err_msg=f"{name}.bias.grad")
    np.testing.assert_allclose(mha.out_proj.weight.grad, ref.out_proj.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(mha.out_proj.bias.grad, ref.out_proj.bias.grad.numpy(), **tol)


@pytest.mark.torch
def test_attention_matches_torch_written_math():
    """The same attention written out in torch ops (scaled dot product, softmax, heads)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    B, S = 2, 5
    D = E // H
    mha = attention.MultiHeadAttention(embed_dim=E, num_heads=H, causal=True, dtype=np.float64)
    for _, p in mha.named_parameters():
        p.numpy()[...] = rng.standard_normal(p.shape) * 0.3
    params = {n: torch.tensor(p.numpy(), requires_grad=True) for n, p in mha.named_parameters()}
    x = rng.standard_normal((B, S, E))
    xt = torch.tensor(x, requires_grad=True)

    def proj(name, t):
        return t @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    def heads(t):
        return t.reshape(B, S, H, D).transpose(1, 2)

    q, k, v = (heads(proj(n, xt)) for n in ("q_proj", "k_proj", "v_proj"))
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    scores = scores.masked_fill(torch.triu(torch.ones(S, S, dtype=torch.bool), 1), float("-inf"))
    out = proj("out_proj", (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, S, E))
    out.sum().backward()

    np.testing.assert_allclose(mha(x).numpy(), out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mha.backward(np.ones((B, S, E))).numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in mha.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
