from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'multi_apply.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_name = resolve('name')
    l_0_rule = resolve('rule')
    l_0_ctype = resolve('ctype')
    l_0_chunk = resolve('chunk')
    l_0_args = resolve('args')
    l_0_n_arrays = resolve('n_arrays')
    l_0_parallel_items = resolve('parallel_items')
    l_0_n_outputs = resolve('n_outputs')
    l_0_writes = resolve('writes')
    pass
    yield '/* '
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield ': one call of the compiled update rule '
    yield str((undefined(name='rule') if l_0_rule is missing else l_0_rule))
    yield ' ('
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ') over\n   every parameter of an optimizer (multi-tensor apply). The work is cut into\n   chunks of '
    yield str((undefined(name='chunk') if l_0_chunk is missing else l_0_chunk))
    yield " elements; a thread runs the rule on a chunk into its own\n   scratch (held in its cache) and copies the scratch over the inputs the rule\n   replaces (the parameter and its state), so the parameters are updated in\n   place while the rule's outputs and inputs stay distinct buffers. */\n#include <stdint.h>\n#include <string.h>\n#include <omp.h>\n\ntypedef int (*"
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '_fn)(int64_t'
    for l_1_a in (undefined(name='args') if l_0_args is missing else l_0_args):
        _loop_vars = {}
        pass
        yield ', '
        yield str(('const ' if (environment.getattr(l_1_a, 'kind') == 'in') else ''))
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *'
    l_1_a = missing
    yield ');\n\n/* items: (tensor, first element) of each chunk; sizes: elements per tensor;\n   arrays: per tensor, the addresses of its '
    yield str((undefined(name='n_arrays') if l_0_n_arrays is missing else l_0_n_arrays))
    yield ' per-element arrays;\n   scalars: the one-element inputs, shared by all tensors. */\nint '
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '(int64_t n_items, const int64_t *items, const int64_t *sizes, void *const *arrays,\n               void *const *scalars, uintptr_t rule, int threads)\n{\n    const '
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '_fn fn = ('
    yield str((undefined(name='name') if l_0_name is missing else l_0_name))
    yield '_fn)rule;\n    int status = 0;\n    #pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : omp_get_max_threads()) if(parallel: n_items >= '
    yield str((undefined(name='parallel_items') if l_0_parallel_items is missing else l_0_parallel_items))
    yield ')\n    for (int64_t i = 0; i < n_items; ++i) {\n        const int64_t k = items[2 * i], start = items[2 * i + 1];\n        const int64_t n = sizes[k] - start < '
    yield str((undefined(name='chunk') if l_0_chunk is missing else l_0_chunk))
    yield ' ? sizes[k] - start : '
    yield str((undefined(name='chunk') if l_0_chunk is missing else l_0_chunk))
    yield ';\n        void *const *own = arrays + k * '
    yield str((undefined(name='n_arrays') if l_0_n_arrays is missing else l_0_n_arrays))
    yield ';\n        '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' scratch['
    yield str((undefined(name='n_outputs') if l_0_n_outputs is missing else l_0_n_outputs))
    yield ']['
    yield str((undefined(name='chunk') if l_0_chunk is missing else l_0_chunk))
    yield '] __attribute__((aligned(64)));\n        const int s = fn(n'
    for l_1_a in (undefined(name='args') if l_0_args is missing else l_0_args):
        _loop_vars = {}
        pass
        yield ', '
        if ((environment.getattr(l_1_a, 'kind') == 'in') and environment.getattr(l_1_a, 'scalar')):
            pass
            yield '('
            yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
            yield ' *)scalars['
            yield str(environment.getattr(l_1_a, 'index'))
            yield ']'
        elif (environment.getattr(l_1_a, 'kind') == 'in'):
            pass
            yield '('
            yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
            yield ' *)own['
            yield str(environment.getattr(l_1_a, 'index'))
            yield '] + start'
        else:
            pass
            yield 'scratch['
            yield str(environment.getattr(l_1_a, 'index'))
            yield ']'
    l_1_a = missing
    yield ');\n        if (s) {\n            #pragma omp atomic write\n            status = s;\n        }\n'
    for l_1_o in (undefined(name='writes') if l_0_writes is missing else l_0_writes):
        _loop_vars = {}
        pass
        yield '\n        memcpy(('
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield ' *)own['
        yield str(environment.getattr(l_1_o, 'array'))
        yield '] + start, scratch['
        yield str(environment.getattr(l_1_o, 'output'))
        yield '], (size_t)n * sizeof('
        yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
        yield '));\n'
    l_1_o = missing
    yield '\n    }\n    return status;\n}\n'

blocks = {}
debug_info = '1=21&3=27&11=29&14=40&16=42&19=44&21=48&24=50&25=54&26=56&27=62&32=87&33=91'