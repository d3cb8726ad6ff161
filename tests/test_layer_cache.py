"""compiler/layer_cache.py: a layer built once loads in a new process without
being lowered (traced only: no autodiff, rendering, Jinja2, C compiler),
misses when what its forward traces to, its sizes or attributes change (a
forward reading a file included), and gives what a cold build gives. Damaged
or dangling records fall back to lowering; records are JSON."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import subprocess
import shutil
import sys
import uuid

import numpy as np
import pytest

from layerc.compiler import layer_cache, pipeline, records, store
from layerc.compiler.pipeline import CompiledLayer, compile_layer, lower_layer

REPO = pathlib.Path(__file__).resolve().parents[1]

LAYERS = '''
from layerc import Attr, Input, Param, layer, ops

SHIFT = {shift}


def squash(t):
    return ops.tanh(t) + SHIFT


@layer
class Warm:
    x = Input("N", "C")
    w = Param("C", init="normal")
    k = Attr(2.0)

    def forward(x, w, k):
        return squash(x * w) * k + ops.sum(x, axis=1, keepdims=True)
'''

SCRIPT = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from layerc.compiler import cc, pipeline
from layerc.runtime.random import manual_seed
import warm_layers

manual_seed(0)
bindings = json.loads(sys.argv[2])
dtype = bindings.pop("dtype", "float32")
m = warm_layers.Warm.build(dtype=dtype, **bindings)
x = np.linspace(-1, 1, 2 * m.w.shape[0]).reshape(2, -1).astype(dtype)
y = m.forward(x).numpy()
g = m.backward(np.ones_like(y)).numpy()
print(json.dumps({"lowerings": pipeline.lowerings(), "compiles": cc.compiler_invocations(),
                  "imported_codegen": "layerc.compiler.codegen" in sys.modules, "imported_jinja2": "jinja2" in sys.modules,
                  "imported_passes": sorted(m for m in ("layerc.compiler.autodiff", "layerc.compiler.simplify", "layerc.compiler.schedule")
                                            if m in sys.modules),
                  "y": y.tolist(), "g": g.tolist(), "gw": m.w.grad.tolist(), "dtype": str(y.dtype),
                  "key": m.cache_key, "source": m.source}))
'''


def list_records() -> list[dict]:
    return records.list_records(store.cache_dir() / store.RECORDS_DIR)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(folder))
    return folder


def write_layers(folder: pathlib.Path, shift: float) -> None:
    (folder / "warm_layers.py").write_text(LAYERS.format(shift=shift))


def run(folder: pathlib.Path, cache: pathlib.Path, env: dict | None = None, **bindings) -> dict:
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO),
           # the layers file is rewritten within a second: no stale .pyc
           "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), json.dumps(bindings)], env=env,
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warm_load_in_a_new_process_lowers_nothing_and_misses_on_changes(tmp_path, cache):
    write_layers(tmp_path, 0.25)
    cold = run(tmp_path, cache, C=3)
    # the layer's library, and the one drawing random initial values (once per cache)
    assert cold["lowerings"] == 1 and cold["compiles"] == 1

    warm = run(tmp_path, cache, C=3)
    assert warm["lowerings"] == 0 and warm["compiles"] == 0
    assert not warm["imported_codegen"] and not warm["imported_jinja2"] and warm["imported_passes"] == []
    for k in ("y", "g", "gw", "key", "source"):
        assert warm[k] == cold[k], k

    # float64 uses the same record (no lowering); its library is built when first used
    wide = run(tmp_path, cache, C=3, dtype="float64")
    assert wide["lowerings"] == 0 and wide["compiles"] == 1 and wide["dtype"] == "float64"
    assert run(tmp_path, cache, C=3, dtype="float64")["compiles"] == 0
    np.testing.assert_allclose(wide["y"], cold["y"], rtol=1e-5, atol=1e-6)

    # another size, another attribute value: misses
    assert run(tmp_path, cache, C=4)["lowerings"] == 1
    other_k = run(tmp_path, cache, C=3, k=3.0)
    assert other_k["lowerings"] == 1
    np.testing.assert_allclose(other_k["gw"], np.array(cold["gw"]) * 1.5, rtol=1e-5)

    # a changed global that the forward's helper reads: a miss, with the new result
    write_layers(tmp_path, 0.5)
    shifted = run(tmp_path, cache, C=3)
    assert shifted["lowerings"] == 1 and shifted["compiles"] == 1
    np.testing.assert_allclose(shifted["y"], np.array(cold["y"]) + 0.25 * 2.0, rtol=1e-5, atol=1e-6)
    assert run(tmp_path, cache, C=3)["lowerings"] == 0

    # a changed forward body
    (tmp_path / "warm_layers.py").write_text(
        LAYERS.format(shift=0.5).replace("* k + ops.sum", "* k - ops.sum"))
    changed = run(tmp_path, cache, C=3)
    assert changed["lowerings"] == 1 and changed["y"] != shifted["y"]
    assert run(tmp_path, cache, C=3)["lowerings"] == 0

    kept = list_records()
    assert {r["layer"] for r in kept} == {"Warm"}
    assert len(kept) == 5        # C=3 (three versions of the file), C=4, k=3.0; float64 shares C=3
    assert store.verify_cache() == []


def fresh_spec(with_backward: bool = False):
    """A spec no other test built (its constant is new), so nothing is memoized."""
    from layerc import Input, Param, layer, ops
    constant = 1.0 + uuid.uuid4().int % 10_000 / 1e5

    def forward(x, w):
        return ops.exp(x @ w.T) * constant

    def backward(grad_output, x, w):      # d/dx of exp(x w^T) * c, wrt x and w
        e = ops.exp(x @ w.T) * constant * grad_output
        return {"x": e @ w, "w": e.T @ x}

    members = {"x": Input("N", "I"), "w": Param("O", "I", init="normal"), "forward": forward}
    if with_backward:
        members["backward"] = backward
    return layer(type("Fresh", (), members))


def test_a_record_gives_what_a_cold_build_gives(cache):
    spec = fresh_spec()
    compiled = compile_layer(spec, I=3, O=2)
    cold = lower_layer(spec, I=3, O=2)
    key = layer_cache.layer_key(spec, cold.sizes, cold.attrs, spec.trace(I=3, O=2))
    fields = layer_cache.load(key)
    assert fields is not None
    record = json.loads(pathlib.Path(list_records()[0]["path"]).read_bytes().partition(b"\n")[2])
    assert record["format"] == layer_cache.RECORD_FORMAT      # JSON: data, not a pickle
    warm = CompiledLayer(spec=spec, sizes=cold.sizes, attrs=cold.attrs, options=compiled.options, **fields)
    assert warm.library("f32") is compiled.library("f32")
    for field in ("traced", "derived", "forward", "backward", "user_backward", "source", "cdef", "libraries",
                  "prefix", "sizes", "attrs", "calls_blas"):
        assert getattr(warm, field) == getattr(cold, field), field
    assert hash(warm.forward) == hash(cold.forward) and hash(warm.backward) == hash(cold.backward)
    assert warm.explain() == cold.explain() and warm.saved == cold.saved
    for role, sig in cold.signatures.items():
        stored = warm.signatures[role]
        assert (stored.function, stored.program) == (sig.function, sig.program)
        assert [dataclasses.astuple(a) for a in stored.args] == [dataclasses.astuple(a) for a in sig.args]

    # the module built from the record runs as the cold one
    from layerc.runtime.module import LayerModule
    x = np.random.default_rng(0).standard_normal((4, 3))
    a, b = LayerModule(compiled, dtype=np.float64), LayerModule(warm, dtype=np.float64)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(x).numpy(), b.forward(x).numpy())
    np.testing.assert_array_equal(a.backward(np.ones((4, 2))).numpy(), b.backward(np.ones((4, 2))).numpy())


def test_a_spec_with_its_own_backward_is_lowered_each_time(cache):
    """Its backward is traced only while lowering, so it cannot be in a key."""
    spec = fresh_spec(with_backward=True)
    assert layer_cache.layer_key(spec, {"I": 3, "O": 2}, {}, spec.trace(I=3, O=2)) is None
    compiled = compile_layer(spec, I=3, O=2)
    assert compiled.user_backward is not None and list_records() == []


def test_a_record_keeps_constants_of_other_types_apart():
    """1, 1.0 and True are equal (and hash alike) in Python; a record keeps them apart."""
    from layerc.compiler import ir
    table = layer_cache._Table()
    reference = table.field((ir.Const(1), ir.Const(1.0), ir.Const(True)))
    rows = json.loads(json.dumps(table.rows))
    decoded = layer_cache._decode(reference, layer_cache._decode_nodes(rows))
    assert [type(c.value) for c in decoded] == [int, float, bool] and len(rows) == 3


def forget(spec_key_parts):
    """Drop the in-process memo of compile_layer so the next call looks at the disk."""
    with pipeline._memo_lock:
        for key in [k for k in pipeline._memo if k[0] == id(spec_key_parts)]:
            del pipeline._memo[key]


def test_a_damaged_record_is_removed_with_a_warning_and_the_layer_lowered(cache, caplog):
    spec = fresh_spec()
    compile_layer(spec, I=2, O=2)
    [record] = list_records()
    path = pathlib.Path(record["path"])
    path.write_bytes(path.read_bytes()[:-10])
    assert any("does not match" in p for p in store.verify_cache())

    forget(spec)
    before = pipeline.lowerings()
    with caplog.at_level(logging.WARNING, logger="layerc"):
        compile_layer(spec, I=2, O=2)
    assert pipeline.lowerings() == before + 1
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert store.verify_cache() == []                 # written anew

    forget(spec)
    compile_layer(spec, I=2, O=2)
    assert pipeline.lowerings() == before + 1         # and used


def test_a_record_whose_module_is_gone_rebuilds_it_from_its_source(tmp_path, cache):
    write_layers(tmp_path, 0.125)
    first = run(tmp_path, cache, C=2)
    entry = pathlib.Path(next(e["path"] for e in store.list_cache() if e["layer"] == "Warm"))
    shutil.rmtree(entry)
    again = run(tmp_path, cache, C=2)
    assert again["lowerings"] == 0 and again["compiles"] == 1 and again["y"] == first["y"]
    assert run(tmp_path, cache, C=2)["compiles"] == 0


def test_each_dtype_is_built_when_first_used(cache):
    spec = fresh_spec()
    compiled = compile_layer(spec, I=2, O=3)
    assert compiled.built == {} and store.list_cache() == []
    single = spec.build(I=2, O=3)
    assert {dtype for dtype, _ in compiled.built} == {"f32"} and len(store.list_cache()) == 1
    double = spec.build(I=2, O=3, dtype=np.float64)
    assert {dtype for dtype, _ in compiled.built} == {"f32", "f64"} and single.so_path != double.so_path
    double.w.data[...] = single.w.data
    x = np.linspace(-1, 1, 4).reshape(2, 2)
    np.testing.assert_allclose(single.forward(x.astype(np.float32)).numpy(), double.forward(x).numpy(), rtol=1e-6)


def test_clear_removes_records_and_ls_counts_them(tmp_path, cache):
    spec = fresh_spec()
    spec.build(I=2, O=3)
    assert len(list_records()) == 1
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    ls = subprocess.run([sys.executable, "-m", "layerc.cli", "cache", "ls"], env=env, capture_output=True,
                        text=True, cwd=tmp_path)
    assert ls.returncode == 0 and "1 entry" in ls.stderr and "1 lowering record" in ls.stderr
    assert store.clear_cache() == 1
    assert list_records() == [] and not (cache / "lowered").exists()


FROM_FILE = '''
import json, os
from layerc import Input, Param, layer


def read_scale():
    with open(os.environ["SCALE_FILE"]) as f:
        return json.load(f)


@layer
class Warm:
    x = Input("N", "C")
    w = Param("C", init="ones")

    def forward(x, w):
        return x * w * read_scale()
'''


def test_a_forward_reading_a_file_misses_when_the_file_changes(tmp_path, cache):
    """The key is the traced program: what the forward read is in it."""
    (tmp_path / "warm_layers.py").write_text(FROM_FILE)
    scale = tmp_path / "scale.json"
    scale.write_text("2.0")
    first = run(tmp_path, cache, C=2, env={"SCALE_FILE": str(scale)})
    assert first["lowerings"] == 1
    assert run(tmp_path, cache, C=2, env={"SCALE_FILE": str(scale)})["lowerings"] == 0
    scale.write_text("3.0")
    changed = run(tmp_path, cache, C=2, env={"SCALE_FILE": str(scale)})
    assert changed["lowerings"] == 1
    np.testing.assert_allclose(changed["y"], np.array(first["y"]) * 1.5, rtol=1e-6)


def test_two_processes_warm_loading_at_once(tmp_path, cache):
    write_layers(tmp_path, 0.0625)
    first = run(tmp_path, cache, C=5)
    env = {**os.environ, "LAYERC_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), json.dumps({"C": 5})], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["lowerings"] == 0 and result["y"] == first["y"]

