"""The Markdown in the repository stands alone: no link or path reaches outside the repository, and every
relative link (and its #anchor) resolves. Also the README's promises: the test command is CI's, the
first command line reaches the demo even offline, an `[embedded]` install says what it needs, and code
blocks stay readable.

Allowed: web links (http, https, mailto), placeholders such as `/path/to/tandem`, and the per-user
places Tandem itself uses (`~/.local/share/tandem`, `$XDG_STATE_HOME`, ...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", ".pytest_cache", ".hypothesis", "__pycache__", "out", "build", "dist"}
# Paths of a particular machine, or of files kept next to the repository rather than in it.
OUTSIDE = re.compile(r"\.\./shared|CONTRACT\.md|(?<![\w.~$])/(?:work|tmp|home|root|Users|mnt|srv)/|file://")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.S | re.M)
INLINE_LINK = re.compile(r"(?<!\\)!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*(?:href|src)=\"(?P<target>[^\"]+)\"", re.I)


def markdown_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(dirpath) / f for f in filenames if f.lower().endswith(".md")]
    return sorted(found)


FILES = markdown_files()
IDS = [str(p.relative_to(ROOT)) for p in FILES]


def without_code(text: str) -> str:
    """The text with fenced blocks and inline code blanked (their brackets are not links)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", lambda m: " " * len(m.group(0)), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    out |= set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", path.read_text(encoding="utf-8")))
    return out


def links(path: Path) -> list[str]:
    text = without_code(path.read_text(encoding="utf-8"))
    return [m.group("target") for pattern in (INLINE_LINK, REF_LINK, HTML_LINK) for m in pattern.finditer(text)]


def test_the_markdown_files_are_found():
    names = set(IDS)
    assert {"README.md", "docs/interface.md", "clients/vscode/README.md", "clients/neovim/README.md"} <= names


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_no_path_outside_the_repository(path):
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = OUTSIDE.search(line)
        assert m is None, f"{path.relative_to(ROOT)}:{n} names a path outside the repository: {m.group(0)!r}"
        for rel in re.findall(r"(?<![\w/.])((?:\.\./)+[\w.\-/]*)", line):
            target = (path.parent / rel).resolve()
            assert target.is_relative_to(ROOT), f"{path.relative_to(ROOT)}:{n}: {rel} leaves the repository"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_relative_link_resolves(path):
    where = path.relative_to(ROOT)
    for target in links(path):
        if re.match(r"(?i)(https?:|mailto:)", target):
            continue
        assert not re.match(r"(?i)[a-z][a-z0-9+.-]*:", target), f"{where}: link {target!r} is not a web link"
        assert not target.startswith(("/", "~", "\\")), f"{where}: link {target!r} is absolute"
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.is_relative_to(ROOT), f"{where}: link {target!r} leaves the repository"
        assert dest.exists(), f"{where}: link {target!r}: {dest.relative_to(ROOT)} does not exist"
        if anchor and dest.suffix.lower() == ".md":
            assert anchor in anchors(dest), f"{where}: link {target!r}: no heading #{anchor} in {dest.name}"


def test_the_package_is_never_installed_from_pypi():
    """tandem-lsp is not published: every install is from a checkout."""
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        m = re.search(r"pipx? install ['\"]?tandem-lsp\b", text)
        assert m is None, f"{path.relative_to(ROOT)}: {m.group(0)!r}, but tandem-lsp is not on PyPI"


def test_an_embedded_install_says_it_needs_a_compiler_and_cmake():
    for path in FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if re.search(r"pip install[^\n]*\[[^\]]*embedded", line):
                near = " ".join(lines[max(0, n - 8): n + 9])
                assert re.search(r"compiler", near) and "CMake" in near, (
                    f"{path.relative_to(ROOT)}:{n + 1}: an [embedded] install without 'a C/C++ compiler and CMake'")


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_test_command_is_what_ci_runs():
    assert "```sh\nbash .ci/run\n```" in readme()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash")
    assert re.search(r"^TANDEM_REQUIRE_REAL_SERVERS=1 (TANDEM_REQUIRE_EDITORS=1 )?\.venv/bin/python -m pytest -q$", ci, re.M)
    assert re.search(r"^bash scripts/e2e_vscode\.sh", ci, re.M)  # the fifth editor, in real VS Code


def test_the_first_command_line_reaches_the_demo_offline():
    """`models pull` fails offline: the demo must not hang on its success with `&&`."""
    block = re.search(r"```sh\n(.*?)```", readme(), re.S).group(1)
    command = block.replace("\\\n", " ")
    assert "models pull" in command and "tandem-lsp demo" in command
    assert not re.search(r"models pull[^\n;]*&&[^\n;]*demo", command)
    assert "bash .ci/run" in block


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_code_block_lines_fit_100_columns(path):
    text = re.sub(r"<!-- snippet: .*?<!-- /snippet -->", "", path.read_text(encoding="utf-8"), flags=re.S)
    for m in FENCE.finditer(text):
        for line in m.group("body").splitlines():
            assert len(line) <= 100, f"{path.relative_to(ROOT)}: a code line of {len(line)} characters: {line[:60]}..."
