"""layerc modules inside JAX: ``to_jax`` under jax.jit and jax.grad, its
reverse-mode derivative checked by jax.test_util.check_grads (float64)."""
import importlib.util
import pathlib

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import layerc  # noqa: E402
from layerc.jax_interop import to_jax  # noqa: E402
from layers import PReLU  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples" / "custom_layers"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"jax_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def f64(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def test_prelu_check_grads_and_jit():
    apply, params = to_jax(PReLU.build(C=5, dtype=np.float64))
    x = f64(3, 5)
    check_grads(apply, (params, x), order=1, modes=("rev",))
    grads = jax.jit(jax.grad(lambda p, x: (apply(p, x) ** 2).sum()))(params, x)
    alpha = np.asarray(params["alpha"])
    expected = 2 * np.minimum(np.asarray(x), 0) * (np.maximum(np.asarray(x), 0) + alpha * np.minimum(np.asarray(x), 0))
    np.testing.assert_allclose(grads["alpha"], expected.sum(axis=0), rtol=1e-12)


def test_linear_check_grads_with_parameters_named_as_the_state_dict():
    layerc.manual_seed(0)
    linear = layerc.nn.Linear(4, 3, dtype=np.float64)
    apply, params = to_jax(linear)
    assert sorted(params) == sorted(linear.state_dict())
    check_grads(apply, (params, f64(2, 4)), order=1, modes=("rev",))


def test_focal_loss_check_grads_with_integer_targets():
    focal = example("focal_loss")
    apply, params = to_jax(focal.FocalLoss(dtype=np.float64))
    logits, targets = f64(6, 4), jnp.asarray(np.array([0, 3, 1, 1, 2, 0]))
    value = apply(params, logits, targets)
    assert np.isclose(float(value), focal.focal_loss_numpy(np.asarray(logits), np.asarray(targets)))
    check_grads(lambda p, z: apply(p, z, targets), (params, logits), order=1, modes=("rev",))


def test_a_sequential_trains_under_jit():
    layerc.manual_seed(1)
    model = layerc.Sequential(layerc.nn.Linear(3, 8, dtype=np.float64), PReLU.build(C=8, dtype=np.float64),
                              layerc.nn.Linear(8, 1, dtype=np.float64))
    apply, params = to_jax(model)
    x = f64(64, 3, seed=2)
    y = x[:, :1] - jnp.abs(x[:, 1:2])

    @jax.jit
    def step(params):
        loss, grads = jax.value_and_grad(lambda p: ((apply(p, x) - y) ** 2).mean())(params)
        return loss, jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, params, grads)

    first, _ = step(params)
    for _ in range(60):
        loss, params = step(params)
    assert float(loss) < 0.5 * float(first)


def test_to_jax_refuses_what_is_not_a_layerc_module():
    with pytest.raises(TypeError, match="layerc Module"):
        to_jax(lambda x: x)
