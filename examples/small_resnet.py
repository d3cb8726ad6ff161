"""A small ResNet trained on scikit-learn's handwritten digits (8x8 images, 10
classes, bundled with scikit-learn): a stem convolution, two residual stages
(the second strided, with a 1x1 projection on its shortcut), Dropout, global
average pooling (AdaptiveAvgPool2D) and a linear classifier, trained with Adam.
Every layer runs in C that layerc generated from specs, forward and backward.

Prints one line per epoch, then the test accuracy and the wall time.

Run: python examples/small_resnet.py [--epochs N] [--steps S]
(``--steps`` caps the batches per epoch, for a quick run; the environment
variable LAYERC_EXAMPLE_STEPS does the same.) Needs scikit-learn.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_digits import accuracy, load_data  # noqa: E402  (sets OMP_NUM_THREADS before layerc loads)

import layerc  # noqa: E402
from layerc import Adam, Sequential  # noqa: E402
from layerc.losses import cross_entropy  # noqa: E402
from layerc.nn import (AdaptiveAvgPool2D, BatchNorm2D, Conv2D, Dropout, Flatten, Linear,  # noqa: E402
                       ReLU)


class BasicBlock(layerc.Module):
    """ResNet's basic block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``;
    the shortcut is the identity, or a strided 1x1 convolution and a batch norm
    where the block changes the size or the channels."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = Sequential(Conv2D(cin, cout, 3, stride=stride, padding=1, bias=False), BatchNorm2D(cout),
                               ReLU(), Conv2D(cout, cout, 3, padding=1, bias=False), BatchNorm2D(cout))
        if stride != 1 or cin != cout:
            self.shortcut = Sequential(Conv2D(cin, cout, 1, stride=stride, bias=False), BatchNorm2D(cout))
        self.relu = ReLU()

    def forward(self, x):
        x = x if isinstance(x, layerc.Tensor) else layerc.Tensor(x)
        skip = self.shortcut(x) if "shortcut" in self._modules else x
        return self.relu(self.body(x) + skip)        # the sum and both branches on the tape


class Images(layerc.Module):
    """Flat 64-pixel rows as [N, 1, 8, 8] images (the input needs no gradient)."""

    def forward(self, x):
        x = x.numpy() if isinstance(x, layerc.Tensor) else x
        return layerc.Tensor(x.reshape(-1, 1, 8, 8))


def small_resnet(width: int = 16, dropout: float = 0.1):
    return Sequential(
        Images(),
        Conv2D(1, width, 3, padding=1, bias=False), BatchNorm2D(width), ReLU(),     # [N, w, 8, 8]
        BasicBlock(width, width),                                                  # [N, w, 8, 8]
        BasicBlock(width, 2 * width, stride=2),                                    # [N, 2w, 4, 4]
        Dropout(dropout),
        AdaptiveAvgPool2D(1), Flatten(), Linear(2 * width, 10),                    # [N, 10]
    )


def train(model, data, epochs: int, steps: int | None, batch: int = 64, lr: float = 3e-3, seed: int = 0):
    x_train, x_test, y_train, y_test = data
    optimizer = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    per_epoch = (len(x_train) + batch - 1) // batch
    per_epoch = min(per_epoch, steps) if steps else per_epoch
    losses = []
    for epoch in range(1, epochs + 1):
        order, t0, total = rng.permutation(len(x_train)), time.perf_counter(), 0.0
        for step in range(per_epoch):
            index = order[step * batch:(step + 1) * batch]
            optimizer.zero_grad()
            loss = cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total += float(loss)
        losses.append(total / per_epoch)
        print(f"epoch {epoch:2d}/{epochs}  loss {losses[-1]:.4f}  test {accuracy(model, x_test, y_test):.2%}  "
              f"{time.perf_counter() - t0:.2f}s", flush=True)
    return losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=int(os.environ.get("LAYERC_EXAMPLE_STEPS", 0)) or None,
                        help="at most this many batches per epoch (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_data(args.seed)
    layerc.manual_seed(args.seed)
    model = small_resnet()
    print(f"small ResNet: {sum(p.numpy().size for p in model.parameters())} parameters, "
          f"{len(data[0])} training / {len(data[1])} test images")
    start = time.perf_counter()
    losses = train(model, data, args.epochs, args.steps, seed=args.seed)
    test = accuracy(model, data[1], data[3])
    print(f"test accuracy {test:.2%}, wall time {time.perf_counter() - start:.1f}s "
          f"(loss {losses[0]:.3f} -> {losses[-1]:.3f})")
    if not losses[-1] < losses[0] or not np.isfinite(losses[-1]):
        raise SystemExit("small_resnet: the training loss did not go down")
    return test


if __name__ == "__main__":
    main()
