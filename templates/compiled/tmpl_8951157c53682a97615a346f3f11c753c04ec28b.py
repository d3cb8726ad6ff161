from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'window.c.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_comment = resolve('comment')
    l_0_loops = resolve('loops')
    l_0_hoisted = resolve('hoisted')
    l_0_pre = resolve('pre')
    l_0_blocks = resolve('blocks')
    l_0_extent = resolve('extent')
    l_0_itype = resolve('itype')
    l_0_edges = resolve('edges')
    l_0_block = resolve('block')
    l_0_lane = resolve('lane')
    l_0_fast = resolve('fast')
    l_0_redo = resolve('redo')
    l_0_gaps = resolve('gaps')
    l_0_edge_simd = resolve('edge_simd')
    l_0_c = l_0_column_loop = l_0_limits = l_0_at = l_0_simd = missing
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    pass
    l_0_c = context.vars['c'] = environment.get_template('statements.c.j2', 'window.c.j2')._get_default_module(context)
    context.exported_vars.discard('c')
    def macro(l_1_pragma, l_1_start, l_1_stop, l_1_part, l_1_lane):
        t_2 = []
        l_1_column = resolve('column')
        l_1_column_at = resolve('column_at')
        l_1_ctype = resolve('ctype')
        l_1_init = resolve('init')
        l_1_written = resolve('written')
        l_1_summed = resolve('summed')
        l_1_assign = resolve('assign')
        if l_1_pragma is missing:
            l_1_pragma = undefined("parameter 'pragma' was not provided", name='pragma')
        if l_1_start is missing:
            l_1_start = undefined("parameter 'start' was not provided", name='start')
        if l_1_stop is missing:
            l_1_stop = undefined("parameter 'stop' was not provided", name='stop')
        if l_1_part is missing:
            l_1_part = undefined("parameter 'part' was not provided", name='part')
        if l_1_lane is missing:
            l_1_lane = None
        pass
        if l_1_pragma:
            pass
            t_2.extend((
                '\n            ',
                str(l_1_pragma),
            ))
        t_2.extend((
            '\n            for (',
            str((undefined(name='itype') if l_0_itype is missing else l_0_itype)),
            ' ',
            str((undefined(name='column') if l_1_column is missing else l_1_column)),
            ' = ',
            str(l_1_start),
            '; ',
            str((undefined(name='column') if l_1_column is missing else l_1_column)),
            ' < ',
            str(l_1_stop),
            '; ++',
            str((undefined(name='column') if l_1_column is missing else l_1_column)),
            ') {',
        ))
        if (undefined(name='column_at') if l_1_column_at is missing else l_1_column_at):
            pass
            t_2.extend((
                '\n                const ',
                str((undefined(name='itype') if l_0_itype is missing else l_0_itype)),
                ' ',
                str((undefined(name='column_at') if l_1_column_at is missing else l_1_column_at)),
                ' = lc_col[',
                str((undefined(name='column') if l_1_column is missing else l_1_column)),
                '];',
            ))
        if (environment.getattr(l_1_part, 'mode') in ('max', 'greatest', 'sum')):
            pass
            for l_2_line in environment.getattr(l_1_part, 'start_lines'):
                _loop_vars = {}
                pass
                t_2.extend((
                    '\n                ',
                    str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
                ))
            l_2_line = missing
            t_2.extend((
                '\n                ',
                str((undefined(name='ctype') if l_1_ctype is missing else l_1_ctype)),
                ' lc_acc = ',
                str((environment.getattr(l_1_part, 'start') or (undefined(name='init') if l_1_init is missing else l_1_init))),
                ';',
            ))
        if (l_1_lane and (environment.getattr(l_1_part, 'mode') == 'max')):
            pass
            t_2.extend((
                '\n                ',
                str((undefined(name='ctype') if l_1_ctype is missing else l_1_ctype)),
                ' lc_nan = 0;',
            ))
        l_2_loop = missing
        for l_2_offset, l_2_loop in LoopContext((undefined(name='written') if l_1_written is missing else l_1_written), undefined):
            l_2_lanes = resolve('lanes')
            _loop_vars = {}
            pass
            if ((l_1_lane and environment.getattr(l_2_loop, 'last')) and (environment.getattr(l_1_part, 'mode') == 'plain')):
                pass
                t_2.extend((
                    '\n                #pragma omp simd simdlen(',
                    str((undefined(name='lanes') if l_2_lanes is missing else l_2_lanes)),
                    ')',
                ))
            else:
                pass
                t_2.extend((
                    '\n                #pragma GCC unroll ',
                    str(environment.getattr(l_2_offset, 'extent')),
                ))
            t_2.extend((
                '\n                for (',
                str((undefined(name='itype') if l_0_itype is missing else l_0_itype)),
                ' ',
                str(environment.getattr(l_2_offset, 'var')),
                ' = 0; ',
                str(environment.getattr(l_2_offset, 'var')),
                ' < ',
                str(environment.getattr(l_2_offset, 'extent')),
                '; ++',
                str(environment.getattr(l_2_offset, 'var')),
                ') {',
            ))
        l_2_loop = l_2_offset = l_2_lanes = missing
        if (environment.getattr(l_1_part, 'mode') == 'gather'):
            pass
            t_2.extend((
                '\n                ',
                str((undefined(name='ctype') if l_1_ctype is missing else l_1_ctype)),
                ' lc_acc = 0;',
            ))
        l_2_loop = missing
        for l_2_offset, l_2_loop in LoopContext((undefined(name='summed') if l_1_summed is missing else l_1_summed), undefined):
            l_2_lanes = resolve('lanes')
            _loop_vars = {}
            pass
            if (l_1_lane and environment.getattr(l_2_loop, 'last')):
                pass
                t_2.extend((
                    '\n                #pragma omp simd simdlen(',
                    str((undefined(name='lanes') if l_2_lanes is missing else l_2_lanes)),
                    ') reduction(',
                    str(('+' if (environment.getattr(l_1_part, 'mode') == 'sum') else 'max')),
                    ':lc_acc)',
                    str((' reduction(+:lc_nan)' if (environment.getattr(l_1_part, 'mode') == 'max') else cond_expr_undefined("the inline if-expression on line 44 in 'window.c.j2' evaluated to false and no else section was defined."))),
                ))
            else:
                pass
                t_2.extend((
                    '\n                #pragma GCC unroll ',
                    str(environment.getattr(l_2_offset, 'extent')),
                ))
            t_2.extend((
                '\n                for (',
                str((undefined(name='itype') if l_0_itype is missing else l_0_itype)),
                ' ',
                str(environment.getattr(l_2_offset, 'var')),
                ' = 0; ',
                str(environment.getattr(l_2_offset, 'var')),
                ' < ',
                str(environment.getattr(l_2_offset, 'extent')),
                '; ++',
                str(environment.getattr(l_2_offset, 'var')),
                ') {',
            ))
        l_2_loop = l_2_offset = l_2_lanes = missing
        for l_2_line in environment.getattr(l_1_part, 'lines'):
            _loop_vars = {}
            pass
            t_2.extend((
                '\n                    ',
                str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
            ))
        l_2_line = missing
        if ((environment.getattr(l_1_part, 'mode') == 'max') and l_1_lane):
            pass
            t_2.extend((
                '\n                    lc_acc = (',
                str(environment.getattr(l_1_part, 'value')),
                ' > lc_acc) ? ',
                str(environment.getattr(l_1_part, 'value')),
                ' : lc_acc;\n                    lc_nan += (',
                str(environment.getattr(l_1_part, 'value')),
                ' != ',
                str(environment.getattr(l_1_part, 'value')),
                ') ? ',
                str(environment.getattr(l_1_part, 'value')),
                ' : 0;',
            ))
        elif (environment.getattr(l_1_part, 'mode') == 'max'):
            pass
            t_2.extend((
                '\n                    lc_acc = (',
                str(environment.getattr(l_1_part, 'value')),
                ' > lc_acc) ? ',
                str(environment.getattr(l_1_part, 'value')),
                ' : lc_acc;\n                    lc_acc = (',
                str(environment.getattr(l_1_part, 'value')),
                ' != ',
                str(environment.getattr(l_1_part, 'value')),
                ') ? ',
                str(environment.getattr(l_1_part, 'value')),
                ' : lc_acc;',
            ))
        elif (environment.getattr(l_1_part, 'mode') == 'greatest'):
            pass
            t_2.extend((
                '\n                    lc_acc = (',
                str(environment.getattr(l_1_part, 'value')),
                ' > lc_acc) ? ',
                str(environment.getattr(l_1_part, 'value')),
                ' : lc_acc;',
            ))
        elif (environment.getattr(l_1_part, 'mode') in ('sum', 'gather')):
            pass
            t_2.extend((
                '\n                    lc_acc += ',
                str(environment.getattr(l_1_part, 'value')),
                ';',
            ))
        elif (environment.getattr(l_1_part, 'mode') == 'guarded'):
            pass
            t_2.extend((
                '\n                    if (',
                str(environment.getattr(l_1_part, 'guard')),
                ' != 0) ',
                str(environment.getattr(l_1_part, 'target')),
                ' ',
                str((undefined(name='assign') if l_1_assign is missing else l_1_assign)),
                ' ',
                str(environment.getattr(l_1_part, 'value')),
                ';',
            ))
        else:
            pass
            t_2.extend((
                '\n                    ',
                str(environment.getattr(l_1_part, 'target')),
                ' ',
                str((undefined(name='assign') if l_1_assign is missing else l_1_assign)),
                ' ',
                str(environment.getattr(l_1_part, 'value')),
                ';',
            ))
        for l_2_offset in (undefined(name='summed') if l_1_summed is missing else l_1_summed):
            _loop_vars = {}
            pass
            t_2.append(
                '\n                }',
            )
        l_2_offset = missing
        if (environment.getattr(l_1_part, 'mode') == 'gather'):
            pass
            for l_2_line in environment.getattr(l_1_part, 'guard_lines'):
                _loop_vars = {}
                pass
                t_2.extend((
                    '\n                ',
                    str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
                ))
            l_2_line = missing
            t_2.append(
                '\n                ',
            )
            if environment.getattr(l_1_part, 'guard'):
                pass
                t_2.extend((
                    'if (',
                    str(environment.getattr(l_1_part, 'guard')),
                    ' != 0) ',
                ))
            t_2.extend((
                str(environment.getattr(l_1_part, 'target')),
                ' ',
                str((undefined(name='assign') if l_1_assign is missing else l_1_assign)),
                ' lc_acc;',
            ))
        for l_2_offset in (undefined(name='written') if l_1_written is missing else l_1_written):
            _loop_vars = {}
            pass
            t_2.append(
                '\n                }',
            )
        l_2_offset = missing
        if (l_1_lane and (environment.getattr(l_1_part, 'mode') == 'max')):
            pass
            t_2.append(
                '\n                lc_acc = (lc_nan != lc_nan) ? lc_nan : lc_acc;',
            )
        if (environment.getattr(l_1_part, 'mode') in ('max', 'greatest', 'sum')):
            pass
            t_2.extend((
                '\n                ',
                str(environment.getattr(l_1_part, 'target')),
                ' = lc_acc;',
            ))
        t_2.append(
            '\n            }',
        )
        return concat(t_2)
    context.exported_vars.add('column_loop')
    context.vars['column_loop'] = l_0_column_loop = Macro(environment, macro, 'column_loop', ('pragma', 'start', 'stop', 'part', 'lane'), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_block):
        t_3 = []
        if l_1_block is missing:
            l_1_block = undefined("parameter 'block' was not provided", name='block')
        pass
        if (environment.getattr(l_1_block, 'kind') == 'column'):
            pass
            t_3.extend((
                '\n    int64_t lc_lo0 = 0, lc_hi0 = ',
                str((undefined(name='extent') if l_0_extent is missing else l_0_extent)),
                ';',
            ))
        else:
            pass
            t_3.append(
                '\n    int lc_ok = 1;',
            )
        if (((environment.getattr(l_1_block, 'lines') or environment.getattr(l_1_block, 'starts')) or environment.getattr(l_1_block, 'stops')) or environment.getattr(l_1_block, 'tests')):
            pass
            t_3.append(
                '\n    {',
            )
            for l_2_offset in environment.getattr(l_1_block, 'inner'):
                _loop_vars = {}
                pass
                t_3.extend((
                    '\n    for (int64_t ',
                    str(environment.getattr(l_2_offset, 'var')),
                    ' = 0; ',
                    str(environment.getattr(l_2_offset, 'var')),
                    ' < ',
                    str(environment.getattr(l_2_offset, 'extent')),
                    '; ++',
                    str(environment.getattr(l_2_offset, 'var')),
                    ') {',
                ))
            l_2_offset = missing
            for l_2_line in environment.getattr(l_1_block, 'lines'):
                _loop_vars = {}
                pass
                t_3.extend((
                    '\n        ',
                    str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_2_line, 'form')), l_2_line, _loop_vars=_loop_vars)),
                ))
            l_2_line = missing
            for l_2_start in environment.getattr(l_1_block, 'starts'):
                _loop_vars = {}
                pass
                t_3.extend((
                    '\n        lc_lo0 = lc_max_i64(lc_lo0, ',
                    str(l_2_start),
                    ');',
                ))
            l_2_start = missing
            for l_2_stop in environment.getattr(l_1_block, 'stops'):
                _loop_vars = {}
                pass
                t_3.extend((
                    '\n        lc_hi0 = lc_min_i64(lc_hi0, ',
                    str(l_2_stop),
                    ');',
                ))
            l_2_stop = missing
            if environment.getattr(l_1_block, 'tests'):
                pass
                t_3.extend((
                    '\n        lc_ok = lc_ok && ',
                    str(t_1(context.eval_ctx, environment.getattr(l_1_block, 'tests'), ' != 0 && ')),
                    ' != 0;',
                ))
            for l_2_offset in environment.getattr(l_1_block, 'inner'):
                _loop_vars = {}
                pass
                t_3.append(
                    '\n    }',
                )
            l_2_offset = missing
            t_3.append(
                '\n    }',
            )
        return concat(t_3)
    context.exported_vars.add('limits')
    context.vars['limits'] = l_0_limits = Macro(environment, macro, 'limits', ('block',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_depth):
        t_4 = []
        l_1_clear = resolve('clear')
        l_1_planes = resolve('planes')
        if l_1_depth is missing:
            l_1_depth = undefined("parameter 'depth' was not provided", name='depth')
        pass
        def t_5(fiter):
            for l_2_block in fiter:
                if (environment.getattr(l_2_block, 'depth') == l_1_depth):
                    yield l_2_block
        for l_2_block in t_5((undefined(name='blocks') if l_0_blocks is missing else l_0_blocks)):
            _loop_vars = {}
            pass
            t_4.append(
                str(context.call((undefined(name='limits') if l_0_limits is missing else l_0_limits), l_2_block, _loop_vars=_loop_vars)),
            )
        l_2_block = missing
        if ((undefined(name='clear') if l_1_clear is missing else l_1_clear) and (l_1_depth == (undefined(name='planes') if l_1_planes is missing else l_1_planes))):
            pass
            t_4.extend((
                '\n    /* each plane of the target belongs to this iteration: cleared, then accumulated into */\n    for (int64_t k = 0; k < ',
                str(environment.getattr((undefined(name='clear') if l_1_clear is missing else l_1_clear), 'length')),
                '; ++k) ',
                str(environment.getattr((undefined(name='clear') if l_1_clear is missing else l_1_clear), 'target')),
                '[',
                str(environment.getattr((undefined(name='clear') if l_1_clear is missing else l_1_clear), 'start')),
                ' + k] = 0;',
            ))
        return concat(t_4)
    context.exported_vars.add('at')
    context.vars['at'] = l_0_at = Macro(environment, macro, 'at', ('depth',), False, False, False, context.eval_ctx.autoescape)
    yield '\n    /* '
    yield str((undefined(name='comment') if l_0_comment is missing else l_0_comment))
    yield ' */\n    {'
    yield str(context.call((undefined(name='at') if l_0_at is missing else l_0_at), 0))
    l_1_loop = missing
    for l_1_serial, l_1_loop in LoopContext((undefined(name='loops') if l_0_loops is missing else l_0_loops), undefined):
        l_1_planes = resolve('planes')
        l_1_work = resolve('work')
        l_1_min_work = resolve('min_work')
        _loop_vars = {}
        pass
        if (environment.getattr(l_1_loop, 'first') and (undefined(name='planes') if l_1_planes is missing else l_1_planes)):
            pass
            yield '\n    #pragma omp parallel for collapse('
            yield str((undefined(name='planes') if l_1_planes is missing else l_1_planes))
            yield ') num_threads(lc_num_threads()) if(parallel: '
            yield str((undefined(name='work') if l_1_work is missing else l_1_work))
            yield ' >= '
            yield str((undefined(name='min_work') if l_1_min_work is missing else l_1_min_work))
            yield ')'
        yield '\n    for (int64_t '
        yield str(environment.getattr(l_1_serial, 'var'))
        yield ' = 0; '
        yield str(environment.getattr(l_1_serial, 'var'))
        yield ' < '
        yield str(environment.getattr(l_1_serial, 'extent'))
        yield '; ++'
        yield str(environment.getattr(l_1_serial, 'var'))
        yield ') {'
        yield str(context.call((undefined(name='at') if l_0_at is missing else l_0_at), environment.getattr(l_1_loop, 'index'), _loop_vars=_loop_vars))
    l_1_loop = l_1_serial = l_1_planes = l_1_work = l_1_min_work = missing
    for l_1_line in (undefined(name='hoisted') if l_0_hoisted is missing else l_0_hoisted):
        _loop_vars = {}
        pass
        yield '\n            '
        yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_line, 'form')), l_1_line, _loop_vars=_loop_vars))
    l_1_line = missing
    if (undefined(name='pre') if l_0_pre is missing else l_0_pre):
        pass
        for l_1_let in environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'lets'):
            _loop_vars = {}
            pass
            yield '\n            '
            yield str(environment.getattr(l_1_let, 'ctype'))
            yield ' lc_pre_'
            yield str(environment.getattr(l_1_let, 'name'))
            yield '['
            yield str(environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'count'))
            yield '];'
        l_1_let = missing
        yield '\n            '
        for l_1_offset in environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'offsets'):
            _loop_vars = {}
            pass
            yield 'for ('
            yield str((undefined(name='itype') if l_0_itype is missing else l_0_itype))
            yield ' '
            yield str(environment.getattr(l_1_offset, 'var'))
            yield ' = 0; '
            yield str(environment.getattr(l_1_offset, 'var'))
            yield ' < '
            yield str(environment.getattr(l_1_offset, 'extent'))
            yield '; ++'
            yield str(environment.getattr(l_1_offset, 'var'))
            yield ') '
        l_1_offset = missing
        yield '{'
        for l_1_line in environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'lets'):
            _loop_vars = {}
            pass
            yield '\n                '
            yield str(context.call(environment.getitem((undefined(name='c') if l_0_c is missing else l_0_c), environment.getattr(l_1_line, 'form')), l_1_line, _loop_vars=_loop_vars))
        l_1_line = missing
        for l_1_let in environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'lets'):
            _loop_vars = {}
            pass
            yield '\n                lc_pre_'
            yield str(environment.getattr(l_1_let, 'name'))
            yield '['
            yield str(environment.getattr((undefined(name='pre') if l_0_pre is missing else l_0_pre), 'flat'))
            yield '] = '
            yield str(environment.getattr(l_1_let, 'name'))
            yield ';'
        l_1_let = missing
        yield '\n            }'
    if (undefined(name='blocks') if l_0_blocks is missing else l_0_blocks):
        pass
        yield '\n            /* 0 <= lc_lo <= lc_hi <= the row: the edges and the middle split it */\n            const int64_t lc_lo = lc_min_i64(lc_lo0, '
        yield str((undefined(name='extent') if l_0_extent is missing else l_0_extent))
        yield ');\n            const int64_t lc_hi = lc_ok ? lc_max_i64(lc_hi0, lc_lo) : lc_lo;'
    else:
        pass
        yield '\n            const '
        yield str((undefined(name='itype') if l_0_itype is missing else l_0_itype))
        yield ' lc_lo = 0, lc_hi = '
        yield str((undefined(name='extent') if l_0_extent is missing else l_0_extent))
        yield ';'
    if (undefined(name='edges') if l_0_edges is missing else l_0_edges):
        pass
        yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), '', '0', 'lc_lo', (undefined(name='edges') if l_0_edges is missing else l_0_edges)))
    l_0_simd = str_join(('#pragma omp simd simdlen(', (undefined(name='block') if l_0_block is missing else l_0_block), ')', ))
    context.vars['simd'] = l_0_simd
    context.exported_vars.add('simd')
    if ((undefined(name='lane') if l_0_lane is missing else l_0_lane) == 'always'):
        pass
        yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), '', 'lc_lo', 'lc_hi', (undefined(name='fast') if l_0_fast is missing else l_0_fast), (undefined(name='lane') if l_0_lane is missing else l_0_lane)))
    else:
        pass
        if (undefined(name='lane') if l_0_lane is missing else l_0_lane):
            pass
            yield "\n            /* a row shorter than a run of vectors: its window's columns in SIMD lanes */\n            if (lc_hi - lc_lo < "
            yield str((undefined(name='block') if l_0_block is missing else l_0_block))
            yield ') {'
            yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), '', 'lc_lo', 'lc_hi', (undefined(name='fast') if l_0_fast is missing else l_0_fast), (undefined(name='lane') if l_0_lane is missing else l_0_lane)))
            yield '\n            } else {'
        if (undefined(name='redo') if l_0_redo is missing else l_0_redo):
            pass
            yield '\n            /* runs of whole vectors'
            yield str((' plus one' if (undefined(name='gaps') if l_0_gaps is missing else l_0_gaps) else cond_expr_undefined("the inline if-expression on line 177 in 'window.c.j2' evaluated to false and no else section was defined.")))
            yield ', the last run ending at lc_hi (the columns\n               done twice get the same values): gcc 12 runs the columns past whole vectors'
            yield str((',\n               and the last column of a read with gaps,' if (undefined(name='gaps') if l_0_gaps is missing else l_0_gaps) else cond_expr_undefined("the inline if-expression on line 178 in 'window.c.j2' evaluated to false and no else section was defined.")))
            yield ' in scalar code */\n            const '
            yield str((undefined(name='itype') if l_0_itype is missing else l_0_itype))
            yield ' lc_full = lc_hi - lc_lo >= '
            yield str(((undefined(name='block') if l_0_block is missing else l_0_block) + (undefined(name='gaps') if l_0_gaps is missing else l_0_gaps)))
            yield ' ? lc_lo + (lc_hi - lc_lo - '
            yield str((undefined(name='gaps') if l_0_gaps is missing else l_0_gaps))
            yield ') / '
            yield str((undefined(name='block') if l_0_block is missing else l_0_block))
            yield ' * '
            yield str((undefined(name='block') if l_0_block is missing else l_0_block))
            yield ' + '
            yield str((undefined(name='gaps') if l_0_gaps is missing else l_0_gaps))
            yield ' : lc_hi;'
            yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), (undefined(name='simd') if l_0_simd is missing else l_0_simd), 'lc_lo', 'lc_full', (undefined(name='fast') if l_0_fast is missing else l_0_fast)))
            yield '\n            if (lc_full < lc_hi) {'
            yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), (undefined(name='simd') if l_0_simd is missing else l_0_simd), str_join(('lc_hi - ', ((undefined(name='block') if l_0_block is missing else l_0_block) + (undefined(name='gaps') if l_0_gaps is missing else l_0_gaps)), )), 'lc_hi', (undefined(name='fast') if l_0_fast is missing else l_0_fast)))
            yield '\n            }'
        else:
            pass
            yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), (undefined(name='simd') if l_0_simd is missing else l_0_simd), 'lc_lo', 'lc_hi', (undefined(name='fast') if l_0_fast is missing else l_0_fast)))
        if (undefined(name='lane') if l_0_lane is missing else l_0_lane):
            pass
            yield '\n            }'
    if (undefined(name='edges') if l_0_edges is missing else l_0_edges):
        pass
        yield str(context.call((undefined(name='column_loop') if l_0_column_loop is missing else l_0_column_loop), ((undefined(name='simd') if l_0_simd is missing else l_0_simd) if (undefined(name='edge_simd') if l_0_edge_simd is missing else l_0_edge_simd) else ''), 'lc_hi', (undefined(name='extent') if l_0_extent is missing else l_0_extent), (undefined(name='edges') if l_0_edges is missing else l_0_edges)))
    for l_1_serial in (undefined(name='loops') if l_0_loops is missing else l_0_loops):
        _loop_vars = {}
        pass
        yield '\n    }'
    l_1_serial = missing
    yield '\n    }\n'

blocks = {}
debug_info = '12=32&13=34&14=54&15=58&17=62&18=75&19=79&21=86&22=88&23=93&25=98&27=103&29=107&31=111&32=115&33=119&35=126&37=130&39=142&40=146&42=150&43=154&44=158&46=168&48=172&50=184&51=189&53=192&54=196&55=200&56=207&59=211&60=215&61=222&62=226&63=231&64=235&65=238&66=242&68=255&70=262&73=269&74=271&75=276&78=282&80=295&83=302&86=307&87=311&91=320&92=325&93=329&97=337&99=342&100=347&102=357&103=362&105=365&106=370&108=374&109=379&111=383&112=387&114=390&120=403&121=410&122=418&124=421&126=425&129=436&131=438&132=440&133=446&134=449&136=456&137=464&139=466&140=470&142=472&144=474&145=478&147=486&148=502&149=506&151=508&152=512&156=520&158=523&161=528&163=532&164=534&166=535&167=538&168=540&170=543&172=546&173=548&176=550&177=553&178=555&180=557&181=569&183=571&186=575&188=576&192=579&193=581&195=582'