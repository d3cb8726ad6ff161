"""DepthwiseSeparableConv(in_channels, out_channels, kernel_size, stride=1, padding=0):

    depthwise conv (groups = in_channels) -> BatchNorm2D -> ReLU
    -> pointwise 1x1 conv -> BatchNorm2D -> ReLU

shown two ways:

1. ``DepthwiseSeparableConv``: composed at run time from the built-in layers of
   ``layerc.nn`` (five compiled kernels, chained by the autograd tape or by an
   explicit ``backward``), with torch.nn-style dotted names (``depthwise.weight``,
   ``bn1.running_mean``, ...).
2. ``FusedDepthwiseSeparableConv``: one spec, ``DepthwiseSeparableConvSpec``,
   whose ``forward`` calls the built-ins' spec functions (``conv2d``,
   ``batch_norm2d``); layerc derives one backward for the whole block, through
   both sets of batch statistics.

The convolutions carry no bias: the BatchNorm after each one subtracts it again.
The script checks that the two agree (outputs, every gradient, running
statistics, in training and eval mode), and checks the gradients of both
against finite differences in float64.

Run: python examples/custom_layers/depthwise_separable_conv.py
"""
import numpy as np

from layerc import Attr, Buffer, Input, Module, Param, Tensor, check_grad, layer, manual_seed, ops
from layerc.gradcheck import numeric_gradient
from layerc.nn import BatchNorm2D, Conv2D, ReLU, SpecLayer, batch_norm2d, conv2d


# ---------------------------------------------------------------- 1. composed at run time

class DepthwiseSeparableConv(Module):
    """Five built-in layers in a row; parameters ``depthwise.weight``, ``bn1.weight``,
    ``bn1.bias``, ``pointwise.weight``, ``bn2.*``; buffers ``bn1.running_mean`` ..."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dtype=np.float32):
        super().__init__()
        self.depthwise = Conv2D(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                groups=in_channels, bias=False, dtype=dtype)
        self.bn1 = BatchNorm2D(in_channels, dtype=dtype)
        self.relu1 = ReLU()
        self.pointwise = Conv2D(in_channels, out_channels, 1, bias=False, dtype=dtype)
        self.bn2 = BatchNorm2D(out_channels, dtype=dtype)
        self.relu2 = ReLU()

    def parts(self):
        return [self.depthwise, self.bn1, self.relu1, self.pointwise, self.bn2, self.relu2]

    def forward(self, x):
        for part in self.parts():
            x = part(x)
        return x

    def backward(self, grad_output):
        """Gradient of the input of the latest forward; parameter gradients accumulate."""
        g = grad_output
        for part in reversed(self.parts()):
            g = part.backward(g)
        return g

    def to(self, dtype):
        for part in self.parts():
            part.to(dtype)
        return self


# ---------------------------------------------------------------- 2. one fused spec

@layer
class DepthwiseSeparableConvSpec:
    """The whole block as one spec; parameter ``bn1_weight`` is the composed block's ``bn1.weight``."""
    x = Input("N", "C", "H", "W")
    depthwise_weight = Param("C", 1, "K", "K", init="fan_in_uniform")
    bn1_weight = Param("C", init="ones")
    bn1_bias = Param("C", init="zeros")
    bn1_running_mean = Buffer("C", init=0.0)
    bn1_running_var = Buffer("C", init=1.0)
    pointwise_weight = Param("O", "C", 1, 1, init="fan_in_uniform")
    bn2_weight = Param("O", init="ones")
    bn2_bias = Param("O", init="zeros")
    bn2_running_mean = Buffer("O", init=0.0)
    bn2_running_var = Buffer("O", init=1.0)
    stride = Attr(1)
    padding = Attr(0)
    training = Attr(True)

    def forward(x, depthwise_weight, bn1_weight, bn1_bias, bn1_running_mean, bn1_running_var,
                pointwise_weight, bn2_weight, bn2_bias, bn2_running_mean, bn2_running_var,
                stride, padding, training):
        C = int(x.shape[1])
        h = conv2d(x, depthwise_weight, None, stride=stride, padding=padding, groups=C)
        h = ops.relu(batch_norm2d(h, bn1_weight, bn1_bias, bn1_running_mean, bn1_running_var,
                                  training=training))
        h = conv2d(h, pointwise_weight, None)
        return ops.relu(batch_norm2d(h, bn2_weight, bn2_bias, bn2_running_mean, bn2_running_var,
                                     training=training))


class FusedDepthwiseSeparableConv(SpecLayer):
    """The fused spec as a module: ``train()``/``eval()`` pick the compiled variant."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dtype=np.float32):
        super().__init__(dtype)
        self._declare(DepthwiseSeparableConvSpec, C=in_channels, O=out_channels, K=kernel_size,
                      stride=stride, padding=padding)

    def _select(self, inputs):
        return DepthwiseSeparableConvSpec, {"training": bool(self.training)}

    def load_from(self, composed: Module):
        """Copy parameters and buffers from the composed block (``bn1.weight`` -> ``bn1_weight``)."""
        for name, p in composed.named_parameters():
            self._parameters[name.replace(".", "_")].data[...] = p.data
        for name, b in composed.named_buffers():
            self._buffers[name.replace(".", "_")][...] = b
        return self


# ---------------------------------------------------------------- checks

def _finite_difference_check(model, x, rng, params=True):
    """Backward of a composed model against central differences (float64, training mode)."""
    y = model(x)
    weights = rng.standard_normal(y.shape)
    model.zero_grad()
    gx = model.backward(weights).numpy()

    def loss():
        return float(np.sum(model(x).numpy() * weights))
    errors = {"x": np.abs(gx - numeric_gradient(loss, x, 1e-6)).max()}
    if params:
        for name, p in model.named_parameters():
            errors[name] = np.abs(p.grad - numeric_gradient(loss, p.data, 1e-6)).max()
    return errors


def check(verbose=False):
    # fixed initial weights too: finite differences across a ReLU kink would be
    # meaningless, and a seeded run never lands on one
    manual_seed(0)
    rng = np.random.default_rng(0)
    C, O, K, stride, padding = 3, 5, 3, 2, 1
    composed = DepthwiseSeparableConv(C, O, K, stride=stride, padding=padding)
    fused = FusedDepthwiseSeparableConv(C, O, K, stride=stride, padding=padding)
    for _, p in composed.named_parameters():            # not the initial ones and zeros
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * np.sign(rng.standard_normal(p.shape))
    fused.load_from(composed)
    names = [n for n, _ in composed.named_parameters()]
    assert names == ["depthwise.weight", "bn1.weight", "bn1.bias", "pointwise.weight", "bn2.weight", "bn2.bias"]
    assert composed.depthwise.weight.shape == (C, 1, K, K)

    worst = {}
    for mode in ("train", "eval"):
        getattr(composed, mode)()
        getattr(fused, mode)()
        for step in range(2):
            x = (rng.standard_normal((4, C, 9, 11)) + step).astype(np.float32)
            y1, y2 = composed(Tensor(x)), fused(Tensor(x))
            g = rng.standard_normal(y1.shape).astype(np.float32)
            composed.zero_grad()
            fused.zero_grad()
            gx1, gx2 = composed.backward(g), fused.backward(g)
            diffs = {"output": np.abs(y1.numpy() - y2.numpy()).max(),
                     "grad x": np.abs(gx1.numpy() - gx2.numpy()).max()}
            for name, p in composed.named_parameters():
                diffs[f"grad {name}"] = np.abs(p.grad - fused._parameters[name.replace(".", "_")].grad).max()
            for name, b in composed.named_buffers():
                diffs[name] = np.abs(b - fused._buffers[name.replace(".", "_")]).max()
            for k, v in diffs.items():
                assert v < 1e-4, (mode, k, v)
                worst[k] = max(worst.get(k, 0.0), float(v))
    assert y1.shape == (4, O, 5, 6)

    # the fused spec's derived backward, float64 finite differences, odd sizes, both modes
    reports = [check_grad(DepthwiseSeparableConvSpec, N=3, C=3, O=5, K=3, H=5, W=7, stride=2, padding=1,
                          training=t) for t in (True, False)]
    for r in reports:
        assert r.ok, str(r)
    # the composed block's chained backward, float64 finite differences
    composed64 = DepthwiseSeparableConv(3, 5, 3, stride=2, padding=1, dtype=np.float64)
    errors = _finite_difference_check(composed64, rng.standard_normal((3, 3, 5, 7)), rng)
    assert max(errors.values()) < 1e-6, errors

    if verbose:
        print(f"DepthwiseSeparableConv({C}, {O}, kernel_size={K}, stride={stride}, padding={padding}) "
              f"on x[4, {C}, 9, 11] -> y{tuple(y1.shape)}")
        print("composed (6 built-in kernels) vs fused (1 spec), float32, train and eval, max |difference|:")
        for k, v in worst.items():
            print(f"  {k:<26} {v:.2e}")
        print("composed block, float64, chained backward vs finite differences, max |error|:")
        for k, v in errors.items():
            print(f"  {k:<26} {v:.2e}")
        for r in reports:
            print(r)
    return reports


def main():
    check(verbose=True)


if __name__ == "__main__":
    main()
