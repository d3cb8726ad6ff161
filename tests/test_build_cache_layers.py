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
