"""FocalLoss(alpha=0.25, gamma=2.0): FL = -alpha * (1 - p_t)**gamma * log(p_t),
averaged over the batch, for logits [N, C] and integer class targets [N].

Computed stably: log(p_t) is read from log_softmax (max subtracted, no
probability that underflows to 0 and no ``log(p + 1e-7)``), and p_t = exp(log p_t).
The targets are an integer input read by a gather, ``logp[n, targets[n]]``;
they are not differentiable. layerc derives the gradient of the logits.

Run: python examples/custom_layers/focal_loss.py
Show the derived backward: layerc show examples/custom_layers/focal_loss.py:FocalLossSpec
"""
import numpy as np

from layerc import Attr, Input, check_grad, layer, ops


@layer
class FocalLossSpec:
    """Focal loss (Lin et al.) of logits [N, C] against integer targets [N], mean over N."""
    logits = Input("N", "C")
    targets = Input("N", dtype="int64")
    alpha = Attr(0.25)
    gamma = Attr(2.0)

    def forward(logits, targets, alpha, gamma):
        N, C = logits.shape
        logp = ops.log_softmax(logits, axis=1)                        # stable
        logp_t = ops.compute((N,), lambda n: logp[n, targets[n]], name="logp_t")   # gather
        p_t = ops.exp(logp_t)
        return ops.mean(-alpha * (1 - p_t) ** gamma * logp_t)


def FocalLoss(alpha=0.25, gamma=2.0, dtype=np.float32):
    """A compiled focal loss: ``loss(logits, targets)`` -> a scalar Tensor; ``loss.backward(np.ones(()))``
    -> the gradient of the logits."""
    return FocalLossSpec.build(alpha=float(alpha), gamma=float(gamma), dtype=dtype)


FocalLoss.spec = FocalLossSpec


def focal_loss_numpy(logits, targets, alpha=0.25, gamma=2.0):
    """The reference: the same formula in float64 numpy."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp_t = logp[np.arange(len(targets)), targets]
    return float(np.mean(-alpha * (1 - np.exp(logp_t)) ** gamma * logp_t))


def check(verbose=False):
    loss = FocalLoss(alpha=0.25, gamma=2.0)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    targets = np.array([0, 3, 1, 1, 2, 0])
    value = loss(logits, targets)
    assert value.shape == ()
    expected = focal_loss_numpy(logits.astype(np.float64), targets)
    assert np.isclose(float(value.numpy()), expected, rtol=1e-5), (float(value.numpy()), expected)
    grad = loss.backward(np.ones((), np.float32))    # dL/dloss = 1
    assert grad.shape == logits.shape

    # stable for huge logits (a probability that underflows to 0 in float32)
    big = np.array([[80.0, -80.0, 0.0]], dtype=np.float32)
    far = float(loss(big, np.array([1])).numpy())
    assert np.isfinite(far) and np.isclose(far, focal_loss_numpy(big.astype(np.float64), np.array([1])), rtol=1e-5)

    if verbose:
        print(f"FocalLoss(alpha=0.25, gamma=2.0) on logits[6, 4], targets {targets}:")
        print(f"  loss = {float(value.numpy()):.6f} (numpy reference {expected:.6f})")
        print("  dL/dlogits =\n", grad.numpy())
        print(f"  logits [80, -80, 0] with target 1 (p_t ~ 1e-70): loss = {far:.4f}")
        print("derived backward:")
        from layerc.compiler import ir
        print("\n".join("  " + line for line in ir.format_program(loss.compiled.derived).splitlines()
                        if not line.startswith("#")))
    targets_odd = np.array([2, 0, 4])
    reports = [check_grad(FocalLossSpec, N=3, C=5, inputs={"targets": targets_odd}),
               check_grad(FocalLossSpec, N=3, C=5, gamma=0.5, alpha=1.0, inputs={"targets": targets_odd})]
    for r in reports:
        assert r.ok, str(r)
    return reports


def main():
    for report in check(verbose=True):
        print(report)


if __name__ == "__main__":
    main()
