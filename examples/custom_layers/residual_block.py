"""ResidualBlock(channels): conv -> bn -> relu -> conv -> bn, plus the identity, -> relu.

The convolutions are 3x3 with padding 1 (the shape is kept, so the identity
can be added) and no bias (the BatchNorm after each removes it), as in
torchvision's BasicBlock; the parameter names match it: ``conv1.weight``,
``bn1.weight``, ``bn1.running_mean``, ...

Shown two ways, checked to agree:

1. ``ResidualBlock``: built-in layers composed at run time. ``forward`` records
   each call on the autograd tape, so ``loss.backward()`` works; ``backward``
   chains the parts' own backward explicitly (the identity's gradient is added
   to the block's).
2. ``ResidualBlockSpec``: one spec calling the built-ins' spec functions
   (``conv2d``, ``batch_norm2d``); layerc derives its backward.

Run: python examples/custom_layers/residual_block.py
"""
import numpy as np

from layerc import Attr, Buffer, Input, Module, Param, Tensor, check_grad, layer, manual_seed, ops
from layerc.gradcheck import numeric_gradient
from layerc.losses import mse_loss
from layerc.nn import BatchNorm2D, Conv2D, ReLU, SpecLayer, batch_norm2d, conv2d


# ---------------------------------------------------------------- 1. composed at run time

class ResidualBlock(Module):
    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        self.conv1 = Conv2D(channels, channels, 3, padding=1, bias=False, dtype=dtype)
        self.bn1 = BatchNorm2D(channels, dtype=dtype)
        self.relu1 = ReLU()
        self.conv2 = Conv2D(channels, channels, 3, padding=1, bias=False, dtype=dtype)
        self.bn2 = BatchNorm2D(channels, dtype=dtype)
        self.relu_out = ReLU()

    def block(self):
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        h = x
        for part in self.block():
            h = part(h)
        return self.relu_out(h + x)          # Tensor + Tensor is recorded on the tape too

    def backward(self, grad_output):
        """Gradient of the input of the latest forward: through the block, plus the identity."""
        g = self.relu_out.backward(grad_output).numpy()
        gb = g
        for part in reversed(self.block()):
            gb = part.backward(gb)
        return Tensor(g + gb.numpy())


# ---------------------------------------------------------------- 2. one spec

@layer
class ResidualBlockSpec:
    x = Input("N", "C", "H", "W")
    conv1_weight = Param("C", "C", 3, 3, init="fan_in_uniform")
    bn1_weight = Param("C", init="ones")
    bn1_bias = Param("C", init="zeros")
    bn1_running_mean = Buffer("C", init=0.0)
    bn1_running_var = Buffer("C", init=1.0)
    conv2_weight = Param("C", "C", 3, 3, init="fan_in_uniform")
    bn2_weight = Param("C", init="ones")
    bn2_bias = Param("C", init="zeros")
    bn2_running_mean = Buffer("C", init=0.0)
    bn2_running_var = Buffer("C", init=1.0)
    training = Attr(True)

    def forward(x, conv1_weight, bn1_weight, bn1_bias, bn1_running_mean, bn1_running_var,
                conv2_weight, bn2_weight, bn2_bias, bn2_running_mean, bn2_running_var, training):
        h = conv2d(x, conv1_weight, None, padding=1)
        h = ops.relu(batch_norm2d(h, bn1_weight, bn1_bias, bn1_running_mean, bn1_running_var, training=training))
        h = conv2d(h, conv2_weight, None, padding=1)
        h = batch_norm2d(h, bn2_weight, bn2_bias, bn2_running_mean, bn2_running_var, training=training)
        return ops.relu(h + x)


class FusedResidualBlock(SpecLayer):
    def __init__(self, channels, dtype=np.float32):
        super().__init__(dtype)
        self._declare(ResidualBlockSpec, C=channels)

    def _select(self, inputs):
        return ResidualBlockSpec, {"training": bool(self.training)}

    def load_from(self, composed: Module):
        """Copy parameters and buffers from the composed block (``bn1.weight`` -> ``bn1_weight``)."""
        for name, p in composed.named_parameters():
            self._parameters[name.replace(".", "_")].data[...] = p.data
        for name, b in composed.named_buffers():
            self._buffers[name.replace(".", "_")][...] = b
        return self


# ---------------------------------------------------------------- checks

def check(verbose=False):
    # fixed initial weights too: finite differences across a ReLU kink would be
    # meaningless, and a seeded run never lands on one
    manual_seed(0)
    rng = np.random.default_rng(0)
    channels = 5
    block = ResidualBlock(channels)
    fused = FusedResidualBlock(channels)
    for _, p in block.named_parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * np.sign(rng.standard_normal(p.shape)) / (
            3.0 if p.ndim == 4 else 1.0)
    fused.load_from(block)
    assert [n for n, _ in block.named_parameters()] == [
        "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"]
    assert [n for n, _ in block.named_buffers()][:2] == ["bn1.running_mean", "bn1.running_var"]

    x = rng.standard_normal((4, channels, 7, 9)).astype(np.float32)
    target = rng.standard_normal(x.shape).astype(np.float32)

    # tape: loss.backward() reaches every part; the explicit backward gives the same gradients
    xt = Tensor(x, requires_grad=True)
    y = block(xt)
    assert y.shape == x.shape
    loss = mse_loss(y, target)
    loss.backward()
    tape_grads = {n: p.grad.copy() for n, p in block.named_parameters()}
    tape_gx = xt.grad.copy()
    block.zero_grad()
    block(x)
    gy = 2 * (y.numpy() - target) / y.numpy().size
    gx = block.backward(gy).numpy()
    diffs = {"tape vs explicit: grad x": np.abs(gx - tape_gx).max()}
    for n, p in block.named_parameters():
        diffs[f"tape vs explicit: grad {n}"] = np.abs(p.grad - tape_grads[n]).max()

    # composed vs fused, training then eval (the running statistics were updated twice above)
    fused.load_from(block)
    for mode in ("train", "eval"):
        getattr(block, mode)()
        getattr(fused, mode)()
        block.zero_grad()
        fused.zero_grad()
        y1, y2 = block(x), fused(x)
        g1, g2 = block.backward(gy), fused.backward(gy)
        diffs[f"{mode}: output"] = np.abs(y1.numpy() - y2.numpy()).max()
        diffs[f"{mode}: grad x"] = np.abs(g1.numpy() - g2.numpy()).max()
        for n, p in block.named_parameters():
            diffs[f"{mode}: grad {n}"] = np.abs(p.grad - fused._parameters[n.replace(".", "_")].grad).max()
        for n, b in block.named_buffers():
            diffs[f"{mode}: {n}"] = np.abs(b - fused._buffers[n.replace(".", "_")]).max()
    for k, v in diffs.items():
        assert v < 1e-4, (k, v)

    # float64 finite differences: the spec's derived backward (odd sizes, both modes) ...
    reports = [check_grad(ResidualBlockSpec, N=3, C=3, H=5, W=7, training=t) for t in (True, False)]
    for r in reports:
        assert r.ok, str(r)
    # ... and the composed block's chained backward
    block64 = ResidualBlock(3, dtype=np.float64)
    x64 = rng.standard_normal((3, 3, 5, 7))
    w = rng.standard_normal(x64.shape)
    block64(x64)
    gx64 = block64.backward(w).numpy()
    numeric = numeric_gradient(lambda: float(np.sum(block64(x64).numpy() * w)), x64, 1e-6)
    fd_error = np.abs(gx64 - numeric).max()
    assert fd_error < 1e-6, fd_error

    if verbose:
        print(f"ResidualBlock({channels}) on x{x.shape} -> y{y.shape}, mse loss {float(loss.numpy()):.5f}")
        print("max |difference| (float32):")
        for k, v in diffs.items():
            print(f"  {k:<36} {v:.2e}")
        print(f"composed block (float64): chained input gradient vs finite differences, max |error| {fd_error:.2e}")
        for r in reports:
            print(r)
    return reports


def main():
    check(verbose=True)


if __name__ == "__main__":
    main()
