from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'pass.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_work = resolve('work')
    l_0_min_work = resolve('min_work')
    l_0_partials = resolve('partials')
    l_0_outer_extent = resolve('outer_extent')
    l_0_c = missing
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'pass.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    yield '    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n    {\n    const int lc_want = '
    yield str((undefined(name='work') if l_0_work is missing else l_0_work))
    yield ' >= '
    yield str((undefined(name='min_work') if l_0_min_work is missing else l_0_min_work))
    yield ' ? lc_num_threads() : 1;'
    l_1_loop = missing
    for l_1_part, l_1_loop in LoopContext((undefined(name='partials') if l_0_partials is missing else l_0_partials), undefined):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str(environment.getattr(l_1_part, 'ctype'))
        yield ' *lc_part'
        yield str(environment.getattr(l_1_loop, 'index0'))
        yield ' = lc_want > 1 ? ('
        yield str(environment.getattr(l_1_part, 'ctype'))
        yield ' *)malloc(sizeof('
        yield str(environment.getattr(l_1_part, 'ctype'))
        yield ') * (size_t)(lc_want - 1) * (size_t)('
        yield str(environment.getattr(l_1_part, 'size'))
        yield ')) : 0;'
    l_1_loop = l_1_part = missing
    yield '\n    /* without memory for the partials, one thread */\n    const int lc_nt = ('
    l_1_loop = missing
    for l_1_part, l_1_loop in LoopContext((undefined(name='partials') if l_0_partials is missing else l_0_partials), undefined):
        _loop_vars = {}
        pass
        yield '(lc_want == 1 || lc_part'
        yield str(environment.getattr(l_1_loop, 'index0'))
        yield ')'
        yield str((' && ' if (not environment.getattr(l_1_loop, 'last')) else cond_expr_undefined("the inline if-expression on line 8 in 'pass.c.j2' evaluated to false and no else section was defined.")))
    l_1_loop = l_1_part = missing
    yield ') ? lc_want : 1;\n    int lc_used = 1;\n    #pragma omp parallel num_threads(lc_nt)\n    {\n    const int lc_tid = omp_get_thread_num(), lc_n = omp_get_num_threads();\n    if (lc_tid == 0) lc_used = lc_n;'
    l_1_loop = missing
    for l_1_part, l_1_loop in LoopContext((undefined(name='partials') if l_0_partials is missing else l_0_partials), undefined):
        _loop_vars = {}
        pass
        yield '\n    '
        yield str(environment.getattr(l_1_part, 'ctype'))
        yield ' *restrict '
        yield str(environment.getattr(l_1_part, 'acc'))
        yield ' = lc_tid == 0 ? '
        yield str(environment.getattr(l_1_part, 'out'))
        yield ' : lc_part'
        yield str(environment.getattr(l_1_loop, 'index0'))
        yield ' + (int64_t)(lc_tid - 1) * ('
        yield str(environment.getattr(l_1_part, 'size'))
        yield ');\n    for (int64_t k = 0; k < '
        yield str(environment.getattr(l_1_part, 'size'))
        yield '; ++k) '
        yield str(environment.getattr(l_1_part, 'acc'))
        yield '[k] = '
        yield str(environment.getattr(l_1_part, 'init'))
        yield ';'
    l_1_loop = l_1_part = missing
    yield '\n    const int64_t lc_lo = ('
    yield str((undefined(name='outer_extent') if l_0_outer_extent is missing else l_0_outer_extent))
    yield ') * lc_tid / lc_n, lc_hi = ('
    yield str((undefined(name='outer_extent') if l_0_outer_extent is missing else l_0_outer_extent))
    yield ') * (lc_tid + 1) / lc_n;'
    template = environment.get_template('loops.c.j2', 'pass.c.j2')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {'c': l_0_c}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '\n    }\n    /* combine the per-thread partials in thread order */'
    l_1_loop = missing
    for l_1_part, l_1_loop in LoopContext((undefined(name='partials') if l_0_partials is missing else l_0_partials), undefined):
        _loop_vars = {}
        pass
        yield '\n    for (int lc_t = 1; lc_t < lc_used; ++lc_t) {\n        const '
        yield str(environment.getattr(l_1_part, 'ctype'))
        yield ' *restrict lc_p = lc_part'
        yield str(environment.getattr(l_1_loop, 'index0'))
        yield ' + (int64_t)(lc_t - 1) * ('
        yield str(environment.getattr(l_1_part, 'size'))
        yield ');\n        #pragma omp simd\n        for (int64_t k = 0; k < '
        yield str(environment.getattr(l_1_part, 'size'))
        yield '; ++k) '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), str_join(('into_', environment.getattr(l_1_part, 'reduce'), ))), str_join((environment.getattr(l_1_part, 'out'), '[k]', )), 'lc_p[k]', _loop_vars=_loop_vars))
        yield '\n    }\n    free(lc_part'
        yield str(environment.getattr(l_1_loop, 'index0'))
        yield ');'
    l_1_loop = l_1_part = missing
    yield '\n    }\n'

blocks = {}
debug_info = '1=17&3=22&4=27&5=31&8=44&14=54&15=58&16=68&18=76&19=80&22=88&24=92&26=98&28=102'