"""What the lowered-layer cache saves: the first call of a layer in a new process.

    python -m benchmarks.cold_start [--runs 7] [--only SUBSTRING] [--json]

For each layer, each run starts a new Python process that imports layerc and
the layer's module (not timed), then times the first call: building the
module, one float32 forward and one backward. The C cache is warm in both arms
(one untimed process per arm fills it first), so no C compiler runs:

- ``cached``: the lowered-layer cache as shipped (a record per layer, written
  by the warm-up process);
- ``lowering``: the cache disabled, so the layer is traced, differentiated,
  fused and rendered in every process.

The arms alternate run by run, so the machine's drift falls on both alike.
The table shows the median over the runs of each arm, wall clock and CPU time
of the process (steadier on a shared machine), the saving (the difference of
the medians), and the time spent lowering (``pipeline._lower``: importing the
passes, the code generator and Jinja2, compiling the templates, the passes)
in the ``lowering`` arm.
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
ARMS = ("cached", "lowering")

# name -> (module to import, expression making the layer, input shape)
LAYERS = {
    "PReLU": ("prelu_activation", "prelu_activation.PReLU(num_features=1)", (64, 256)),
    "Linear": ("layerc.nn", "layerc.nn.Linear(256, 128)", (64, 256)),
    "Conv2D": ("layerc.nn", "layerc.nn.Conv2D(8, 16, 3, padding=1)", (4, 8, 16, 16)),
    "LayerNorm": ("layerc.nn", "layerc.nn.LayerNorm(128)", (32, 128)),
    "attention": ("attention_layer", "attention_layer.MultiHeadAttention(64, 4)", (2, 16, 64)),
}

_CHILD = """
import json, sys, time
sys.path.insert(0, {examples!r})
import numpy as np
import layerc, layerc.nn
from layerc.compiler import cc, layer_cache, pipeline
import {module}
lowering_s = 0.0
lower = pipeline._lower
def timed_lower(*args, **kwargs):
    global lowering_s
    started = time.perf_counter()
    try:
        return lower(*args, **kwargs)
    finally:
        lowering_s += time.perf_counter() - started
if {arm!r} == "lowering":
    layer_cache.layer_key = lambda *args, **kwargs: None
    pipeline._lower = timed_lower
x = np.random.default_rng(0).standard_normal({shape!r}).astype(np.float32)
started, started_cpu = time.perf_counter(), time.process_time()
module = {make}
y = module.forward(x)
module.backward(np.ones(y.shape, np.float32))
total_s, cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
print(json.dumps({{"total_ms": 1e3 * total_s, "cpu_ms": 1e3 * cpu_s, "lowering_ms": 1e3 * lowering_s,
                  "lowerings": pipeline.lowerings(), "compiles": cc.compiler_invocations()}}))
"""


def run_child(layer: str, arm: str) -> dict:
    module, make, shape = LAYERS[layer]
    code = _CHILD.format(examples=os.path.join(ROOT, "examples", "custom_layers"),
                         module=module,
                         arm=arm, shape=shape, make=make)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(layer: str, runs: int) -> dict:
    for arm in ARMS:
        run_child(layer, arm)          # fills the C cache (and, cached, the record)
    samples = {arm: [] for arm in ARMS}
    for _ in range(runs):
        for arm in ARMS:
            samples[arm].append(run_child(layer, arm))
    stale = [s for arm in ARMS for s in samples[arm] if s["compiles"]]
    if stale:
        raise RuntimeError(f"{layer}: the C compiler ran in a timed process (cache not warm)")
    if any(s["lowerings"] for s in samples["cached"]):
        raise RuntimeError(f"{layer}: the cached arm lowered the layer (no record was used)")
    median = {(arm, what): statistics.median(s[f"{what}_ms"] for s in samples[arm])
              for arm in ARMS for what in ("total", "cpu")}
    return {"layer": layer, "runs": runs, **{f"{arm}_{what}_ms": v for (arm, what), v in median.items()},
            "saving_ms": median["lowering", "total"] - median["cached", "total"],
            "saving_cpu_ms": median["lowering", "cpu"] - median["cached", "cpu"],
            "lower_ms": statistics.median(s["lowering_ms"] for s in samples["lowering"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("LAYERC_CACHE_DIR", tempfile.mkdtemp(prefix="layerc-cold-start-"))
    rows = [measure(layer, args.runs) for layer in LAYERS if args.only.lower() in layer.lower()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"first call (build + forward + backward, float32) in a new process, warm C cache, "
          f"median of {args.runs} runs per arm")
    print(f"{'':<10} {'wall clock ms':^34} {'CPU time ms':^34}")
    print(f"{'layer':<10}" + f" {'cached':>10} {'lowering':>10} {'saving':>10}  " * 2 + f"{'in _lower':>11}")
    for r in rows:
        print(f"{r['layer']:<10}" + "".join(f" {r[f'cached_{w}_ms']:>10.1f} {r[f'lowering_{w}_ms']:>10.1f} "
                                            f"{r[s]:>10.1f}  " for w, s in (("total", "saving_ms"),
                                                                            ("cpu", "saving_cpu_ms")))
              + f"{r['lower_ms']:>11.1f}")


if __name__ == "__main__":
    main()
