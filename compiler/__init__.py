"""layerc's compiler: spec front end → IR → autodiff → simplify → schedule →
codegen → build. ``pipeline.compile_layer`` runs the stages for one layer.

The public face is ``layerc`` itself (``from layerc import layer, Input, ops``);
this package holds the stages, one module each.
"""
