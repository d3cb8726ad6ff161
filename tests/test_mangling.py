"""User names never reach C as written: identifiers are mangled from IR names,
comments are sanitized, and templates render with StrictUndefined. Names that
are C keywords, library names or macros compile; injection attempts compile
harmlessly or are rejected before rendering; spec errors point at the spec.
"""
from __future__ import annotations

import inspect
import re

import jinja2
import numpy as np
import pytest

from layerc import Input, Param, SpecError, layer, ops
from layerc.compiler import codegen
from layerc.compiler.cc import BuildOptions
from layerc.compiler.template_env import environment

STRICT = BuildOptions(warnings_as_errors=True)


def code_only(source: str) -> str:
    """The C with comments removed."""
    return re.sub(r"/\*.*?\*/", " ", source, flags=re.S)


def named_layer(cls_name: str, xname: str, pname: str, size: str = "C", rname: str = "r",
                cname: str = "compute"):
    """A row-times-vector layer whose class, input, parameter, size, reduction
    index and stage carry the given names."""
    src = (f"def forward({xname}, {pname}):\n"
           f"    N, C = {xname}.shape\n"
           f"    r = ops.reduce_axis(C, rname)\n"
           f"    return ops.compute((N,), lambda n: ops.sum({xname}[n, r] * {pname}[r], over=r), name=cname)\n")
    namespace = {"ops": ops, "rname": rname, "cname": cname}
    exec(compile(src, "<named_layer>", "exec"), namespace)
    members = {xname: Input("N", size), pname: Param(size, init=0.5), "forward": namespace["forward"]}
    return layer(type(cls_name, (), members))


def check_row_dot(m, size=5):
    x = np.random.default_rng(0).standard_normal((3, size))
    y = m.forward(x).data
    np.testing.assert_allclose(y, x.sum(1) * 0.5, rtol=1e-12)
    gx = m.backward(np.ones(3)).data
    np.testing.assert_allclose(gx, np.full((3, size), 0.5), rtol=1e-12)


def plain_source() -> str:
    return named_layer("Plain", "x", "w").build(C=5).source


C_NAMES = [("int", "restrict"), ("errno", "main"), ("NAN", "INFINITY"), ("double", "float"),
           ("printf", "malloc"), ("omp_get_max_threads", "lc_floordiv"), ("acc", "k"), ("t0", "t1"),
           ("v_n", "S_N"), ("T_x", "x"), ("EOF", "NULL"), ("signed", "sizeof")]


@pytest.mark.parametrize("xname,pname", C_NAMES)
def test_c_keyword_library_and_macro_names_compile(xname, pname):
    size = {"int": "assert", "errno": "restrict", "NAN": "NAN", "acc": "k"}.get(xname, "C")
    spec = named_layer(f"L_{xname}", xname, pname, size=size, rname=pname, cname=xname)
    m = spec.build(options=STRICT, dtype="float64", **{size: 5})
    check_row_dot(m)
    code = code_only(m.source)
    baseline = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code_only(plain_source())))
    for name in (xname, pname):
        assert f"T_{name}" in code
        # a bare occurrence is only the C's own word (a keyword such as int), never the user's
        if name not in baseline:
            assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", code), name


def test_names_mangle_apart():
    names = ["x", "x_", "_x", "T_x", "x0", "x_0", "é", "x y", "x-y", "x_y", "", "78_79"]
    mangled = [f(n) for n in names for f in (codegen.tensor_c, codegen.size_c, codegen.var_c)]
    assert len(set(mangled)) == len(mangled)
    for m in mangled:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", m)


def test_names_colliding_with_generated_names():
    # mul_0/add_1 are what tracing calls the first stages; the user took them first
    @layer
    class Collide:
        mul_0 = Input("N", "C")
        add_1 = Param("C", init=0.5)
        acc_1 = Param("C", init=2.0)

        def forward(mul_0, add_1, acc_1):
            return mul_0 * add_1 + add_1 * acc_1 + mul_0 * acc_1

    m = Collide.build(C=3, dtype="float64", options=STRICT)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(m.forward(x).data, x * 0.5 + 1.0 + 2 * x)
    np.testing.assert_allclose(m.backward(np.ones((2, 3))).data, np.full((2, 3), 2.5))
    np.testing.assert_allclose(m.add_1.grad, x.sum(0) + 4.0)
    np.testing.assert_allclose(m.acc_1.grad, x.sum(0) + 1.0)


def test_gradient_names_are_reserved():
    @layer
    class Shadow:
        x = Input("N", "C")
        grad_x = Input("N", "C")

        def forward(x, grad_x):
            return x * grad_x

    with pytest.raises(SpecError, match="grad_x.*reserved"):
        Shadow.build(C=3)


def test_compute_named_like_a_gradient():
    @layer
    class G:
        x = Input("N", "C")

        def forward(x):
            N, C = x.shape
            return ops.compute((N, C), lambda n, c: x[n, c] * 3.0, name="grad_x")

    m = G.build(C=2, dtype="float64", options=STRICT)
    m.forward(np.ones((2, 2)))
    np.testing.assert_array_equal(m.backward(np.ones((2, 2))).data, np.full((2, 2), 3.0))


INJECTIONS = [
    'x); system("touch /tmp/layerc_pwned"); //',
    "*/ int main(void) { return 0; } /*",
    "#include <stdlib.h>\n",
    "a\nb\r\nc",
    "a*??/\n/ system(0); /*",            # trigraph ??/ + newline splices "*/" under -std=c11
    "a*\\\n/ system(0); /*",              # backslash-newline splices "*/"
    "\x1b[31m\u202e\x7f",
    "é ünïcode",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_through_names_is_harmless(evil):
    spec = named_layer(evil, "x", "w", rname=evil, cname=evil)
    m = spec.build(C=5, options=STRICT, dtype="float64")
    check_row_dot(m)
    code = code_only(m.source)
    assert "system(" not in code and "main(" not in code
    directives = [line.strip() for line in m.source.splitlines() if line.strip().startswith("#")]
    plain = [line.strip() for line in plain_source().splitlines() if line.strip().startswith("#")]
    assert [d for d in directives if not d.startswith("#pragma")] == [d for d in plain if not d.startswith("#pragma")]
    assert "??" not in m.source and "\\" not in m.source


def test_comment_text_cannot_close_or_splice():
    for text in INJECTIONS + ["*/", "**/", "*//*", "/*/", "/**//*", "*" * 5 + "/" * 5, "?" * 4 + "/"]:
        safe = codegen.c_comment(text)
        assert "*/" not in safe and "/*" not in safe and "\\" not in safe and "?" not in safe and "\n" not in safe


def test_sizes_must_be_identifiers():
    with pytest.raises(SpecError, match="identifier"):
        Input("N", "C); system(0")
    with pytest.raises(SpecError):
        Input("N", "a\nb")


def test_templates_render_with_strict_undefined():
    assert environment.undefined is jinja2.StrictUndefined
    for name in ("nest.c.j2", "pass.c.j2", "loops.c.j2", "streamed.c.j2", "function.c.j2", "module.c.j2",
                 "cdef.h.j2"):
        with pytest.raises(jinja2.UndefinedError):
            environment.get_template(name).render()


def test_c_is_printed_only_from_the_ir():
    # every identifier the generated C declares is a mangled IR name or the
    # module's own helpers; no identifier comes from a user string as written
    spec = named_layer("Plain", "x", "w")
    m = spec.build(C=5)
    code = code_only(m.source)
    idents = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    allowed = re.compile(r"(T|S|v|Tx|Sx|vx)_[A-Za-z0-9_]*|t\d+|lc_[a-z0-9_]*|LC_[A-Z0-9_]*|acc|k|"
                         r"__attribute__|__AVX__|__AVX512F__|defined|elif|vector_size|optimize|ifdef|else|endif|define|sizeof|"
                         r"int64_t|float|double|void|const|restrict|static|inline|int|return|for|if|__FMA__|"
                         r"pragma|GCC|omp|parallel|simd|reduction|num_threads|max|include|stdint|h|math|"
                         r"omp_get_[a-z_]+|size_t|[a-z_]+\d*f?|log1pf?|log2f?|expm1f?|NAN|INFINITY|"
                         r"trans_[ab]|ilp64|u?int(32|64|ptr)_t|INT32_MAX|__SSE2__|__builtin_ia32_[a-z]+|O2|"
                         # the tails of hexadecimal literals (0x5EEDu, 0x4B400000, 0x1p-24f, 0x1p64f), which the
                         # word regex splits
                         r"x[0-9A-F]+u?|x1p[0-9]*f?")
    assert all(allowed.fullmatch(i) for i in idents), sorted(i for i in idents if not allowed.fullmatch(i))
    assert "Plain" not in code


def test_spec_errors_report_the_spec_file_and_line():
    @layer
    class Bad:
        x = Input("N", "C")
        w = Param("D", init=1.0)

        def forward(x, w):
            return x + w          # (N, C) + (D,): no broadcast

    with pytest.raises(SpecError) as info:
        Bad.build(C=3, D=4)
    message = str(info.value)
    assert "Bad" in message and "broadcast" in message
    assert __file__ in message or "test_mangling.py" in message
    line = int(re.search(r"test_mangling\.py:(\d+)", message).group(1))
    source, start = inspect.getsourcelines(test_spec_errors_report_the_spec_file_and_line)
    text = source[line - start]
    assert "x + w" in text or "Bad.build" in text, text


def test_spec_without_forward_reports_the_class_line():
    with pytest.raises(SpecError) as info:
        @layer
        class NoForward:
            x = Input("N")
    assert re.search(r"test_mangling\.py:\d+", str(info.value))


def test_unknown_forward_argument_names_the_spec():
    with pytest.raises(SpecError, match=r"Unknown.*test_mangling\.py:\d+.*'y'"):
        @layer
        class Unknown:
            x = Input("N")

            def forward(x, y):
                return x
