from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'triad.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    pass
    yield "/* The bandwidth probe (STREAM's triad, float): layerc show --perf and layerc\n   bench measure this machine's memory bandwidth with it. */\n#include <stdint.h>\n#include <omp.h>\nvoid lc_probe_triad(int64_t n, float *restrict a, const float *restrict b, const float *restrict c, float s) {\n    #pragma omp parallel for simd schedule(static)\n    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];\n}\n/* the same with non-temporal stores, as layerc writes large outputs (n a multiple\n   of 64, a 16-byte aligned) */\ntypedef float v4 __attribute__((vector_size(16)));\nvoid lc_probe_triad_streamed(int64_t n, float *restrict a, const float *restrict b, const float *restrict c,\n                             float s) {\n    #pragma omp parallel\n    {\n        #pragma omp for schedule(static) nowait\n        for (int64_t i = 0; i < n; i += 64) {\n            float tile[64] __attribute__((aligned(64)));\n            #pragma omp simd\n            for (int64_t k = 0; k < 64; ++k) tile[k] = b[i + k] + s * c[i + k];\n            for (int64_t k = 0; k < 64; k += 4) __builtin_ia32_movntps(a + i + k, *(const v4 *)(tile + k));\n        }\n        __builtin_ia32_sfence();\n    }\n}\n"

blocks = {}
debug_info = ''