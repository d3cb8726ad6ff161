"""``Embedding``: rows of a table gathered by integer ids of any shape, with
torch's ``weight`` [num_embeddings, embedding_dim] and ``padding_idx``.

The gather is index notation (``weight[ids[n], d]``); its gradient is the
scatter-add layerc derives (rows that share an id accumulate). Ids are checked
against ``num_embeddings`` on every call (an ``IndexError`` naming the layer,
the position and the value), as every integer input read as an index.

Example::

    emb = Embedding(10, 4, padding_idx=0)
    y = emb(np.array([[1, 0, 9]]))                  # Tensor [1, 3, 4]; y[0, 1] is zero
"""
from __future__ import annotations

import functools

import numpy as np

from ..compiler import ops
from ..compiler.spec import Attr, Input, Param
from .assemble import assemble, with_signature
from .base import _DIMS, _MAX_RANK, SpecLayer, _count, _rank


def embedding(ids, weight, padding_idx=None):
    """``weight[ids]`` [*ids.shape, D] (spec function); the row ``padding_idx``
    is read but gets no gradient, as in torch."""
    def read(*i):
        row = ids[i[:-1]]
        value = weight[row, i[-1]]
        if padding_idx is None:
            return value
        elsewhere = (row < padding_idx) + (row > padding_idx)     # 1 unless row is padding_idx
        return ops.where(elsewhere, value, ops.stop_gradient(value))
    names = [f"i{k}" for k in range(ids.ndim)] + ["d"]
    return ops.compute((*ids.shape, weight.shape[1]), with_signature(read, names), name="embedding")


@functools.lru_cache(maxsize=None)
def embedding_spec(rank: int, padded: bool):
    """The Embedding spec for ids of ``rank`` (with a ``padding_idx`` attribute when ``padded``)."""
    if not 1 <= rank < _MAX_RANK:
        raise ValueError(f"Embedding: ids must have rank 1..{_MAX_RANK - 1}, got {rank}")
    declared = {"ids": Input(*_DIMS[:rank], dtype="int64"), "weight": Param("V", "D", init="normal")}
    if padded:
        declared["padding_idx"] = Attr(0)
    return assemble("Embedding", declared, lambda t: embedding(t["ids"], t["weight"], t.get("padding_idx")))


class Embedding(SpecLayer):
    """``torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx=None)``:
    ``weight`` [num_embeddings, embedding_dim] drawn from N(0, 1); the row
    ``padding_idx`` (negative counts from the end) starts at zero and gets no
    gradient. Ids of any shape (int64, or any integer dtype that fits) give
    ``[*ids.shape, embedding_dim]``.

    Example::

        emb = Embedding(100, 8)
        y = emb(np.array([3, 14, 15]))              # Tensor [3, 8]
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32):
        super().__init__(dtype)
        self.num_embeddings = _count("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _count("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within num_embeddings "
                                 f"({self.num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        bindings = {"V": self.num_embeddings, "D": self.embedding_dim}
        if padding_idx is not None:
            bindings["padding_idx"] = padding_idx
        self._declare(embedding_spec(1, padding_idx is not None), **bindings)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0.0

    def _select(self, inputs):
        return embedding_spec(_rank(inputs), self.padding_idx is not None), {}

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
