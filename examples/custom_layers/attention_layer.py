"""MultiHeadAttention(embed_dim, num_heads, causal=False): self-attention on
[batch, seq, embed_dim] with q/k/v/out projections (with bias), heads by
reshape/transpose, softmax(Q K^T / sqrt(head_dim)) V with a stable softmax, and
an optional causal mask written as an index comparison (key j <= query i).

The whole layer is one layerc spec; layerc derives the backward of every
projection and of the attention itself. Parameters follow torch's naming,
exposed with dotted names: ``q_proj.weight`` [E, E], ``q_proj.bias`` [E], ...,
``out_proj.weight``, ``out_proj.bias``.

Run: python examples/custom_layers/attention_layer.py
"""
import math

import numpy as np

from layerc import Attr, Input, Module, Param, check_grad, layer, ops

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@layer
class MultiHeadAttentionSpec:
    """Multi-head self-attention on x [B, S, E] (E = num_heads * head_dim)."""
    x = Input("B", "S", "E")
    q_proj_weight = Param("E", "E", init="xavier_uniform")
    q_proj_bias = Param("E", init="zeros")
    k_proj_weight = Param("E", "E", init="xavier_uniform")
    k_proj_bias = Param("E", init="zeros")
    v_proj_weight = Param("E", "E", init="xavier_uniform")
    v_proj_bias = Param("E", init="zeros")
    out_proj_weight = Param("E", "E", init="xavier_uniform")
    out_proj_bias = Param("E", init="zeros")
    num_heads = Attr(1)
    causal = Attr(False)

    def forward(x, q_proj_weight, q_proj_bias, k_proj_weight, k_proj_bias, v_proj_weight, v_proj_bias,
                out_proj_weight, out_proj_bias, num_heads, causal):
        B, S, E = x.shape
        H = num_heads
        D = int(E) // H                                   # head_dim (E is bound at build time)

        def split_heads(t):                               # [B, S, E] -> [B, H, S, D]
            return t.reshape(B, S, H, D).transpose(0, 2, 1, 3)

        q = split_heads(x @ q_proj_weight.T + q_proj_bias)
        k = split_heads(x @ k_proj_weight.T + k_proj_bias)
        v = split_heads(x @ v_proj_weight.T + v_proj_bias)
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(D))      # [B, H, S, S]
        if causal:
            # query i sees keys j <= i; exp(-1e30 - max) is exactly 0
            scores = ops.compute((B, H, S, S), lambda b, h, i, j: ops.where(j <= i, scores[b, h, i, j], -1e30),
                                 name="causal")
        weights = ops.softmax(scores, axis=-1)            # max subtracted: stable
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(B, S, E)
        return context @ out_proj_weight.T + out_proj_bias


class _Projection(Module):
    """Holds one projection's ``weight`` and ``bias`` (for the dotted names)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = weight
        self.bias = bias


class MultiHeadAttention(Module):
    """``MultiHeadAttention(embed_dim, num_heads, causal=False)``: ``forward(x)`` on
    [batch, seq, embed_dim] returns the same shape; ``backward(grad)`` returns dL/dx and
    accumulates ``q_proj.weight.grad`` etc."""

    spec = MultiHeadAttentionSpec

    def __init__(self, embed_dim, num_heads, causal=False, dtype=np.float32):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.causal = int(embed_dim), int(num_heads), bool(causal)
        compiled = MultiHeadAttentionSpec.build(E=embed_dim, num_heads=int(num_heads), causal=bool(causal),
                                                dtype=dtype)
        object.__setattr__(self, "layer", compiled)       # not a submodule: its parameters are ours
        for name in PROJECTIONS:
            setattr(self, name, _Projection(getattr(compiled, f"{name}_weight"), getattr(compiled, f"{name}_bias")))

    def forward(self, x):
        return self.layer.forward(x)

    def backward(self, grad_output):
        return self.layer.backward(grad_output)

    @property
    def compiled(self):
        return self.layer.compiled

    def __repr__(self):
        return f"MultiHeadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}, causal={self.causal})"


def attention_numpy(x, params, num_heads, causal=False):
    """The reference in numpy (``params``: dotted name -> array)."""
    B, S, E = x.shape
    D = E // num_heads

    def proj(name, t):
        return t @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    def heads(t):
        return t.reshape(B, S, num_heads, D).transpose(0, 2, 1, 3)

    q, k, v = (heads(proj(n, x)) for n in ("q_proj", "k_proj", "v_proj"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
    if causal:
        scores = np.where(np.tril(np.ones((S, S), bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(axis=-1, keepdims=True)
    return proj("out_proj", (w @ v).transpose(0, 2, 1, 3).reshape(B, S, E))


def check(verbose=False):
    rng = np.random.default_rng(0)
    reports = []
    for causal in (False, True):
        mha = MultiHeadAttention(embed_dim=12, num_heads=3, causal=causal)
        for _, p in mha.named_parameters():
            p.numpy()[...] = rng.standard_normal(p.numpy().shape) * 0.3
        x = rng.standard_normal((2, 5, 12)).astype(np.float32)
        y = mha(x)
        assert y.shape == x.shape
        params = {n: p.numpy().astype(np.float64) for n, p in mha.named_parameters()}
        ref = attention_numpy(x.astype(np.float64), params, 3, causal)
        assert np.allclose(y.numpy(), ref, atol=1e-5), np.abs(y.numpy() - ref).max()
        gx = mha.backward(np.ones_like(x))
        assert gx.shape == x.shape and mha.q_proj.weight.grad.shape == (12, 12)
        if verbose:
            print(f"{mha} on x{x.shape} -> y{y.shape}; max |y - numpy| = {np.abs(y.numpy() - ref).max():.1e}")
        reports.append(check_grad(MultiHeadAttentionSpec, B=2, S=3, E=6, num_heads=2, causal=causal))
    if verbose:
        print("parameters:", ", ".join(f"{n}{list(p.shape)}" for n, p in mha.named_parameters()))
    for r in reports:
        assert r.ok, str(r)
    return reports


def main():
    for report in check(verbose=True):
        print(report)


if __name__ == "__main__":
    main()
