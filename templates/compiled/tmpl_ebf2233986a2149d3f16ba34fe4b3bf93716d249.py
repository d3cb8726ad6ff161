from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'cdef.h.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_prefix = resolve('prefix')
    l_0_functions = resolve('functions')
    l_0_c = missing
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'cdef.h.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    yield 'void '
    yield str((undefined(name='prefix') if l_0_prefix is missing else l_0_prefix))
    yield '_set_threads(int n);\nvoid '
    yield str((undefined(name='prefix') if l_0_prefix is missing else l_0_prefix))
    yield '_set_stream_bytes(int64_t n);\nvoid '
    yield str((undefined(name='prefix') if l_0_prefix is missing else l_0_prefix))
    yield '_set_blas(uintptr_t sgemm, uintptr_t dgemm, int ilp64);'
    for l_1_function in (undefined(name='functions') if l_0_functions is missing else l_0_functions):
        _loop_vars = {}
        pass
        yield '\nint '
        yield str(environment.getattr(l_1_function, 'name'))
        yield '('
        yield str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'parameters'), environment.getattr(l_1_function, 'params'), False, _loop_vars=_loop_vars))
        yield ');'
    l_1_function = missing
    yield '\n'

blocks = {}
debug_info = '1=14&2=17&3=19&4=21&5=23&6=27'