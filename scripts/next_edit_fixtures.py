#!/usr/bin/env python3
"""The next-edit fixtures: real commits that make one change at several places of one file.

Each ``tests/data/next_edit_commits/NN-<slug>.json`` holds a file of a public Python project (or of
Tandem's own history) before a commit and after it, restricted to the hunks of the repeated change:

    {"repo": "owner/name", "commit": "<40 hex>", "path": "<the file in that repo>",
     "summary": "what repeats", "license": "<the project's license>", "note": "how before/after were cut",
     "cut": {"first_line", "last_line", "file_lines"} | null, "before": "<text>", "after": "<text>"}

``after`` is ``before`` with only the repeated change's hunks of the commit applied (the commit's other
changes to the file are left out, and ``note`` says so); ``cut`` names the line range of the file both
texts were cut to, when they were. The file texts are data, under their project's license.

``hunks(before, after)`` is what the benchmark replays: the line blocks that differ (difflib), in
document order; the first is the change the user makes, the rest are the repeats a next-edit
suggestion should offer.

CLI: ``python scripts/next_edit_fixtures.py [NAME ...]`` checks the fixtures and lists their hunks.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "tests" / "data" / "next_edit_commits"
NAME = re.compile(r"^\d\d-[a-z0-9][a-z0-9-]*$")
FIELDS = ("repo", "commit", "path", "summary", "license", "before", "after")
MIN_HUNKS = 3
MAX_LINES = 1500


@dataclass(frozen=True)
class Hunk:
    """Lines ``[a, b)`` of the old text became lines ``[c, d)`` of the new one (0-based)."""

    a: int
    b: int
    c: int
    d: int


@dataclass(frozen=True)
class Fixture:
    name: str  # the file's stem: "01-requests-usedforsecurity"
    repo: str
    commit: str
    path: str
    summary: str
    license: str
    before: str
    after: str
    note: str = ""
    cut: dict | None = None

    @property
    def hunks(self) -> list[Hunk]:
        return hunks(self.before, self.after)


def hunks(old: str, new: str) -> list[Hunk]:
    """The line blocks that differ between ``old`` and ``new``, in document order."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [Hunk(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def fixture_paths(directory: Path = FIXTURE_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load(path: Path) -> Fixture:
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [f for f in FIELDS if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        raise ValueError(f"{path.name}: missing or empty {', '.join(missing)}")
    return Fixture(name=path.stem, note=data.get("note") or "", cut=data.get("cut"),
                   **{f: data[f] for f in FIELDS})


def load_fixtures(names: list[str] | None = None, directory: Path = FIXTURE_DIR) -> list[Fixture]:
    """All fixtures, or those whose name starts with one of ``names`` ("03", "03-requests", the whole stem)."""
    fixtures = [load(p) for p in fixture_paths(directory)]
    if names:
        fixtures = [f for f in fixtures if any(f.name == n or f.name.startswith(n) for n in names)]
        if not fixtures:
            raise ValueError(f"no fixture matches {', '.join(names)}")
    return fixtures


def problems(fx: Fixture) -> list[str]:
    """What is wrong with a fixture (nothing: an empty list)."""
    out = []
    if not NAME.match(fx.name):
        out.append(f"name {fx.name!r} is not NN-<slug>")
    if not re.fullmatch(r"[0-9a-f]{40}", fx.commit):
        out.append(f"commit {fx.commit!r} is not a full hexadecimal commit id")
    if fx.before == fx.after:
        out.append("before == after")
    found = fx.hunks
    if len(found) < MIN_HUNKS:
        out.append(f"{len(found)} changed hunks, fewer than {MIN_HUNKS}")
    for label, text in (("before", fx.before), ("after", fx.after)):
        if text.count("\n") >= MAX_LINES:
            out.append(f"{label} has {text.count(chr(10))} lines (at least {MAX_LINES})")
    if fx.cut is not None:
        first, last = fx.cut.get("first_line"), fx.cut.get("last_line")
        if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last):
            out.append(f"cut {fx.cut!r} is not a line range")
        elif fx.before.count("\n") != last - first + 1:
            out.append(f"before has {fx.before.count(chr(10))} lines, the cut {last - first + 1}")
    if re.search(r"(^|[\s\"'])/(tmp|work|home)/", json.dumps({"repo": fx.repo, "path": fx.path, "note": fx.note})):
        out.append("names a machine path")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", help="fixture names or prefixes (default: all)")
    args = parser.parse_args(argv)
    bad = 0
    for fx in load_fixtures(args.names or None):
        found = fx.hunks
        issues = problems(fx)
        bad += bool(issues)
        print(f"{fx.name}: {fx.repo} {fx.commit[:12]} {fx.path} ({fx.license}), "
              f"{fx.before.count(chr(10))} lines, {len(found)} hunks at lines "
              f"{', '.join(str(h.a + 1) for h in found)}")
        print(f"    {fx.summary}")
        for issue in issues:
            print(f"    PROBLEM: {issue}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
