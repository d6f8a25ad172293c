"""The context stage of next edits: the user's recent edits as small diffs, and the window to rewrite.

Nothing here runs per keystroke beyond bookkeeping. A document's edits are grouped: a group is the
text as it was when the user started changing one place (``base``) and the text now; the user moving
to another place (a change more than ``GROUP_LINES`` lines from the group's lines) or a long pause
closes the group into a ``FileDiff``. Diffs are computed only when a next-edit request needs them, and
only over the part that differs (the common start and end of the two texts are skipped in C, so a
5 MB document costs a few ms, not a line-by-line comparison).
"""

from __future__ import annotations

import difflib
import re
import time
from collections import deque
from dataclasses import dataclass, field

from tandem_lsp.backends.types import common_prefix_len
from tandem_lsp.completion.context import display_path
from tandem_lsp.next_edit.types import FileDiff, NextEditContext

GROUP_LINES = 8  # a change this many lines away from the open group's lines starts a new group
GROUP_IDLE_S = 30.0  # ... and so does a change after this long a pause
DIFF_CONTEXT = 2  # unchanged lines around each hunk
MAX_DIFFS = 6  # recent edits shown to the model, over all documents
MAX_DIFF_CHARS = 1200  # the most characters of one diff (a longer one is cut to its first hunk lines)
RECENT_S = 600.0  # edits older than this are forgotten
WINDOW_BEFORE = 6  # lines of the window above the cursor line (the window is WINDOW_BEFORE + 1 + after)
WINDOW_LINES = 20
MIN_WINDOW_LINES = 6
_WORD = re.compile(r"\w+")


def _common_suffix_len(a: str, b: str, limit: int) -> int:
    """The length of the longest common suffix of ``a`` and ``b``, at most ``limit`` (only the last
    ``limit`` characters of each are reversed, not the whole text)."""
    return common_prefix_len(a[len(a) - limit :][::-1], b[len(b) - limit :][::-1]) if limit > 0 else 0


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """(start, old end, new end): ``old[start:old_end]`` became ``new[start:new_end]``; the rest is equal."""
    start = common_prefix_len(old, new)
    tail = _common_suffix_len(old, new, min(len(old), len(new)) - start)
    return start, len(old) - tail, len(new) - tail


def _line_bounds(text: str, start: int, end: int, context: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole lines and ``context`` more lines on each side."""
    lo = text.rfind("\n", 0, start) + 1
    for _ in range(context):
        if lo == 0:
            break
        lo = text.rfind("\n", 0, lo - 1) + 1
    hi = text.find("\n", end)
    hi = len(text) if hi < 0 else hi + 1
    for _ in range(context):
        if hi >= len(text):
            break
        nxt = text.find("\n", hi)
        hi = len(text) if nxt < 0 else nxt + 1
    return lo, hi


def unified_hunk(path: str, old: str, new: str) -> FileDiff | None:
    """The edit ``old`` -> ``new`` of one document as a small unified diff (hunks only, line numbers of the
    document), or None when nothing changed."""
    if old == new:
        return None
    start, old_end, new_end = changed_span(old, new)
    lo, hi_old = _line_bounds(old, start, old_end, DIFF_CONTEXT)
    # the same lines of the new text: the start is shared, the end is as far from the end of each text
    hi_new = len(new) - (len(old) - hi_old)
    first_line = old.count("\n", 0, lo)
    old_lines = old[lo:hi_old].splitlines(keepends=True)
    new_lines = new[lo:hi_new].splitlines(keepends=True)
    body = []
    for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=DIFF_CONTEXT):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            line = _shift_header(line, first_line)
        body.append(line.rstrip("\r\n"))
    diff = "\n".join(body) + "\n"
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS].rsplit("\n", 1)[0] + "\n"
    return FileDiff(path=path, diff=diff, old="".join(old_lines), new="".join(new_lines))


def _shift_header(header: str, offset: int) -> str:
    """An ``@@ -a,b +c,d @@`` header with ``offset`` added to both start lines."""
    def shift(m: re.Match) -> str:
        return f"{m.group(1)}{int(m.group(2)) + offset}"

    return re.sub(r"([-+])(\d+)", shift, header, count=2)


@dataclass
class _Group:
    base: str  # the document when this group's first change came
    lo: int  # the lines the group's changes touched (in the document now)
    hi: int
    at: float  # the last change's time


@dataclass
class _Doc:
    text: str
    group: _Group | None = None
    closed: deque = field(default_factory=lambda: deque(maxlen=MAX_DIFFS))  # (time, FileDiff)
    last_edit: float = 0.0
    removed_words: frozenset = frozenset()  # words the newest group removed (a rename's old name)


class EditHistory:
    """The recent edits of the open documents, newest last (see the module docstring)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._docs: dict[str, _Doc] = {}
        self._clock = clock

    def opened(self, uri: str, text: str) -> None:
        self._docs[uri] = _Doc(text)

    def closed(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def changed(self, uri: str, text: str, line: int | None = None) -> None:
        """The document is now ``text``; ``line`` is where the (last) change started, when known."""
        doc = self._docs.get(uri)
        now = self._clock()
        if doc is None:
            self._docs[uri] = _Doc(text, last_edit=now)
            return
        if text == doc.text:
            return
        if line is None:
            start, _, _ = changed_span(doc.text, text)
            line = text.count("\n", 0, start)
        group = doc.group
        if group is not None and (now - group.at > GROUP_IDLE_S or line < group.lo - GROUP_LINES
                                  or line > group.hi + GROUP_LINES):
            self._close(uri, doc, doc.text)
            group = None
        if group is None:
            doc.group = _Group(doc.text, line, line, now)
        else:
            group.lo, group.hi, group.at = min(group.lo, line), max(group.hi, line), now
        doc.text = text
        doc.last_edit = now

    def _close(self, uri: str, doc: _Doc, text: str) -> None:
        group = doc.group
        doc.group = None
        if group is None:
            return
        diff = unified_hunk(display_path(uri), group.base, text)
        if diff is not None:
            doc.closed.append((group.at, diff))

    # -- what a request reads ------------------------------------------------------------------
    def last_edit(self, uri: str) -> float | None:
        doc = self._docs.get(uri)
        return doc.last_edit if doc is not None and (doc.group is not None or doc.closed) else None

    def base(self, uri: str) -> str | None:
        """The document before its open group of changes (None: no open group)."""
        doc = self._docs.get(uri)
        return doc.group.base if doc is not None and doc.group is not None else None

    def diffs(self, uri: str, max_diffs: int = MAX_DIFFS, max_chars: int = 4 * MAX_DIFF_CHARS) -> tuple[FileDiff, ...]:
        """The recent edits of all documents, oldest first, at most ``max_diffs``/``max_chars``; this
        document's open group (what the user is doing now) is always the newest."""
        now = self._clock()
        entries: list[tuple[float, FileDiff]] = []
        current: FileDiff | None = None
        for doc_uri, doc in self._docs.items():
            entries.extend(e for e in doc.closed if now - e[0] <= RECENT_S)
            if doc.group is not None and now - doc.group.at <= RECENT_S:
                diff = unified_hunk(display_path(doc_uri), doc.group.base, doc.text)
                if diff is not None:
                    if doc_uri == uri:
                        current = diff
                    else:
                        entries.append((doc.group.at, diff))
        entries.sort(key=lambda e: e[0])
        picked = [d for _, d in entries] + ([current] if current is not None else [])
        picked = picked[-max_diffs:]
        total, kept = 0, []
        for diff in reversed(picked):  # the newest first, until the room is used
            total += len(diff.diff)
            if total > max_chars and kept:
                break
            kept.append(diff)
        return tuple(reversed(kept))

    def removed_words(self, uri: str) -> set[str]:
        """Words the latest edit of this document removed (a rename's old name): a cursor that lands on a
        line holding one is where a next edit is likely."""
        doc = self._docs.get(uri)
        if doc is None:
            return set()
        if doc.group is not None:
            diff = unified_hunk("", doc.group.base, doc.text)
        elif doc.closed:
            diff = doc.closed[-1][1]
        else:
            return set()
        if diff is None:
            return set()
        lines = diff.diff.split("\n")
        removed = {w for line in lines if line.startswith("-") for w in _WORD.findall(line[1:])}
        added = {w for line in lines if line.startswith("+") for w in _WORD.findall(line[1:])}
        return removed - added


# ------------------------------------------------------------------------------------------ window

@dataclass(frozen=True)
class Window:
    start: int  # offsets of the window in the document
    end: int
    start_line: int


def window_around(text: str, offset: int, lines: int = WINDOW_LINES, before: int = WINDOW_BEFORE) -> Window:
    """About ``lines`` whole lines around ``offset``: ``before`` above the cursor line, the rest below
    (fewer above at the start of the file give more below, and the other way round)."""
    offset = min(max(offset, 0), len(text))
    lines = max(1, lines)
    before = min(before, lines - 1)
    cur = text.rfind("\n", 0, offset) + 1
    start = cur
    above = 0
    while above < before and start > 0:
        start = text.rfind("\n", 0, start - 1) + 1
        above += 1
    end = cur
    below = 0
    while below < lines - above and end < len(text):
        nxt = text.find("\n", end)
        end = len(text) if nxt < 0 else nxt + 1
        below += 1
    while above + below < lines and start > 0:  # the file ended: more lines above
        start = text.rfind("\n", 0, start - 1) + 1
        above += 1
    return Window(start, end, text.count("\n", 0, start))


def original_of(base: str | None, text: str, win: Window) -> str:
    """The window's region as it was before the open group of changes (``base``): the same lines where the
    group did not touch them, the group's old lines where it did (whole lines of ``base``)."""
    window = text[win.start : win.end]
    if base is None or base == text:
        return window
    start, old_end, new_end = changed_span(base, text)
    delta = len(base) - len(text)

    def to_base(x: int, inside: int) -> int:
        return x if x <= start else x + delta if x >= new_end else inside

    lo, hi = to_base(win.start, start), to_base(win.end, old_end)
    if 0 < lo and base[lo - 1] != "\n":
        lo = base.rfind("\n", 0, lo) + 1
    if 0 < hi < len(base) and base[hi - 1] != "\n":
        nl = base.find("\n", hi)
        hi = len(base) if nl < 0 else nl + 1
    return base[lo:hi]


def _head_lines(text: str, max_chars: int) -> str:
    """The first whole lines of ``text`` within ``max_chars``."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    return text[: cut + 1] if cut >= 0 else ""


def _tail_lines(text: str, max_chars: int) -> str:
    """The last whole lines of ``text`` within ``max_chars``."""
    if len(text) <= max_chars:
        return text
    cut = text.find("\n", len(text) - max_chars)
    return text[cut + 1 :] if cut >= 0 else ""


def build_context(
    history: EditHistory, uri: str, text: str, offset: int, language_id: str, *,
    window_lines: int = WINDOW_LINES, before_chars: int = 1500, after_chars: int = 800, diff_chars: int = 2400,
) -> tuple[NextEditContext, Window]:
    """What the model sees for a next edit at ``offset`` (bounded: the window's lines, the text around it
    in characters, the recent edits)."""
    win = window_around(text, offset, window_lines, min(WINDOW_BEFORE, window_lines // 3))
    ctx = NextEditContext(
        path=display_path(uri),
        language_id=language_id,
        diffs=history.diffs(uri, max_chars=diff_chars),
        before=_tail_lines(text[max(0, win.start - before_chars - 200) : win.start], before_chars),
        window=text[win.start : win.end],
        original=original_of(history.base(uri), text, win),
        cursor=offset - win.start,
        after=_head_lines(text[win.end : win.end + after_chars + 200], after_chars),
        window_start_line=win.start_line,
    )
    return ctx, win
