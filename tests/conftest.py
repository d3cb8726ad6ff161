"""Shared test set-up: a private build cache per test session unless CI gives one."""
import os
import tempfile

if "LAYERC_CACHE_DIR" not in os.environ:
    os.environ["LAYERC_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "layerc-test-cache")
