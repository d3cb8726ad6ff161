"""PReLU(num_features=1, init_value=0.25): max(0, x) + alpha * min(0, x), with a
learnable slope ``alpha`` per feature (axis 1 of the input, as torch.nn.PReLU);
``num_features=1`` shares one alpha over every feature.

The math is one layerc spec, ``PReLUND`` (``Input("N", "C", ...)``), for inputs
of every rank: forward sees the ``...`` axes as one, so one compiled kernel runs
[N, C], [N, C, L], [N, C, H, W], ... For [N, C] the ``...`` group is empty (one
element): layerc compiles a variant for that case too, whose loops run over C,
and the kernel calls it when the group is empty. A 1-D input [N] (no feature
axis, one shared alpha) runs as [1, 1, N].

Run: python examples/custom_layers/prelu_activation.py
"""
import numpy as np

from layerc import Input, Module, Param, Tensor, check_grad, layer, ops


def prelu(x, alpha):
    # = max(0, x) + alpha * min(0, x); written with `where` so that at x == 0 the
    # derivative is alpha, as in torch.nn.PReLU (maximum/minimum split ties evenly)
    return ops.where(x > 0, x, alpha * x)


@layer
class PReLUND:
    """PReLU on [N, C, ...]: [N, C], sequences [N, C, L], images [N, C, H, W], ...;
    alpha has K = C entries (or K = 1, shared). forward sees the ... axes as one
    axis, so x is [N, C, E] here and alpha lies along C as [K, 1]."""
    x = Input("N", "C", ...)
    alpha = Param("K", init=0.25)

    def forward(x, alpha):
        K, = alpha.shape
        return prelu(x, alpha.reshape(K, 1))


class PReLU(Module):
    """``PReLU(num_features=1, init_value=0.25)``: forward, backward, ``alpha`` (+ ``alpha.grad``)."""

    spec = PReLUND

    def __init__(self, num_features=1, init_value=0.25, dtype=np.float32):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"PReLU: num_features must be >= 1, got {num_features}")
        self.num_features = int(num_features)
        bindings = {"K": self.num_features}
        if self.num_features > 1:
            bindings["C"] = self.num_features         # one alpha per feature
        # the compiled layer is held, not registered: its one parameter is this module's `alpha`
        object.__setattr__(self, "_layer", PReLUND.build(dtype=dtype, **bindings))
        self._layer.alpha.data[...] = init_value
        self.alpha = self._layer.alpha
        object.__setattr__(self, "_flat", None)

    def forward(self, x):
        rank = np.ndim(x.data if isinstance(x, Tensor) else x)
        if rank < 1:
            raise ValueError(f"PReLU: input rank must be 1 or more, got {rank}")
        object.__setattr__(self, "_flat", None)
        if self._layer.alpha is not self.alpha:
            self._layer.alpha = self.alpha            # a new alpha was assigned (or loaded)
        if rank == 1:
            # no feature axis: one alpha over every element, the elements the ... axis
            if self.num_features != 1:
                raise ValueError(f"PReLU({self.num_features}): a 1-D input has no feature axis; use num_features=1")
            n = np.shape(x.data if isinstance(x, Tensor) else x)[0]
            object.__setattr__(self, "_flat", n)
            return self._layer.forward(x.reshape(1, 1, n)).reshape(n)
        return self._layer.forward(x)

    def backward(self, grad_output):
        if self._flat is None:
            return self._layer.backward(grad_output)
        n = self._flat
        return self._layer.backward(np.reshape(grad_output, (1, 1, n))).reshape(n)

    @property
    def compiled(self):
        return self._layer.compiled

    def __repr__(self):
        return f"PReLU(num_features={self.num_features})"


def check(verbose=False):
    # the guide's test
    prelu_ = PReLU(num_features=1, init_value=0.25)
    x = np.array([-2, -1, 0, 1, 2], dtype=np.float32)
    y = prelu_.forward(x)
    assert np.allclose(y.numpy(), [-0.5, -0.25, 0, 1, 2]), y.numpy()
    gx = prelu_.backward(np.ones_like(x))
    assert np.isclose(prelu_.alpha.grad, -3.0).all(), prelu_.alpha.grad   # sum of the negative inputs
    if verbose:
        print("PReLU(num_features=1, init_value=0.25) on", x)
        print("  forward  ->", y.numpy())
        print("  backward(ones) -> dL/dx =", gx.numpy(), " alpha.grad =", prelu_.alpha.grad)

    # one alpha per feature on [N, C] and on images [N, C, H, W]
    per_feature = PReLU(num_features=3, init_value=0.1)
    per_feature.alpha.numpy()[...] = [0.1, 0.2, 0.3]
    x2 = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    a = per_feature.alpha.numpy().reshape(3, 1, 1)
    assert np.allclose(per_feature.forward(x2).numpy(), np.maximum(x2, 0) + a * np.minimum(x2, 0))
    per_feature.backward(np.ones_like(x2))
    assert np.allclose(per_feature.alpha.grad, np.minimum(x2, 0).sum(axis=(0, 2, 3)), atol=1e-5)
    if verbose:
        print("PReLU(num_features=3) on [4, 3, 2, 2]: alpha.grad =", per_feature.alpha.grad)

    # the one spec on [N, C] (its variant for an empty ...), [N, C, L] and [N, C, H, W]
    rng = np.random.default_rng(1)
    reports = [check_grad(PReLUND, inputs={"x": rng.standard_normal((3, 5))}, C=5, K=5),
               check_grad(PReLUND, inputs={"x": rng.standard_normal((3, 5))}, K=1),
               check_grad(PReLUND, inputs={"x": rng.standard_normal((2, 3, 4))}, C=3, K=3),
               check_grad(PReLUND, inputs={"x": rng.standard_normal((2, 3, 3, 5))}, C=3, K=3)]
    for r in reports:
        assert r.ok, str(r)
    return reports


def main():
    for report in check(verbose=True):
        print(report)


if __name__ == "__main__":
    main()
