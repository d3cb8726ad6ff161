"""Train on scikit-learn's handwritten digits (8x8 images, 10 classes; the data
ships inside scikit-learn, no download): an MLP with PReLU, then a small
convolutional net with the depthwise-separable block. Every layer, the loss
and the optimizer update run in C that layerc generated from specs.

For each model: one line per epoch (loss, train and test accuracy, time) with a
progress bar while the epoch runs; a checkpoint saved with ``Module.save``,
reloaded into a freshly built model and re-evaluated to the same accuracy; a
PNG of the training curves when matplotlib is installed.

Run: python examples/train_digits.py [--epochs N] [--skip-conv] [--out DIR]
(needs scikit-learn: pip install -e ".[examples]")
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

# Batches of 64 digits make matrices too small for a second thread to pay off:
# measured on this 2-core machine, one thread ran an MLP epoch in ~1 s, two in
# 5-7 s while the machine was busy. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import layerc  # noqa: E402  (after OMP_NUM_THREADS: the kernels read it when they load)
from layerc import AdamW, CosineAnnealingLR, Sequential, no_grad  # noqa: E402
from layerc.losses import cross_entropy  # noqa: E402
from layerc.nn import BatchNorm2D, Conv2D, Flatten, Linear, ReLU  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def custom_layer(name: str):
    """Load one of the guide's custom layers (``examples/custom_layers/<name>.py``)."""
    path = HERE / "custom_layers" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"custom_layers_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_data(seed: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


# ---------------------------------------------------------------- models


def mlp():
    PReLU = custom_layer("prelu_activation").PReLU
    return Sequential([Linear(64, 256), PReLU(256), Linear(256, 128), PReLU(128), Linear(128, 10)])


class Images(layerc.Module):
    """Reshape flat 64-pixel rows to [N, 1, 8, 8] images."""

    def forward(self, x):
        x = x if isinstance(x, layerc.Tensor) else layerc.Tensor(x)
        return layerc.Tensor(x.numpy().reshape(-1, 1, 8, 8))   # the input needs no gradient


def conv_net():
    DepthwiseSeparableConv = custom_layer("depthwise_separable_conv").DepthwiseSeparableConv
    return Sequential([
        Images(),
        Conv2D(1, 16, 3, padding=1), BatchNorm2D(16), ReLU(),         # [N, 16, 8, 8]
        DepthwiseSeparableConv(16, 32, 3, stride=2, padding=1),       # [N, 32, 4, 4]
        Flatten(), Linear(32 * 4 * 4, 10),
    ])


# ---------------------------------------------------------------- training


def progress(done: int, total: int, width: int = 30) -> None:
    if sys.stdout.isatty():
        filled = width * done // total
        print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", flush=True)


def accuracy(model, x, y, batch=512) -> float:
    model.eval()
    with no_grad():
        correct = sum(int((model(x[i:i + batch]).numpy().argmax(axis=1) == y[i:i + batch]).sum())
                      for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def train(name, model, data, epochs, lr, batch, seed):
    x_train, x_test, y_train, y_test = data
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = CosineAnnealingLR(optimizer, T_max=epochs)
    rng = np.random.default_rng(seed)
    steps = (len(x_train) + batch - 1) // batch
    history = {"loss": [], "train": [], "test": []}
    print(f"{name}: {sum(p.numpy().size for p in model.parameters())} parameters, "
          f"{len(x_train)} training / {len(x_test)} test images")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0, order, total = time.perf_counter(), rng.permutation(len(x_train)), 0.0
        for step in range(steps):
            index = order[step * batch:(step + 1) * batch]
            optimizer.zero_grad()
            loss = cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(index)
            progress(step + 1, steps)
        schedule.step()
        history["loss"].append(total / len(x_train))
        history["train"].append(accuracy(model, x_train, y_train))
        history["test"].append(accuracy(model, x_test, y_test))
        print(f"\r{name} epoch {epoch:2d}/{epochs}  loss {history['loss'][-1]:.4f}  "
              f"train {history['train'][-1]:.2%}  test {history['test'][-1]:.2%}  "
              f"{time.perf_counter() - t0:.2f}s" + " " * 10, flush=True)
    print(f"{name}: test accuracy {history['test'][-1]:.2%} after {time.perf_counter() - start:.1f}s")
    return history


def check_checkpoint(name, model, make, data, out: pathlib.Path) -> float:
    """Save, reload into a freshly built model, re-evaluate: the accuracy must not change."""
    _, x_test, _, y_test = data
    path = out / f"digits_{name}.npz"
    model.save(path)
    fresh = make()
    fresh.load(path)
    before, after = accuracy(model, x_test, y_test), accuracy(fresh, x_test, y_test)
    print(f"{name}: checkpoint {path} reloaded, test accuracy {after:.2%} (before saving {before:.2%})")
    if after != before:
        raise SystemExit(f"{name}: the reloaded checkpoint evaluates differently")
    return after


def plot(histories: dict, out: pathlib.Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no curves written")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for (name, h), color in zip(histories.items(), ("tab:blue", "tab:orange")):
        epochs = range(1, len(h["loss"]) + 1)
        left.plot(epochs, h["loss"], color=color, label=name)
        right.plot(epochs, h["test"], color=color, label=f"{name} test")
        right.plot(epochs, h["train"], "--", color=color, label=f"{name} train")
    left.set(xlabel="epoch", ylabel="training loss")
    right.set(xlabel="epoch", ylabel="accuracy")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(out / "train_digits.png")
    print(f"curves written to {out / 'train_digits.png'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="MLP epochs")
    parser.add_argument("--conv-epochs", type=int, default=15)
    parser.add_argument("--skip-conv", action="store_true", help="train only the MLP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="folder for checkpoints and the PNG (default: a temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="layerc-digits-"))
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.seed)
    histories = {}

    def seeded(make):
        def build():
            layerc.manual_seed(args.seed)
            return make()
        return build

    start = time.perf_counter()
    runs = [("mlp", mlp, args.epochs)] + ([] if args.skip_conv else [("conv", conv_net, args.conv_epochs)])
    for name, make, epochs in runs:
        model = seeded(make)()
        histories[name] = train(name, model, data, epochs, lr=5e-3, batch=64, seed=args.seed)
        check_checkpoint(name, model, make, data, out)
    print(f"total {time.perf_counter() - start:.1f}s")
    plot(histories, out)


if __name__ == "__main__":
    main()
