"""The examples: each runs as a script and checks itself; plus the guide's
acceptance values for the custom layers."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CUSTOM = ["scaled_layer", "prelu_activation", "linear_no_bias", "linear", "focal_loss",
          "attention_layer", "custom_linear"]


def load(name):
    """Import examples/custom_layers/<name>.py as a module."""
    path = EXAMPLES / "custom_layers" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"layerc_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(path):
    result = subprocess.run([sys.executable, str(path)], cwd=str(ROOT), capture_output=True, text=True,
                            env=dict(os.environ), timeout=600)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_quickstart_prints_forward_backward_and_a_passing_check():
    out = run_script(EXAMPLES / "quickstart.py")
    assert "forward: y = PReLU(x)" in out and "-0.5" in out
    assert "derived backward" in out and "grad_alpha[" in out and "grad_x[" in out
    assert "gradient check of PReLU" in out and out.rstrip().endswith("passed")
    assert "FAILED" not in out


def test_tiny_transformer_learns_to_reverse(capsys):
    """examples/tiny_transformer.py, few steps: the loss falls, and the trained
    weights give the same logits in torch.nn where torch is installed."""
    spec = importlib.util.spec_from_file_location("layerc_example_tiny_transformer",
                                                  EXAMPLES / "tiny_transformer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loss = module.main(["--steps", "120"])
    out = capsys.readouterr().out
    assert "final loss" in out and "token accuracy" in out
    assert loss < 0.1, out


@pytest.mark.parametrize("name", CUSTOM)
def test_example_main_checks_itself(name, capsys):
    """What ``python examples/custom_layers/<name>.py`` runs, in this process."""
    load(name).main()
    out = capsys.readouterr().out
    assert "passed" in out and "FAILED" not in out


@pytest.mark.slow
@pytest.mark.parametrize("name", CUSTOM)
def test_example_runs_as_a_script(name):
    out = run_script(EXAMPLES / "custom_layers" / f"{name}.py")
    assert "passed" in out and "FAILED" not in out


def test_prelu_guide_values():
    PReLU = load("prelu_activation").PReLU
    prelu = PReLU(num_features=1, init_value=0.25)
    x = np.array([-2, -1, 0, 1, 2], dtype=np.float32)
    y = prelu.forward(x)
    np.testing.assert_allclose(y.numpy(), [-0.5, -0.25, 0, 1, 2])
    prelu.backward(np.ones_like(x))
    np.testing.assert_allclose(prelu.alpha.grad, [-3.0])       # the sum of the negative inputs
    assert [n for n, _ in prelu.named_parameters()] == ["alpha"]

    # num_features=1 shares one alpha across every feature of a 2-D input
    x2 = np.array([[-1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]], np.float32)
    np.testing.assert_allclose(prelu.forward(x2).numpy(), np.where(x2 > 0, x2, 0.25 * x2))
    prelu.zero_grad()
    prelu.backward(np.ones_like(x2))
    np.testing.assert_allclose(prelu.alpha.grad, [-13.0])


def test_prelu_one_alpha_per_feature():
    PReLU = load("prelu_activation").PReLU
    prelu = PReLU(num_features=3, init_value=0.25)
    prelu.alpha.numpy()[...] = [0.1, 0.2, 0.3]
    x = np.array([[-1.0, -1.0, -1.0], [2.0, -2.0, 2.0]], np.float32)
    np.testing.assert_allclose(prelu.forward(x).numpy(), [[-0.1, -0.2, -0.3], [2.0, -0.4, 2.0]], rtol=1e-6)
    prelu.backward(np.ones_like(x))
    np.testing.assert_allclose(prelu.alpha.grad, [-1.0, -3.0, -1.0])
    with pytest.raises(ValueError):
        prelu.forward(np.ones((2, 4), np.float32))      # 4 features, 3 alphas


def test_scaled_layer():
    layer_ = load("scaled_layer").ScaledLayer()
    assert layer_.scale.numpy().shape == () and float(layer_.scale.numpy()) == 1.0
    x = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    np.testing.assert_allclose(layer_.forward(x).numpy(), x)
    layer_.backward(np.ones_like(x))
    assert float(layer_.scale.grad) == pytest.approx(6.0)


def test_linear_layers_shapes_and_layouts():
    nobias = load("linear_no_bias").LinearNoBias(input_size=6, output_size=4)
    assert [n for n, _ in nobias.named_parameters()] == ["weight"] and nobias.weight.shape == (4, 6)
    assert nobias.forward(np.ones((3, 6), np.float32)).shape == (3, 4)
    linear = load("linear").Linear(6, 4)
    assert {n: p.shape for n, p in linear.named_parameters()} == {"weight": (4, 6), "bias": (4,)}
    assert linear.forward(np.ones((3, 6), np.float32)).shape == (3, 4)


def test_custom_linear_runs_the_user_backward():
    example = load("custom_linear")
    layer_ = example.CustomLinear(5, 3, checked=True)
    assert layer_.compiled.user_backward is not None
    x = np.ones((2, 5), np.float32)
    layer_.forward(x)
    layer_.backward(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(layer_.bias.grad, [2.0, 2.0, 2.0])


def test_focal_loss_is_called_with_logits_and_integer_targets():
    example = load("focal_loss")
    loss = example.FocalLoss(alpha=0.25, gamma=2.0)
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], np.float32)
    targets = np.array([0, 1])
    value = loss(logits, targets)
    assert value.shape == ()
    assert float(value.numpy()) == pytest.approx(example.focal_loss_numpy(logits.astype(np.float64), targets),
                                                 rel=1e-5)


def test_attention_keeps_the_input_shape():
    MultiHeadAttention = load("attention_layer").MultiHeadAttention
    mha = MultiHeadAttention(embed_dim=64, num_heads=8)
    x = np.random.default_rng(0).standard_normal((4, 10, 64)).astype(np.float32)
    assert mha(x).shape == (4, 10, 64)
    names = [n for n, _ in mha.named_parameters()]
    assert names == [f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")]
    assert mha.backward(np.ones_like(x)).shape == x.shape
    assert mha.out_proj.weight.grad.shape == (64, 64)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(embed_dim=10, num_heads=3)


@pytest.mark.slow
def test_attention_guide_shape():
    """The guide's test as written: [32, 100, 512] keeps its shape."""
    MultiHeadAttention = load("attention_layer").MultiHeadAttention
    mha = MultiHeadAttention(embed_dim=512, num_heads=8)
    x = np.random.default_rng(0).standard_normal((32, 100, 512)).astype(np.float32)
    assert mha(x).shape == (32, 100, 512)


def test_train_digits_writes_its_training_curves(tmp_path):
    """examples/train_digits.py trains, reloads its checkpoint and draws the
    curves (needs the examples extra: scikit-learn and matplotlib)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits.py"), "--epochs", "2",
                             "--skip-conv", "--out", str(tmp_path)], cwd=str(ROOT), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    png = tmp_path / "train_digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reloaded" in result.stdout


def test_small_resnet_trains_a_few_steps():
    """examples/small_resnet.py (Conv2D, BatchNorm2D, residual blocks, Dropout,
    AdaptiveAvgPool2D, Linear, Adam) runs a few batches and its loss goes down."""
    pytest.importorskip("sklearn")
    result = subprocess.run([sys.executable, str(EXAMPLES / "small_resnet.py"), "--epochs", "2", "--steps", "6"],
                            cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test accuracy" in result.stdout and "wall time" in result.stdout
