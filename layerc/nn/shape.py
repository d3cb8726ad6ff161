"""Layers that only rearrange: ``Flatten``."""
from __future__ import annotations

from ..compiler.spec import Input
from .base import _by_rank, _Stateless


def _flatten_make(dims):
    class Spec:
        x = Input(*dims)

        def forward(x):
            shape = x.shape
            return x.reshape(shape[0], -1)
    return Spec


flatten_spec = _by_rank("Flatten", _flatten_make)


class Flatten(_Stateless):
    """``[N, d1, d2, ...] -> [N, d1*d2*...]``."""
    _spec_for_rank = staticmethod(flatten_spec)
