"""A WGAN-GP-style gradient penalty, ``(||d f(x)/dx|| - 1)^2``, with layerc.

The critic ``f`` is a spec. ``Critic.grad(wrt="x")`` is its backward as a
spec of its own (``layerc/spec_grad.py``): ``(x, parameters, grad_out) ->
grad_x``, compiled like any layer. ``grad_module`` builds it sharing the
critic's parameter Tensors, so the penalty, written with Tensor ops on
``grad_x``, backpropagates through the grad spec's compiled backward (the
critic's second derivative) into the same parameters the critic's loss
reaches, and one optimizer trains them.

The critic trains a few steps on the WGAN-GP objective
``mean f(fake) - mean f(real) + lambda * penalty`` at points between real and
fake samples; ``tests/test_spec_grad.py`` checks the penalty and its
parameter gradients against PyTorch's double backward on the same weights.

Run: python examples/gradient_penalty.py
"""
import numpy as np

from layerc import Adam, Input, Param, Tensor, layer, manual_seed, ops
from layerc.runtime.tensor_ops import sqrt
from layerc.spec_grad import grad_module


@layer
class Critic:
    """f(x) = tanh(x @ w1.T + b1) @ w2.T: [N, I] -> [N, 1]."""
    x = Input("N", "I")
    w1 = Param("H", "I", init="xavier")
    b1 = Param("H", init="zeros")
    w2 = Param(1, "H", init="xavier")

    def forward(x, w1, b1, w2):
        return ops.tanh(x @ w1.T + b1) @ w2.T


def gradient_penalty(critic_grad, points) -> Tensor:
    """``mean over samples of (||d f / d x|| - 1)^2`` at ``points``; ``critic_grad``
    is the critic's grad module (``grad_module(critic, wrt="x")``)."""
    ones = np.ones((len(points), 1), points.dtype)          # d sum(f) / d f: one per sample
    grad_x = critic_grad(points, ones)
    norm = sqrt((grad_x * grad_x).sum(axis=1))
    return ((norm - 1.0) ** 2).mean()


def critic_loss(critic, critic_grad, real, fake, mix, weight=10.0):
    """The WGAN-GP critic objective and its penalty term; ``mix`` in [0, 1] per sample."""
    points = mix[:, None] * real + (1 - mix[:, None]) * fake
    penalty = gradient_penalty(critic_grad, points)
    return critic(fake).mean() - critic(real).mean() + weight * penalty, penalty


def make_data(n, dtype=np.float32, seed=0):
    """Real samples around (2, 2), fake ones around the origin, and the mixing weights."""
    rng = np.random.default_rng(seed)
    real = (rng.standard_normal((n, 2)) * 0.5 + 2.0).astype(dtype)
    fake = (rng.standard_normal((n, 2)) * 0.5).astype(dtype)
    return real, fake, rng.uniform(size=n).astype(dtype)


def train(steps=30, hidden=16, dtype=np.float32, verbose=False):
    """Train the critic ``steps`` Adam steps; (critic, its grad module, [(loss, penalty)])."""
    manual_seed(0)
    critic = Critic.build(I=2, H=hidden, dtype=dtype)
    critic_grad = grad_module(critic, wrt="x")              # shares critic's parameters
    opt = Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9))
    history = []
    for step in range(steps):
        real, fake, mix = make_data(64, dtype, seed=step)
        opt.zero_grad()
        loss, penalty = critic_loss(critic, critic_grad, real, fake, mix)
        loss.backward()
        opt.step()
        history.append((float(loss), float(penalty)))
        if verbose and step % 5 == 0:
            print(f"step {step:2d}: critic loss {history[-1][0]:+.4f}, gradient penalty {history[-1][1]:.4f}")
    return critic, critic_grad, history


def main():
    _, _, history = train(verbose=True)
    first, last = history[0][0], history[-1][0]
    print(f"critic loss {first:+.4f} -> {last:+.4f}")
    assert last < first


if __name__ == "__main__":
    main()
