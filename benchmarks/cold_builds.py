"""Cold builds against jax.jit's compile: a single layer's first use in a new process.

    python -m benchmarks.cold_builds [--runs 5] [--only SUBSTRING] [--json]
    layerc bench --cold-builds ...          (the same table after the step timings)

For each layer, each run starts two new processes, one per framework; each
imports its framework and makes its data (not timed), then times what a user
waits for before the first training step can run:

- ``layerc``: building the layer and its first float32 forward and backward,
  with an empty C cache (but for layerc's one-time entries, made by building
  ``specs.Prime`` first: the compiler's version memo, the gemm's object file) and the
  lowered-layer cache off, so the layer is traced, differentiated, planned,
  rendered and compiled by gcc in the timed span;
- ``jax``: ``jax.jit`` of the same computation's forward and vector-Jacobian
  product (the gradients of the input and of every parameter),
  ``.lower(...).compile()``, then its first call, with jax's persistent cache off.

Both load Python modules from bytecode, as from an installed package: the
run's processes share a bytecode folder of their own (``PYTHONPYCACHEPREFIX``),
written by the first that imports each module, even where
``PYTHONDONTWRITEBYTECODE`` is set (else every process compiled layerc's
Python source, ~0.2 s). The two alternate run by run, so the machine's drift falls on both alike. The
table shows the median wall clock and CPU time (of the process and the
compilers it ran) of each, and layerc's over jax's (< 1: layerc builds faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (layerc module expression, its input shape, the jax twin's name in _JAX_TWINS and its arguments)
LAYERS = {
    "Linear 784->512": ("layerc.nn.Linear(784, 512)", (64, 784), ("linear", (784, 512))),
    "Conv2D 32->64 k3 p1": ("layerc.nn.Conv2D(32, 64, 3, padding=1, bias=False)", (8, 32, 16, 16),
                            ("conv2d", (32, 64, 3, 1))),
    "BatchNorm2D(32)": ("layerc.nn.BatchNorm2D(32)", (8, 32, 16, 16), ("batch_norm", (32,))),
    "LayerNorm(512)": ("layerc.nn.LayerNorm(512)", (64, 512), ("layer_norm", (512,))),
    "ReLU": ("layerc.nn.ReLU()", (64, 512), ("relu", ())),
    "GELU": ("layerc.nn.GELU()", (64, 512), ("gelu", ())),
    "Softmax": ("layerc.nn.Softmax(-1)", (64, 1000), ("softmax", ())),
    "MaxPool2D(2)": ("layerc.nn.MaxPool2D(2)", (8, 32, 16, 16), ("max_pool", (2,))),
    "AvgPool2D(2)": ("layerc.nn.AvgPool2D(2)", (8, 32, 16, 16), ("avg_pool", (2,))),
}

_LAYERC_CHILD = """
import json, os, sys, time
import numpy as np
import layerc, layerc.nn
from layerc.compiler import cc, layer_cache
layer_cache.layer_key = lambda *args, **kwargs: None
x = np.random.default_rng(0).standard_normal({shape!r}).astype(np.float32)
wall, cpu, children = time.perf_counter(), time.process_time(), os.times()
module = {make}
y = module.forward(x)
module.backward(np.ones(y.shape, np.float32))
after = os.times()
print(json.dumps({{"wall_ms": 1e3 * (time.perf_counter() - wall),
                  "cpu_ms": 1e3 * (time.process_time() - cpu + after.children_user - children.children_user
                                   + after.children_system - children.children_system),
                  "compiles": cc.compiler_invocations()}}))
"""

_JAX_CHILD = """
import json, os, sys, time
import numpy as np
import jax
jax.config.update("jax_enable_compilation_cache", False)
from benchmarks.cold_builds import jax_twin
function, arrays = jax_twin({twin!r}, {args!r}, {shape!r})
wall, cpu, children = time.perf_counter(), time.process_time(), os.times()
compiled = jax.jit(function).lower(*arrays).compile()
jax.block_until_ready(compiled(*arrays))
after = os.times()
print(json.dumps({{"wall_ms": 1e3 * (time.perf_counter() - wall),
                  "cpu_ms": 1e3 * (time.process_time() - cpu + after.children_user - children.children_user
                                   + after.children_system - children.children_system)}}))
"""


def jax_twin(name: str, args: tuple, shape: tuple):
    """``(function, arrays)``: the jax forward + VJP of layer twin ``name`` at
    input ``shape``; ``function(x, gy, *params)`` returns the input's and every
    parameter's gradient (and the output)."""
    import jax
    import jax.numpy as jnp
    forward, params = _JAX_TWINS[name](jax, jnp, *args)
    x = jnp.ones(shape, jnp.float32)
    y_shape = jax.eval_shape(forward, x, *params).shape

    def step(x, gy, *params):
        y, vjp = jax.vjp(forward, x, *params)
        return y, vjp(gy)
    return step, (x, jnp.ones(y_shape, jnp.float32), *params)


def _linear(jax, jnp, i, o):
    return (lambda x, w, b: x @ w.T + b), (jnp.ones((o, i), jnp.float32), jnp.ones(o, jnp.float32))


def _conv2d(jax, jnp, c, o, k, pad):
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return conv, (jnp.ones((o, c, k, k), jnp.float32),)


def _batch_norm(jax, jnp, c):
    def bn(x, w, b):
        mean = x.mean((0, 2, 3), keepdims=True)
        var = ((x - mean) ** 2).mean((0, 2, 3), keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * w.reshape(1, c, 1, 1) + b.reshape(1, c, 1, 1)
    return bn, (jnp.ones(c, jnp.float32), jnp.zeros(c, jnp.float32))


def _layer_norm(jax, jnp, d):
    def ln(x, w, b):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * w + b
    return ln, (jnp.ones(d, jnp.float32), jnp.zeros(d, jnp.float32))


def _pool(kind):
    def make(jax, jnp, k):
        def pool(x):
            if kind == "max":
                return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, k, k), "VALID")
            return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, k, k), (1, 1, k, k), "VALID") / (k * k)
        return pool, ()
    return make


_JAX_TWINS = {
    "linear": _linear,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "relu": lambda jax, jnp: (jax.nn.relu, ()),
    "gelu": lambda jax, jnp: ((lambda x: jax.nn.gelu(x, approximate=False)), ()),
    "softmax": lambda jax, jnp: ((lambda x: jax.nn.softmax(x, axis=-1)), ()),
    "max_pool": _pool("max"),
    "avg_pool": _pool("avg"),
}


def _child(code: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"a cold-build process failed:\n{out.stderr[-2000:]}")
    return out.stdout


def _timed_child(code: str, env: dict) -> dict:
    return json.loads(_child(code, env).strip().splitlines()[-1])


def measure(name: str, runs: int, bytecode: str) -> dict:
    """Median wall and CPU ms of ``runs`` cold layerc builds and jax compiles of
    layer ``name``, the processes' bytecode in the folder ``bytecode``."""
    make, shape, (twin, args) = LAYERS[name]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONPYCACHEPREFIX"] = bytecode
    samples = {"layerc": [], "jax": []}
    _child(_JAX_CHILD.format(twin=twin, args=args, shape=shape), base)    # writes jax's bytecode, untimed
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="layerc-cold-") as cache:
            env = dict(base, LAYERC_CACHE_DIR=cache)
            _child("from benchmarks.specs import Prime; Prime.build()", env)
            got = _timed_child(_LAYERC_CHILD.format(make=make, shape=shape), env)
        if not got["compiles"]:
            raise RuntimeError(f"{name}: the C compiler did not run in the timed process (cache not cold)")
        samples["layerc"].append(got)
        samples["jax"].append(_timed_child(_JAX_CHILD.format(twin=twin, args=args, shape=shape), base))
    row = {"layer": name, "runs": runs}
    for framework, got in samples.items():
        for what in ("wall_ms", "cpu_ms"):
            row[f"{framework}_{what}"] = statistics.median(s[what] for s in got)
    row["ratio_wall"] = row["layerc_wall_ms"] / row["jax_wall_ms"]
    row["ratio_cpu"] = row["layerc_cpu_ms"] / row["jax_cpu_ms"]
    return row


def run(runs: int = 5, only: str = "") -> list:
    """One row per layer of ``LAYERS`` whose name contains ``only`` (case-insensitive)."""
    with tempfile.TemporaryDirectory(prefix="layerc-bytecode-") as bytecode:
        return [measure(name, runs, bytecode) for name in LAYERS if only.lower() in name.lower()]


def format_rows(rows: list) -> str:
    lines = [f"cold build (layerc: build + first forward/backward; jax: jit lower+compile + first call), "
             f"new process each, median of {rows[0]['runs'] if rows else 0} runs",
             f"{'layer':<22} {'layerc ms':>10} {'jax ms':>8} {'ratio':>6}   {'layerc CPU':>10} {'jax CPU':>8} "
             f"{'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['layer']:<22} {r['layerc_wall_ms']:>10.0f} {r['jax_wall_ms']:>8.0f} {r['ratio_wall']:>6.2f}"
                     f"   {r['layerc_cpu_ms']:>10.0f} {r['jax_cpu_ms']:>8.0f} {r['ratio_cpu']:>6.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.runs, args.only)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))


if __name__ == "__main__":
    main()
