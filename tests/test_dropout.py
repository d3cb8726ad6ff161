"""Dropout: torch's semantics (scaling, eval, p = 0 and p = 1), masks that are
a function of the seed, the call number and the position only (the same on
any thread count and vector width, across runs; different across seeds and
calls), a keep rate within 5 binomial sigmas of 1 - p, the backward through the
forward's mask, and the Philox generator itself (known answers, edge values)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from layerc import Tensor, check_grad, manual_seed
from layerc.compiler.ops_table import OPS
from layerc.nn import Dropout
from layerc.nn.dropout import dropout_key, dropout_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ones(shape, dtype=np.float32):
    return np.ones(shape, dtype)


def test_kept_elements_are_scaled_and_the_rest_zero():
    for p in (0.1, 0.5, 0.875):
        y = Dropout(p, seed=3)(_ones((37, 29))).numpy()
        scale = np.float32(1 / (1 - p))
        assert set(np.unique(y)) <= {0.0, scale}, p
        assert 0 < (y == 0).sum() < y.size


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_rate_within_five_binomial_sigmas(p):
    n = 1 << 20
    kept = (Dropout(p, seed=11)(_ones((1024, 1024))).numpy() != 0).mean()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept - (1 - p)) < 5 * sigma, (kept, 1 - p, sigma)


def test_same_seed_same_masks_different_seeds_and_calls_differ():
    x = _ones((8, 3, 5, 7))
    a, b = Dropout(0.5, seed=123), Dropout(0.5, seed=123)
    first, second = a(x).numpy(), a(x).numpy()
    assert np.array_equal(first, b(x).numpy()) and np.array_equal(second, b(x).numpy())
    assert not np.array_equal(first, second)                         # the next call, the next mask
    assert not np.array_equal(first, Dropout(0.5, seed=124)(x).numpy())
    # half the elements agree between independent masks, not all
    assert 0.4 < (first == second).mean() < 0.6


def test_manual_seed_makes_the_drawn_seed_reproducible():
    manual_seed(5)
    a = Dropout(0.5)
    manual_seed(5)
    b = Dropout(0.5)
    assert a.seed == b.seed
    x = _ones((6, 10))
    assert np.array_equal(a(x).numpy(), b(x).numpy())


def test_backward_uses_the_forwards_mask():
    drop = Dropout(0.4, seed=9)
    x = np.random.default_rng(0).standard_normal((16, 33)).astype(np.float32)
    y = drop(x).numpy()
    mask = (y != 0) & (x != 0)
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    gx = drop.backward(gy).numpy()
    np.testing.assert_array_equal(gx, np.where(mask, gy * np.float32(1 / 0.6), 0))
    # through the tape as well
    t = Tensor(x, requires_grad=True)
    drop2 = Dropout(0.4, seed=9)
    (drop2(t) * Tensor(gy)).sum().backward()
    np.testing.assert_array_equal(t.grad, gx)


def test_eval_and_p_zero_are_the_identity_and_p_one_zeroes():
    x = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    drop = Dropout(0.5, seed=1)
    drop.eval()
    assert np.array_equal(drop(x).numpy(), x)
    assert np.array_equal(drop.backward(x).numpy(), x)
    assert np.array_equal(Dropout(0.0)(x).numpy(), x)
    drop.train()
    assert not np.array_equal(drop(x).numpy(), x)
    zero = Dropout(1.0, seed=2)
    assert not zero(x).numpy().any()
    assert not zero.backward(x).numpy().any()


def test_matches_torch_semantics():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((64, 50)).astype(np.float32)
    for p in (0.0, 0.25, 1.0):
        ours = Dropout(p, seed=4)(x).numpy()
        theirs = torch.nn.functional.dropout(torch.from_numpy(x), p, training=True).numpy()
        # the same values where kept (torch's masks come from its own generator)
        kept = (ours != 0) & (theirs != 0)
        np.testing.assert_array_equal(ours[kept], theirs[kept])
        assert (ours == 0).any() == (theirs == 0).any()
    assert np.array_equal(Dropout(0.5).eval()(x).numpy(), torch.nn.Dropout(0.5).eval()(torch.from_numpy(x)).numpy())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Dropout: p must be a probability"):
        Dropout(1.5)
    with pytest.raises(ValueError, match="Dropout: seed must be"):
        Dropout(0.5, seed=-1)


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_gradcheck(rank):
    sizes = dict(zip(("N", "D1", "D2", "D3"), (3, 4, 5, 2)[:rank]))
    key = dropout_key(77, 3, np.float64)
    columns = np.arange(list(sizes.values())[-1], dtype=np.float64)
    check_grad(dropout_spec(rank), inputs={"key": key, "columns": columns}, p=0.3, **sizes).assert_ok()


# ---------------------------------------------------------------- the same mask everywhere

def _mask_bits(drop, x) -> str:
    return np.packbits(drop(x).numpy() != 0).tobytes().hex()


def test_same_mask_on_one_and_two_threads():
    x = _ones((256, 64, 33))                       # large enough for the threaded loop
    drop = Dropout(0.5, seed=21)
    drop(x)
    compiled = drop._active
    masks = []
    for threads in (1, 2, 1):
        compiled.set_threads(threads)
        drop.calls = 0
        masks.append(_mask_bits(drop, x))
    compiled.set_threads(0)
    assert masks[0] == masks[1] == masks[2]


SCRIPT = textwrap.dedent("""
    import json, numpy as np
    from layerc.nn import Dropout
    x = np.ones((64, 3, 33, 35), np.float32)    # above the threaded loop's threshold
    drop = Dropout(0.3, seed=2024)
    print(json.dumps([np.packbits(drop(x).numpy() != 0).tobytes().hex() for _ in range(2)]))
""")


def _run_masks(env: dict) -> list:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_same_masks_across_runs_threads_and_vector_widths():
    """Fresh processes: the default vector width on 2 threads, and the baseline
    (SSE) build on one thread, give the same masks call after call."""
    wide = _run_masks({"OMP_NUM_THREADS": "2"})
    narrow = _run_masks({"OMP_NUM_THREADS": "1", "LAYERC_ISA": "baseline"})
    assert wide == narrow and wide[0] != wide[1]


# ---------------------------------------------------------------- the generator


def test_philox_core_matches_random123_known_answers():
    """The rounds of templates/philox.c.j2 (as the op's numpy reference runs
    them) reproduce Random123's known-answer vectors for Philox-4x32-10: the
    key's second word is fixed at 0x5EED in the op, so the rounds are checked
    through the reference's own arithmetic on a zero key and counter."""
    from layerc.compiler.ops_table import _np_philox_uniform
    # with every argument 0 the counter is 0 and the key (0, 0x5EED): a fixed, known value
    u = _np_philox_uniform(*(np.zeros(1),) * 6)
    assert 0.0 <= float(u[0]) < 1.0
    mask = 0xFFFFFFFF

    def philox(c, k):
        for _ in range(10):
            p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
            c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & mask, (p0 >> 32) ^ c[3] ^ k[1], p0 & mask]
            k = [(k[0] + 0x9E3779B9) & mask, (k[1] + 0xBB67AE85) & mask]
        return c
    assert philox([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert philox([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]) == \
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    assert float(u[0]) == (philox([0, 0, 0, 0], [0, 0x5EED])[0] >> 8) * 2.0 ** -24


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_philox_at_edge_values_matches_its_reference(dtype):
    """NaN, infinities and values outside int32 read as 0, as the reference says."""
    from test_ops_table import op_spec
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, 1e300, -1e300, 1.0, -0.5, 2.0,
                      65535.0, 2.0 ** 31, -2.0 ** 31 + 1, 3e9], dtype=np.float64)
    rng = np.random.default_rng(0)
    columns = [rng.permutation(edges) for _ in range(6)]
    module = op_spec("philox_uniform", False).build(C=len(edges), dtype=dtype)
    with np.errstate(all="ignore"):
        got = module.forward(*(c.astype(dtype).reshape(1, -1) for c in columns)).numpy().ravel()
        want = OPS["philox_uniform"].numpy(*(c.astype(dtype).astype(np.float64) for c in columns))
    np.testing.assert_array_equal(got, want)
