"""``MultiheadAttention``: torch.nn.MultiheadAttention's parameters, arguments
and masks, as one spec per variant (self- or cross-attention, masks given,
layout), the backward derived through the projections and the softmax.

Parameters, as torch: ``in_proj_weight`` [3E, E] (q, k, v stacked),
``in_proj_bias`` [3E], ``out_proj.weight`` [E, E], ``out_proj.bias`` [E]; with
``kdim``/``vdim`` other than ``embed_dim``: ``q_proj_weight``, ``k_proj_weight``,
``v_proj_weight`` instead of ``in_proj_weight``. Masks are data inputs (no
gradient): a bool mask is True where attention is *not* allowed (it adds
``-inf``), a float mask is added to the scores.

Example::

    mha = MultiheadAttention(16, 4, batch_first=True)
    x = np.ones((2, 5, 16), np.float32)
    y = mha(x, x, x)                                # Tensor [2, 5, 16]: the output only
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input, Param
from ..runtime.tensor import Tensor
from .assemble import assemble
from .base import SpecLayer, _count, _divides


def _project(x, weight, bias):
    y = x @ weight.T
    return y if bias is None else y + bias


def _projections(t, same_dims: bool, self_attention: bool, inputs):
    """q, k, v [B, *, E]: one product with the packed weight for self-attention."""
    bias = t.get("in_proj_bias")
    biases = ops.split(bias, 3) if bias is not None else (None,) * 3
    if self_attention:
        return ops.split(_project(inputs[0], t["in_proj_weight"], bias), 3, axis=-1)
    weights = (ops.split(t["in_proj_weight"], 3, axis=0) if same_dims else
               (t["q_proj_weight"], t["k_proj_weight"], t["v_proj_weight"]))
    return tuple(_project(x, w, b) for x, w, b in zip(inputs, weights, biases))


def _heads(x, heads: int):
    """[B, L, E] -> [B, H, L, E / H]."""
    B, L, E = x.shape
    return x.reshape(B, L, heads, int(E) // heads).transpose(0, 2, 1, 3)


def multihead_attention(t, heads: int, batch_first: bool, same_dims: bool, self_attention: bool):
    """Scaled dot-product attention over ``heads`` heads with torch's projections
    and additive masks (spec function); returns the output [B, L, E] (or [L, B, E])."""
    names = ("query",) if self_attention else ("query", "key", "value")
    inputs = [t[n] if batch_first else t[n].transpose(1, 0, 2) for n in names]
    q, k, v = (_heads(p, heads) for p in _projections(t, same_dims, self_attention, inputs))
    B, H, L, D = q.shape
    S = k.shape[2]
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(int(D)))      # [B, H, L, S]
    if t.get("attn_mask") is not None:
        mask = t["attn_mask"]
        scores = scores + mask                      # [L, S], or [B, H, L, S] (torch's [B*H, L, S])
    if t.get("key_padding_mask") is not None:
        scores = scores + t["key_padding_mask"].reshape(B, 1, 1, S)
    context = (ops.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(B, L, H * D)
    out = _project(context, t["out_proj_weight"], t.get("out_proj_bias"))
    return out if batch_first else out.transpose(1, 0, 2)


def _declarations(same_dims, bias, self_attention, batch_first, padding_mask, mask_rank) -> dict:
    seq = (lambda n: ("B", n)) if batch_first else (lambda n: (n, "B"))
    S = "L" if self_attention else "S"              # the keys are the queries
    declared = {"query": Input(*seq("L"), "E")}
    if not self_attention:
        declared.update(key=Input(*seq("S"), "KD"), value=Input(*seq("S"), "VD"))
    if same_dims:
        declared["in_proj_weight"] = Param("E3", "E", init="xavier_uniform")
    else:
        declared.update(q_proj_weight=Param("E", "E", init="xavier_uniform"),
                        k_proj_weight=Param("E", "KD", init="xavier_uniform"),
                        v_proj_weight=Param("E", "VD", init="xavier_uniform"))
    if bias:
        declared["in_proj_bias"] = Param("E3", init="zeros")
    declared["out_proj_weight"] = Param("E", "E", init="fan_in_uniform")
    if bias:
        declared["out_proj_bias"] = Param("E", init="zeros")
    if mask_rank:
        declared["attn_mask"] = Input(*(("L", S) if mask_rank == 2 else ("B", "H", "L", S)),
                                      differentiable=False)
    if padding_mask:
        declared["key_padding_mask"] = Input("B", S, differentiable=False)
    declared["num_heads"] = Attr(1)                 # H, a size of the per-head mask
    return declared


@functools.lru_cache(maxsize=None)
def attention_spec(same_dims=True, bias=True, self_attention=True, batch_first=True, padding_mask=False,
                   mask_rank=0):
    """The MultiheadAttention spec of one variant (``mask_rank``: 0, 2 or 4)."""
    declared = _declarations(same_dims, bias, self_attention, batch_first, padding_mask, mask_rank)
    flags = dict(cross=not self_attention, kv=not same_dims, nobias=not bias, seq_first=not batch_first,
                 padded=padding_mask)
    name = "MultiheadAttention" + "".join(f"_{k}" for k, v in flags.items() if v) + \
        (f"_mask{mask_rank}" if mask_rank else "")
    return assemble(name, declared, lambda t: multihead_attention(t, t["num_heads"], batch_first, same_dims,
                                                                   self_attention))


class _OutProj(SpecLayer):
    """``out_proj``: ``weight`` [E, E] and ``bias`` [E] (torch's Linear inside
    MultiheadAttention); computed by the attention's spec, never on its own."""

    def __init__(self, dtype):
        super().__init__(dtype)
        object.__setattr__(self, "_spec_bindings", {})

    def forward(self, *inputs):
        raise RuntimeError("MultiheadAttention.out_proj holds parameters; call the attention")


def _array(value):
    return np.asarray(value.data if isinstance(value, Tensor) else value)


class MultiheadAttention(SpecLayer):
    """``torch.nn.MultiheadAttention(embed_dim, num_heads, bias=True,
    kdim=None, vdim=None, batch_first=False)`` with torch's parameters.

    ``forward(query, key=None, value=None, key_padding_mask=None,
    need_weights=False, attn_mask=None)`` returns the attention's **output
    only** (torch with ``need_weights=False`` returns ``(output, None)``).
    ``key``/``value`` omitted, or the very same array as ``query``, is
    self-attention: one product with the packed ``in_proj_weight``, and
    ``backward`` returns one gradient (three for cross-attention).
    ``key_padding_mask`` is [B, S] and ``attn_mask`` [L, S] or [B * num_heads,
    L, S]; bool (True: masked, adds ``-inf``) or float (added). Inputs are
    batched: [B, L, E] with ``batch_first``, else [L, B, E]. Dropout,
    ``add_bias_kv`` and ``add_zero_attn`` are not supported.

    Example::

        mha = MultiheadAttention(8, 2, batch_first=True)
        x = np.ones((3, 4, 8), np.float32)
        y = mha(x, key_padding_mask=np.array([[False] * 3 + [True]] * 3))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, dtype=np.float32):
        super().__init__(dtype)
        self.embed_dim = _count("MultiheadAttention", "embed_dim", embed_dim)
        self.num_heads = _count("MultiheadAttention", "num_heads", num_heads)
        _divides("MultiheadAttention", "num_heads", self.num_heads, "embed_dim", self.embed_dim)
        for arg, value in (("dropout", dropout), ("add_bias_kv", add_bias_kv), ("add_zero_attn", add_zero_attn)):
            if value:
                raise ValueError(f"MultiheadAttention: {arg}={value!r} is not supported")
        self.kdim = self.embed_dim if kdim is None else _count("MultiheadAttention", "kdim", kdim)
        self.vdim = self.embed_dim if vdim is None else _count("MultiheadAttention", "vdim", vdim)
        self.same_dims = self.kdim == self.embed_dim == self.vdim
        self.has_bias, self.batch_first = bool(bias), bool(batch_first)
        E = self.embed_dim
        self._declare(self._spec(False, False, 0), E=E, E3=3 * E, KD=self.kdim, VD=self.vdim, H=self.num_heads,
                      num_heads=self.num_heads)
        self.out_proj = _OutProj(self.dtype)
        for part in ("weight", "bias"):
            p = self._parameters.pop(f"out_proj_{part}", None)
            if p is not None:
                object.__delattr__(self, f"out_proj_{part}")
                setattr(self.out_proj, part, p)

    def _spec(self, self_attention, padding_mask, mask_rank):
        return attention_spec(self.same_dims, self.has_bias, self_attention, self.batch_first, padding_mask,
                              mask_rank)

    def _spec_parameters(self):
        return {**self._parameters, **{f"out_proj_{k}": p for k, p in self.out_proj._parameters.items()}}

    def _additive(self, arg, mask, *shapes):
        """A mask as the float added to the scores (``-inf`` where a bool mask is True)."""
        mask = _array(mask)
        if mask.shape not in shapes:
            expected = " or ".join(str(list(s)) for s in shapes)
            raise ValueError(f"MultiheadAttention: {arg} must have shape {expected}, got {list(mask.shape)}")
        if mask.dtype == np.bool_:
            mask = np.where(mask, -np.inf, 0.0)
        return np.ascontiguousarray(mask, dtype=self.dtype)

    def _masks(self, B, L, S, key_padding_mask, attn_mask) -> list:
        masks = []
        if attn_mask is not None:
            H = self.num_heads
            mask = self._additive("attn_mask", attn_mask, (L, S), (B * H, L, S))
            masks.append(mask if mask.ndim == 2 else mask.reshape(B, H, L, S))
        if key_padding_mask is not None:
            masks.append(self._additive("key_padding_mask", key_padding_mask, (B, S)))
        return masks

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights=False, attn_mask=None):
        if need_weights:
            raise ValueError("MultiheadAttention: need_weights=True is not supported; the output alone is "
                             "returned (torch's need_weights=False)")
        self_attention = self.same_dims and (key is None or key is query) and (value is None or value is query)
        inputs = [query] if self_attention else [query, key, value]
        shapes = [np.shape(_array(x)) for x in inputs]
        if any(len(s) != 3 for s in shapes):
            layout = "[B, L, E]" if self.batch_first else "[L, B, E]"
            raise ValueError(f"MultiheadAttention: query, key and value must be {layout}, got shapes {shapes}")
        (B, L), S = ((shapes[0][:2] if self.batch_first else shapes[0][1::-1]),
                     shapes[-1][1] if self.batch_first else shapes[-1][0])
        masks = self._masks(B, L, S, key_padding_mask, attn_mask)
        rank = 0 if attn_mask is None else 2 if _array(attn_mask).ndim == 2 else 4
        module = self.compiled_module(self._spec(self_attention, key_padding_mask is not None, rank))
        object.__setattr__(self, "_active", module)
        return module.forward(*inputs, *masks)

    def extra_repr(self):
        dims = "" if self.same_dims else f", kdim={self.kdim}, vdim={self.vdim}"
        return (f"{self.embed_dim}, {self.num_heads}, bias={self.has_bias}, batch_first={self.batch_first}"
                f"{dims}")
