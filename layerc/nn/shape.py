"""Layers that only rearrange: ``Flatten``."""
from __future__ import annotations

from ..compiler.spec import Input
from ..layers import layer
from .base import _Stateless


@layer
class FlattenSpec:
    """``[N, ...] -> [N, prod(...)]``: the ``...`` axes stay collapsed into one,
    and the output is the input as it is, so the runtime hands out a view of the
    input and runs no kernel (``LayerRecord.views``)."""
    x = Input("N", ...)
    collapse_ellipsis = True

    def forward(x):
        return x


class Flatten(_Stateless):
    """``[N, d1, d2, ...] -> [N, d1*d2*...]``, a view of the input where numpy can
    make one (a C-contiguous input)."""
    SPEC = FlattenSpec
