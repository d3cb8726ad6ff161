"""The build cache seen from layer specs (compiler/pipeline.py over compiler/build.py):
a new process loads a built layer without the compiler, and two processes
building the same new layer at once both succeed with one cache entry."""
import json
import os
import subprocess
import sys
import uuid

SCRIPT = """
import json, sys
import numpy as np
from layerc import Input, Param, layer, ops
from layerc.compiler.cc import compiler_invocations
from layerc.compiler.store import list_cache

@layer
class Leaky:
    x = Input("N", "C")
    alpha = Param("C", init=float(sys.argv[1]))
    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0) * float(sys.argv[1])

m = Leaky.build(C=7)
y = m.forward(-np.ones((2, 7), np.float32)).numpy()
print(json.dumps({"compiles": compiler_invocations(), "y": float(y[0, 0]),
                  "entries": len([e for e in list_cache() if e["layer"].lower() == "leaky"])}))
"""


def run_many(cache, value, count):
    env = dict(os.environ, LAYERC_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, value], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_concurrent_builds_then_warm_load_without_compiler(tmp_path):
    value = str(0.1 + (uuid.uuid4().int % 1000) / 10000)     # a spec no cache has seen
    first = run_many(tmp_path, value, 2)
    assert sum(r["compiles"] for r in first) == 1
    assert all(r["entries"] == 1 for r in first)
    expected = -float(value) ** 2
    assert all(abs(r["y"] - expected) < 1e-6 for r in first)
    warm = run_many(tmp_path, value, 1)[0]
    assert warm["compiles"] == 0 and warm["entries"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp", "tmp"))]
    assert leftovers == []


def _dense(inputs: int, outputs: int):
    """A layer that multiplies matrices (its library links the gemm), at sizes no other test uses."""
    from layerc import Input, Param, layer

    @layer
    class GemmUser:
        x = Input("N", "I")
        weight = Param("O", "I")

        def forward(x, weight):
            return x @ weight.T

    return GemmUser.build(I=inputs, O=outputs)


def _gemm_objects():
    from layerc.compiler.store import list_cache
    return [e for e in list_cache() if e["module_name"].startswith("_layerc_gemm_f32_")]


def _check_dense(module):
    import numpy as np
    x = np.random.default_rng(0).standard_normal((33, module.weight.data.shape[1])).astype(np.float32)
    y = module.forward(x).numpy()
    assert np.allclose(y, x @ module.weight.data.T, rtol=1e-4, atol=1e-4)


def test_layers_that_multiply_matrices_link_one_gemm_object(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(tmp_path))
    seed = uuid.uuid4().int % 500
    first, second = _dense(101 + seed, 24), _dense(57 + seed, 20)
    _check_dense(first)
    _check_dense(second)
    assert len(_gemm_objects()) == 1


def test_a_damaged_gemm_object_is_rebuilt_before_it_is_linked(tmp_path, monkeypatch):
    import pathlib
    from layerc.compiler.store import verify_cache
    monkeypatch.setenv("LAYERC_CACHE_DIR", str(tmp_path))
    seed = uuid.uuid4().int % 500
    _check_dense(_dense(103 + seed, 24))
    [entry] = _gemm_objects()
    obj = pathlib.Path(entry["path"]) / (entry["module_name"] + ".o")
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    assert any("does not match its sha256" in p for p in verify_cache())
    _check_dense(_dense(59 + seed, 20))      # relinks a rebuilt object
    assert verify_cache() == []


def test_an_object_changed_after_its_check_is_not_linked(tmp_path):
    import pathlib
    import pytest
    from layerc.compiler.build import CompiledObject, _stage_linked
    from layerc.compiler.cc import BuildError
    obj = tmp_path / "gemm.o"
    obj.write_bytes(b"\x7fELF changed")
    obj.chmod(0o600)
    built = tmp_path / "build"
    built.mkdir(mode=0o700)
    with pytest.raises(BuildError, match="changed after it was checked"):
        _stage_linked((CompiledObject(pathlib.Path(obj), "0" * 64),), built, "Dense")
