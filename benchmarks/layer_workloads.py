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

from layerc.nn.activation import POINTWISE      # torch.nn's names too

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
            inputs = {"grad:x": np.array(gx.numpy())} if x.dtype.kind == "f" else {}   # ids have none
            return {"y": np.array(y.numpy()), **inputs, **layerc_grads(model)}
    return step


def torch_step(call, model, x, gy):
    """A step of ``call`` (``model`` itself, or ``torch.compile(model)``)."""
    floating = x.dtype.kind == "f"
    tx, tg = as_torch(x, floating), as_torch(gy)

    def step(collect=False):
        tx.grad = None
        model.zero_grad(set_to_none=True)
        y = call(tx)
        y.backward(tg)
        if collect:
            inputs = {"grad:x": tx.grad.numpy().copy()} if floating else {}
            return {"y": y.detach().numpy().copy(), **inputs, **torch_grads(model)}
    return step


def layer_workload(name, layers, shape, rate, *, compile=False, tags=()):
    """A workload timing one layer on inputs of ``shape`` (its batch a quarter,
    at least 2, with ``--quick``). ``layers`` is a ``Twin``; ``rate(x_shape,
    y_shape)`` gives ``{"flops": ...}``, ``{"bytes": ...}`` or ``{}``."""
    def make(quick):
        x_shape = (max(shape[0] // 4, 2), *shape[1:]) if quick else shape
        model = layers.layerc()
        draw = rng()                              # one stream: x and gy must differ
        x = layers.draw(draw, x_shape)
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

    def __init__(self, layerc, torch, rename=None, note="", draw=None):
        self.layerc, self.torch, self.rename, self.note = layerc, torch, rename, note
        # (rng, shape) -> the input: standard normal floats unless the layer takes others (ids)
        self.draw = draw or (lambda generator, shape: generator.standard_normal(shape, F32))


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


def class_targets(draw, n, k):
    """Class indices ``[N, 1]`` (torch takes them as ``[N]``)."""
    return draw.integers(0, k, (n, 1)).astype(np.int64)


def probability_targets(draw, n, k):
    """Targets in ``[0, 1]`` of the input's shape (BCE, KL divergence)."""
    return draw.uniform(0, 1, (n, k)).astype(F32)


def value_targets(draw, n, k):
    """Targets of the input's shape (regression losses)."""
    return draw.standard_normal((n, k), F32)


def _as_given(target):
    """A target as a loss module takes it: class indices ``[N, 1]`` as ``[N]``."""
    return target[:, 0] if target.dtype == np.int64 else target


def loss_workload(name, ours, theirs, shape, *, targets=class_targets, inputs=None, tags=("loss",)):
    """A workload timing a loss on inputs of ``shape`` (rows a quarter, at
    least 2, with ``--quick``): ``ours()`` gives the layerc loss called as
    ``loss(input, target)``, ``theirs(input, target)`` computes torch's;
    ``targets(draw, n, k)`` draws the target (class indices ``[N, 1]`` go to
    torch as ``[N]``), ``inputs`` maps the standard normal input (BCE's to
    probabilities). Forward, then the gradient of the input; rate: reading
    the input twice and writing its gradient."""
    def make(quick):
        n, k = (max(shape[0] // 4, 2), shape[1]) if quick else shape
        draw = rng()
        z = draw.standard_normal((n, k), F32)
        z = z if inputs is None else inputs(z)
        target = targets(draw, n, k)
        loss = ours()

        def step(collect=False):
            value = loss(z, target)
            gz = loss.backward()
            if collect:
                return {"y": np.array(value.numpy()), "grad:x": np.array(gz.numpy())}
        tstep = compiled = None
        if torch is not None:
            tz, tt = as_torch(z, True), as_torch(_as_given(target))

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


def _loss_module(name, **options):
    """``ours`` of a loss workload: layerc's loss module ``name`` (made with
    ``options``), class targets ``[N, 1]`` passed as ``[N]``."""
    def make():
        import layerc.losses
        loss = getattr(layerc.losses, name)(**options)

        class Loss:
            def __call__(self, z, target):
                return loss(z, _as_given(target))

            def backward(self):
                return loss.backward()
        return Loss()
    return make


def _torch_loss(name, **options):
    """``theirs`` of a loss workload: ``torch.nn.functional.name`` with ``options``."""
    return lambda z, target: getattr(torch.nn.functional, name)(z, target, **options)


# every loss module: (layerc's name, torch's functional, options, targets, input map)
LOSSES = [
    ("CrossEntropyLoss", "cross_entropy", {}, class_targets, None),
    ("NLLLoss", "nll_loss", {}, class_targets, None),
    ("MSELoss", "mse_loss", {}, value_targets, None),
    ("L1Loss", "l1_loss", {}, value_targets, None),
    ("HuberLoss", "huber_loss", {"delta": 0.5}, value_targets, None),
    ("SmoothL1Loss", "smooth_l1_loss", {"beta": 0.5}, value_targets, None),
    ("KLDivLoss", "kl_div", {"reduction": "batchmean"}, probability_targets, None),
    ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits", {}, probability_targets, None),
    ("BCELoss", "binary_cross_entropy", {}, probability_targets, lambda z: 1 / (1 + np.exp(-z))),
]




# ---------------------------------------------------------------- the layers


def conv2d(c, o, k, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    from layerc.nn import Conv2D
    kh, kw = (k, k) if isinstance(k, int) else k
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=False,
                padding_mode=padding_mode)
    return Twin(lambda: Conv2D(c, o, (kh, kw), **args), lambda: torch.nn.Conv2d(c, o, (kh, kw), **args),
                note="no bias (a BatchNorm follows in a network)"), contraction(c // groups * kh * kw)


def conv1d(c, o, k, *, stride=1, padding=0):
    from layerc.nn import Conv1D
    args = dict(stride=stride, padding=padding, bias=False)
    return Twin(lambda: Conv1D(c, o, k, **args), lambda: torch.nn.Conv1d(c, o, k, **args)), contraction(c * k)


def conv_transpose(rank, c, o, k, **args):
    import layerc.nn
    ours, theirs = getattr(layerc.nn, f"ConvTranspose{rank}D"), getattr(torch.nn, f"ConvTranspose{rank}d")
    groups = args.get("groups", 1)
    kernel = k ** rank if isinstance(k, int) else math.prod(k)
    # each output element's forward multiply-adds: in/groups channels times the taps
    # that reach it, about kernel / stride**rank of them
    stride = args.get("stride", 1)
    taps = kernel / (stride ** rank if isinstance(stride, int) else math.prod(stride))
    return Twin(lambda: ours(c, o, k, **args), lambda: theirs(c, o, k, **args)), contraction(c // groups * taps)


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


def upsample(factor, name="Upsample"):
    import layerc.nn
    return Twin(lambda: getattr(layerc.nn, name)(scale_factor=factor),
                lambda: getattr(torch.nn, name)(scale_factor=factor)), no_rate


def unflatten(shape):
    """The last axis split in two, its first part 4 (or 3) long."""
    parts = (4, -1) if shape[-1] % 4 == 0 else (3, -1)
    return stateless("Unflatten", "Unflatten", no_rate, -1, parts)


def _pads():
    """Every padding layer at three shapes: 2-D ones by 3 (a constant one with
    0.5), 1-D ones by 5."""
    from layerc.nn import PADS
    shapes = {"2d": [(8, 64, 56, 56), (64, 32, 27, 27), (16, 3, 224, 224)],
              "1d": [(16, 64, 1000), (64, 32, 127), (8, 3, 4096)]}
    for name in PADS:
        axes, pad = name[-2:], 3 if name.endswith("2d") else 5
        args = (pad, 0.5) if name.startswith("Constant") else (pad,)
        yield from _each(f"{name} {pad}", _act(name, name, no_rate, *args), shapes[axes], ("reshape",))


def group_norm(groups, c):
    from layerc.nn import GroupNorm
    return Twin(lambda: GroupNorm(groups, c), lambda: torch.nn.GroupNorm(groups, c)), SAME_SHAPE


def batch_norm1d(c):
    from layerc.nn import BatchNorm1D
    return Twin(lambda: BatchNorm1D(c), lambda: torch.nn.BatchNorm1d(c), note="training mode"), SAME_SHAPE


def instance_norm(c):
    from layerc.nn import InstanceNorm2D
    return Twin(lambda: InstanceNorm2D(c), lambda: torch.nn.InstanceNorm2d(c), note="torch's defaults"), SAME_SHAPE


def rms_norm(d):
    from layerc.nn import RMSNorm
    return Twin(lambda: RMSNorm(d), lambda: torch.nn.RMSNorm(d)), SAME_SHAPE


def embedding(vocab, dim):
    """Ids drawn uniformly from the vocabulary; the rate: the output written, its
    gradient read and scattered into the table's rows (three passes of its size)."""
    from layerc.nn import Embedding
    return (Twin(lambda: Embedding(vocab, dim), lambda: torch.nn.Embedding(vocab, dim),
                 draw=lambda generator, shape: generator.integers(0, vocab, shape)),
            lambda x_shape, y_shape: {"bytes": FLOAT * 3 * _count(y_shape)})


def self_attention(e, heads):
    """Self-attention on [B, L, E] (torch: ``need_weights=False``); 3x the
    forward's multiply-adds: projections 4 L E^2, scores and context 2 L^2 E."""
    from layerc.nn import MultiheadAttention

    def twin():
        class SelfAttention(torch.nn.MultiheadAttention):
            def forward(self, x):
                return super().forward(x, x, x, need_weights=False)[0]
        return SelfAttention(e, heads, batch_first=True)

    def rate(x_shape, y_shape):
        b, length, _ = x_shape
        return {"flops": 3 * 2.0 * b * length * e * (4 * e + 2 * length)}
    return Twin(lambda: MultiheadAttention(e, heads, batch_first=True), twin), rate


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


def _adaptive(kind, size, shape):
    twin_rate = stateless(f"Adaptive{kind}Pool2D", f"Adaptive{kind}Pool2d", MAX_POOL if kind == "Max" else AVG_POOL,
                          size)
    return _w(f"Adaptive{kind}Pool2D {size} {_dims(shape)}", twin_rate, shape, tags=("pool",))


def _each(name, twin_rate_of, shapes, tags, compile=False):
    """One workload per shape; ``twin_rate_of(shape)`` gives the layers and the rate."""
    return [_w(f"{name} {_dims(s)}", twin_rate_of(s), s, tags=tags, compile=compile) for s in shapes]


def _act(ours, theirs, rate, *args):
    return lambda shape: stateless(ours, theirs, rate, *args)


LOSS_WORKLOADS = [
    *[loss_workload(f"Focal loss (layer) {_dims(s)}", _focal_ours, _focal_torch, s)
      for s in [(4096, 10), (16384, 10), (4096, 100)]],
    *[loss_workload(f"{name} {_dims(s)}", _loss_module(name, **options), _torch_loss(functional, **options), s,
                    targets=targets, inputs=inputs)
      for name, functional, options, targets, inputs in LOSSES for s in [(4096, 10), (4096, 64), (1024, 1000)]],
]


PAD_WORKLOADS = list(_pads())

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
    # depthwise on the small maps of a mobile network's later stages, and a 7x7 one
    _conv("128->128 k3 dw p1", (32, 128, 14, 14), 128, 128, 3, padding=1, groups=128),
    _conv("256->256 k3 dw p1", (32, 256, 7, 7), 256, 256, 3, padding=1, groups=256),
    _conv("96->96 k7 dw p3", (16, 96, 14, 14), 96, 96, 7, padding=3, groups=96),
    _conv("48->64 k3 p1", (16, 48, 27, 27), 48, 64, 3, padding=1),
    _conv("3->64 k7 s2 p3", (2, 3, 224, 224), 3, 64, 7, stride=2, padding=3),
    # norms, activations and softmax: torch.compile too (a fused kernel is their fair peer)
    *_each("BatchNorm2D", lambda s: batch_norm(s[1]), [(64, 32, 32, 32), (8, 64, 56, 56), (16, 48, 27, 27)],
           ("norm",), compile=True),
    *_each("LayerNorm", lambda s: layer_norm(s[-1]), [(4096, 256), (8, 197, 384), (32, 128, 768)], ("norm",),
           compile=True),
    *_each("ReLU", _act("ReLU", "ReLU", SAME_SHAPE), [(64, 512), (8, 64, 56, 56), (64, 32, 27, 27)],
           ("activation",)),
    *_each("GELU", _act("GELU", "GELU", SAME_SHAPE), [(4096, 1024), (8, 197, 1536), (8, 64, 56, 56)],
           ("activation",), compile=True),
    *_each("Softmax", _act("Softmax", "Softmax", SAME_SHAPE, -1), [(4096, 64), (96, 197, 197), (4096, 1000)],
           ("activation", "softmax"), compile=True),
    *_each("LogSoftmax", _act("LogSoftmax", "LogSoftmax", SAME_SHAPE, -1), [(4096, 64), (64, 10, 1000), (4096, 1000)],
           ("activation", "softmax")),
    *_each("PReLU", lambda s: stateless("PReLU", "PReLU", SAME_SHAPE, s[1]), [(64, 512), (8, 64, 56, 56),
                                                                              (16, 48, 27, 27)], ("activation",)),
    *PAD_WORKLOADS,
    *_each("Upsample x2", lambda s: upsample(2), [(8, 64, 28, 28), (16, 32, 27, 27), (4, 16, 64, 63)], ("reshape",)),
    *_each("UpsamplingNearest2d x3", lambda s: upsample(3, "UpsamplingNearest2d"),
           [(8, 64, 14, 14), (16, 32, 27, 27), (4, 3, 64, 63)], ("reshape",)),
    *_each("GLU", _act("GLU", "GLU", traffic(3, 2)), [(4096, 1024), (8, 197, 1536), (64, 510)], ("activation",)),
    *_each("Unflatten", lambda s: unflatten(s), [(64, 4096), (8, 197, 1536), (16, 48 * 27 * 27)], ("reshape",)),
    *LOSS_WORKLOADS,
    _pool("Max", 2, 2, (64, 32, 32, 32)),
    _pool("Max", 3, 2, (8, 64, 112, 112)),
    _pool("Max", 3, 2, (16, 48, 27, 27)),
    _pool("Avg", 2, 2, (64, 32, 32, 32)),
    _pool("Avg", 7, 7, (8, 512, 7, 7)),
    _pool("Avg", 3, 2, (16, 48, 27, 27)),
    *_each("Flatten", _act("Flatten", "Flatten", no_rate), [(64, 64, 8, 8), (8, 512, 7, 7), (16, 48, 27, 27)],
           ("reshape",)),
    *_each("BatchNorm1D", lambda s: batch_norm1d(s[1]), [(256, 512), (64, 128, 256), (32, 48, 999)], ("norm",)),
    *_each("GroupNorm", lambda s: group_norm(s[1] // 8, s[1]),
           [(8, 64, 56, 56), (64, 32, 32, 32), (16, 48, 27, 27)], ("norm",)),
    *_each("InstanceNorm2D", lambda s: instance_norm(s[1]), [(8, 64, 56, 56), (64, 32, 32, 32), (16, 48, 27, 27)],
           ("norm",)),
    *_each("RMSNorm", lambda s: rms_norm(s[-1]), [(64, 512), (8, 197, 384), (32, 128, 768)], ("norm",)),
    _w("Embedding 1000x256 [64,128]", embedding(1000, 256), (64, 128), tags=("embedding",)),
    _w("Embedding 32000x128 [32,197]", embedding(32000, 128), (32, 197), tags=("embedding",)),
    _w("Embedding 50x7 [999]", embedding(50, 7), (999,), tags=("embedding",)),
    _w("MultiheadAttention 384/6 [8,197,384]", self_attention(384, 6), (8, 197, 384), tags=("attention",)),
    _w("MultiheadAttention 256/8 [32,64,256]", self_attention(256, 8), (32, 64, 256), tags=("attention",)),
    _w("MultiheadAttention 96/3 [4,127,96]", self_attention(96, 3), (4, 127, 96), tags=("attention",)),
    *[w for name in POINTWISE for w in _each(name, _act(name, name, SAME_SHAPE),
                                             [(64, 512), (8, 64, 56, 56), (8, 197, 1536)], ("activation",))],
    _w("Conv1D ops.compute 64->64 k5 [16,64,1000]", conv1d_index_notation(64, 64, 5, 2), (16, 64, 1000),
       compile=True, tags=("contraction", "conv")),
    _conv("1x5 64->64 p(0,2)", (16, 64, 1, 1000), 64, 64, (1, 5), padding=(0, 2), compile=True),
    _w("Conv1D 64->64 k5 p2 [16,64,1000]", conv1d(64, 64, 5, padding=2), (16, 64, 1000), tags=("conv",)),
    _w("Conv1D 8->32 k3 [64,8,128]", conv1d(8, 32, 3), (64, 8, 128), tags=("conv",)),
    _w("Conv1D 48->48 k7 s2 p3 [8,48,999]", conv1d(48, 48, 7, stride=2, padding=3), (8, 48, 999), tags=("conv",)),
    _conv("32->32 k3 same reflect", (16, 32, 27, 27), 32, 32, 3, padding="same", padding_mode="reflect"),
    _w("ConvTranspose2D 64->32 k4 s2 p1 [8,64,16,16]", conv_transpose(2, 64, 32, 4, stride=2, padding=1),
       (8, 64, 16, 16), tags=("conv",)),
    _w("ConvTranspose2D 32->32 k3 p1 [8,32,28,28]", conv_transpose(2, 32, 32, 3, padding=1), (8, 32, 28, 28),
       tags=("conv",)),
    _w("ConvTranspose2D 48->24 k3 s2 op1 [4,48,27,27]", conv_transpose(2, 48, 24, 3, stride=2, output_padding=1),
       (4, 48, 27, 27), tags=("conv",)),
    _w("ConvTranspose1D 64->64 k4 s2 p1 [16,64,250]", conv_transpose(1, 64, 64, 4, stride=2, padding=1),
       (16, 64, 250), tags=("conv",)),
    _w("ConvTranspose1D 32->16 k5 [8,32,511]", conv_transpose(1, 32, 16, 5), (8, 32, 511), tags=("conv",)),
    _w("ConvTranspose1D 48->48 k3 s3 [4,48,333]", conv_transpose(1, 48, 48, 3, stride=3), (4, 48, 333),
       tags=("conv",)),
    _adaptive("Avg", 1, (8, 512, 7, 7)),
    _adaptive("Avg", 1, (64, 32, 8, 8)),
    _adaptive("Avg", 3, (16, 48, 27, 27)),
    _adaptive("Max", 1, (8, 512, 7, 7)),
    _adaptive("Max", 2, (64, 32, 8, 8)),
    _adaptive("Max", 3, (16, 48, 27, 27)),
    # a global maximum wider than an unrolled window (14 x 14), and windows that
    # do not tile the input (13 into 7: overlapping, of lengths 2 and 3)
    _adaptive("Max", 1, (8, 256, 14, 14)),
    _adaptive("Avg", 7, (16, 256, 13, 13)),
    _adaptive("Max", 7, (16, 256, 13, 13)),
    *_each("Dropout", _act("Dropout", "Dropout", SAME_SHAPE, 0.5), [(64, 512), (8, 64, 56, 56), (16, 48, 27, 27)],
           ("activation",)),
]
