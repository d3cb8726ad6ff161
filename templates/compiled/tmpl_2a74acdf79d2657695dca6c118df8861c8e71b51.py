from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'statements.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_let = l_0_declare = l_0_partials = l_0_row_buffer = l_0_fold_lanes = l_0_store_each = l_0_store = l_0_into_sum = l_0_into_max = l_0_update_greatest = l_0_update_sum = l_0_update_max = l_0_add_where = l_0_fill = l_0_verbatim = l_0_loop = l_0_tiles = l_0_tile = l_0_pragma = l_0_tile_start = l_0_tile_buffer = l_0_tile_store = l_0_tile_flush = l_0_fence = l_0_parameters = missing
    try:
        t_1 = environment.filters['indent']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'indent' found.")
    pass
    def macro(l_1_s):
        t_2 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_2.extend((
            'const ',
            str(environment.getattr(l_1_s, 'ctype')),
            ' ',
            str(environment.getattr(l_1_s, 'name')),
            ' = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_2)
    context.exported_vars.add('let')
    context.vars['let'] = l_0_let = Macro(environment, macro, 'let', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_3 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_3.extend((
            str(environment.getattr(l_1_s, 'ctype')),
            ' ',
            str(environment.getattr(l_1_s, 'name')),
            ' = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_3)
    context.exported_vars.add('declare')
    context.vars['declare'] = l_0_declare = Macro(environment, macro, 'declare', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_4 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_4.extend((
            str(environment.getattr(l_1_s, 'ctype')),
            ' ',
            str(environment.getattr(l_1_s, 'name')),
            '[',
            str(environment.getattr(l_1_s, 'count')),
            '] = {0};',
        ))
        return concat(t_4)
    context.exported_vars.add('partials')
    context.vars['partials'] = l_0_partials = Macro(environment, macro, 'partials', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_5 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        if environment.getattr(l_1_s, 'fits'):
            pass
            t_5.extend((
                str(environment.getattr(l_1_s, 'ctype')),
                ' ',
                str(environment.getattr(l_1_s, 'name')),
                '_space[',
                str(environment.getattr(l_1_s, 'count')),
                '] __attribute__((aligned(64)));\n        ',
                str(environment.getattr(l_1_s, 'ctype')),
                ' *const ',
                str(environment.getattr(l_1_s, 'name')),
                ' = (',
                str(environment.getattr(l_1_s, 'fits')),
                ') ? ',
                str(environment.getattr(l_1_s, 'name')),
                '_space : ',
                str(environment.getattr(l_1_s, 'own_row')),
                ';',
            ))
        else:
            pass
            t_5.extend((
                str(environment.getattr(l_1_s, 'ctype')),
                ' ',
                str(environment.getattr(l_1_s, 'name')),
                '[',
                str(environment.getattr(l_1_s, 'count')),
                '] __attribute__((aligned(64)));',
            ))
        return concat(t_5)
    context.exported_vars.add('row_buffer')
    context.vars['row_buffer'] = l_0_row_buffer = Macro(environment, macro, 'row_buffer', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_6 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_6.extend((
            'for (int64_t t = 0; t < ',
            str(environment.getattr(l_1_s, 'count')),
            '; ++t) {\n            ',
            str(environment.getattr(l_1_s, 'ctype')),
            ' lc_sum = 0;\n            #pragma omp simd reduction(+:lc_sum)\n            for (int64_t k = 0; k < ',
            str(environment.getattr(l_1_s, 'width')),
            '; ++k) lc_sum += ',
            str(environment.getattr(l_1_s, 'lanes')),
            '[t * ',
            str(environment.getattr(l_1_s, 'width')),
            ' + k];\n            ',
            str(environment.getattr(l_1_s, 'target')),
            '[t] = lc_sum;\n        }',
        ))
        return concat(t_6)
    context.exported_vars.add('fold_lanes')
    context.vars['fold_lanes'] = l_0_fold_lanes = Macro(environment, macro, 'fold_lanes', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_7 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        for l_2_l in environment.getattr(l_1_s, 'loops'):
            _loop_vars = {}
            pass
            t_7.extend((
                'for (int64_t ',
                str(environment.getattr(l_2_l, 'var')),
                ' = 0; ',
                str(environment.getattr(l_2_l, 'var')),
                ' < ',
                str(environment.getattr(l_2_l, 'stop')),
                '; ++',
                str(environment.getattr(l_2_l, 'var')),
                ') ',
            ))
        l_2_l = missing
        t_7.extend((
            str(environment.getattr(l_1_s, 'target')),
            ' = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_7)
    context.exported_vars.add('store_each')
    context.vars['store_each'] = l_0_store_each = Macro(environment, macro, 'store_each', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_8 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_8.extend((
            str(environment.getattr(l_1_s, 'target')),
            ' = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_8)
    context.exported_vars.add('store')
    context.vars['store'] = l_0_store = Macro(environment, macro, 'store', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_target, l_1_value):
        t_9 = []
        if l_1_target is missing:
            l_1_target = undefined("parameter 'target' was not provided", name='target')
        if l_1_value is missing:
            l_1_value = undefined("parameter 'value' was not provided", name='value')
        pass
        t_9.extend((
            str(l_1_target),
            ' += ',
            str(l_1_value),
            ';',
        ))
        return concat(t_9)
    context.exported_vars.add('into_sum')
    context.vars['into_sum'] = l_0_into_sum = Macro(environment, macro, 'into_sum', ('target', 'value'), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_target, l_1_value):
        t_10 = []
        if l_1_target is missing:
            l_1_target = undefined("parameter 'target' was not provided", name='target')
        if l_1_value is missing:
            l_1_value = undefined("parameter 'value' was not provided", name='value')
        pass
        t_10.extend((
            str(l_1_target),
            ' = (',
            str(l_1_value),
            ' != ',
            str(l_1_value),
            ') ? ',
            str(l_1_value),
            ' : ((',
            str(l_1_value),
            ' > ',
            str(l_1_target),
            ') ? ',
            str(l_1_value),
            ' : ',
            str(l_1_target),
            ');',
        ))
        return concat(t_10)
    context.exported_vars.add('into_max')
    context.vars['into_max'] = l_0_into_max = Macro(environment, macro, 'into_max', ('target', 'value'), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_11 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_11.extend((
            str(environment.getattr(l_1_s, 'target')),
            ' = (',
            str(environment.getattr(l_1_s, 'value')),
            ' > ',
            str(environment.getattr(l_1_s, 'target')),
            ') ? ',
            str(environment.getattr(l_1_s, 'value')),
            ' : ',
            str(environment.getattr(l_1_s, 'target')),
            ';',
        ))
        return concat(t_11)
    context.exported_vars.add('update_greatest')
    context.vars['update_greatest'] = l_0_update_greatest = Macro(environment, macro, 'update_greatest', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_12 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_12.append(
            str(context.call((undefined(name='into_sum') if l_0_into_sum is missing else l_0_into_sum), environment.getattr(l_1_s, 'target'), environment.getattr(l_1_s, 'value'))),
        )
        return concat(t_12)
    context.exported_vars.add('update_sum')
    context.vars['update_sum'] = l_0_update_sum = Macro(environment, macro, 'update_sum', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_13 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_13.append(
            str(context.call((undefined(name='into_max') if l_0_into_max is missing else l_0_into_max), environment.getattr(l_1_s, 'target'), environment.getattr(l_1_s, 'value'))),
        )
        return concat(t_13)
    context.exported_vars.add('update_max')
    context.vars['update_max'] = l_0_update_max = Macro(environment, macro, 'update_max', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_14 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_14.extend((
            'if (',
            str(environment.getattr(l_1_s, 'condition')),
            ' != 0) ',
            str(context.call((undefined(name='into_sum') if l_0_into_sum is missing else l_0_into_sum), environment.getattr(l_1_s, 'target'), environment.getattr(l_1_s, 'value'))),
        ))
        return concat(t_14)
    context.exported_vars.add('add_where')
    context.vars['add_where'] = l_0_add_where = Macro(environment, macro, 'add_where', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_15 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        if environment.getattr(l_1_s, 'threads_from'):
            pass
            t_15.extend((
                '#pragma omp parallel for simd num_threads(lc_num_threads()) if(parallel: (int64_t)(',
                str(environment.getattr(l_1_s, 'count')),
                ') >= ',
                str(environment.getattr(l_1_s, 'threads_from')),
                ')\n',
            ))
        t_15.extend((
            'for (int64_t k = 0; k < ',
            str(environment.getattr(l_1_s, 'count')),
            '; ++k) ',
            str(environment.getattr(l_1_s, 'target')),
            '[',
        ))
        if environment.getattr(l_1_s, 'offset'):
            pass
            t_15.extend((
                str(environment.getattr(l_1_s, 'offset')),
                ' + ',
            ))
        t_15.extend((
            'k] = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_15)
    context.exported_vars.add('fill')
    context.vars['fill'] = l_0_fill = Macro(environment, macro, 'fill', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_16 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_16.append(
            str(t_1(environment.getattr(l_1_s, 'text'), 8)),
        )
        return concat(t_16)
    context.exported_vars.add('verbatim')
    context.vars['verbatim'] = l_0_verbatim = Macro(environment, macro, 'verbatim', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_l):
        t_17 = []
        if l_1_l is missing:
            l_1_l = undefined("parameter 'l' was not provided", name='l')
        pass
        t_17.extend((
            'for (',
            str(environment.getattr(l_1_l, 'itype')),
            ' ',
            str(environment.getattr(l_1_l, 'var')),
            ' = ',
            str(environment.getattr(l_1_l, 'start')),
            '; ',
            str(environment.getattr(l_1_l, 'var')),
            ' < ',
            str(environment.getattr(l_1_l, 'stop')),
            '; ++',
            str(environment.getattr(l_1_l, 'var')),
            ') {',
        ))
        return concat(t_17)
    context.exported_vars.add('loop')
    context.vars['loop'] = l_0_loop = Macro(environment, macro, 'loop', ('l',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_l):
        t_18 = []
        if l_1_l is missing:
            l_1_l = undefined("parameter 'l' was not provided", name='l')
        pass
        t_18.extend((
            'for (int64_t lc_tile_start = ',
            str(environment.getattr(l_1_l, 'start')),
            '; lc_tile_start < ',
            str(environment.getattr(l_1_l, 'stop')),
            '; lc_tile_start += LC_TILE) {',
        ))
        return concat(t_18)
    context.exported_vars.add('tiles')
    context.vars['tiles'] = l_0_tiles = Macro(environment, macro, 'tiles', ('l',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_l):
        t_19 = []
        if l_1_l is missing:
            l_1_l = undefined("parameter 'l' was not provided", name='l')
        pass
        t_19.extend((
            'for (',
            str(environment.getattr(l_1_l, 'itype')),
            ' ',
            str(environment.getattr(l_1_l, 'var')),
            ' = lc_tile_start; ',
            str(environment.getattr(l_1_l, 'var')),
            ' < lc_tile_start + lc_tile_n; ++',
            str(environment.getattr(l_1_l, 'var')),
            ') {',
        ))
        return concat(t_19)
    context.exported_vars.add('tile')
    context.vars['tile'] = l_0_tile = Macro(environment, macro, 'tile', ('l',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_l):
        t_20 = []
        if l_1_l is missing:
            l_1_l = undefined("parameter 'l' was not provided", name='l')
        pass
        t_20.append(
            '#pragma omp ',
        )
        if environment.getattr(l_1_l, 'parallel'):
            pass
            t_20.append(
                'parallel for',
            )
            if environment.getattr(l_1_l, 'simd'):
                pass
                t_20.append(
                    ' simd',
                )
            if (environment.getattr(l_1_l, 'collapse') > 1):
                pass
                t_20.extend((
                    ' collapse(',
                    str(environment.getattr(l_1_l, 'collapse')),
                    ')',
                ))
            t_20.extend((
                ' num_threads(lc_num_threads()) if(parallel: ',
                str(environment.getattr(l_1_l, 'work')),
                ' >= ',
                str(environment.getattr(l_1_l, 'min_work')),
                ')',
            ))
        else:
            pass
            t_20.append(
                'simd',
            )
        for (l_2_op, l_2_acc) in environment.getattr(l_1_l, 'reductions'):
            _loop_vars = {}
            pass
            t_20.extend((
                ' reduction(',
                str(l_2_op),
                ':',
                str(l_2_acc),
                ')',
            ))
        l_2_op = l_2_acc = missing
        return concat(t_20)
    context.exported_vars.add('pragma')
    context.vars['pragma'] = l_0_pragma = Macro(environment, macro, 'pragma', ('l',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_21 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_21.extend((
            'const int64_t lc_tile_n = lc_min_i64(LC_TILE, ',
            str(environment.getattr(l_1_s, 'stop')),
            ' - lc_tile_start);',
        ))
        return concat(t_21)
    context.exported_vars.add('tile_start')
    context.vars['tile_start'] = l_0_tile_start = Macro(environment, macro, 'tile_start', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_22 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_22.extend((
            str(environment.getattr(l_1_s, 'ctype')),
            ' ',
            str(environment.getattr(l_1_s, 'name')),
            '[LC_TILE] __attribute__((aligned(64)));',
        ))
        return concat(t_22)
    context.exported_vars.add('tile_buffer')
    context.vars['tile_buffer'] = l_0_tile_buffer = Macro(environment, macro, 'tile_buffer', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_23 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_23.extend((
            str(environment.getattr(l_1_s, 'buffer')),
            '[',
            str(environment.getattr(l_1_s, 'var')),
            ' - lc_tile_start] = ',
            str(environment.getattr(l_1_s, 'value')),
            ';',
        ))
        return concat(t_23)
    context.exported_vars.add('tile_store')
    context.vars['tile_store'] = l_0_tile_store = Macro(environment, macro, 'tile_store', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_24 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_24.extend((
            '{\n        const int64_t ',
            str(environment.getattr(l_1_s, 'var')),
            ' = lc_tile_start;',
        ))
        for l_2_out in environment.getattr(l_1_s, 'streams'):
            _loop_vars = {}
            pass
            t_24.extend((
                '\n        ',
                str(environment.getattr(l_2_out, 'function')),
                '(',
                str(environment.getattr(l_2_out, 'tensor')),
                ' + (',
                str(environment.getattr(l_2_out, 'offset')),
                '), ',
                str(environment.getattr(l_2_out, 'buffer')),
                ', lc_tile_n);',
            ))
        l_2_out = missing
        t_24.append(
            '\n        }',
        )
        return concat(t_24)
    context.exported_vars.add('tile_flush')
    context.vars['tile_flush'] = l_0_tile_flush = Macro(environment, macro, 'tile_flush', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_s):
        t_25 = []
        if l_1_s is missing:
            l_1_s = undefined("parameter 's' was not provided", name='s')
        pass
        t_25.append(
            'lc_fence();',
        )
        return concat(t_25)
    context.exported_vars.add('fence')
    context.vars['fence'] = l_0_fence = Macro(environment, macro, 'fence', ('s',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_params, l_1_restrict):
        t_26 = []
        if l_1_params is missing:
            l_1_params = undefined("parameter 'params' was not provided", name='params')
        if l_1_restrict is missing:
            l_1_restrict = undefined("parameter 'restrict' was not provided", name='restrict')
        pass
        l_2_loop = missing
        t_27 = 1
        for l_2_p, l_2_loop in LoopContext(l_1_params, undefined):
            _loop_vars = {}
            pass
            t_26.extend((
                str(('const ' if environment.getattr(l_2_p, 'const') else cond_expr_undefined("the inline if-expression on line 105 in 'statements.c.j2' evaluated to false and no else section was defined."))),
                str(environment.getattr(l_2_p, 'ctype')),
                ' ',
                str(('*' if environment.getattr(l_2_p, 'pointer') else cond_expr_undefined("the inline if-expression on line 105 in 'statements.c.j2' evaluated to false and no else section was defined."))),
                str(('restrict ' if (l_1_restrict and environment.getattr(l_2_p, 'restrict')) else cond_expr_undefined("the inline if-expression on line 105 in 'statements.c.j2' evaluated to false and no else section was defined."))),
                str(environment.getattr(l_2_p, 'name')),
                str((', ' if (not environment.getattr(l_2_loop, 'last')) else cond_expr_undefined("the inline if-expression on line 105 in 'statements.c.j2' evaluated to false and no else section was defined."))),
            ))
            t_27 = 0
        l_2_loop = l_2_p = missing
        if t_27:
            pass
            t_26.append(
                'void',
            )
        return concat(t_26)
    context.exported_vars.add('parameters')
    context.vars['parameters'] = l_0_parameters = Macro(environment, macro, 'parameters', ('params', 'restrict'), False, False, False, context.eval_ctx.autoescape)
    yield '\n'

blocks = {}
debug_info = '3=18&4=25&6=35&7=41&9=51&10=57&12=67&13=72&14=75&15=81&17=95&20=105&21=112&22=114&24=116&25=122&28=128&29=133&31=157&32=163&37=171&38=179&40=187&41=195&43=215&44=221&46=235&47=241&49=246&50=252&52=257&53=264&55=271&56=276&57=287&59=306&60=312&63=317&64=324&66=340&67=347&69=355&70=362&75=374&76=382&80=425&81=432&83=438&84=444&86=452&87=458&89=468&91=475&92=478&93=483&98=499&103=510&104=519&105=523'