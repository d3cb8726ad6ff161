"""Property-based tests (hypothesis): random expression graphs over the op table.

Each hypothesis example draws one expression graph over the elementwise ops
of ``layerc.compiler.ops_table.OPS`` (every op, every arity) and the reductions
``sum``/``mean``/``max``/``min`` (random axes, negative axes, keepdims), on inputs of
random broadcastable shapes (rank 1-3, literal size-1 dimensions, symbolic sizes
that are free at run time or bound at build time). The graph is compiled once in
float64; then many value draws run against it, each with its own run-time
sizes (1-7, so size-1 broadcasting happens at run time too) and values:

- the compiled forward must match a numpy evaluation of the same graph
  (each op's ``numpy`` in ``layerc.compiler.ops_table.OPS``);
- the derived backward must match central finite differences
  (``check_grad``, tolerance 1e-6).

Domains: every argument of an op is kept inside the op's ``test_domain`` when
that domain is restricted (``log``, ``sqrt``, the divisor of ``div``, both
arguments of ``pow``) by wrapping the sub-expression into the range, either
affinely (interval arithmetic tracks every node's range: exact for ops
monotone in each argument, a fine grid over the argument box for the others,
such as ``sin`` or ``silu``) or through a scaled sigmoid; other arguments are
rescaled into [-8, 8] (``exp``'s into [-3, 3]) so finite differences stay
accurate.

Kinks: where the table's ``kinks`` says an op is not smooth (``relu`` near 0,
``maximum`` near a crossing, ``floor`` near an integer), and a ``max``/``min``
reduction whose two extreme entries nearly tie, there is no derivative. The
numpy evaluation measures how close every draw comes to such a point; draws
within 1e-4 skip the gradient check (exact ties are kept: they arise only
where both sides are the same function, e.g. a broadcast value reduced by
``max``, and the even split of the gradient is then exact), and draws within
1e-9 of a jump (an op with ``jumps``: comparisons, ``select``, ``floor``,
``remainder``) skip the forward check. Graphs using ``stop_gradient`` are
checked forward only (their gradient differs from finite differences by
design).

Each op of the table and each reduction is the root of ``PER_FOCUS`` graphs
(one test per focus, so every op is covered), each checked on ``DRAWS`` value
draws: CI runs one graph per focus (about 60), six draws each (derandomized,
so the same examples every run). ``LAYERC_FUZZ_EXAMPLES=2000 pytest
tests/test_fuzz.py -s`` asks for more examples (value draws in total). The
counts are printed.
"""
from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerc import Input, check_grad, layer, ops
from layerc.compiler.ops_table import COMPARISONS, OPS

DRAWS = 6                                   # value/shape draws per compiled graph
EXAMPLES = int(os.environ.get("LAYERC_FUZZ_EXAMPLES", "0") or 0) or 300
GRAPHS = max(1, math.ceil(EXAMPLES / DRAWS))

settings.register_profile("layerc-fuzz", derandomize=True, deadline=None, database=None,
                          print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
PROFILE = settings.get_profile("layerc-fuzz")

SYMBOLS = ("N", "C", "H", "W")
MAX_SIZE = 7
LEAF = (-2.0, 2.0)                           # input values are uniform in this range
DEFAULT_DOMAIN = (-2.0, 2.0)
KINK_MARGIN = 1e-4                           # closer to a kink than this: no gradient check
COMPARE_MARGIN = 1e-9                        # closer to a comparison's flip: no forward check

# stop_gradient only as its own focus: a graph holding it is checked forward only,
# and a focus whose one CI graph drew it would have no gradient checked
UNARY = sorted(op for op, o in OPS.items() if o.arity == 1 and op != "stop_gradient")
BINARY = sorted(op for op, o in OPS.items() if o.arity == 2)
TERNARY = sorted(op for op, o in OPS.items() if o.arity == 3)
REDUCTIONS = ("sum", "mean", "max", "min")
FOCUS = sorted(OPS) + list(REDUCTIONS)
# hypothesis examples (compiled graphs) per focus
PER_FOCUS = max(1, round(GRAPHS / len(FOCUS)))
TOTALS: dict = {}


def domain(op, k):
    d = OPS[op].test_domain
    return tuple(map(float, d[k] if k < len(d) else d[0]))


def restricted(op, k):
    """An argument whose test domain is not the default one must stay inside it."""
    return op not in COMPARISONS and op != "select" and domain(op, k) != DEFAULT_DOMAIN


# ---------------------------------------------------------------- graphs
# A node is a tuple: ("in", name), ("const", value), ("op", name, *args),
# ("reduce", kind, axes, keepdims, arg). Every node carries an interval that
# bounds its values for every run-time size and every input in LEAF.


def interval(op, args):
    """Bounds of ``op`` applied to arguments bounded by ``args`` (a list of (lo, hi))."""
    if op in COMPARISONS or op == "philox_uniform":     # philox: a uniform in [0, 1)
        return (0.0, 1.0)
    if op == "select":
        (_, _), (a0, a1), (b0, b1) = args
        return (min(a0, b0), max(a1, b1))
    if op in ("add", "sub", "maximum", "minimum"):
        (a0, a1), (b0, b1) = args
        if op == "add":
            return (a0 + b0, a1 + b1)
        if op == "sub":
            return (a0 - b1, a1 - b0)
        f = max if op == "maximum" else min
        return (f(a0, b0), f(a1, b1))
    if op == "neg":
        (a0, a1), = args
        return (-a1, -a0)
    if op == "abs":
        (a0, a1), = args
        lo = 0.0 if a0 <= 0 <= a1 else min(abs(a0), abs(a1))
        return (lo, max(abs(a0), abs(a1)))
    return sampled_range(op, args)


def sampled_range(op, args):
    """Bounds of ``op`` over a grid of its argument box, corners included: exact
    for ops monotone in each argument (mul, div with b > 0, pow with a > 0, exp,
    floor, elu), close for the others (sin, silu, remainder)."""
    steps = {1: 2001, 2: 101, 3: 21}[len(args)]
    grids = np.meshgrid(*(np.linspace(lo, hi, steps) for lo, hi in args), indexing="ij")
    with np.errstate(all="ignore"):
        values = np.asarray(OPS[op].numpy(*grids), dtype=np.float64)
    return (float(values.min()), float(values.max()))


class GraphBuilder:
    """Draws a random graph with hypothesis, keeping ranges valid as it goes."""

    def __init__(self, draw, bound):
        self.draw = draw
        self.bound = bound              # symbols bound at build time -> size
        self.inputs = {}                # name -> shape
        self.uses_stop_gradient = False

    def max_size(self, d):
        return 1 if d == 1 else self.bound.get(d, MAX_SIZE)

    def leaf(self, target, full):
        draw = self.draw
        fitting = [n for n, s in self.inputs.items() if subshape(s, target) and (len(s) == len(target) or not full)]
        if fitting and (len(self.inputs) >= 4 or draw(pick.booleans())):
            name = draw(pick.sampled_from(fitting))
        else:
            rank = len(target) if full else draw(pick.integers(1, len(target)))
            shape = tuple(1 if d == 1 or draw(pick.integers(0, 4)) == 0 else d for d in target[len(target) - rank:])
            name = f"x{len(self.inputs)}"
            self.inputs[name] = shape
        return ("in", name), LEAF

    def fit(self, node, rng_, op, k):
        """Wrap ``node`` (values in ``rng_``) into the range argument ``k`` of ``op`` needs."""
        lo, hi = rng_
        if restricted(op, k):
            want = domain(op, k)
        elif op == "exp":
            want = (-3.0, 3.0)
        else:
            want = (-8.0, 8.0)
        if want[0] <= lo and hi <= want[1]:
            return node, rng_
        if not restricted(op, k):       # rescale linearly into [-B, B]
            s = want[1] / max(abs(lo), abs(hi))
            return ("op", "mul", node, ("const", s)), (lo * s, hi * s)
        w0, w1 = want
        if hi > lo and self.draw(pick.booleans()):      # affine onto [w0, w1]
            s = (w1 - w0) / (hi - lo)
            t = w0 - lo * s
            return ("op", "add", ("op", "mul", node, ("const", s)), ("const", t)), (w0, w1)
        # w0 + (w1 - w0) * sigmoid(node * 4 / max|node|)
        scale = 4.0 / max(abs(lo), abs(hi), 1e-3)
        inner = ("op", "sigmoid", ("op", "mul", node, ("const", scale)))
        return ("op", "add", ("op", "mul", inner, ("const", w1 - w0)), ("const", w0)), (w0, w1)

    def expr(self, target, depth, full=False, focus=None):
        """A node whose shape broadcasts to ``target`` (has its rank when ``full``),
        applying ``focus`` (an op or a reduction) at its top when given."""
        draw = self.draw
        if focus in REDUCTIONS:
            return self.reduction(target, depth, full, focus)
        # hypothesis starts from the simplest draws (first of a list, smallest integer):
        # let those be a deep graph rather than a single leaf
        kind = "op" if focus else "leaf" if depth == 0 else draw(pick.sampled_from(
            ["binary", "reduce", "unary", "binary", "ternary", "unary", "reduce", "leaf"]))
        if kind == "leaf":
            return self.leaf(target, full)
        if kind == "reduce":
            return self.reduction(target, depth, full)
        op = focus or draw(pick.sampled_from({"unary": UNARY, "binary": BINARY, "ternary": TERNARY}[kind]))
        if op == "stop_gradient":
            self.uses_stop_gradient = True
        args, ranges = [], []
        for k in range(OPS[op].arity):
            if k > 0 and OPS[op].arity == 2 and draw(pick.integers(0, 4)) == 0:
                lo, hi = domain(op, k) if restricted(op, k) else (-2.0, 2.0)
                v = draw(pick.floats(lo, hi, allow_nan=False).map(lambda v: round(v, 3)))
                node, r = ("const", v), (v, v)
            else:
                node, r = self.expr(target, depth - 1, full and k == 0)
            if not (op == "select" and k == 0):
                node, r = self.fit(node, r, op, k)
            args.append(node)
            ranges.append(r)
        return ("op", op, *args), interval(op, ranges)

    def reduction(self, target, depth, full, kind=None):
        draw = self.draw
        kind = kind or draw(pick.sampled_from(REDUCTIONS))
        keepdims = draw(pick.booleans()) or len(target) == 3      # at most rank 3
        if keepdims:
            # reduced positions come out as 1, so any size fits there
            axes = draw(pick.lists(pick.integers(0, len(target) - 1), min_size=1, unique=True))
            child = tuple(draw(pick.sampled_from(SYMBOLS + (1,))) if k in axes else d for k, d in enumerate(target))
        else:
            extra = draw(pick.integers(1, 3 - len(target)))
            child = list(target)
            axes = []
            for _ in range(extra):
                pos = draw(pick.integers(0, len(child)))
                child.insert(pos, draw(pick.sampled_from(SYMBOLS)))
                axes = [a + (a >= pos) for a in axes] + [pos]
            child = tuple(child)
        # the axes count in the child's shape: it must have the full rank
        node, (lo, hi) = self.expr(child, depth - 1, full=True)
        if kind in ("max", "min") and lo == hi:
            kind = "sum"
        count = math.prod(self.max_size(child[a]) for a in axes)
        r = (min(lo, count * lo), max(hi, count * hi)) if kind == "sum" else (lo, hi)
        rank = len(child)
        spelled = [a - rank if draw(pick.booleans()) else a for a in axes]
        axis = spelled[0] if len(spelled) == 1 and draw(pick.booleans()) else tuple(spelled)
        return ("reduce", kind, axis, keepdims, node), r


def subshape(shape, target):
    """Whether ``shape`` broadcasts to ``target`` (numpy rules, sizes as symbols)."""
    if len(shape) > len(target):
        return False
    return all(d == 1 or d == t for d, t in zip(shape[::-1], target[::-1]))


class Thunk:
    def __init__(self, f):
        self.f = f

    def __call__(self, rnd):
        return self.f(rnd)

    def map(self, g):
        return Thunk(lambda rnd: g(self.f(rnd)))


class pick:
    """The few strategies the graph builder uses, drawn from a seeded ``random.Random``.

    Hypothesis draws the seed. Drawing the structure from hypothesis directly
    makes its first (simplest) example per test a one-op graph on leaves, and
    CI runs few graphs (compiling dominates); from a seed every graph is a real
    random graph, and runs stay reproducible."""

    booleans = staticmethod(lambda: Thunk(lambda r: r.random() < 0.5))
    sampled_from = staticmethod(lambda xs: Thunk(lambda r: r.choice(list(xs))))
    floats = staticmethod(lambda lo, hi, allow_nan=False: Thunk(lambda r: r.uniform(lo, hi)))
    lists = staticmethod(lambda elements, min_size, unique: Thunk(
        lambda r: r.sample(range(elements.lo, elements.hi + 1), r.randint(min_size, elements.hi - elements.lo + 1))))

    @staticmethod
    def integers(a, b):
        t = Thunk(lambda r: r.randint(a, b))
        t.lo, t.hi = a, b
        return t


@st.composite
def graphs(draw, focus):
    """A graph with ``focus`` (an op of the table or a reduction) at its root."""
    rnd = random.Random(f"{focus}:{draw(st.integers(0, 2**32 - 1), label='graph seed')}")

    def draw(thunk):        # noqa: F811 (the structure comes from the seed)
        return thunk(rnd)
    bound = {s: draw(pick.integers(1, MAX_SIZE)) for s in SYMBOLS if draw(pick.integers(0, 3)) == 0}
    rank = draw(pick.integers(2 if focus in REDUCTIONS else 1, 3))
    target = tuple(1 if draw(pick.integers(0, 5)) == 0 else draw(pick.sampled_from(SYMBOLS)) for _ in range(rank))
    g = GraphBuilder(draw, bound)
    node, r = g.expr(target, 3 - draw(pick.integers(0, 2)), focus=focus)
    if node[0] == "in":             # the output is an input: apply one more op
        node, r = ("op", "tanh", node), interval("tanh", [r])
    used = {d for shape in g.inputs.values() for d in shape}
    bound = {s: v for s, v in bound.items() if s in used}       # build() refuses unknown sizes
    return {"root": node, "range": r, "inputs": dict(g.inputs), "bound": bound,
            "stop_gradient": g.uses_stop_gradient}


# ---------------------------------------------------------------- evaluation


def emit(node, env):
    """Build the graph with layerc's ops inside a spec's forward."""
    tag = node[0]
    if tag == "in":
        return env[node[1]]
    if tag == "const":
        return node[1]
    if tag == "op":
        return ops.elementwise(node[1], *(emit(a, env) for a in node[2:]))
    _, kind, axis, keepdims, arg = node
    return getattr(ops, kind)(emit(arg, env), axis=axis, keepdims=keepdims)


class Margins:
    def __init__(self):
        self.kink = math.inf        # distance to the nearest non-smooth point (gradient check)
        self.flip = math.inf        # distance to the nearest comparison flip (forward check)

    def see(self, attr, gaps):
        gaps = np.abs(np.asarray(gaps, dtype=np.float64))
        gaps = gaps[gaps > 0]       # exact ties: the same function on both sides
        if gaps.size:
            setattr(self, attr, min(getattr(self, attr), float(gaps.min())))


def evaluate(node, arrays, margins, memo=None):
    """numpy evaluation of the graph, recording how close it comes to kinks."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    tag = node[0]
    if tag == "in":
        out = arrays[node[1]]
    elif tag == "const":
        out = np.float64(node[1])
    elif tag == "op":
        op, args = node[1], [evaluate(a, arrays, margins, memo) for a in node[2:]]
        for gaps in OPS[op].kinks(*args) if OPS[op].kinks else ():
            margins.see("kink", gaps)
            if OPS[op].jumps:
                margins.see("flip", gaps)
        out = np.asarray(OPS[op].numpy(*args), dtype=np.float64)     # comparisons: 0.0 / 1.0
    else:
        _, kind, axis, keepdims, arg = node
        x = evaluate(arg, arrays, margins, memo)
        out = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[kind](x, axis=axis, keepdims=keepdims)
        if kind in ("max", "min"):
            extreme = out if keepdims else np.expand_dims(out, axis)
            gap = np.abs(extreme - x)
            gap = np.where(gap > 0, gap, np.inf)
            margins.see("kink", np.min(gap, axis=axis))
    memo[key] = out
    return out


def spec_for(graph, name):
    members = {n: Input(*shape) for n, shape in graph["inputs"].items()}
    names = ", ".join(graph["inputs"])
    members["forward"] = eval(f"lambda {names}: emit(G, dict({', '.join(f'{n}={n}' for n in graph['inputs'])}))",
                              {"emit": emit, "G": graph["root"]})
    return layer(type(name, (), members))


def describe(graph) -> str:
    def show(node):
        tag = node[0]
        if tag in ("in", "const"):
            return str(node[1])
        if tag == "op":
            return f"{node[1]}({', '.join(show(a) for a in node[2:])})"
        return f"{node[1]}({show(node[4])}, axis={node[2]}, keepdims={node[3]})"
    inputs = ", ".join(f"{n}{s}" for n, s in graph["inputs"].items())
    return f"inputs {inputs}; bound {graph['bound']}; y = {show(graph['root'])}"


# ---------------------------------------------------------------- the test

_modules: dict = {}


def compiled(graph):
    key = describe(graph)
    if key not in _modules:
        spec = spec_for(graph, f"Fuzz{len(_modules)}")
        _modules[key] = (spec, spec.build(dtype="float64", **graph["bound"]))
    return _modules[key]


@pytest.mark.parametrize("focus", FOCUS)
def test_random_graphs_match_numpy_and_finite_differences(focus):
    """Graphs with ``focus`` at the root (so every op and reduction is covered)."""
    counts = {"graphs": 0, "examples": 0, "forward": 0, "gradient": 0,
              "skipped gradient (kink)": 0, "skipped gradient (stop_gradient)": 0,
              "skipped forward (comparison flip)": 0, "reductions": 0, "ops": set()}

    @settings(PROFILE, max_examples=PER_FOCUS)
    @given(graph=graphs(focus), data=st.data())
    def run(graph, data):
        spec, module = compiled(graph)
        text = describe(graph)
        counts["graphs"] += 1
        counts["reductions"] += text.count("keepdims=")
        counts["ops"].update(op for op in OPS if f"{op}(" in text)
        free = sorted({d for s in graph["inputs"].values() for d in s if isinstance(d, str)} - set(graph["bound"]))
        for _ in range(DRAWS):
            sizes = dict(graph["bound"])
            sizes.update((s, data.draw(st.integers(1, MAX_SIZE), label=s)) for s in free)
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
            arrays = {n: rng.uniform(*LEAF, tuple(sizes.get(d, 1) if isinstance(d, str) else d for d in shape))
                      for n, shape in graph["inputs"].items()}
            margins = Margins()
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                want = evaluate(graph["root"], arrays, margins)
            counts["examples"] += 1
            if margins.flip >= COMPARE_MARGIN:
                got = module.forward(**{n: a.copy() for n, a in arrays.items()}).numpy()
                scale = 1.0 + max(abs(graph["range"][0]), abs(graph["range"][1]))
                assert got.shape == np.shape(want), text
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * scale, err_msg=f"{text}\nsizes {sizes}")
                counts["forward"] += 1
            else:
                counts["skipped forward (comparison flip)"] += 1
            if graph["stop_gradient"]:
                counts["skipped gradient (stop_gradient)"] += 1
            elif margins.kink < KINK_MARGIN:
                counts["skipped gradient (kink)"] += 1
            else:
                report = check_grad(spec, inputs=arrays, module=module, **sizes)
                assert report.errors, text
                assert report.ok, f"{text}\nsizes {sizes}\n{report}"
                counts["gradient"] += 1

    run()
    ops_seen = counts.pop("ops")
    for k, v in counts.items():
        TOTALS[k] = TOTALS.get(k, 0) + v
    print(f"\nlayerc fuzz [{focus}]: {counts['examples']} examples on {counts['graphs']} compiled graph(s); "
          + ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("examples", "graphs"))
          + f"; ops used: {', '.join(sorted(ops_seen))}. Totals so far: "
          + ", ".join(f"{k} {v}" for k, v in TOTALS.items()))
    assert counts["examples"] >= PER_FOCUS * DRAWS
    assert focus in ops_seen or focus in REDUCTIONS and counts["reductions"]
    # the draws must mostly be checked, not skipped
    assert counts["forward"] >= 0.9 * counts["examples"]
    if focus == "stop_gradient":
        assert counts["skipped gradient (stop_gradient)"] == counts["examples"]
    else:
        assert counts["gradient"] >= 0.5 * counts["examples"]


@pytest.mark.parametrize("case", [
    # broadcasting of a literal 1, a run-time size 1 and a reduction with keepdims
    {"root": ("op", "mul", ("in", "x0"), ("reduce", "max", (-1,), True, ("in", "x1"))),
     "range": (-4, 4), "inputs": {"x0": ("N", 1, "C"), "x1": ("H", "C")}, "bound": {}, "stop_gradient": False},
    # an input used twice, under a restricted domain (log) and a mean without keepdims
    {"root": ("op", "add", ("reduce", "mean", 0, False, ("op", "log", ("op", "add", ("op", "mul", ("in", "x0"),
                                                                                          ("const", 0.25)), ("const", 1.0)))),
              ("in", "x0")),
     "range": (-3, 3), "inputs": {"x0": ("C", "N")}, "bound": {"N": 4}, "stop_gradient": False},
])
def test_hand_written_graphs(case):
    """Two fixed graphs through the same machinery (and a check of the numpy evaluator)."""
    spec, module = compiled(case)
    rng = np.random.default_rng(5)
    sizes = {"N": 4, "C": 3, "H": 2}
    arrays = {n: rng.uniform(*LEAF, tuple(sizes[d] if isinstance(d, str) else d for d in s))
              for n, s in case["inputs"].items()}
    want = evaluate(case["root"], arrays, Margins())
    if "x1" in arrays:
        np.testing.assert_allclose(want, arrays["x0"] * arrays["x1"].max(-1, keepdims=True))
    else:
        x = arrays["x0"]
        np.testing.assert_allclose(want, np.log(x * 0.25 + 1).mean(0) + x)
    np.testing.assert_allclose(module.forward(**arrays).numpy(), want, rtol=1e-12)
    report = check_grad(spec, inputs=arrays, module=module, **sizes)
    assert report.errors and report.ok, str(report)
