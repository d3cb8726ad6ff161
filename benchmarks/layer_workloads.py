"""Every built-in layer of ``layerc.nn`` at three or more shapes (a small batch,
an ImageNet-like stage, odd sizes), and a contraction a user writes in index
notation next to the built-in layer that computes the same: forward + backward
of a fixed upstream gradient, float32, against the same layer in PyTorch
(eager, and ``torch.compile`` where the workload says so).

Each workload builds the layerc layer, gives its PyTorch twin the same
parameters and buffers (``copy_into_torch`` checks that names and shapes
match), and times ``forward(x)`` then ``backward(gy)`` with gradients of the
input and of every parameter, in both.

Rates: a convolution or linear layer counts 3x its forward multiply-adds (2
flops each: forward, input gradient, weight gradient); the other layers count
the bytes a forward+backward must move at least (``bytes`` below).
"""
from __future__ import annotations

import math

import numpy as np

from .common import COMPILED, F32, Steps, Workload, as_torch, copy_into_torch, layerc_grads, rng, torch, \
    torch_grads

FLOAT = np.dtype(F32).itemsize
WITH_COMPILE = ("layerc", "torch", COMPILED)


# ---------------------------------------------------------------- steps


def layerc_step(model, x, gy):
    def step(collect=False):
        model.zero_grad()
        y = model.forward(x)
        gx = model.backward(gy)
        if collect:
            return {"y": np.array(y.numpy()), "grad:x": np.array(gx.numpy()), **layerc_grads(model)}
    return step


def torch_step(call, model, x, gy):
    """A step of ``call`` (``model`` itself, or ``torch.compile(model)``)."""
    tx, tg = as_torch(x, True), as_torch(gy)

    def step(collect=False):
        tx.grad = None
        model.zero_grad(set_to_none=True)
        y = call(tx)
        y.backward(tg)
        if collect:
            return {"y": y.detach().numpy().copy(), "grad:x": tx.grad.numpy().copy(), **torch_grads(model)}
    return step


def layer_workload(name, layers, shape, rate, *, compile=False, tags=()):
    """A workload timing one layer on inputs of ``shape`` (its batch a quarter,
    at least 2, with ``--quick``). ``layers`` is a ``Twin``; ``rate(x_shape,
    y_shape)`` gives ``{"flops": ...}``, ``{"bytes": ...}`` or ``{}``."""
    def make(quick):
        x_shape = (max(shape[0] // 4, 2), *shape[1:]) if quick else shape
        model = layers.layerc()
        draw = rng()                              # one stream: x and gy must differ
        x = draw.standard_normal(x_shape, F32)
        y_shape = model.forward(x).shape          # compiles the layer (or loads it from the cache)
        gy = draw.standard_normal(y_shape, F32)
        tstep = compiled = None
        if torch is not None:
            tmodel = layers.torch()
            copy_into_torch(model, tmodel, layers.rename)
            tstep = torch_step(tmodel, tmodel, x, gy)

            def compiled():
                return torch_step(torch.compile(tmodel), tmodel, x, gy)
        return Steps(layerc_step(model, x, gy), None, tstep, torch_compile=compiled,
                     note=layers.note, **rate(x_shape, y_shape))
    return Workload(name, make, WITH_COMPILE, compile, ("layers", *tags))


class Twin:
    """A layerc layer and its PyTorch twin, each made by a factory (the torch
    one only called when torch is installed); ``rename`` maps layerc parameter
    names to torch's where they differ."""

    def __init__(self, layerc, torch, rename=None, note=""):
        self.layerc, self.torch, self.rename, self.note = layerc, torch, rename, note


# ---------------------------------------------------------------- rates


def _count(shape) -> int:
    return math.prod(shape)


def contraction(reduced: int):
    """3 x 2 flops per output element and reduced element (forward, and the two gradients)."""
    return lambda x_shape, y_shape: {"flops": 3 * 2.0 * _count(y_shape) * reduced}


def traffic(x_passes: int, y_passes: int = 0):
    """Bytes of ``x_passes`` passes over an array of the input's size and
    ``y_passes`` over one of the output's (forward and backward together)."""
    return lambda x_shape, y_shape: {"bytes": FLOAT * (x_passes * _count(x_shape) + y_passes * _count(y_shape))}


# forward reads x and writes y, backward reads x (or y) and gy and writes gx
SAME_SHAPE = traffic(5)
# max pool: forward reads x and writes y; backward reads x (where the maximum is), gy, writes gx
MAX_POOL = traffic(3, 2)
# average pool: forward reads x and writes y; backward reads gy and writes gx
AVG_POOL = traffic(2, 2)


def no_rate(x_shape, y_shape):
    return {}


# ---------------------------------------------------------------- losses


def loss_workload(name, ours, theirs, shape, *, tags=("loss",)):
    """A workload timing a class-index loss on logits of ``shape`` (rows a
    quarter, at least 2, with ``--quick``): ``ours()`` gives the layerc loss
    called as ``loss(logits, target)`` on targets ``[N, 1]``; ``theirs(logits,
    target)`` computes torch's on targets ``[N]``. Forward, then the gradient
    of the logits; rate: reading the logits twice and writing their gradient."""
    def make(quick):
        n, k = (max(shape[0] // 4, 2), shape[1]) if quick else shape
        draw = rng()
        z = draw.standard_normal((n, k), F32)
        target = draw.integers(0, k, (n, 1)).astype(np.int64)
        loss = ours()

        def step(collect=False):
            value = loss(z, target)
            gz = loss.backward()
            if collect:
                return {"y": np.array(value.numpy()), "grad:x": np.array(gz.numpy())}
        tstep = compiled = None
        if torch is not None:
            tz, tt = as_torch(z, True), as_torch(target[:, 0])

            def torch_step(call):
                def run(collect=False):
                    tz.grad = None
                    value = call(tz, tt)
                    value.backward()
                    if collect:
                        return {"y": value.detach().numpy().copy(), "grad:x": tz.grad.numpy().copy()}
                return run
            tstep = torch_step(theirs)

            def compiled():
                return torch_step(torch.compile(theirs))
        return Steps(step, None, tstep, torch_compile=compiled, bytes=3 * FLOAT * n * k)
    return Workload(name, make, WITH_COMPILE, True, ("layers", *tags))


def _focal_ours():
    from .specs import FocalLoss
    model = FocalLoss.build()

    class Loss:
        def __call__(self, z, target):
            return model.forward(z, target)

        def backward(self):
            return model.backward(np.ones((), F32))
    return Loss()


def _focal_torch(z, target):
    logp = torch.log_softmax(z, -1).gather(1, target[:, None])
    return (-(1 - logp.exp()) ** 2 * logp).mean()


def _cross_entropy_ours():
    from layerc.losses import CrossEntropyLoss
    loss = CrossEntropyLoss()

    class Loss:
        def __call__(self, z, target):
            return loss(z, target[:, 0])

        def backward(self):
            return loss.backward()
    return Loss()


def _cross_entropy_torch(z, target):
    return torch.nn.functional.cross_entropy(z, target)




# ---------------------------------------------------------------- the layers


def conv2d(c, o, k, *, stride=1, padding=0, dilation=1, groups=1):
    from layerc.nn import Conv2D
    kh, kw = (k, k) if isinstance(k, int) else k
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=False)
    return Twin(lambda: Conv2D(c, o, (kh, kw), **args), lambda: torch.nn.Conv2d(c, o, (kh, kw), **args),
                note="no bias (a BatchNorm follows in a network)"), contraction(c // groups * kh * kw)


def conv1d(c, o, k, *, stride=1, padding=0):
    from layerc.nn import Conv1D
    args = dict(stride=stride, padding=padding, bias=False)
    return Twin(lambda: Conv1D(c, o, k, **args), lambda: torch.nn.Conv1d(c, o, k, **args)), contraction(c * k)


def linear(i, o):
    from layerc.nn import Linear
    return Twin(lambda: Linear(i, o), lambda: torch.nn.Linear(i, o)), contraction(i)


def batch_norm(c):
    from layerc.nn import BatchNorm2D
    return Twin(lambda: BatchNorm2D(c), lambda: torch.nn.BatchNorm2d(c), note="training mode"), SAME_SHAPE


def layer_norm(d):
    from layerc.nn import LayerNorm
    return Twin(lambda: LayerNorm(d), lambda: torch.nn.LayerNorm(d)), SAME_SHAPE


def stateless(ours: str, theirs: str, rate, *args):
    import layerc.nn
    return Twin(lambda: getattr(layerc.nn, ours)(*args), lambda: getattr(torch.nn, theirs)(*args)), rate


def conv1d_index_notation(c, o, k, pad):
    from .specs import Conv1DIndexNotation
    return (Twin(lambda: Conv1DIndexNotation.build(C=c, O=o, K=k, pad=pad),
                 lambda: torch.nn.Conv1d(c, o, k, padding=pad, bias=False),
                 note="the user's ops.compute spec; torch: Conv1d"), contraction(c * k))


def _w(name, twin_rate, shape, **options):
    twin, rate = twin_rate
    return layer_workload(name, twin, shape, rate, **options)


def _conv(name, shape, *args, compile=False, **kw):
    return _w(f"Conv2D {name} {_dims(shape)}", conv2d(*args, **kw), shape, compile=compile, tags=("conv",))


def _dims(shape) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _pool(kind, k, s, shape):
    twin_rate = stateless(f"{kind}Pool2D", f"{kind}Pool2d", MAX_POOL if kind == "Max" else AVG_POOL, k, s)
    return _w(f"{kind}Pool2D k{k} s{s} {_dims(shape)}", twin_rate, shape, tags=("pool",))


def _each(name, twin_rate_of, shapes, tags, compile=False):
    """One workload per shape; ``twin_rate_of(shape)`` gives the layers and the rate."""
    return [_w(f"{name} {_dims(s)}", twin_rate_of(s), s, tags=tags, compile=compile) for s in shapes]


def _act(ours, theirs, rate, *args):
    return lambda shape: stateless(ours, theirs, rate, *args)


LOSS_WORKLOADS = [
    *[loss_workload(f"Focal loss (layer) {_dims(s)}", _focal_ours, _focal_torch, s)
      for s in [(4096, 10), (16384, 10), (4096, 100)]],
    *[loss_workload(f"CrossEntropyLoss {_dims(s)}", _cross_entropy_ours, _cross_entropy_torch, s)
      for s in [(4096, 10), (4096, 64), (1024, 1000)]],
]


LAYER_WORKLOADS = [
    _w("Linear 64x784->512", linear(784, 512), (64, 784)),
    _w("Linear 8x2048->1000", linear(2048, 1000), (8, 2048)),
    _w("Linear 100x300->77", linear(300, 77), (100, 300)),
    _w("Linear [8,197,384]->384", linear(384, 384), (8, 197, 384)),
    _conv("3->32 k3 p1", (64, 3, 32, 32), 3, 32, 3, padding=1),
    _conv("32->64 k3 p1", (64, 32, 16, 16), 32, 64, 3, padding=1),
    _conv("64->64 k3 p1", (8, 64, 56, 56), 64, 64, 3, padding=1, compile=True),
    _conv("64->64 k1", (8, 64, 56, 56), 64, 64, 1),
    _conv("64->128 k3 s2 p1", (8, 64, 56, 56), 64, 128, 3, stride=2, padding=1),
    _conv("64->64 k3 d2 p2", (8, 64, 28, 28), 64, 64, 3, padding=2, dilation=2),
    _conv("64->64 k3 g4 p1", (16, 64, 28, 28), 64, 64, 3, padding=1, groups=4),
    _conv("32->32 k3 dw p1", (16, 32, 56, 56), 32, 32, 3, padding=1, groups=32),
    _conv("48->64 k3 p1", (16, 48, 27, 27), 48, 64, 3, padding=1),
    _conv("3->64 k7 s2 p3", (2, 3, 224, 224), 3, 64, 7, stride=2, padding=3),
    # norms, activations and softmax: torch.compile too (a fused kernel is their fair peer)
    *_each("BatchNorm2D", lambda s: batch_norm(s[1]), [(64, 32, 32, 32), (8, 64, 56, 56), (16, 48, 27, 27)],
           ("norm",), compile=True),
    *_each("LayerNorm", lambda s: layer_norm(s[-1]), [(4096, 256), (8, 197, 384), (32, 128, 768)], ("norm",),
           compile=True),
    *_each("ReLU", _act("ReLU", "ReLU", SAME_SHAPE), [(64, 512), (8, 64, 56, 56), (64, 32, 27, 27)],
           ("activation",), compile=True),
    *_each("GELU", _act("GELU", "GELU", SAME_SHAPE), [(4096, 1024), (8, 197, 1536), (8, 64, 56, 56)],
           ("activation",), compile=True),
    *_each("Softmax", _act("Softmax", "Softmax", SAME_SHAPE, -1), [(4096, 64), (96, 197, 197), (4096, 1000)],
           ("activation", "softmax"), compile=True),
    *LOSS_WORKLOADS,
    _pool("Max", 2, 2, (64, 32, 32, 32)),
    _pool("Max", 3, 2, (8, 64, 112, 112)),
    _pool("Max", 3, 2, (16, 48, 27, 27)),
    _pool("Avg", 2, 2, (64, 32, 32, 32)),
    _pool("Avg", 7, 7, (8, 512, 7, 7)),
    _pool("Avg", 3, 2, (16, 48, 27, 27)),
    *_each("Flatten", _act("Flatten", "Flatten", no_rate), [(64, 64, 8, 8), (8, 512, 7, 7), (16, 48, 27, 27)],
           ("reshape",)),
    _w("Conv1D ops.compute 64->64 k5 [16,64,1000]", conv1d_index_notation(64, 64, 5, 2), (16, 64, 1000),
       compile=True, tags=("contraction", "conv")),
    _conv("1x5 64->64 p(0,2)", (16, 64, 1, 1000), 64, 64, (1, 5), padding=(0, 2), compile=True),
    _w("Conv1D 64->64 k5 p2 [16,64,1000]", conv1d(64, 64, 5, padding=2), (16, 64, 1000), tags=("conv",)),
    _w("Conv1D 8->32 k3 [64,8,128]", conv1d(8, 32, 3), (64, 8, 128), tags=("conv",)),
    _w("Conv1D 48->48 k7 s2 p3 [8,48,999]", conv1d(48, 48, 7, stride=2, padding=3), (8, 48, 999), tags=("conv",)),
]
