"""The documentation runs: every ```python block of docs/*.md and README.md.

The blocks of one file run in order as one script (later blocks use what earlier
ones defined), written so that each block starts at its own line number in the
Markdown file: a traceback's line number is the line in the .md file. A block
preceded by the comment ``<!-- no-run -->`` is not run (kept for blocks that
need files or programs the test cannot provide).
"""
import pathlib
import re
import runpy
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
NO_RUN = re.compile(r"<!--\s*no-run\s*-->\s*$")
EXAMPLE_PATH = re.compile(r"\b((?:examples|runtime|compiler|tests|benchmarks|templates|docs|generated)/[\w./-]*\w)")


def python_blocks(text: str):
    """``(line number of the first code line, code, runnable)`` for each python block."""
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").splitlines()
        skip = bool(before) and bool(NO_RUN.search(before[-1]))
        yield text.count("\n", 0, m.start(1)) + 1, m.group(1), not skip


def as_script(text: str) -> str:
    """The runnable blocks, each placed at its line number in the Markdown file."""
    lines: list[str] = []
    for first_line, code, runnable in python_blocks(text):
        if not runnable:
            continue
        lines.extend([""] * (first_line - 1 - len(lines)))
        lines.extend(code.rstrip("\n").splitlines())
    return "\n".join(lines) + "\n"


def _id(path):
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", DOC_FILES, ids=_id)
def test_code_blocks_run(path, tmp_path, monkeypatch, capsys):
    text = path.read_text()
    blocks = list(python_blocks(text))
    assert blocks, f"{_id(path)} has no ```python block"
    script = tmp_path / (path.stem.replace("-", "_") + "_md.py")
    script.write_text(as_script(text))
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("path", DOC_FILES, ids=_id)
def test_skipped_blocks_are_rare(path):
    blocks = list(python_blocks(path.read_text()))
    skipped = sum(1 for *_, runnable in blocks if not runnable)
    assert skipped <= max(1, len(blocks) // 5), f"{_id(path)}: {skipped} of {len(blocks)} blocks are not run"


@pytest.mark.parametrize("path", DOC_FILES, ids=_id)
def test_referenced_files_exist(path):
    text = path.read_text()
    named = {m.group(1).rstrip(".") for m in EXAMPLE_PATH.finditer(text)}
    links = {m.group(1) for m in re.finditer(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    missing += sorted(link for link in links if not (path.parent / link).exists())
    assert not missing, f"{_id(path)} refers to files that do not exist: {missing}"


def test_readme_keeps_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert "    python -m pip install -e . && python examples/quickstart.py\n" in text
    assert '    python -m pip install -e ".[test]" && python -m pytest\n' in text


def test_extractor_places_blocks_at_their_markdown_lines():
    text = "intro\n\n```python\na = 1\n```\n\n<!-- no-run -->\n```python\nraise SystemExit\n```\n```python\nb = a + 1\n```\n"
    blocks = list(python_blocks(text))
    assert [(line, runnable) for line, _, runnable in blocks] == [(4, True), (9, False), (12, True)]
    script = as_script(text).splitlines()
    assert script[3] == "a = 1" and script[11] == "b = a + 1" and "raise SystemExit" not in script
