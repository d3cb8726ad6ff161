"""Errors raised for user specs and inputs, located at the user's line of code."""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_location() -> str:
    """``file:line`` of the innermost stack frame outside the compiler package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


class SpecError(ValueError):
    """A layer spec that cannot be compiled (unknown name, shape mismatch, …).

    The message names the spec, the user's source line, and the expression.
    """

    def __init__(self, spec: str, message: str, location: str | None = None):
        self.spec = spec
        self.location = location or user_location()
        super().__init__(f"{spec} ({self.location}): {message}")
