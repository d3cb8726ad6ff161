"""A one-block transformer learns to reverse sequences of digits: token and
position ``Embedding``, pre-norm ``MultiheadAttention`` and a ``GELU`` MLP with
residual connections, ``RMSNorm``/``LayerNorm``, a ``Linear`` head, cross
entropy and ``Adam``; every layer is a layerc built-in with torch's names, so
the trained weights load into the same model written in PyTorch
(``to_torch_state_dict``) and give the same logits there.

Prints the loss as it trains, then the final loss, the token accuracy on fresh
sequences, and the wall time of training (compilation, or loading the cached
libraries, is timed apart: the first call of each layer).

Run: python examples/tiny_transformer.py [--steps N] [--seed S]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")   # tiny matrices: threads would only cost

import layerc  # noqa: E402  (after OMP_NUM_THREADS: the kernels read it when they load)
from layerc import Adam, Input, Module, layer, no_grad  # noqa: E402
from layerc.losses import cross_entropy  # noqa: E402
from layerc.nn import GELU, Embedding, LayerNorm, Linear, MultiheadAttention, RMSNorm  # noqa: E402

VOCAB, LENGTH, WIDTH, HEADS = 10, 8, 32, 4


@layer
class TokenRows:
    """[B, L, V] logits as [B * L, V] rows, for the cross entropy."""
    x = Input("B", "L", "V")

    def forward(x):
        B, L, V = x.shape
        return x.reshape(B * L, V)


class TinyTransformer(Module):
    """Embeddings, one pre-norm block (attention, then an MLP) and a head."""

    def __init__(self, vocab=VOCAB, length=LENGTH, width=WIDTH, heads=HEADS):
        super().__init__()
        self.tokens = Embedding(vocab, width)
        self.positions = Embedding(length, width)
        self.norm1 = RMSNorm(width)
        self.attention = MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = LayerNorm(width)
        self.fc1, self.gelu, self.fc2 = Linear(width, 4 * width), GELU(), Linear(4 * width, width)
        self.norm3 = LayerNorm(width)
        self.head = Linear(width, vocab)
        object.__setattr__(self, "rows", TokenRows.build(V=vocab))

    def forward(self, ids):
        position = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
        h = self.tokens(ids) + self.positions(position)
        h = h + self.attention(self.norm1(h))                   # self-attention: key and value are the query
        h = h + self.fc2(self.gelu(self.fc1(self.norm2(h))))
        return self.head(self.norm3(h))                         # [B, L, vocab]

    def loss(self, ids, targets):
        return cross_entropy(self.rows(self.forward(ids)), targets.reshape(-1))


def batch(rng, size):
    ids = rng.integers(0, VOCAB, (size, LENGTH))
    return ids, np.ascontiguousarray(ids[:, ::-1])          # the task: reverse the sequence


def accuracy(model, rng, size=512) -> float:
    ids, targets = batch(rng, size)
    with no_grad():
        return float((model(ids).numpy().argmax(-1) == targets).mean())


def torch_twin(vocab=VOCAB, length=LENGTH, width=WIDTH, heads=HEADS):
    """The same model in PyTorch (same module names), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(length, width)
            self.norm1, self.norm2, self.norm3 = nn.RMSNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
            self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
            self.fc1, self.gelu, self.fc2 = nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
            self.head = nn.Linear(width, vocab)

        def forward(self, ids):
            h = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
            a = self.norm1(h)
            h = h + self.attention(a, a, a, need_weights=False)[0]
            h = h + self.fc2(self.gelu(self.fc1(self.norm2(h))))
            return self.head(self.norm3(h))
    return Twin()


def torch_difference(model, ids):
    """The largest logit difference from the PyTorch twin given the trained weights (None without torch)."""
    twin = torch_twin()
    if twin is None:
        return None
    import torch
    twin.load_state_dict(layerc.nn.to_torch_state_dict(model))
    with torch.no_grad():
        theirs = twin(torch.from_numpy(ids)).numpy()
    with no_grad():
        return float(np.abs(model(ids).numpy() - theirs).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    layerc.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = TinyTransformer()
    optimizer = Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    model.loss(*batch(rng, args.batch)).backward()              # compiles (or loads) every layer once
    model.zero_grad()
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = model.loss(*batch(rng, args.batch))
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {float(loss):.4f}")
    seconds = time.perf_counter() - start
    print(f"final loss {float(loss):.4f}, token accuracy {accuracy(model, rng):.2%} on fresh sequences, "
          f"{args.steps} steps in {seconds:.1f}s (compiling or loading the layers: {compiled:.1f}s)")
    difference = torch_difference(model, batch(rng, 16)[0])
    if difference is not None:
        print(f"the weights in torch.nn (to_torch_state_dict): logits differ by at most {difference:.1e}")
        assert difference < 1e-3, difference
    return float(loss)


if __name__ == "__main__":
    main()
