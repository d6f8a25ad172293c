"""From a rewritten window to edits: the smallest replacements, and the filters that drop bad ones.

The model rewrites the whole window; what the user sees is only what changed. Lines are matched
first (difflib), then each changed block is narrowed to what differs within it, widened to whole
words (``width`` -> ``w`` rather than deleting ``idth``). Dropped: no-ops, edits outside the window,
edits that undo what the user just typed, and, for Python, a set that no longer parses when the
document did.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from dataclasses import dataclass

from tandem_lsp.next_edit.context import changed_span

_WORD_CHAR = re.compile(r"\w")
PARSE_MAX_CHARS = 400_000  # a longer document is not parsed again (the check would cost more than it saves)


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` of the document with ``new``."""

    start: int
    end: int
    new: str

    def apply(self, text: str) -> str:
        return text[: self.start] + self.new + text[self.end :]


def _narrow(old: str, new: str) -> tuple[int, int, int]:
    """(start, old end, new end) of what differs between ``old`` and ``new``, widened to whole words."""
    start, old_end, new_end = changed_span(old, new)
    while start > 0 and _WORD_CHAR.match(old[start - 1]) and (
            (start < old_end and _WORD_CHAR.match(old[start])) or (start < new_end and _WORD_CHAR.match(new[start]))):
        start -= 1
    while old_end < len(old) and _WORD_CHAR.match(old[old_end]) and (
            (old_end > start and _WORD_CHAR.match(old[old_end - 1]))
            or (new_end > start and _WORD_CHAR.match(new[new_end - 1]))):
        old_end += 1
        new_end += 1
    return start, old_end, new_end


def _block_edits(old: str, new: str, base: int) -> list[Edit]:
    """The edits of one changed block of lines (``old`` at ``base``): per line when the block keeps its
    number of lines, else each run that differs, each narrowed and widened to whole words; edits that
    touch after widening are merged."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    spans: list[tuple[int, int, int, int]] = []  # (old start, old end, new start, new end) within the block
    if len(old_lines) == len(new_lines):
        o = n = 0
        for a, b in zip(old_lines, new_lines):
            if a != b:
                s, oe, ne = _narrow(a, b)
                spans.append((o + s, o + oe, n + s, n + ne))
            o, n = o + len(a), n + len(b)
    else:
        s, oe, ne = _narrow(old, new)
        spans.append((s, oe, s, ne))
    merged: list[list[int]] = []
    for span in spans:
        if merged and span[0] <= merged[-1][1]:
            merged[-1][1], merged[-1][3] = span[1], span[3]
        else:
            merged.append(list(span))
    return [Edit(base + os_, base + oe, new[ns:ne]) for os_, oe, ns, ne in merged if old[os_:oe] != new[ns:ne]]


def window_edits(window: str, rewritten: str, offset: int) -> list[Edit]:
    """The edits that turn ``window`` (at ``offset`` in the document) into ``rewritten``, in order of
    position; none when they are equal."""
    if window == rewritten:
        return []
    old_lines = window.splitlines(keepends=True)
    new_lines = rewritten.splitlines(keepends=True)
    old_starts = [0]
    for line in old_lines:
        old_starts.append(old_starts[-1] + len(line))
    edits: list[Edit] = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            edits.extend(_block_edits("".join(old_lines[i1:i2]), "".join(new_lines[j1:j2]), offset + old_starts[i1]))
    return edits


def undoes(edit: Edit, text: str, last_change: tuple[int, str, str] | None) -> bool:
    """Whether ``edit`` puts back what the user's latest change replaced. ``last_change`` is
    (offset, the text it replaced, the text it put there) in the document as it is now."""
    if last_change is None:
        return False
    at, old, new = last_change
    if edit.end < at or edit.start > at + len(new):
        return False
    lo, hi = min(edit.start, at), max(edit.end, at + len(new))
    edited = edit.apply(text)[lo : hi + len(edit.new) - (edit.end - edit.start)]
    reverted = text[lo:at] + old + text[at + len(new) : hi]
    return edited == reverted


def parses(text: str) -> bool | None:
    """Whether ``text`` is valid Python (None: too long to check)."""
    if len(text) > PARSE_MAX_CHARS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like are not errors
            ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def apply_all(text: str, edits: list[Edit]) -> str:
    """``text`` with every edit applied (edits do not overlap)."""
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = edit.apply(text)
    return text


def breaks_python(text: str, edits: list[Edit]) -> bool:
    """A document that parsed and would not parse with ``edits`` applied."""
    before = parses(text)
    return bool(before) and parses(apply_all(text, edits)) is False


def is_python(path: str, language_id: str) -> bool:
    return language_id.lower() == "python" or path.lower().endswith((".py", ".pyi"))


def keep(edits: list[Edit], text: str, window: tuple[int, int], last_change: tuple[int, str, str] | None,
         ) -> list[Edit]:
    """The edits worth showing: inside the window, changing something, not undoing the user's change."""
    lo, hi = window
    return [
        e for e in edits
        if lo <= e.start <= e.end <= hi and text[e.start : e.end] != e.new and not undoes(e, text, last_change)
    ]


def ordered(edits: list[Edit], cursor: int) -> list[Edit]:
    """The edit to show first first: the nearest one at or after the cursor, then the ones before it."""
    after = sorted((e for e in edits if e.end >= cursor), key=lambda e: e.start)
    before = sorted((e for e in edits if e.end < cursor), key=lambda e: -e.start)
    return after + before


def remaining(text: str, region: tuple[int, int], target: str, region_text: str | None = None) -> list[Edit]:
    """What is left of a suggestion set: the edits that turn ``text[region]`` into ``target``."""
    lo, hi = region
    return window_edits(text[lo:hi] if region_text is None else region_text, target, lo)
