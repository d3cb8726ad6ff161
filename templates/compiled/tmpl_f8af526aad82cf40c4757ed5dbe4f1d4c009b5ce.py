from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'flat_planes.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_by_rows = resolve('by_rows')
    l_0_condition = resolve('condition')
    l_0_flat_planes = missing
    try:
        t_1 = environment.tests['none']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No test named 'none' found.")
    pass
    def macro():
        t_2 = []
        l_1_sizes = resolve('sizes')
        l_1_limit = resolve('limit')
        l_1_height = resolve('height')
        l_1_width = resolve('width')
        l_1_flat = resolve('flat')
        pass
        for l_2_size in (undefined(name='sizes') if l_1_sizes is missing else l_1_sizes):
            _loop_vars = {}
            pass
            t_2.extend((
                '\n    const int32_t lc_',
                str(l_2_size),
                ' = (int32_t)',
                str(l_2_size),
                ';',
            ))
        l_2_size = missing
        t_2.extend((
            '\n    int32_t lc_col[',
            str((undefined(name='limit') if l_1_limit is missing else l_1_limit)),
            '];\n    for (int64_t lc_r = 0; lc_r < ',
            str((undefined(name='height') if l_1_height is missing else l_1_height)),
            '; ++lc_r)\n        for (int64_t lc_c = 0; lc_c < ',
            str((undefined(name='width') if l_1_width is missing else l_1_width)),
            '; ++lc_c) lc_col[lc_r * ',
            str((undefined(name='width') if l_1_width is missing else l_1_width)),
            " + lc_c] = (int32_t)lc_c;\n    {\n    /* the plane's sizes as 32-bit numbers (it holds ",
            str((undefined(name='limit') if l_1_limit is missing else l_1_limit)),
            ' elements at most):\n       gcc 12 runs 32-bit index arithmetic in twice the lanes of 64-bit */',
        ))
        for l_2_size in (undefined(name='sizes') if l_1_sizes is missing else l_1_sizes):
            _loop_vars = {}
            pass
            t_2.extend((
                '\n    const int32_t ',
                str(l_2_size),
                ' = lc_',
                str(l_2_size),
                ';',
            ))
        l_2_size = missing
        t_2.extend((
            '\n',
            str((undefined(name='flat') if l_1_flat is missing else l_1_flat)),
            '\n    }',
        ))
        return concat(t_2)
    context.exported_vars.add('flat_planes')
    context.vars['flat_planes'] = l_0_flat_planes = Macro(environment, macro, 'flat_planes', (), False, False, False, context.eval_ctx.autoescape)
    if t_1((undefined(name='by_rows') if l_0_by_rows is missing else l_0_by_rows)):
        pass
        yield '\n    {'
        yield str(context.call((undefined(name='flat_planes') if l_0_flat_planes is missing else l_0_flat_planes)))
        yield '\n    }'
    else:
        pass
        yield '\n    if ('
        yield str((undefined(name='condition') if l_0_condition is missing else l_0_condition))
        yield ') {'
        yield str(context.call((undefined(name='flat_planes') if l_0_flat_planes is missing else l_0_flat_planes)))
        yield '\n    } else {\n'
        yield str((undefined(name='by_rows') if l_0_by_rows is missing else l_0_by_rows))
        yield '\n    }'
    yield '\n'

blocks = {}
debug_info = '6=20&7=28&8=33&10=41&11=43&12=45&14=49&16=52&17=57&19=65&22=71&24=74&27=79&28=81&30=83'