"""The editor snippets in the README are the files in clients/, verbatim, so the two cannot drift.

A snippet block in README.md (or any docs/*.md) is written as

    <!-- snippet: clients/helix/languages.toml -->
    ```toml
    ...the file's content, byte for byte...
    ```
    <!-- /snippet -->

The source may also be ``PATH#LANG`` for a Markdown file: the first ```LANG block of PATH, without the
indentation of a list it sits in (the Neovim client's README holds its init.lua snippet). While a source file does not exist yet the block holds a
marked placeholder, and its test is skipped. After changing a snippet file, run

    python tests/unit/test_readme_snippets.py --write

to copy every source into its block again (nothing else in the Markdown is touched).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The snippet sources the README must show: the editor configurations kept in clients/.
REQUIRED = (
    "clients/neovim/README.md#lua",
    "clients/helix/languages.toml",
    "clients/emacs/tandem-eglot.el",
)
# Every file in these folders (but their READMEs) is a snippet the README must show.
SNIPPET_DIRS = ("clients/helix", "clients/emacs")
LANGS = {".toml": "toml", ".el": "elisp", ".lua": "lua", ".json": "json", ".kdl": "kdl"}
PLACEHOLDER = "PLACEHOLDER"
BLOCK = re.compile(r"<!-- snippet: (?P<src>\S+) -->\n(?P<body>.*?)<!-- /snippet -->", re.S)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.S | re.M)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def source_path(src: str) -> Path:
    return ROOT / src.split("#", 1)[0]


def source_text(src: str) -> tuple[str, str] | None:
    """(language, content) of a snippet source, or None while it does not exist."""
    path = source_path(src)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if "#" in src:
        lang = src.split("#", 1)[1]
        for m in FENCE.finditer(text):
            if m.group("info").strip().split(" ")[0] == lang:  # a block in a list is indented: not its code
                indent = m.group("indent")
                return lang, "".join(line[len(indent):] if line.startswith(indent) else line
                                     for line in m.group("body").splitlines(keepends=True))
        raise AssertionError(f"{src}: no ```{lang} block in {path.relative_to(ROOT)}")
    return LANGS.get(path.suffix, ""), text


def render(src: str) -> str:
    """What the block for ``src`` must hold: the source in a fence, or the marked placeholder."""
    found = source_text(src)
    if found is None:
        return (f"```text\n{PLACEHOLDER}: {source_path(src).relative_to(ROOT)} does not exist yet. Its content\n"
                f"goes here verbatim: run python tests/unit/test_readme_snippets.py --write\n```\n")
    lang, content = found
    if not content.endswith("\n"):
        content += "\n"
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{content}{fence}\n"


def blocks() -> list[tuple[Path, str, str]]:
    """(file, source, body) of every snippet block."""
    out = []
    for md in markdown_files():
        for m in BLOCK.finditer(md.read_text(encoding="utf-8")):
            out.append((md, m.group("src"), m.group("body")))
    return out


def write() -> list[Path]:
    changed = []
    for md in markdown_files():
        text = md.read_text(encoding="utf-8")
        new = BLOCK.sub(lambda m: f"<!-- snippet: {m.group('src')} -->\n{render(m.group('src'))}<!-- /snippet -->", text)
        if new != text:
            md.write_text(new, encoding="utf-8")
            changed.append(md)
    return changed


def snippet_sources() -> list[str]:
    found = set(REQUIRED)
    for folder in SNIPPET_DIRS:
        for path in sorted((ROOT / folder).glob("**/*")):
            if path.is_file() and path.name.lower() != "readme.md":
                found.add(path.relative_to(ROOT).as_posix())
    return sorted(found)


@pytest.mark.parametrize("src", snippet_sources())
def test_the_snippet_appears_verbatim(src):
    shown = [(md, body) for md, s, body in blocks() if s == src]
    assert shown, f"README.md (or docs/) has no <!-- snippet: {src} --> block"
    found = source_text(src)
    for md, body in shown:
        where = md.relative_to(ROOT)
        if found is None:
            assert PLACEHOLDER in body, f"{where}: the block for {src} (not written yet) must be the placeholder"
        else:
            assert body == render(src), (
                f"{where}: the {src} block differs from the file; run python tests/unit/test_readme_snippets.py --write")
            assert found[1] in md.read_text(encoding="utf-8")
    if found is None:
        pytest.skip(f"{src} does not exist yet; the README shows a placeholder")


def test_every_block_names_a_file_in_the_repository():
    for md, src, _body in blocks():
        path = source_path(src).resolve()
        assert path.is_relative_to(ROOT), f"{md.relative_to(ROOT)}: snippet source {src} is outside the repository"
        assert src in REQUIRED or path.is_file(), f"{md.relative_to(ROOT)}: snippet source {src} does not exist"


def test_snippet_markers_are_paired():
    for md in markdown_files():
        text = md.read_text(encoding="utf-8")
        opened = len(re.findall(r"<!-- snippet: ", text))
        closed = text.count("<!-- /snippet -->")
        assert opened == closed == len(BLOCK.findall(text)), f"{md.relative_to(ROOT)}: unpaired snippet markers"


def test_the_snippets_are_in_the_readme():
    readme = {src for md, src, _ in blocks() if md.name == "README.md" and md.parent == ROOT}
    assert set(REQUIRED) <= readme


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    for path in write():
        print(f"updated {path.relative_to(ROOT)}")
