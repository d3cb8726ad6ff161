"""Small layers the tests share."""
from layerc import Input, Param, layer, ops


@layer
class PReLU:
    """PReLU(x) = max(0, x) + alpha * min(0, x), one alpha per feature."""
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


@layer
class Dense:
    """tanh(x W^T + b)."""
    x = Input("N", "I")
    weight = Param("O", "I", init="normal")
    bias = Param("O", init=0.1)

    def forward(x, weight, bias):
        return ops.tanh(x @ weight.T + bias)
