"""state_dict / load_state_dict / save / load, with buffers; errors on bad
checkpoints, raised before anything is written or decompressed; reproducible
initialization with manual_seed."""
import io
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from layerc import Buffer, Input, Param, layer, ops
from layerc import Module, Sequential, Tensor, manual_seed, no_grad
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


# ------------------------------------------------------------ checked before anything is written

def two_linears():
    return Sequential(Linear(4, 3), Linear(3, 2))


@pytest.mark.parametrize("bad, error", [
    (np.zeros((2, 3), np.complex64), TypeError),              # no same_kind cast to float32
    (np.array([["a"] * 3] * 2), TypeError),                  # text
    (np.zeros((2, 3), object), TypeError),
    (np.zeros((3, 2), np.float32), ValueError),               # the shape
])
def test_load_state_dict_checks_every_entry_before_writing_any(bad, error):
    m = two_linears()
    before = m.state_dict()
    state = {k: np.full_like(v, 7.0) for k, v in before.items()}     # '0.*' would load fine
    state["1.weight"] = bad
    with pytest.raises(error, match=r"1\.weight"):
        m.load_state_dict(state)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_a_float64_or_integer_checkpoint_loads_into_float32():
    m = two_linears()
    state = {k: np.ones(v.shape, np.float64 if k.endswith("weight") else np.int64) for k, v in m.state_dict().items()}
    m.load_state_dict(state)
    assert all(np.array_equal(v, np.ones(v.shape)) and v.dtype == np.float32 for v in m.state_dict().values())


class Holder(Module):
    """One float32 parameter ``w`` of three elements: nothing compiled."""

    def __init__(self):
        super().__init__()
        self.w = Tensor(np.zeros(3, np.float32), requires_grad=True)


def npz_with(path, members: dict):
    """An .npz whose members are given as (header dict, data bytes): headers may lie."""
    with zipfile.ZipFile(path, "w") as z:
        for name, (header, data) in members.items():
            out = io.BytesIO()
            np.lib.format.write_array_header_1_0(out, header)
            z.writestr(f"{name}.npy", out.getvalue() + data)
    return path


def header(shape, descr="<f4"):
    return {"descr": descr, "fortran_order": False, "shape": shape}


def test_load_reads_headers_first_and_no_array_it_refuses(tmp_path):
    """Members whose data is missing (a header claiming 2**40 elements over 8
    bytes): reading any of them would fail otherwise, so each error below comes
    from the headers alone."""
    good = np.arange(3, dtype=np.float32).tobytes()
    huge = (header((2 ** 40,)), b"\0" * 8)
    m = Holder()
    with pytest.raises(KeyError, match="unexpected keys.*'extra'"):
        m.load(npz_with(tmp_path / "a.npz", {"w": (header((3,)), good), "extra": huge}))
    with pytest.raises(ValueError, match=r"w: checkpoint \(1099511627776,\), module \(3,\)"):
        m.load(npz_with(tmp_path / "b.npz", {"w": huge}))
    with pytest.raises(TypeError, match=r"w: checkpoint complex64"):
        m.load(npz_with(tmp_path / "c.npz", {"w": (header((3,), "<c8"), b"\0" * 8)}))
    m.load(npz_with(tmp_path / "d.npz", {"w": (header((3,)), good), "extra": huge}), strict=False)
    np.testing.assert_array_equal(m.w.numpy(), [0, 1, 2])         # the extra member was never read


def test_load_refuses_pickled_objects_without_unpickling(tmp_path):
    np.savez(tmp_path / "objects.npz", w=np.array([1.0, None, "x"], dtype=object))
    with pytest.raises(TypeError, match="w: checkpoint object"):
        Holder().load(tmp_path / "objects.npz")


def test_load_says_what_a_file_is_when_it_is_not_an_npz(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"\.npy file \(a single array\).*\.npz"):
        Holder().load(tmp_path / "one.npy")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an .npz archive"):
        Holder().load(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("w.npy", b"not an array")
    with pytest.raises(ValueError, match="'w.npy'.*not a .npy array"):
        Holder().load(tmp_path / "other.zip")


MEMORY = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_state import Holder
    m = Holder()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        m.load({path!r})
    except KeyError as error:
        print("unexpected" in str(error) and "zeros" in str(error))
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
""")


def test_an_extra_gigabyte_of_zeros_is_refused_without_being_decompressed(tmp_path):
    """A 1 MiB .npz holding 1 GiB of zeros next to the module's array: the
    'unexpected key' error comes before the zeros are decompressed (the peak
    memory of the loading process grows by far less than 1 GiB)."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("w.npy", npz_member(np.zeros(3, np.float32)))
        with z.open("zeros.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header((2 ** 28,)))
            chunk = bytes(1 << 22)
            for _ in range(256):
                f.write(chunk)
    assert path.stat().st_size < 2 << 20
    code = MEMORY.format(tests=os.path.dirname(__file__), path=str(path))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    named, grown_mib = run.stdout.split()
    assert named == "True" and int(grown_mib) < 64, run.stdout


def npz_member(array) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array)
    return out.getvalue()
