from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'online.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_ctype = resolve('ctype')
    l_0_lowest = resolve('lowest')
    l_0_probe = resolve('probe')
    l_0_probe_stop = resolve('probe_stop')
    l_0_shift_limit = resolve('shift_limit')
    l_0_scale = resolve('scale')
    l_0_scaled = resolve('scaled')
    l_0_max_target = resolve('max_target')
    l_0_sum_target = resolve('sum_target')
    l_0_c = l_0_over_row = l_0_add = missing
    try:
        t_1 = environment.filters['indent']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'indent' found.")
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'online.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    def macro(l_1_clause, l_1_lets, l_1_stop, l_1_caller):
        t_2 = []
        l_1_length = resolve('length')
        l_1_var = resolve('var')
        if l_1_clause is missing:
            l_1_clause = undefined("parameter 'clause' was not provided", name='clause')
        if l_1_lets is missing:
            l_1_lets = undefined("parameter 'lets' was not provided", name='lets')
        if l_1_stop is missing:
            l_1_stop = (undefined(name='length') if l_1_length is missing else l_1_length)
        pass
        t_2.extend((
            '#pragma omp simd',
            str(l_1_clause),
            '\nfor (int64_t ',
            str((undefined(name='var') if l_1_var is missing else l_1_var)),
            ' = 0; ',
            str((undefined(name='var') if l_1_var is missing else l_1_var)),
            ' < ',
            str(l_1_stop),
            '; ++',
            str((undefined(name='var') if l_1_var is missing else l_1_var)),
            ') {',
        ))
        for l_2_s in l_1_lets:
            _loop_vars = {}
            pass
            t_2.extend((
                '\n    ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_s, 'form')), l_2_s, _loop_vars=_loop_vars)),
            ))
        l_2_s = missing
        t_2.extend((
            str(context.call(l_1_caller)),
            '\n}',
        ))
        return concat(t_2)
    context.exported_vars.add('over_row')
    context.vars['over_row'] = l_0_over_row = Macro(environment, macro, 'over_row', ('clause', 'lets', 'stop'), False, False, True, context.eval_ctx.autoescape)
    def macro(l_1_exponent, l_1_kept):
        t_3 = []
        l_1_suffix = resolve('suffix')
        if l_1_exponent is missing:
            l_1_exponent = undefined("parameter 'exponent' was not provided", name='exponent')
        if l_1_kept is missing:
            l_1_kept = undefined("parameter 'kept' was not provided", name='kept')
        pass
        t_3.extend((
            '\n    const ',
            str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype)),
            ' lc_term = lc_exp_inline',
            str((undefined(name='suffix') if l_1_suffix is missing else l_1_suffix)),
            '(',
            str(l_1_exponent),
            ');\n    lc_sum += lc_term;',
        ))
        if l_1_kept:
            pass
            t_3.extend((
                '\n    ',
                str(l_1_kept),
                ' = lc_term;',
            ))
        return concat(t_3)
    context.exported_vars.add('add')
    context.vars['add'] = l_0_add = Macro(environment, macro, 'add', ('exponent', 'kept'), False, False, False, context.eval_ctx.autoescape)
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' lc_shift = '
    yield str((undefined(name='lowest') if l_0_lowest is missing else l_0_lowest))
    yield ', lc_max = '
    yield str((undefined(name='lowest') if l_0_lowest is missing else l_0_lowest))
    yield ', lc_sum = 0;\n'
    def macro():
        t_4 = []
        pass
        t_4.extend((
            '\n    ',
            str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'into_max'), 'lc_shift', environment.getattr((undefined(name='probe') if l_0_probe is missing else l_0_probe), 'x'))),
        ))
        return concat(t_4)
    caller = Macro(environment, macro, None, (), False, False, False, context.eval_ctx.autoescape)
    yield context.call((undefined(name='over_row') if l_0_over_row is missing else l_0_over_row), ' reduction(max:lc_shift)', environment.getattr((undefined(name='probe') if l_0_probe is missing else l_0_probe), 'lets'), (undefined(name='probe_stop') if l_0_probe_stop is missing else l_0_probe_stop), caller=caller)
    yield '\nif (lc_shift - lc_shift == 0) {    /* finite */\n'
    l_1_fused = resolve('fused')
    t_5 = []
    pass
    def macro():
        t_6 = []
        pass
        t_6.extend((
            '\n    ',
            str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'into_max'), 'lc_max', environment.getattr((undefined(name='fused') if l_1_fused is missing else l_1_fused), 'x'))),
            str(context.call((undefined(name='add') if l_0_add is missing else l_0_add), environment.getattr((undefined(name='fused') if l_1_fused is missing else l_1_fused), 'exponent'), environment.getattr((undefined(name='fused') if l_1_fused is missing else l_1_fused), 'kept'))),
        ))
        return concat(t_6)
    caller = Macro(environment, macro, None, (), False, False, False, context.eval_ctx.autoescape)
    t_5.append(context.call((undefined(name='over_row') if l_0_over_row is missing else l_0_over_row), ' reduction(max:lc_max) reduction(+:lc_sum)', environment.getattr((undefined(name='fused') if l_1_fused is missing else l_1_fused), 'lets'), caller=caller))
    yield t_1(concat(t_5), 4, first=True)
    l_1_fused = missing
    yield '\n}\nif (lc_shift - lc_shift == 0 && lc_max - lc_shift <= '
    yield str((undefined(name='shift_limit') if l_0_shift_limit is missing else l_0_shift_limit))
    yield ') {\n    const '
    yield str((undefined(name='ctype') if l_0_ctype is missing else l_0_ctype))
    yield ' lc_scale = '
    yield str((undefined(name='scale') if l_0_scale is missing else l_0_scale))
    yield ';\n    lc_sum *= lc_scale;'
    if (undefined(name='scaled') if l_0_scaled is missing else l_0_scaled):
        pass
        yield '\n'
        t_7 = []
        pass
        def macro():
            t_8 = []
            pass
            t_8.extend((
                '\n    ',
                str(environment.getattr((undefined(name='scaled') if l_0_scaled is missing else l_0_scaled), 'kept')),
                ' *= lc_scale;',
            ))
            return concat(t_8)
        caller = Macro(environment, macro, None, (), False, False, False, context.eval_ctx.autoescape)
        t_7.append(context.call((undefined(name='over_row') if l_0_over_row is missing else l_0_over_row), '', environment.getattr((undefined(name='scaled') if l_0_scaled is missing else l_0_scaled), 'lets'), caller=caller))
        yield t_1(concat(t_7), 4, first=True)
    yield '\n} else {    /* far above the shift, NaN or infinite: both passes, against the maximum */\n    lc_max = '
    yield str((undefined(name='lowest') if l_0_lowest is missing else l_0_lowest))
    yield ';\n    lc_sum = 0;\n'
    l_1_again = resolve('again')
    t_9 = []
    pass
    def macro():
        t_10 = []
        pass
        t_10.extend((
            '\n    ',
            str(context.call(environment.getattr((undefined(name='c') if l_0_c is missing else l_0_c), 'into_max'), 'lc_max', environment.getattr((undefined(name='again') if l_1_again is missing else l_1_again), 'x'))),
        ))
        return concat(t_10)
    caller = Macro(environment, macro, None, (), False, False, False, context.eval_ctx.autoescape)
    t_9.append(context.call((undefined(name='over_row') if l_0_over_row is missing else l_0_over_row), ' reduction(max:lc_max)', environment.getattr((undefined(name='again') if l_1_again is missing else l_1_again), 'lets'), caller=caller))
    t_9.append(
        '\n',
    )
    def macro():
        t_11 = []
        pass
        t_11.append(
            str(context.call((undefined(name='add') if l_0_add is missing else l_0_add), environment.getattr((undefined(name='again') if l_1_again is missing else l_1_again), 'exponent'), environment.getattr((undefined(name='again') if l_1_again is missing else l_1_again), 'kept'))),
        )
        return concat(t_11)
    caller = Macro(environment, macro, None, (), False, False, False, context.eval_ctx.autoescape)
    t_9.append(context.call((undefined(name='over_row') if l_0_over_row is missing else l_0_over_row), ' reduction(+:lc_sum)', environment.getattr((undefined(name='again') if l_1_again is missing else l_1_again), 'lets'), caller=caller))
    yield t_1(concat(t_9), 4, first=True)
    l_1_again = missing
    yield '\n}\n'
    yield str((undefined(name='max_target') if l_0_max_target is missing else l_0_max_target))
    yield ' = lc_max;\n'
    yield str((undefined(name='sum_target') if l_0_sum_target is missing else l_0_sum_target))
    yield ' = lc_sum;'

blocks = {}
debug_info = '6=27&7=29&8=42&9=44&10=53&11=58&12=62&15=68&16=78&18=85&19=89&22=95&23=101&24=106&23=110&28=115&29=120&28=125&27=126&33=129&34=131&36=135&38=140&39=145&38=150&37=151&44=153&47=158&48=163&47=167&50=171&46=180&54=183&55=185'