"""The benchmark workloads of issue 5: for each, one forward+backward step in
layerc, in hand-written numpy, and in PyTorch eager (when installed).

A workload is a ``Workload``; ``make(quick)`` builds its data and returns the
steps as zero-argument callables, plus the bytes or flops one step must move or
compute (for GB/s, GFLOP/s and the fraction of the machine's limit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

try:
    import torch
except ImportError:                      # PyTorch is optional
    torch = None

F32 = np.float32


@dataclass
class Steps:
    layerc: Callable | None
    numpy: Callable | None
    torch: Callable | None
    bytes: float = 0.0          # minimum memory traffic of one step (memory-bound workloads)
    flops: float = 0.0          # arithmetic of one step (contractions)
    build: Callable | None = None   # source of ``Spec.build(...)`` for the build-time measurement
    note: str = ""


@dataclass
class Workload:
    name: str
    make: Callable               # (quick: bool) -> Steps


def _rng():
    return np.random.default_rng(0)


def _t(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(grad) if grad else t


# ---------------------------------------------------------------- memory-bound


def prelu(n, c):
    def make(quick):
        from .specs import PReLU
        nn = n // 8 if quick else n
        x = _rng().standard_normal((nn, c), F32)
        gy = _rng().standard_normal((nn, c), F32)
        alpha = np.full(c, 0.25, F32)
        m = PReLU.build(C=c)

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
        return Steps(lc, ref, tstep, bytes=5 * x.nbytes, build=f"PReLU.build(C={c})")
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
        from .specs import Linear
        nn = max(n // 4, 32) if quick else n
        x = _rng().standard_normal((nn, i), F32)
        gy = _rng().standard_normal((nn, o), F32)
        m = Linear.build(I=i, O=o)
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
        return Steps(lc, ref, tstep, flops=3 * 2.0 * nn * i * o, build=f"Linear.build(I={i}, O={o})")
    return make


def attention(b, t, d, heads):
    def make(quick):
        from .specs import MultiHeadAttention
        bb = 2 if quick else b
        hd = d // heads
        x = _rng().standard_normal((bb, t, d), F32)
        gy = _rng().standard_normal((bb, t, d), F32)
        m = MultiHeadAttention.build(T=t, D=d, H=heads, HD=hd)
        ws = {k: m._parameters[k].data for k in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")}

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
                     build=f"MultiHeadAttention.build(T={t}, D={d}, H={heads}, HD={hd})")
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
    def make(quick):
        try:
            from runtime import nn as rnn
            parts = [getattr(rnn, name) for name in ("Conv2D", "BatchNorm2D", "Sequential")]
        except (ImportError, AttributeError) as e:
            return Steps(None, None, None, note=f"skipped: runtime.nn Conv2D/BatchNorm2D not available ({e})")
        return Steps(None, None, None, note=f"skipped: block wiring for {parts} not written yet")
    return make


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
]
