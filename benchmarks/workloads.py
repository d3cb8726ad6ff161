"""The benchmark workloads: first the original nine (for each, one
forward+backward step in layerc, in hand-written numpy, and in PyTorch eager
when installed), then every built-in layer at several shapes and a user's
index-notation contraction (``layer_workloads``), then whole training steps
(``training``).

A workload is a ``Workload``; ``make(quick)`` builds its data and returns the
steps as zero-argument callables, plus the bytes or flops one step must move or
compute (for GB/s, GFLOP/s and the fraction of the machine's limit).
"""
from __future__ import annotations

import numpy as np

from .common import F32, Steps, Workload, as_torch as _t, rng as _rng, torch
from .layer_workloads import LAYER_WORKLOADS
from .training import TRAINING_WORKLOADS


# ---------------------------------------------------------------- memory-bound


def prelu(n, c):
    def make(quick):
        from .specs import PReLU2D
        nn = n // 8 if quick else n
        x = _rng().standard_normal((nn, c), F32)
        gy = _rng().standard_normal((nn, c), F32)
        alpha = np.full(c, 0.25, F32)
        m = PReLU2D.build(C=c, K=c)

        def lc():
            m.zero_grad()
            m.forward(x)
            m.backward(gy)

        def ref():
            neg = np.minimum(x, 0)
            np.maximum(x, 0) + alpha * neg
            gx = np.where(x > 0, gy, gy * alpha)
            (gy * neg).sum(0)
            return gx

        tstep = None
        if torch is not None:
            tx, ta, tg = _t(x, True), _t(alpha, True), _t(gy)

            def tstep():
                tx.grad = ta.grad = None
                torch.nn.functional.prelu(tx, ta).backward(tg)
        return Steps(lc, ref, tstep, bytes=5 * x.nbytes, build=f"PReLU2D.build(C={c}, K={c})")
    return make


def scaled(n, c):
    def make(quick):
        from .specs import Scaled
        nn = n // 8 if quick else n
        x = _rng().standard_normal((nn, c), F32)
        gy = _rng().standard_normal((nn, c), F32)
        s = np.ones(c, F32)
        m = Scaled.build(C=c)

        def lc():
            m.zero_grad()
            m.forward(x)
            m.backward(gy)

        def ref():
            x * s
            (gy * x).sum(0)
            return gy * s

        tstep = None
        if torch is not None:
            tx, ts, tg = _t(x, True), _t(s, True), _t(gy)

            def tstep():
                tx.grad = ts.grad = None
                (tx * ts).backward(tg)
        return Steps(lc, ref, tstep, bytes=5 * x.nbytes, build=f"Scaled.build(C={c})")
    return make


# ---------------------------------------------------------------- contractions


def linear(n, i, o):
    def make(quick):
        from .specs import LinearSpec
        nn = max(n // 4, 32) if quick else n
        x = _rng().standard_normal((nn, i), F32)
        gy = _rng().standard_normal((nn, o), F32)
        m = LinearSpec.build(I=i, O=o)
        w, b = m.weight.data, m.bias.data

        def lc():
            m.zero_grad()
            m.forward(x)
            m.backward(gy)

        def ref():
            x @ w.T + b
            gy.T @ x
            gy.sum(0)
            return gy @ w

        tstep = None
        if torch is not None:
            tx, tw, tb, tg = _t(x, True), _t(w.copy(), True), _t(b.copy(), True), _t(gy)

            def tstep():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.linear(tx, tw, tb).backward(tg)
        return Steps(lc, ref, tstep, flops=3 * 2.0 * nn * i * o, build=f"LinearSpec.build(I={i}, O={o})")
    return make


def attention(b, t, d, heads):
    def make(quick):
        from .specs import MultiHeadAttentionSpec
        bb = 2 if quick else b
        x = _rng().standard_normal((bb, t, d), F32)
        gy = _rng().standard_normal((bb, t, d), F32)
        m = MultiHeadAttentionSpec.build(S=t, E=d, num_heads=heads, causal=False)
        ws = {f"{kind}{n}": m._parameters[f"{proj}_{name}"].data
              for n, proj in zip("qkvo", ("q_proj", "k_proj", "v_proj", "out_proj"))
              for kind, name in (("w", "weight"), ("b", "bias"))}

        def lc():
            m.zero_grad()
            m.forward(x)
            m.backward(gy)

        def ref():
            return _attention_numpy(x, gy, ws, heads)

        tstep = None
        if torch is not None:
            tx, tg = _t(x, True), _t(gy)
            tw = {k: _t(v.copy(), True) for k, v in ws.items()}
            mha = torch.nn.functional.multi_head_attention_forward

            def tstep():
                tx.grad = None
                for v in tw.values():
                    v.grad = None
                q = tx.transpose(0, 1)
                bias = torch.cat([tw["bq"], tw["bk"], tw["bv"]])
                y, _ = mha(q, q, q, d, heads, None, bias, None, None, False, 0.0, tw["wo"], tw["bo"],
                           need_weights=False, use_separate_proj_weight=True, q_proj_weight=tw["wq"],
                           k_proj_weight=tw["wk"], v_proj_weight=tw["wv"])
                y.transpose(0, 1).backward(tg)
        flops = 3 * 2.0 * bb * t * (4 * d * d + 2 * t * d)
        return Steps(lc, ref, tstep, flops=flops,
                     build=f"MultiHeadAttentionSpec.build(S={t}, E={d}, num_heads={heads}, causal=False)")
    return make


def _attention_numpy(x, gy, w, heads):
    """Forward and backward of multi-head self-attention, by hand."""
    b, t, d = x.shape
    hd = d // heads
    x2 = x.reshape(b * t, d)

    def split(a):
        return a.reshape(b, t, heads, hd).transpose(0, 2, 1, 3)

    q, k, v = (split(x2 @ w[f"w{n}"].T + w[f"b{n}"]) for n in "qkv")
    s = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(hd))
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(b * t, d)
    o @ w["wo"].T + w["bo"]
    g = gy.reshape(b * t, d)
    g @ w["wo"], g.T @ o, g.sum(0)
    go = split(g @ w["wo"])
    gp = go @ v.transpose(0, 1, 3, 2)
    gv = p.transpose(0, 1, 3, 2) @ go
    gs = p * (gp - (gp * p).sum(-1, keepdims=True)) * np.float32(1 / np.sqrt(hd))
    gq, gk = gs @ k, gs.transpose(0, 1, 3, 2) @ q
    gx = 0
    for n, gh in (("q", gq), ("k", gk), ("v", gv)):
        g2 = gh.transpose(0, 2, 1, 3).reshape(b * t, d)
        gx = gx + g2 @ w[f"w{n}"]
        g2.T @ x2, g2.sum(0)
    return gx


# ---------------------------------------------------------------- losses


def _log_softmax_numpy(z):
    m = z.max(1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(1, keepdims=True)
    return z - m - np.log(s), e / s


def cross_entropy(n, k):
    def make(quick):
        from .specs import SoftmaxCrossEntropy
        nn = n // 8 if quick else n
        z = _rng().standard_normal((nn, k), F32)
        tgt = _rng().integers(0, k, (nn, 1)).astype(np.int64)
        m = SoftmaxCrossEntropy.build(K=k)
        one = np.ones((), F32)

        def lc():
            m.forward(z, tgt)
            m.backward(one)

        rows = np.arange(nn)

        def ref():
            logp, p = _log_softmax_numpy(z)
            -logp[rows, tgt[:, 0]].mean()
            p[rows, tgt[:, 0]] -= 1
            p /= nn
            return p

        tstep = None
        if torch is not None:
            tz, tt = _t(z, True), _t(tgt[:, 0])

            def tstep():
                tz.grad = None
                torch.nn.functional.cross_entropy(tz, tt).backward()
        return Steps(lc, ref, tstep, bytes=3 * z.nbytes, build=f"SoftmaxCrossEntropy.build(K={k})")
    return make


def focal(n, k):
    def make(quick):
        from .specs import FocalLoss
        z = _rng().standard_normal((n, k), F32)
        tgt = _rng().integers(0, k, (n, 1)).astype(np.int64)
        m = FocalLoss.build(K=k)
        one = np.ones((), F32)
        rows = np.arange(n)

        def lc():
            m.forward(z, tgt)
            m.backward(one)

        def ref():
            logp, p = _log_softmax_numpy(z)
            lt = logp[rows, tgt[:, 0]]
            pt = np.exp(lt)
            (-(1 - pt) ** 2 * lt).mean()
            # d/d lt of -(1-pt)^2 lt = 2 (1-pt) pt lt - (1-pt)^2
            g = (2 * (1 - pt) * pt * lt - (1 - pt) ** 2) / n
            gz = -p * g[:, None]
            gz[rows, tgt[:, 0]] += g
            return gz

        tstep = None
        if torch is not None:
            tz, tt = _t(z, True), _t(tgt)

            def tstep():
                tz.grad = None
                logp = torch.log_softmax(tz, -1).gather(1, tt)
                (-(1 - logp.exp()) ** 2 * logp).mean().backward()
        return Steps(lc, ref, tstep, bytes=3 * z.nbytes, build=f"FocalLoss.build(K={k})")
    return make


# ---------------------------------------------------------------- convolution block


def depthwise_separable(n, c, h, w, co):
    """The example's depthwise-separable block (3x3 depthwise, stride 1, padding 1;
    BatchNorm2D in training mode, i.e. batch statistics; ReLU; 1x1 pointwise to
    ``co`` channels; BatchNorm2D; ReLU), forward + backward of a fixed upstream
    gradient: gradients of the input and of all six parameters.

    Each step returns its results (``y``, the input gradient ``x`` and the
    parameter gradients by torch-style dotted name) so that tests can check the
    three frameworks against each other; the timing ignores them."""
    def make(quick):
        from layerc.runtime.random import manual_seed
        from .specs import DepthwiseSeparableConv
        manual_seed(0)                 # the same conv weights in every process
        nn = max(n // 8, 2) if quick else n
        k, pad = 3, 1
        rng = _rng()
        x = rng.standard_normal((nn, c, h, w), F32)
        # layerc: the composed block (six built-in kernels chained by explicit
        # backward), not the example's FusedDepthwiseSeparableConv: measured once at
        # [16,32,56,56]->64, fwd+bwd median (min) over 15 steps on the 2-core box,
        # composed 382 (371) ms vs fused 821 (728) ms; again after the codegen commits
        # of 23:25-23:28 on a busier machine (load ~3): composed 623 (434) ms vs fused
        # 1857 (1621) ms. The fused spec's derived backward is the slower one.
        m = DepthwiseSeparableConv(c, co, k, padding=pad)
        for bn in (m.bn1, m.bn2):      # not ones and zeros, so the checks see them
            bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
            bn.bias.data[...] = rng.uniform(-0.5, 0.5, bn.bias.shape)
        names = [name for name, _ in m.named_parameters()]
        params = dict(m.named_parameters())
        wd, wp = params["depthwise.weight"].data, params["pointwise.weight"].data
        g1, b1 = params["bn1.weight"].data, params["bn1.bias"].data
        g2, b2 = params["bn2.weight"].data, params["bn2.bias"].data
        gy = rng.standard_normal((nn, co, h, w), F32)

        def lc():
            m.zero_grad()
            y = m.forward(x)
            gx = m.backward(gy)
            return {"y": y.numpy(), "x": gx.numpy(), **{k_: params[k_].grad for k_ in names}}

        running = [np.zeros(c, F32), np.ones(c, F32), np.zeros(co, F32), np.ones(co, F32)]

        def ref():
            return _depthwise_separable_numpy(x, gy, wd, g1, b1, wp, g2, b2, running)

        tstep = None
        if torch is not None:
            tnn = torch.nn
            # bias=False: layerc's block has no conv bias (the BatchNorm after each
            # conv would subtract it again)
            block = tnn.Sequential(tnn.Conv2d(c, c, k, padding=pad, groups=c, bias=False), tnn.BatchNorm2d(c),
                                   tnn.ReLU(), tnn.Conv2d(c, co, 1, bias=False), tnn.BatchNorm2d(co), tnn.ReLU())
            block.train()
            with torch.no_grad():
                for name, p in zip(names, block.parameters()):
                    p.copy_(torch.from_numpy(params[name].data))
            tx, tg = _t(x, True), _t(gy)
            tparams = dict(zip(names, block.parameters()))

            def tstep():
                tx.grad = None
                block.zero_grad(set_to_none=True)
                y = block(tx)
                y.backward(tg)
                return {"y": y.detach().numpy(), "x": tx.grad.numpy(),
                        **{k_: p.grad.numpy() for k_, p in tparams.items()}}

        # flops: the two convolutions' multiply-adds only (2 per MAC; BatchNorm and
        # ReLU not counted), forward 2*N*H*W*C*9 + 2*N*H*W*C*Co, and x3 for
        # forward + backward (backward: input and weight gradients of each conv),
        # the same convention as the Linear and attention workloads.
        flops = 3 * (2.0 * nn * h * w * c * k * k + 2.0 * nn * h * w * c * co)
        return Steps(lc, ref, tstep, flops=flops,
                     build=f"build_depthwise_separable({c}, {co}, {k}, padding={pad})")
    return make


def _bn_train_forward(h, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.1):
    """Batch norm over (N, H, W) with batch statistics; updates the running ones as torch."""
    count = h.shape[0] * h.shape[2] * h.shape[3]
    mean = h.mean((0, 2, 3))
    centered = h - mean[:, None, None]
    var = np.einsum("nchw,nchw->c", centered, centered) / count
    inv = (1.0 / np.sqrt(var + eps)).astype(F32)
    xhat = centered * inv[:, None, None]
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (count / (count - 1))
    return xhat * gamma[:, None, None] + beta[:, None, None], xhat, inv


def _bn_train_backward(gz, xhat, inv, gamma):
    """(grad of the input, grad gamma, grad beta) of batch norm with batch statistics:
    gx = gamma * inv / M * (M * gz - sum(gz) - xhat * sum(gz * xhat))."""
    count = gz.shape[0] * gz.shape[2] * gz.shape[3]
    gbeta = gz.sum((0, 2, 3))
    ggamma = np.einsum("nchw,nchw->c", gz, xhat)
    scale = (gamma * inv / count).astype(F32)
    gh = (count * gz - gbeta[:, None, None] - xhat * ggamma[:, None, None]) * scale[:, None, None]
    return gh, ggamma, gbeta


def _depthwise_separable_numpy(x, gy, wd, g1, b1, wp, g2, b2, running):
    """Forward and backward of the depthwise-separable block, by hand: depthwise
    3x3 conv as 9 shifted multiply-adds over the padded input, pointwise conv as a
    matmul over channels, batch norm with batch statistics, ReLU."""
    n, c, h, w = x.shape
    co = wp.shape[0]
    kh, kw = wd.shape[2:]
    ph, pw = kh // 2, kw // 2
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    shifts = [(i, j) for i in range(kh) for j in range(kw)]
    h1 = np.zeros((n, c, h, w), F32)
    tmp = np.empty_like(h1)
    for i, j in shifts:
        np.multiply(xp[:, :, i:i + h, j:j + w], wd[:, 0, i, j][:, None, None], out=tmp)
        h1 += tmp
    z1, xhat1, inv1 = _bn_train_forward(h1, g1, b1, running[0], running[1])
    a1 = np.maximum(z1, 0)
    w2 = wp.reshape(co, c)
    h2 = np.matmul(w2, a1.reshape(n, c, h * w)).reshape(n, co, h, w)
    z2, xhat2, inv2 = _bn_train_forward(h2, g2, b2, running[2], running[3])
    y = np.maximum(z2, 0)

    gz2 = gy * (z2 > 0)
    gh2, gg2, gb2 = _bn_train_backward(gz2, xhat2, inv2, g2)
    gh2 = gh2.reshape(n, co, h * w)
    gwp = np.tensordot(gh2, a1.reshape(n, c, h * w), axes=([0, 2], [0, 2])).reshape(wp.shape)
    ga1 = np.matmul(w2.T, gh2).reshape(n, c, h, w)
    gz1 = ga1 * (z1 > 0)
    gh1, gg1, gb1 = _bn_train_backward(gz1, xhat1, inv1, g1)
    gwd = np.empty_like(wd)
    gxp = np.zeros_like(xp)
    for i, j in shifts:
        gwd[:, 0, i, j] = np.einsum("nchw,nchw->c", gh1, xp[:, :, i:i + h, j:j + w])
        np.multiply(gh1, wd[:, 0, i, j][:, None, None], out=tmp)
        gxp[:, :, i:i + h, j:j + w] += tmp
    gx = gxp[:, :, ph:ph + h, pw:pw + w]
    return {"y": y, "x": gx, "depthwise.weight": gwd, "bn1.weight": gg1, "bn1.bias": gb1,
            "pointwise.weight": gwp, "bn2.weight": gg2, "bn2.bias": gb2}


WORKLOADS = [
    Workload("PReLU [4096,4096]", prelu(4096, 4096)),
    Workload("PReLU [256,4096]", prelu(256, 4096)),
    Workload("Scaled [4096,4096]", scaled(4096, 4096)),
    Workload("Linear 256x784->256", linear(256, 784, 256)),
    Workload("Linear 512x1024->1024", linear(512, 1024, 1024)),
    Workload("DW-separable [16,32,56,56]->64", depthwise_separable(16, 32, 56, 56, 64)),
    Workload("Focal loss [4096,10]", focal(4096, 10)),
    Workload("MHA [8,128,256] 8 heads", attention(8, 128, 256, 8)),
    Workload("Softmax CE [4096,1000]", cross_entropy(4096, 1000)),
    *LAYER_WORKLOADS,
    *TRAINING_WORKLOADS,
]
