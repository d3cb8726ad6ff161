"""Errors raised for user specs and inputs, located at the user's line of code."""
from __future__ import annotations

import os
import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_location() -> str:
    """``file:line`` of the innermost stack frame outside the compiler package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class SpecError(ValueError):
    """A layer spec that cannot be compiled (unknown name, shape mismatch, …).

    The message names the spec, the user's source line, and the expression.
    """

    def __init__(self, spec: str, message: str, location: str | None = None):
        self.spec = spec
        self.location = location or user_location()
        super().__init__(f"{spec} ({self.location}): {message}")
