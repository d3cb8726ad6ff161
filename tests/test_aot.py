"""Ahead-of-time packages (layerc/aot.py, `layerc build`): they import with
only numpy and cffi, ship the runtime core's own files, write no value as code,
match the JIT module, and the committed generated/ is fresh."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest

from layerc import aot
from layerc.compiler.cc import isa_levels
from layerc.runtime import isa
from layerc.cli import build_all, find_manifest, load_file

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime"

SPECS = '''
from layerc import layer, Input, Param, Buffer, Attr, ops

@layer
class PReLU:
    """PReLU(x) = max(0, x) + alpha * min(0, x), one alpha per feature."""
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


@layer
class Linear:
    x = Input("N", "I")
    weight = Param("O", "I", init="xavier")
    bias = Param("O", init="normal")

    def forward(x, weight, bias):
        return x @ weight.T + bias


@layer
class ScaledTanh:
    x = Input("N", "C")
    gain = Attr(2.0)

    def forward(x, gain):
        return ops.tanh(x * gain)
'''

# Runs in a separate interpreter that cannot import compiler, runtime, templates,
# jinja2 or setuptools: -I (no PYTHONPATH, no user site, no cwd), -S (no .pth
# files, so no editable install), an explicit sys.path, and a finder refusing
# those names in case any of them is reachable anyway.
ISOLATED = '''
import sys
sys.path[:0] = {paths!r}
class Refuse:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in ("layerc", "compiler", "runtime", "templates", "jinja2", "setuptools"):
            raise ImportError("isolated: " + name + " must not be imported")
        return None
sys.meta_path.insert(0, Refuse)
import time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import {package} as pkg
m = pkg.Module(dtype=np.{dtype})
t2 = time.perf_counter()
data = np.load({data!r})
y = m.forward(data["x"]).numpy()
gx = m.backward(data["g"]).numpy()
out = {{"y": y, "gx": gx, "import_seconds": t2 - t1}}
for name, p in m.named_parameters():
    out["param_" + name] = p.data
    out["grad_" + name] = p.grad
np.savez({result!r}, **out)
bad = [n for n in sys.modules if n.split(".")[0] in ("layerc", "compiler", "runtime", "templates", "jinja2", "setuptools")]
assert not bad, bad
print("ok", m.so_path)
'''


def isolated_paths(package_parent: pathlib.Path) -> list:
    """stdlib, lib-dynload and the site-packages holding numpy and cffi, then the package's folder."""
    import cffi
    site = {str(pathlib.Path(np.__file__).parents[1]), str(pathlib.Path(cffi.__file__).parents[1])}
    return [str(package_parent), *sorted(site)]


def run_isolated(package_parent, package, dtype, data, result, **env):
    code = ISOLATED.format(paths=isolated_paths(package_parent), package=package, dtype=dtype,
                           data=str(data), result=str(result))
    env = {"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/"), **env}   # no C compiler reachable
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(package_parent))


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    (folder / "aot_specs.py").write_text(SPECS)
    return load_file(str(folder / "aot_specs.py"))


@pytest.fixture(scope="module")
def built(specs, tmp_path_factory):
    """PReLU and Linear built ahead of time (with their extensions) into one folder."""
    out = tmp_path_factory.mktemp("aot")
    results = {
        "prelu": aot.write_package(specs.PReLU, out, {"C": 5}),
        "linear": aot.write_package(specs.Linear, out, {"I": 4, "O": 3}),
    }
    return out, results


@pytest.mark.parametrize("package,bindings,dtype", [
    ("prelu", {"C": 5}, "float32"),
    ("prelu", {"C": 5}, "float64"),
    ("linear", {"I": 4, "O": 3}, "float64"),
])
def test_isolated_import_matches_jit(specs, built, tmp_path, package, bindings, dtype):
    out, results = built
    spec = {"prelu": specs.PReLU, "linear": specs.Linear}[package]
    jit = spec.build(dtype=dtype, **bindings)
    with np.load(out / package / "params.npz") as stored:
        for name, p in jit.named_parameters():
            p.data[...] = stored[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, jit._inputs[0].shape[1])).astype(dtype)
    x[0, :2] = 0.0                                 # the kink of maximum/minimum
    y = jit.forward(x).numpy()
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = jit.backward(g).numpy()
    np.savez(tmp_path / "data.npz", x=x, g=g)

    run = run_isolated(out, package, dtype, tmp_path / "data.npz", tmp_path / "result.npz")
    assert run.returncode == 0, run.stderr
    got = np.load(tmp_path / "result.npz")
    assert got["y"].dtype == np.dtype(dtype)
    # portable flags against -march=native: FMA contraction may differ in the last bit
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got["y"], y, rtol=rtol)
    np.testing.assert_allclose(got["gx"], gx, rtol=rtol)
    for name, p in jit.named_parameters():
        np.testing.assert_array_equal(got["param_" + name], p.data)
        np.testing.assert_allclose(got["grad_" + name], p.grad, rtol=rtol)


@pytest.mark.parametrize("level", isa.supported())
def test_a_package_loads_the_extension_of_the_level_chosen_at_import(built, tmp_path, level):
    out, _ = built
    assert sorted(json.loads((out / "prelu" / "layer.json").read_text())["extensions"]) == sorted(isa_levels())
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, g=np.ones_like(x))
    run = run_isolated(out, "prelu", "float32", tmp_path / "data.npz", tmp_path / "result.npz", LAYERC_ISA=level)
    assert run.returncode == 0, run.stderr
    assert f"_prelu_ext_{level}." in run.stdout
    with np.load(tmp_path / "result.npz") as got, np.load(out / "prelu" / "params.npz") as stored:
        alpha = stored["alpha"]
        np.testing.assert_allclose(got["y"], np.maximum(x, 0) + alpha * np.minimum(x, 0), rtol=1e-6)


def test_initial_parameters_are_the_jit_initialization_at_seed_0(specs, built):
    from layerc.runtime.random import manual_seed
    out, _ = built
    manual_seed(0)
    jit = specs.Linear.build(dtype="float64", I=4, O=3)
    with np.load(out / "linear" / "params.npz") as stored:
        assert sorted(stored.files) == ["bias", "weight"]
        for name, p in jit.named_parameters():
            np.testing.assert_array_equal(stored[name], p.data)


def test_rendered_c_is_what_the_jit_compiles(specs):
    jit = specs.PReLU.build(C=5)
    assert aot.lower(specs.PReLU, C=5).source == jit.source
    low = aot.lower(specs.ScaledTanh, gain=3.0)
    assert "3.0" in low.source
    assert low.source == specs.ScaledTanh.build(gain=3.0).source


def test_packages_ship_the_runtime_core_byte_for_byte(specs, built, tmp_path):
    out, _ = built
    aot.write_package(specs.Linear, tmp_path, {"I": 16, "O": 12}, compile=False)   # large enough for BLAS
    core = {p.name: p.read_bytes() for p in RUNTIME.glob("*.py")}
    assert "module.py" in core and "package.py" in core
    for folder, products in ((tmp_path / "linear", True), (out / "prelu", False)):
        shipped = {p.name: p.read_bytes() for p in (folder / "_runtime").glob("*.py")}
        assert shipped == core
        assert json.loads((folder / "layer.json").read_text())["record"]["calls_blas"] is products


def test_the_runtime_core_imports_nothing_but_numpy_cffi_and_the_standard_library():
    """No layerc (compiler, face), jinja2 or setuptools: every import in runtime/
    is relative or of numpy, cffi or a standard module. (Running the shipped copy
    with only those importable is test_isolated_import_matches_jit.)"""
    allowed = {"numpy", "cffi", "__future__"} | set(sys.stdlib_module_names)
    for path in RUNTIME.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            assert all(n.split(".")[0] in allowed for n in names), (path.name, names)


CORE_ALONE = '''
import sys
sys.path[:0] = {paths!r}
class Refuse:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in ("layerc", "compiler", "jinja2", "setuptools"):
            raise ImportError("isolated: " + name + " must not be imported")
        return None
sys.meta_path.insert(0, Refuse)
import numpy as np
import core
core.manual_seed(0)

class Affine(core.Module):
    def __init__(self):
        super().__init__()
        self.w = core.Tensor(np.random.default_rng(0).standard_normal(3), requires_grad=True)

    def forward(self, x):
        return (x * self.w).sum(axis=1)

m = core.Sequential(Affine())
optimizer = core.SGD(m.parameters(), lr=0.1)
x = core.Tensor(np.ones((4, 3)))
for _ in range(2):
    m.zero_grad()
    (m(x) ** 2).sum().backward()
    optimizer.step()
m.save({checkpoint!r})
m.load({checkpoint!r})
print(sorted(n for n in sys.modules if n.split(".")[0] in ("layerc", "compiler", "jinja2", "setuptools")))
'''


def test_the_runtime_core_runs_alone(tmp_path):
    """The files of runtime/, as a package of another name in an interpreter
    where layerc, jinja2 and setuptools cannot be imported: modules, the tape,
    an optimizer and checkpoints work."""
    shutil.copytree(RUNTIME, tmp_path / "core", ignore=shutil.ignore_patterns("__pycache__"))
    code = CORE_ALONE.format(paths=isolated_paths(tmp_path), checkpoint=str(tmp_path / "state.npz"))
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                         env={"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/")}, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[]"]


def test_package_files_and_flags(built):
    out, results = built
    files = sorted(p.name for p in (out / "prelu").iterdir())
    for name in ("__init__.py", "layer.json", "_runtime", "build.py", "setup.py", "pyproject.toml",
                 "source.c", "cdef.h", "params.npz"):
        assert name in files
    ext = results["prelu"].so_path
    assert ext and os.path.basename(ext) == f"_prelu_ext_{isa_levels()[0]}" + sysconfig.get_config_var("EXT_SUFFIX")
    flags = [line for line in (out / "prelu" / "build.py").read_text().splitlines() if line.startswith("EXTENSIONS")]
    assert len(flags) == 1 and "native" not in flags[0] and "-fopenmp" in flags[0]   # one build per level
    for level in isa_levels():
        assert (out / "prelu" / f"_prelu_ext_{level}{sysconfig.get_config_var('EXT_SUFFIX')}").is_file()
    init = (out / "prelu" / "__init__.py").read_text()
    assert "import compiler" not in init and "jinja2" not in init


def test_module_attributes_in_process(built, monkeypatch):
    out, _ = built
    monkeypatch.syspath_prepend(str(out))
    import prelu
    m = prelu.PReLU()
    assert m.source == (out / "prelu" / "source.c").read_text()
    # the library of the level this CPU runs (the build reports the widest level's)
    chosen = out / "prelu" / f"_prelu_ext_{isa.chosen()}{sysconfig.get_config_var('EXT_SUFFIX')}"
    assert os.path.samefile(m.so_path, chosen)
    assert len(m.cache_key) == 64
    assert repr(m) == "PReLU(C=5)"
    y = m.forward(np.array([[-2, -1, 0, 1, 2]], np.float32))
    np.testing.assert_array_equal(y, [[-0.5, -0.25, 0, 1, 2]])
    m.backward(np.ones((1, 5), np.float32))
    np.testing.assert_array_equal(m.alpha.grad, [-2, -1, 0, 0, 0])
    with pytest.raises(RuntimeError, match="backward"):
        m.backward(np.ones((1, 5), np.float32))
    state = m.state_dict()
    state["alpha"][:] = 0.5
    m.load_state_dict(state)
    np.testing.assert_array_equal(m.forward(np.full((2, 5), -2, np.float32)), np.full((2, 5), -1))


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((2, 5), np.float64), TypeError, "PReLU: argument x has dtype"),
    (np.zeros((5,), np.float32), ValueError, r"expected rank 2: \(N, 5\)"),
    (np.zeros((2, 4), np.float32), ValueError, r"axis 1 is 4, expected 5"),
])
def test_bad_inputs_raise_before_c(built, monkeypatch, bad, error, match):
    out, _ = built
    monkeypatch.syspath_prepend(str(out))
    import prelu
    with pytest.raises(error, match=match):
        prelu.PReLU().forward(bad)


def test_non_contiguous_and_empty_inputs(built, monkeypatch):
    out, _ = built
    monkeypatch.syspath_prepend(str(out))
    import prelu
    m = prelu.PReLU(dtype=np.float64)
    x = np.arange(-10.0, 10.0).reshape(5, 4).T[:, :]    # (4, 5), Fortran order
    np.testing.assert_array_equal(m.forward(x), np.where(x > 0, x, 0.25 * x))
    assert m.forward(np.zeros((0, 5))).shape == (0, 5)


def test_sources_only_package_imports_and_says_how_to_build(specs, tmp_path):
    result = aot.write_package(specs.ScaledTanh, tmp_path, package="scaled_tanh", compile=False)
    assert result.so_path is None
    code = f"""
import sys; sys.path.insert(0, {str(tmp_path)!r})
import scaled_tanh
try:
    scaled_tanh.ScaledTanh()
except ImportError as e:
    print(e)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "python -m scaled_tanh.build" in run.stdout


def test_build_script_builds_in_place(specs, tmp_path):
    aot.write_package(specs.ScaledTanh, tmp_path, package="scaled_tanh", compile=False)
    run = subprocess.run([sys.executable, "-m", "scaled_tanh.build"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = tmp_path / "data.npz"
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    np.savez(data, x=x, g=np.ones_like(x))
    run = run_isolated(tmp_path, "scaled_tanh", "float64", data, tmp_path / "result.npz")
    assert run.returncode == 0, run.stderr
    got = np.load(tmp_path / "result.npz")
    np.testing.assert_allclose(got["y"], np.tanh(2 * x), rtol=1e-12)
    np.testing.assert_allclose(got["gx"], 2 * (1 - np.tanh(2 * x) ** 2), rtol=1e-12)


def test_write_refuses_a_folder_layerc_did_not_write(specs, tmp_path):
    (tmp_path / "prelu").mkdir()
    (tmp_path / "prelu" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a package written by layerc"):
        aot.write_package(specs.PReLU, tmp_path, {"C": 5}, compile=False)
    assert (tmp_path / "prelu" / "notes.txt").read_text() == "mine"


def test_rebuild_replaces_the_package(specs, tmp_path):
    aot.write_package(specs.PReLU, tmp_path, {"C": 5}, compile=False)
    (tmp_path / "prelu" / "stale.so").write_text("old binary")
    aot.write_package(specs.PReLU, tmp_path, {"C": 6}, compile=False)
    assert not (tmp_path / "prelu" / "stale.so").exists()
    assert json.loads((tmp_path / "prelu" / "layer.json").read_text())["record"]["bindings"] == [["C", 6]]
    assert [p.name for p in tmp_path.iterdir()] == ["prelu"]     # no temporary folders left


def test_rendering_is_deterministic(specs):
    a = aot.render_package(specs.Linear, {"I": 4, "O": 3})
    b = aot.render_package(specs.Linear, {"I": 4, "O": 3})
    assert a == b
    assert zipfile.ZipFile(__import__("io").BytesIO(a["params.npz"])).namelist() == ["bias.npy", "weight.npy"]


def test_committed_generated_folder_is_fresh(tmp_path):
    """generated/ is exactly what `layerc build --all --sources-only` writes."""
    manifest = find_manifest(str(REPO / "generated" / "manifest.txt"))
    lines = build_all(manifest, tmp_path, sources_only=True)
    assert lines, "the manifest lists no package"
    fresh = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    stale = []
    for name in fresh:
        want = aot.source_files(tmp_path / name)
        have = aot.source_files(REPO / "generated" / name)
        if set(want) != set(have):
            stale.append(f"{name}: files differ: {sorted(set(want) ^ set(have))}")
            continue
        stale += [f"{name}/{f} differs" for f in want if want[f] != have[f]]
    assert not stale, ("generated/ is stale; regenerate it with `layerc build --all --sources-only`:\n"
                       + "\n".join(stale))


@pytest.mark.slow
def test_pip_wheel_of_a_package(specs, tmp_path):
    """`pip wheel --no-build-isolation <package>` builds a wheel whose install imports in isolation."""
    aot.write_package(specs.PReLU, tmp_path / "src", {"C": 5}, compile=False)
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                          "-w", str(tmp_path / "wheels"), str(tmp_path / "src" / "prelu")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    wheels = list((tmp_path / "wheels").glob("prelu-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("prelu/_prelu_ext") for n in names) and "prelu/params.npz" in names
    zipfile.ZipFile(wheels[0]).extractall(tmp_path / "site")
    x = np.array([[-2.0, -1, 0, 1, 2]])
    np.savez(tmp_path / "data.npz", x=x, g=np.ones_like(x))
    run = run_isolated(tmp_path / "site", "prelu", "float64", tmp_path / "data.npz", tmp_path / "result.npz")
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "result.npz")["y"], [[-0.5, -0.25, 0, 1, 2]])


def test_jit_modules_expose_source_so_path_and_cache_key(specs):
    m = specs.PReLU.build(C=5)
    assert "int lc_prelu_forward_f32(" in m.source
    assert os.path.isfile(m.so_path)
    assert len(m.cache_key) == 64 and m.cache_key[:16] in m.so_path


@pytest.mark.slow
@pytest.mark.parametrize("package,shape", [("depthwise_separable_conv", (2, 8, 6, 6)),
                                           ("residual_block", (2, 8, 5, 5)), ("custom_linear", (3, 64))])
def test_committed_packages_built_match_jit(tmp_path, package, shape):
    """A committed package, built from its sources, agrees with the JIT module:
    outputs, input and parameter gradients, and buffer updates (batch norm)."""
    import shutil
    from layerc.cli import read_manifest, resolve_target
    shutil.copytree(REPO / "generated" / package, tmp_path / package,
                    ignore=shutil.ignore_patterns(*aot.BUILD_PRODUCTS))
    aot.build_extension(tmp_path / package)
    line = next(text for _, text in read_manifest(REPO / "generated" / "manifest.txt") if f"--name {package}" in text)
    words = line.split()
    bindings = dict(w.split("=") for w in words[words.index("--sizes") + 1:words.index("--name")])
    spec, _ = resolve_target(str(REPO / words[0]))
    jit = spec.build(dtype="float64", **{k: int(v) for k, v in bindings.items()})
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(package).Module(dtype=np.float64)
    finally:
        sys.path.remove(str(tmp_path))
    module.load_state_dict({**{n: p.data for n, p in jit.named_parameters()}, **dict(jit.named_buffers())})
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(module.forward(x), jit.forward(x).numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(module.forward(x).shape)
    jit.forward(x)
    np.testing.assert_allclose(module.backward(g), jit.backward(g).numpy(), rtol=1e-10, atol=1e-12)
    for name, p in jit.named_parameters():
        np.testing.assert_allclose(module._parameters[name].grad, p.grad, rtol=1e-10, atol=1e-12)
    for name, b in jit.named_buffers():
        np.testing.assert_allclose(module._buffers[name], b, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_committed_focal_loss_package_writes_its_gradient_over_the_kept_terms(tmp_path):
    """The focal loss package's backward writes the logits' gradient over the
    exponentials its forward kept (``Arg.over``) once its calls are planned (from
    the second call at a shape on), and agrees with the JIT module."""
    import importlib.util
    import shutil
    shutil.copytree(REPO / "generated" / "focal_loss", tmp_path / "focal_loss",
                    ignore=shutil.ignore_patterns(*aot.BUILD_PRODUCTS))
    aot.build_extension(tmp_path / "focal_loss")
    sys.path.insert(0, str(tmp_path))
    try:
        package = __import__("focal_loss")
    finally:
        sys.path.remove(str(tmp_path))
    args = package.Module.RECORD.function("backward").args
    assert [a.over for a in args if a.name == "grad_logits"] == ["sum_4_terms"]
    example = importlib.util.spec_from_file_location("focal_example", REPO / "examples/custom_layers/focal_loss.py")
    module = importlib.util.module_from_spec(example)
    example.loader.exec_module(module)
    jit = module.FocalLossSpec.build(C=10, dtype="float64")
    aot_module = package.Module(dtype=np.float64)
    rng = np.random.default_rng(0)
    for step in range(3):
        logits, targets = rng.standard_normal((6, 10)), rng.integers(0, 10, 6)
        np.testing.assert_allclose(aot_module.forward(logits, targets), jit.forward(logits, targets).numpy(),
                                   rtol=1e-12)
        terms = aot_module._last["arrays"]["sum_4_terms"]
        gradient = aot_module.backward(np.ones(())).numpy()
        assert np.shares_memory(gradient, terms) == (step > 0)
        np.testing.assert_allclose(gradient, jit.backward(np.ones(())).numpy(), rtol=1e-10, atol=1e-14)


HOSTILE = ['a"""b', "'''", '\\', 'back\\slash\\n', 'x"', '"', 'line\nbreak\r\n', 'tab\there', 'nul\x00',
           'é ü 漢字 \u2028', 'end\\', '"""; import os; os._exit(3); """', "\ud800"]


@pytest.mark.parametrize("text", HOSTILE)
def test_python_text_is_a_literal_of_the_text(text):
    literal = aot.python_text(text)
    assert ast.literal_eval(literal) == text
    assert isinstance(ast.parse(literal).body[0].value, ast.Constant)      # one expression: a string


HOSTILE_SPEC = '''
from layerc import layer, Input, Attr, ops

class Hostile:
    """Doc with \\"\\"\\" quotes, a backslash \\\\ and a newline
    \\"\\"\\"; import os; os._exit(3); x = \\"\\"\\"  and non-ASCII: é 漢字"""
    x = Input("N", "C")
    label = Attr('"""; import os; os._exit(4); """ \\\\ \\n é')

    def forward(x, label):
        return ops.tanh(x)

Hostile = layer(type("My-Layer 2", (), dict(vars(Hostile))))
Keyword = layer(type("class", (), {"x": Input("N"), "forward": lambda x: x * 2}))
'''


def test_hostile_names_docs_and_attributes_never_become_code(tmp_path):
    (tmp_path / "hostile_specs.py").write_text(HOSTILE_SPEC, encoding="utf-8")
    specs = load_file(str(tmp_path / "hostile_specs.py"))
    command = 'layerc build "x"""\\"; os._exit(5)'
    aot.write_package(specs.Hostile, tmp_path / "out", {"C": 3}, package="hostile", compile=False, command=command)
    aot.write_package(specs.Keyword, tmp_path / "out", compile=False)
    for name in ("__init__.py", "build.py", "setup.py"):
        ast.parse((tmp_path / "out" / "hostile" / name).read_text(encoding="utf-8"))   # still valid Python
    code = f"""
import json, sys
sys.path.insert(0, {str(tmp_path / "out")!r})
import hostile, layer_class
print(json.dumps([hostile.__doc__, hostile.__all__, hostile.Module.__name__, dict(hostile.Module.RECORD.bindings),
                  layer_class.__all__, layer_class.Module.RECORD.name]))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc, names, class_name, bindings, keyword_names, keyword_layer = json.loads(run.stdout)
    assert specs.Hostile.doc in doc and command in doc
    assert names == ["My_Layer_2", "Module"] and class_name == "My_Layer_2"
    assert bindings == {"C": 3, "label": specs.Hostile.attrs["label"]}
    assert keyword_names == ["class_", "Module"] and keyword_layer == "class"


def test_package_names_that_are_not_identifiers_are_refused(specs, tmp_path):
    for bad in ("class", "my-package", "2x"):
        with pytest.raises(ValueError, match="not a Python identifier"):
            aot.render_package(specs.PReLU, {"C": 5}, package=bad)
