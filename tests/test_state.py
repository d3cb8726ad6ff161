"""state_dict / load_state_dict / save / load, with buffers; errors on bad
checkpoints; reproducible initialization with manual_seed."""
import numpy as np
import pytest

from layerc import Buffer, Input, Param, layer, ops
from layerc import Sequential, Tensor, manual_seed, no_grad
from layerc.nn import Linear


@layer
class Shifted:
    """A parameter and a non-trainable buffer: ``relu(x * scale + shift)``."""
    x = Input("N", "C")
    scale = Param("C", init="normal")
    shift = Buffer("C", init=0.5)

    def forward(x, scale, shift):
        return ops.relu(x * scale + shift)


def model():
    return Sequential([Linear(4, 3), Shifted.build(C=3), Linear(3, 2)])


def test_state_dict_names_and_contents():
    m = model()
    state = m.state_dict()
    assert set(state) == {"0.weight", "0.bias", "1.scale", "1.shift", "2.weight", "2.bias"}
    np.testing.assert_array_equal(state["1.shift"], np.full(3, 0.5, np.float32))
    state["0.weight"][...] = 0         # a copy: editing it leaves the module alone
    assert np.any(m[0].weight.numpy() != 0)


def test_round_trip_through_a_file(tmp_path):
    manual_seed(0)
    a = model()
    a[1]._buffers["shift"][:] = [0.1, 0.2, 0.3]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    path = tmp_path / "checkpoint.npz"
    a.save(path)
    manual_seed(1)
    b = model()
    view = b[0].weight.numpy()
    b.load(path)
    assert b[0].weight.numpy() is view          # loaded in place
    with no_grad():
        np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(p, q, err_msg=name)


def test_missing_and_extra_keys_are_named():
    m = model()
    state = m.state_dict()
    del state["1.shift"]
    state["3.weight"] = np.zeros(2, np.float32)
    with pytest.raises(KeyError) as error:
        m.load_state_dict(state)
    assert "1.shift" in str(error.value) and "3.weight" in str(error.value)


def test_wrong_shape_is_named_and_nothing_is_written():
    m = model()
    before = m.state_dict()
    state = {k: np.zeros_like(v) for k, v in before.items()}
    state["2.weight"] = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"2\.weight: checkpoint \(3, 2\), module \(2, 3\)"):
        m.load_state_dict(state)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_non_strict_load_skips_missing_keys():
    m = model()
    m.load_state_dict({"0.bias": np.ones(3, np.float32), "unknown": np.ones(1)}, strict=False)
    np.testing.assert_array_equal(m[0].bias.numpy(), np.ones(3))


def test_manual_seed_makes_initialization_reproducible():
    manual_seed(42)
    a = model().state_dict()
    manual_seed(42)
    b = model().state_dict()
    manual_seed(43)
    c = model().state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_train_eval_and_zero_grad_reach_every_submodule():
    m = model()
    m.eval()
    assert not any(sub.training for _, sub in m.named_modules())
    m.train()
    assert all(sub.training for _, sub in m.named_modules())
    m(Tensor.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
