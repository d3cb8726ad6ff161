from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'divisors.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_divisors = resolve('divisors')
    l_0_work = resolve('work')
    pass
    yield '    /* the sizes this nest divides indices by: none may be 0 where it runs */\n    if (('
    l_1_loop = missing
    for l_1_d, l_1_loop in LoopContext((undefined(name='divisors') if l_0_divisors is missing else l_0_divisors), undefined):
        _loop_vars = {}
        pass
        yield '('
        yield str(l_1_d)
        yield ') == 0'
        yield str((' || ' if (not environment.getattr(l_1_loop, 'last')) else cond_expr_undefined("the inline if-expression on line 2 in 'divisors.c.j2' evaluated to false and no else section was defined.")))
    l_1_loop = l_1_d = missing
    yield ') && '
    yield str((undefined(name='work') if l_0_work is missing else l_0_work))
    yield ' > 0) return LC_ZERO_DIVISOR;\n'

blocks = {}
debug_info = '2=15'