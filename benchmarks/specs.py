"""Layer specs of the benchmark workloads (issue 5), for when the built-in
layer set does not provide them. Each is an ordinary layerc spec."""
from __future__ import annotations

from compiler import Attr, Input, Param, layer, ops


@layer
class PReLU:
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


@layer
class Scaled:
    x = Input("N", "C")
    s = Param("C", init=1.0)

    def forward(x, s):
        return x * s


@layer
class Linear:
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier_uniform")
    bias = Param("O", init="zeros")

    def forward(x, weight, bias):
        return ops.matmul(x, weight.T) + bias


@layer
class FocalLoss:
    logits = Input("N", "K")
    target = Input("N", "One", dtype="int64")

    def forward(logits, target):
        logp = ops.take_along_axis(ops.log_softmax(logits, axis=-1), target, axis=-1)
        p = ops.exp(logp)
        return ops.mean(-((1 - p) ** 2) * logp)


@layer
class SoftmaxCrossEntropy:
    logits = Input("N", "K")
    target = Input("N", "One", dtype="int64")

    def forward(logits, target):
        logp = ops.take_along_axis(ops.log_softmax(logits, axis=-1), target, axis=-1)
        return -ops.mean(logp)


@layer
class MultiHeadAttention:
    """Self-attention with qkv and output projections (with bias)."""
    x = Input("B", "T", "D")
    wq = Param("D", "D", init="xavier_uniform")
    bq = Param("D", init="zeros")
    wk = Param("D", "D", init="xavier_uniform")
    bk = Param("D", init="zeros")
    wv = Param("D", "D", init="xavier_uniform")
    bv = Param("D", init="zeros")
    wo = Param("D", "D", init="xavier_uniform")
    bo = Param("D", init="zeros")
    H = Attr(8)

    HD = Attr(32)

    def forward(x, wq, bq, wk, bk, wv, bv, wo, bo, H, HD):
        B, T, D = x.shape
        hd = HD

        def heads(t):
            return ops.transpose(ops.reshape(t, (B, T, H, hd)), (0, 2, 1, 3))

        q = heads(ops.matmul(x, wq.T) + bq)
        k = heads(ops.matmul(x, wk.T) + bk)
        v = heads(ops.matmul(x, wv.T) + bv)
        p = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / hd ** 0.5), axis=-1)
        o = ops.reshape(ops.transpose(ops.matmul(p, v), (0, 2, 1, 3)), (B, T, D))
        return ops.matmul(o, wo.T) + bo
