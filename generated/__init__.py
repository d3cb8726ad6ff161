"""Layers compiled ahead of time by layerc (see manifest.txt and README.md).

Each subpackage (``generated.prelu``, ``generated.linear``, ...) imports with
only numpy and cffi once its extension is built (``layerc build --all`` or
``python -m generated.<package>.build``).
"""
