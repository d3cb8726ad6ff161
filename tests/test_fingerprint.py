"""compiler/fingerprint.py: what changes a spec's fingerprint (anything its
lowering can depend on), what does not (where it sits in its file, comments,
initializers), and what makes a spec unfingerprintable (state outside the
values it reaches). No C is built here."""
from __future__ import annotations

import importlib.util
import pathlib
import textwrap

import pytest

from layerc import ops
from layerc.compiler.build import BuildOptions
from layerc.compiler.fingerprint import Unfingerprintable, spec_fingerprint
from layerc.compiler.layer_cache import layer_key
from layerc.compiler.spec import LayerSpec

BASE = '''
import numpy as np
from layerc import Attr, Input, Param, layer, ops

SCALE = 2.0
TABLE = np.array([1.0, 2.0, 3.0])


def helper(t, shift=0.0):
    return t * SCALE + shift


@layer
class L:
    """A layer."""
    x = Input("N", "C")
    w = Param("C", init=0.5)
    k = Attr(3)

    def forward(x, w, k):
        y = ops.tanh(helper(x) + w) * k
        return ops.compute(y.shape, lambda n, c: y[n, c] * 1.5, name="scaled")
'''

_counter = [0]


def load(tmp_path: pathlib.Path, source: str):
    """``source`` as a fresh module named ``fp_module`` (each call a new
    module object, as in a new process)."""
    _counter[0] += 1
    path = tmp_path / str(_counter[0]) / "fp_module.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fp(tmp_path, source, name="L"):
    return spec_fingerprint(getattr(load(tmp_path, source), name))


@pytest.mark.parametrize("old,new", [
    ("ops.tanh(", "ops.sigmoid("),                                  # another op
    ("* k\n", "* k + 0.0\n"),                                        # the forward's code
    ("y[n, c] * 1.5", "y[n, c] * 2.5"),                              # a constant in a nested lambda
    ("SCALE = 2.0", "SCALE = 3.0"),                                  # a global a helper reads
    ("return t * SCALE + shift", "return t * SCALE - shift"),        # a helper's code
    ("shift=0.0", "shift=1.0"),                                      # a helper's default
    ("k = Attr(3)", "k = Attr(4)"),                                  # an attribute's default
    ('x = Input("N", "C")', 'x = Input("N", "C", differentiable=False)'),  # a role
    ('w = Param("C", init=0.5)', 'w = Param(1, "C", init=0.5)'),     # a shape
    ('name="scaled"', 'name="scaled2"'),                             # a stage name
])
def test_changes_that_change_the_fingerprint(tmp_path, old, new):
    assert old in BASE
    assert fp(tmp_path, BASE.replace(old, new)) != fp(tmp_path, BASE)


def test_the_spec_name_is_in_the_fingerprint(tmp_path):
    assert fp(tmp_path, BASE.replace("class L:", "class M:"), "M") != fp(tmp_path, BASE)


def test_a_global_array_is_fingerprinted_by_content(tmp_path):
    source = BASE.replace("return t * SCALE + shift", "return t * float(TABLE[1]) + shift")
    other = source.replace("TABLE = np.array([1.0, 2.0, 3.0])", "TABLE = np.array([1.0, 2.5, 3.0])")
    assert fp(tmp_path, source) != fp(tmp_path, other)


def test_a_backward_changes_the_fingerprint(tmp_path):
    with_backward = BASE.replace('    def forward(x, w, k):', '    def backward(grad_output):\n        return grad_output\n\n'
        '    def forward(x, w, k):')
    assert fp(tmp_path, with_backward) != fp(tmp_path, BASE)


def test_a_closure_value_changes_the_fingerprint(tmp_path):
    source = '''
    from layerc import Input, layer, ops

    def make(eps):
        @layer
        class Eps:
            x = Input("N")

            def forward(x):
                return x + eps
        return Eps
    '''
    module = load(tmp_path, source)
    assert spec_fingerprint(module.make(0.1)) == spec_fingerprint(module.make(0.1))
    assert spec_fingerprint(module.make(0.1)) != spec_fingerprint(module.make(0.2))


def test_an_op_replaced_at_run_time_changes_the_fingerprint(tmp_path, monkeypatch):
    before = fp(tmp_path, BASE)

    def tanh(x):
        return ops.sigmoid(x)
    monkeypatch.setattr(ops, "tanh", tanh)
    assert fp(tmp_path, BASE) != before


def test_same_code_elsewhere_in_its_file_or_with_other_comments_fingerprints_alike(tmp_path):
    reference = fp(tmp_path, BASE)
    assert fp(tmp_path, BASE) == reference                              # another module object
    assert fp(tmp_path, "\n\n\n# moved down\n" + BASE) == reference     # other line numbers
    assert fp(tmp_path, BASE.replace("y = ops.tanh", "# a comment\n        y = ops.tanh")) == reference
    # initializers are read from the live spec by the runtime; the lowering does not use them
    assert fp(tmp_path, BASE.replace("init=0.5", "init=0.7")) == reference


@pytest.mark.parametrize("body", [
    "import os\n\ndef helper(t, shift=0.0):\n    return t * float(os.environ.get('S', '1'))\n",
    "import random\n\ndef helper(t, shift=0.0):\n    return t * random.random()\n",
    "import numpy as np\nRNG = np.random.default_rng(0)\n\ndef helper(t, shift=0.0):\n    return t * RNG.random()\n",
    "import numpy as np\n\ndef helper(t, shift=0.0):\n    return t * np.random.rand()\n",
    "def helper(t, shift=0.0):\n    return t * float(open('/dev/null').read() or 1)\n",
    "import numpy as np\n\ndef helper(t, shift=0.0):\n    return t * getattr(np, 'pi')\n",
    "class Box:\n    pass\nBOX = Box()\nBOX.v = 2.0\n\ndef helper(t, shift=0.0):\n    return t * BOX.v\n",
])
def test_outside_state_or_unknown_objects_are_unfingerprintable(tmp_path, body):
    start = BASE.index("def helper")
    end = BASE.index("@layer")
    source = BASE[:start] + body + "\n\n" + BASE[end:]
    with pytest.raises(Unfingerprintable):
        fp(tmp_path, source)
    spec = load(tmp_path, source).L
    assert layer_key(spec, {"C": 2}, {"k": 3}, BuildOptions()) is None


def test_library_functions_classes_and_user_classes_are_fingerprintable(tmp_path):
    source = BASE.replace("def helper(t, shift=0.0):\n    return t * SCALE + shift", '''
import math
import enum
import functools


class Mode(enum.Enum):
    A = 1
    B = 2


class Consts:
    half = 0.5

    @staticmethod
    def twice(v):
        return 2 * v


def helper(t, shift=0.0, mode=Mode.A):
    scale = functools.reduce(lambda a, b: a * b, (math.sqrt(4.0), np.float32(1.0), Consts.half), 1.0)
    return t * Consts.twice(scale) * len(range(2)) + shift
''')
    first = fp(tmp_path, source)
    assert first == fp(tmp_path, source)
    assert fp(tmp_path, source.replace("half = 0.5", "half = 0.25")) != first
    assert fp(tmp_path, source.replace("return 2 * v", "return 3 * v")) != first
    assert fp(tmp_path, source.replace("mode=Mode.A", "mode=Mode.B")) != first


def test_layer_key_covers_sizes_attributes_and_build_options(tmp_path, monkeypatch):
    spec = load(tmp_path, BASE).L
    key = layer_key(spec, {"C": 4}, {"k": 3}, BuildOptions())
    assert key is not None and len(key) == 64
    assert layer_key(spec, {"C": 4}, {"k": 3}, BuildOptions()) == key
    assert layer_key(spec, {"C": 5}, {"k": 3}, BuildOptions()) != key
    assert layer_key(spec, {"C": 4}, {"k": 4}, BuildOptions()) != key
    assert layer_key(spec, {"C": 4}, {"k": 3.0}, BuildOptions()) != key     # another type, maybe other code
    assert layer_key(spec, {"C": 4}, {"k": 3}, BuildOptions(portable=True)) != key
    monkeypatch.setenv("CFLAGS", "-O2")
    assert layer_key(spec, {"C": 4}, {"k": 3}, BuildOptions()) != key


def shipped_specs():
    """Every spec of the examples, the built-in layers and the benchmarks."""
    import benchmarks.specs as bench
    import layerc.losses
    import layerc.nn
    modules = [layerc.nn, layerc.losses, bench]
    folder = pathlib.Path(bench.__file__).resolve().parent.parent / "examples" / "custom_layers"
    modules += [bench._example(p.stem) for p in sorted(folder.glob("*.py"))]
    return [(f"{m.__name__}.{k}", v) for m in modules for k, v in vars(m).items() if isinstance(v, LayerSpec)]


def test_every_shipped_spec_is_fingerprintable():
    specs = shipped_specs()
    assert len(specs) >= 15
    for name, spec in specs:
        assert len(spec_fingerprint(spec)) == 64, name


def test_a_spec_value_reached_from_a_forward_is_walked_as_a_spec(tmp_path):
    source = BASE + '''

@layer
class Outer:
    x = Input("N", "C")

    def forward(x):
        return x * float(len(L.tensors))
'''
    module = load(tmp_path, source)
    other = load(tmp_path, source.replace('k = Attr(3)', 'k = Attr(5)'))
    assert spec_fingerprint(module.Outer) != spec_fingerprint(other.Outer)


def test_a_module_imported_inside_the_forward_is_walked(tmp_path, monkeypatch):
    helpers = tmp_path / "fp_helpers_pkg"
    helpers.mkdir()
    (helpers / "__init__.py").write_text("FACTOR = 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = BASE.replace("return t * SCALE + shift",
                          "import fp_helpers_pkg\n    return t * fp_helpers_pkg.FACTOR + shift")
    with pytest.raises(Unfingerprintable, match="not imported yet"):
        fp(tmp_path, source)
    import fp_helpers_pkg
    first = fp(tmp_path, source)
    monkeypatch.setattr(fp_helpers_pkg, "FACTOR", 3.0)
    assert fp(tmp_path, source) != first


def test_numpy_named_objects_are_fingerprinted_by_name(tmp_path):
    source = BASE.replace("return t * SCALE + shift", "return t * float(np.prod((2, 3))) * np.float32(np.sqrt(2.0))")
    assert fp(tmp_path, source) == fp(tmp_path, source)


def test_the_spec_class_reached_from_code_is_walked(tmp_path):
    source = BASE.replace("    k = Attr(3)\n", "    k = Attr(3)\n    EXTRA = 1.0\n").replace(
        "return t * SCALE + shift", "return t * L.cls.EXTRA + shift")
    assert fp(tmp_path, source) != fp(tmp_path, source.replace("EXTRA = 1.0", "EXTRA = 2.0"))


def test_layerc_changed_at_run_time_changes_the_key(monkeypatch):
    import layerc.nn
    from layerc.compiler import codegen
    spec, sizes, attrs = layerc.nn.BatchNorm2DSpec, {"C": 4}, {"eps": 1e-5, "momentum": 0.1, "training": True}
    spec.split_bindings({})
    before = layer_key(spec, sizes, attrs, BuildOptions())
    assert before is not None
    # an op that a built-in's helper calls, replaced
    monkeypatch.setattr(ops, "sqrt", lambda x: x)
    assert layer_key(spec, sizes, attrs, BuildOptions()) not in (None, before)
    monkeypatch.undo()
    assert layer_key(spec, sizes, attrs, BuildOptions()) == before
    # a tuning constant of the code generator
    monkeypatch.setattr(codegen, "PARALLEL_MIN_WORK", 1 << 20)
    assert layer_key(spec, sizes, attrs, BuildOptions()) not in (None, before)
    monkeypatch.undo()
    assert layer_key(spec, sizes, attrs, BuildOptions()) == before
